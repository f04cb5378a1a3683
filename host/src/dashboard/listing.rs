//! The instances page's listing: the backend's filters (status, id prefix, creation
//! time) go into its query; the orchestration name, which `InstanceQuery` cannot filter
//! on, is matched here while scanning the backend's pages.
//!
//! A name scan fills the page from chunks of [`SCAN_CHUNK`] instances and may stop in the
//! middle of one, where the backend has no continuation token to give. The dashboard's
//! cursor is therefore the token of the chunk the page stopped in plus where in it the
//! page stopped: the creation time of the last row shown and the ids shown with that
//! time. The next page asks for the same chunk again and skips what is older, or as old
//! and shown. Backends list oldest first (the embedded and the reference backend do), so
//! this neither loses nor repeats a row when earlier rows leave the listing meanwhile (a
//! count of rows to skip would). A scan reads at most [`SCAN_BUDGET`] instances, or for
//! [`SCAN_TIME`], per page, so a rare name cannot make one request read a whole task hub;
//! the page then says so and its cursor goes on where the scan stopped.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use durabletask_client::NamedPage;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Instances asked of the backend per call while matching names.
pub const SCAN_CHUNK: usize = 1000;
/// At most this many instances are read for one page of a name filter...
pub const SCAN_BUDGET: usize = 5_000;
/// ...and for at most this long (large instances make chunks slow).
pub const SCAN_TIME: Duration = Duration::from_secs(1);

/// Where a page starts: the backend's continuation token (none: the beginning) and,
/// when the previous page stopped inside that chunk, where.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    pub token: Option<String>,
    pub after: Option<Position>,
}

/// The last row a page showed: its creation time, and every id shown with that time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// Nanoseconds since the Unix epoch.
    pub created: u64,
    pub ids: Vec<String>,
}

impl Cursor {
    /// Reads a cursor the dashboard handed out; the error names what is wrong.
    pub fn parse(text: &str) -> Result<Cursor, String> {
        serde_json::from_str(text)
            .map_err(|_| format!("cursor '{text}' is not one this dashboard gave out"))
    }

    /// The cursor's text, as the page passes it back.
    pub fn encode(&self) -> String {
        // A struct of strings and numbers always serializes.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// An instance's creation time in nanoseconds, as listed (`created_at`, RFC 3339).
fn created(instance: &Value) -> Option<u64> {
    let text = instance["created_at"].as_str()?;
    let time = durabletask_client::signal_time("created_at", text, SystemTime::now()).ok()?;
    u64::try_from(time.duration_since(UNIX_EPOCH).ok()?.as_nanos()).ok()
}

impl Position {
    /// Whether `instance` was shown at or before this position.
    fn covers(&self, instance: &Value) -> bool {
        match created(instance) {
            Some(created) if created < self.created => true,
            Some(created) if created == self.created => self
                .ids
                .iter()
                .any(|id| instance["instance_id"].as_str() == Some(id)),
            _ => false,
        }
    }

    /// The position after `shown` (rows of one page, oldest first), the page having
    /// started after `before`: rows of the same time shown by earlier pages stay shown.
    fn after(shown: &[Value], before: Option<&Position>) -> Option<Position> {
        let created = created(shown.last()?)?;
        let mut ids: Vec<String> = shown
            .iter()
            .rev()
            .take_while(|instance| self::created(instance) == Some(created))
            .filter_map(|instance| instance["instance_id"].as_str().map(str::to_owned))
            .collect();
        if let Some(before) = before.filter(|before| before.created == created) {
            ids.extend(before.ids.iter().cloned());
        }
        Some(Position { created, ids })
    }
}

/// One page of instances and where the next starts.
#[derive(Debug, Default, PartialEq)]
pub struct Page {
    pub instances: Vec<Value>,
    pub next: Option<Cursor>,
    /// Instances read from the backend for this page.
    pub scanned: usize,
    /// The scan stopped at its budget before the page was full.
    pub scan_limited: bool,
}

/// Scans for instances named `name`. `fetch(token)` is one backend call of
/// [`SCAN_CHUNK`] instances from `token`, giving those named `name` (the others are
/// dropped where they are read) and how many it read; for the same token it reads the
/// same chunk, less what left the listing and plus what joined it since.
///
/// (A closure returning a future, not an async closure, so that the page's future is
/// `Send`: see `durabletask_client`'s paging.)
pub async fn scan_by_name<E, F>(
    page_size: usize,
    cursor: Cursor,
    mut fetch: impl FnMut(Option<String>) -> F,
) -> Result<Page, E>
where
    F: Future<Output = Result<NamedPage, E>>,
{
    let started = Instant::now();
    let mut page = Page::default();
    let mut token = cursor.token;
    let mut after = cursor.after;
    loop {
        let NamedPage {
            instances: named,
            scanned,
            continuation_token: next_token,
        } = fetch(token.clone()).await?;
        page.scanned += scanned;
        let mut rest = named
            .into_iter()
            .filter(|instance| !after.as_ref().is_some_and(|after| after.covers(instance)));
        for instance in rest.by_ref() {
            page.instances.push(instance);
            if page.instances.len() == page_size {
                break;
            }
        }
        if page.instances.len() == page_size {
            // More matches wait in this chunk, or later ones may.
            page.next = if rest.next().is_some() {
                Some(Cursor {
                    token,
                    after: Position::after(&page.instances, after.as_ref()),
                })
            } else {
                next_token.map(|token| Cursor {
                    token: Some(token),
                    after: None,
                })
            };
            return Ok(page);
        }
        after = None;
        let Some(next_token) = next_token else {
            return Ok(page);
        };
        token = Some(next_token);
        if page.scanned >= SCAN_BUDGET || started.elapsed() >= SCAN_TIME {
            page.scan_limited = true;
            page.next = Some(Cursor { token, after: None });
            return Ok(page);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::{Arc, Mutex};

    use super::*;
    use serde_json::json;

    type Chunk = std::future::Ready<Result<NamedPage, String>>;

    /// A backend listing `rows` (id, name) oldest first (two rows per second), which a
    /// test may change meanwhile.
    fn listing(rows: &[(&str, &str)]) -> Arc<Mutex<Vec<Value>>> {
        let all = rows
            .iter()
            .enumerate()
            .map(|(index, (id, name))| {
                json!({
                    "instance_id": id,
                    "name": name,
                    "created_at": format!(
                        "2026-01-01T{:02}:{:02}:{:02}Z",
                        index / 2 / 3600,
                        index / 2 / 60 % 60,
                        index / 2 % 60
                    ),
                })
            })
            .collect();
        Arc::new(Mutex::new(all))
    }

    /// Pages of `listing` in chunks of `chunk` by offset, as the reference backend pages,
    /// keeping those named `name` (as `Client::list_page_named` does).
    fn pages_of(
        listing: &Arc<Mutex<Vec<Value>>>,
        name: &'static str,
        chunk: usize,
    ) -> impl FnMut(Option<String>) -> Chunk + use<> {
        let listing = Arc::clone(listing);
        move |token: Option<String>| {
            let all = listing.lock().unwrap();
            let start: usize = token.map_or(0, |token| token.parse().unwrap());
            let start = start.min(all.len());
            let end = (start + chunk).min(all.len());
            let next = (end < all.len()).then(|| end.to_string());
            let read = &all[start..end];
            std::future::ready(Ok(NamedPage {
                instances: read
                    .iter()
                    .filter(|instance| instance["name"] == name)
                    .cloned()
                    .collect(),
                scanned: read.len(),
                continuation_token: next,
            }))
        }
    }

    fn ids(page: &Page) -> Vec<&str> {
        page.instances
            .iter()
            .map(|instance| instance["instance_id"].as_str().unwrap())
            .collect()
    }

    #[test]
    fn a_cursor_reads_back_what_it_wrote() {
        for cursor in [
            Cursor::default(),
            Cursor {
                token: Some("12.7:abc.def".to_owned()),
                after: Some(Position {
                    created: 5,
                    ids: vec!["a|b".to_owned(), "c".to_owned()],
                }),
            },
        ] {
            assert_eq!(Cursor::parse(&cursor.encode()).unwrap(), cursor);
        }
        assert!(Cursor::parse("nonsense").unwrap_err().contains("nonsense"));
    }

    #[tokio::test]
    async fn pages_stop_mid_chunk_and_go_on_from_there_without_loss_or_repeat() {
        let names: Vec<(String, &str)> = (0..25)
            .map(|i| (format!("i-{i:02}"), if i % 3 == 0 { "a" } else { "b" }))
            .collect();
        let rows: Vec<(&str, &str)> = names
            .iter()
            .map(|(id, name)| (id.as_str(), *name))
            .collect();
        let expected: Vec<String> = (0..25)
            .filter(|i| i % 3 == 0)
            .map(|i| format!("i-{i:02}"))
            .collect();
        let mut seen = Vec::new();
        let mut cursor = Cursor::default();
        loop {
            let fetch = pages_of(&listing(&rows), "a", 10);
            let page = scan_by_name(2, cursor, fetch).await.unwrap();
            seen.extend(ids(&page).iter().map(|id| (*id).to_owned()));
            match page.next {
                // The cursor survives a round trip through the page's URL.
                Some(next) => cursor = Cursor::parse(&next.encode()).unwrap(),
                None => break,
            }
        }
        assert_eq!(seen, expected);
    }

    #[tokio::test]
    async fn a_row_shown_that_leaves_the_listing_does_not_hide_the_next_one() {
        // The reviewer's case: page 1 shows lost-1, which then leaves the listing (it was
        // terminated, and the listing is of RUNNING ones); page 2 must show lost-2.
        let rows = [("lost-1", "a"), ("lost-2", "a"), ("lost-3", "a")];
        let listing = listing(&rows);
        let first = scan_by_name(1, Cursor::default(), pages_of(&listing, "a", 10))
            .await
            .unwrap();
        assert_eq!(ids(&first), ["lost-1"]);
        listing.lock().unwrap().remove(0);
        let second = scan_by_name(1, first.next.unwrap(), pages_of(&listing, "a", 10))
            .await
            .unwrap();
        assert_eq!(ids(&second), ["lost-2"]);
    }

    #[tokio::test]
    async fn rows_created_at_the_same_time_are_each_shown_once() {
        // Rows 0 and 1, 2 and 3, ... share a creation time: pages of one still walk all.
        let rows = [("x", "a"), ("y", "a"), ("z", "a"), ("w", "a")];
        let mut seen = Vec::new();
        let mut cursor = Cursor::default();
        loop {
            let fetch = pages_of(&listing(&rows), "a", 10);
            let page = scan_by_name(1, cursor, fetch).await.unwrap();
            seen.extend(ids(&page).iter().map(|id| (*id).to_owned()));
            match page.next {
                Some(next) => cursor = next,
                None => break,
            }
        }
        assert_eq!(seen, ["x", "y", "z", "w"]);
    }

    #[tokio::test]
    async fn a_rare_name_stops_at_the_budget_and_says_so() {
        let mut rows = vec![("common", "common"); SCAN_BUDGET + 2 * SCAN_CHUNK];
        let last = rows.len() - 1;
        rows[last] = ("the-rare-one", "rare");
        let fetch = pages_of(&listing(&rows), "rare", SCAN_CHUNK);
        let page = scan_by_name(10, Cursor::default(), fetch).await.unwrap();
        assert!(page.instances.is_empty());
        assert!(page.scan_limited);
        assert_eq!(page.scanned, SCAN_BUDGET);
        let fetch = pages_of(&listing(&rows), "rare", SCAN_CHUNK);
        let page = scan_by_name(10, page.next.unwrap(), fetch).await.unwrap();
        assert_eq!(ids(&page), ["the-rare-one"]);
        assert_eq!(page.next, None);
    }

    #[tokio::test]
    async fn a_full_page_at_the_very_end_has_no_next() {
        let rows = [("p", "a"), ("q", "b"), ("r", "a")];
        let fetch = pages_of(&listing(&rows), "a", 10);
        let page = scan_by_name(2, Cursor::default(), fetch).await.unwrap();
        assert_eq!(ids(&page), ["p", "r"]);
        assert_eq!(page.next, None);
    }
}
