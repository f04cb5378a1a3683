//! The instances page's listing: the backend's filters (status, id prefix, creation
//! time) go into its query; the orchestration name, which `InstanceQuery` cannot filter
//! on, is matched here while scanning the backend's pages.
//!
//! A name scan fills the page from chunks of [`SCAN_CHUNK`] instances and may stop in the
//! middle of one, where the backend has no continuation token to give. The dashboard's
//! cursor is therefore the backend's token of the chunk the page stopped in plus how many
//! matches of that chunk were shown already (`<skip>.<token>`): the next page asks for the
//! same chunk again and skips them. A scan reads at most [`SCAN_BUDGET`] instances per
//! page, so a rare name cannot make one request read a whole task hub; the page then says
//! so and its cursor goes on where the scan stopped.

use serde_json::Value;

/// Instances asked of the backend per call while matching names.
pub const SCAN_CHUNK: usize = 1000;
/// At most this many instances are read for one page of a name filter.
pub const SCAN_BUDGET: usize = 5_000;

/// Where a page starts: the backend's continuation token (none: the beginning) and how
/// many matches at that token were shown before.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cursor {
    pub token: Option<String>,
    pub skip: usize,
}

impl Cursor {
    /// Reads a cursor the dashboard handed out; the error names what is wrong.
    pub fn parse(text: &str) -> Result<Cursor, String> {
        let (skip, token) = text
            .split_once('.')
            .ok_or_else(|| format!("cursor '{text}' is not one this dashboard gave out"))?;
        let skip = skip
            .parse()
            .map_err(|_| format!("cursor '{text}' is not one this dashboard gave out"))?;
        Ok(Cursor {
            token: (!token.is_empty()).then(|| token.to_owned()),
            skip,
        })
    }

    /// The cursor's text, as the page passes it back.
    pub fn encode(&self) -> String {
        format!(
            "{}.{}",
            self.skip,
            self.token.as_deref().unwrap_or_default()
        )
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
/// [`SCAN_CHUNK`] instances from `token`; it must return the same chunk for the same
/// token (it does, unless instances are created or purged meanwhile).
/// (A closure returning a future, not an async closure, so that the page's future is
/// `Send`: see `durabletask_client`'s paging.)
pub async fn scan_by_name<E, F>(
    name: &str,
    page_size: usize,
    cursor: Cursor,
    mut fetch: impl FnMut(Option<String>) -> F,
) -> Result<Page, E>
where
    F: Future<Output = Result<(Vec<Value>, Option<String>), E>>,
{
    let mut page = Page::default();
    let mut token = cursor.token;
    let mut skip = cursor.skip;
    loop {
        let (chunk, next_token) = fetch(token.clone()).await?;
        page.scanned += chunk.len();
        let mut matched_in_chunk = 0;
        let mut rest = chunk
            .into_iter()
            .filter(|instance| instance["name"].as_str() == Some(name));
        for instance in rest.by_ref() {
            matched_in_chunk += 1;
            if matched_in_chunk <= skip {
                continue;
            }
            page.instances.push(instance);
            if page.instances.len() == page_size {
                break;
            }
        }
        if page.instances.len() == page_size {
            // More matches wait in this chunk, or later ones may.
            let more_here = rest.next().is_some();
            page.next = (more_here || next_token.is_some()).then(|| Cursor {
                token: if more_here { token } else { next_token.clone() },
                skip: if more_here { matched_in_chunk } else { 0 },
            });
            return Ok(page);
        }
        skip = 0;
        let Some(next_token) = next_token else {
            return Ok(page);
        };
        token = Some(next_token);
        if page.scanned >= SCAN_BUDGET {
            page.scan_limited = true;
            page.next = Some(Cursor { token, skip: 0 });
            return Ok(page);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use serde_json::json;

    type Chunk = std::future::Ready<Result<(Vec<Value>, Option<String>), String>>;

    /// A backend of `names.len()` instances `i-<n>`, served in chunks of `chunk`.
    fn backend(names: &[&str], chunk: usize) -> impl FnMut(Option<String>) -> Chunk + use<> {
        let all: Vec<Value> = names
            .iter()
            .enumerate()
            .map(|(index, name)| json!({"instance_id": format!("i-{index}"), "name": name}))
            .collect();
        move |token: Option<String>| {
            let start: usize = token.map_or(0, |token| token.parse().unwrap());
            let end = (start + chunk).min(all.len());
            let next = (end < all.len()).then(|| end.to_string());
            std::future::ready(Ok((all[start..end].to_vec(), next)))
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
                skip: 3,
            },
        ] {
            assert_eq!(Cursor::parse(&cursor.encode()).unwrap(), cursor);
        }
        assert!(Cursor::parse("nonsense").unwrap_err().contains("nonsense"));
        assert!(Cursor::parse("x.token").is_err());
    }

    #[tokio::test]
    async fn pages_stop_mid_chunk_and_go_on_from_there_without_loss_or_repeat() {
        let names: Vec<&str> = (0..25)
            .map(|i| if i % 3 == 0 { "a" } else { "b" })
            .collect();
        let expected: Vec<String> = (0..25)
            .filter(|i| i % 3 == 0)
            .map(|i| format!("i-{i}"))
            .collect();
        let mut seen = Vec::new();
        let mut cursor = Cursor::default();
        let mut pages = 0;
        loop {
            let page = scan_by_name("a", 2, cursor, backend(&names, 10))
                .await
                .unwrap();
            seen.extend(ids(&page).iter().map(|id| (*id).to_owned()));
            pages += 1;
            match page.next {
                // The cursor survives a round trip through the page's URL.
                Some(next) => cursor = Cursor::parse(&next.encode()).unwrap(),
                None => break,
            }
        }
        assert_eq!(seen, expected);
        assert_eq!(pages, 5);
    }

    #[tokio::test]
    async fn a_rare_name_stops_at_the_budget_and_says_so() {
        let mut names = vec!["common"; SCAN_BUDGET + 2 * SCAN_CHUNK];
        let last = names.len() - 1;
        names[last] = "rare";
        let page = scan_by_name("rare", 10, Cursor::default(), backend(&names, SCAN_CHUNK))
            .await
            .unwrap();
        assert!(page.instances.is_empty());
        assert!(page.scan_limited);
        assert_eq!(page.scanned, SCAN_BUDGET);
        let next = page.next.unwrap();
        let page = scan_by_name("rare", 10, next, backend(&names, SCAN_CHUNK))
            .await
            .unwrap();
        assert_eq!(ids(&page), vec![format!("i-{last}")]);
        assert_eq!(page.next, None);
    }

    #[tokio::test]
    async fn a_full_page_at_the_very_end_has_no_next() {
        let names = ["a", "b", "a"];
        let page = scan_by_name("a", 2, Cursor::default(), backend(&names, 10))
            .await
            .unwrap();
        assert_eq!(ids(&page), vec!["i-0", "i-2"]);
        assert_eq!(page.next, None);
    }
}
