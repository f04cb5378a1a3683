//! Instances by status, for the counts at the top of the instances page.
//!
//! The protocol has no count: the embedded backend's engine keeps its counts in memory
//! (the same numbers `/metrics` publishes), so on a host that runs the engine they are
//! exact and cost a message to its thread. Anywhere else (a remote backend, or a follower
//! of a PostgreSQL cluster whose leader holds them) each status is counted by listing
//! instances without payloads, at most [`COUNT_CAP`] each: a status with more shows as
//! "at least" that many rather than reading the whole task hub every refresh, and such
//! counts are kept for [`LISTED_COUNTS_LIFETIME`], shared by every viewer, so pages
//! refreshing themselves do not multiply the listings.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use durabletask_backend::InProcessClient;
use durabletask_backend::metrics::STATUSES;
use durabletask_client::{Client, ClientError, ListOptions, Paging, parse_status};
use serde_json::{Value, json};

/// The most instances of one status counted by listing them.
pub const COUNT_CAP: usize = 1000;

/// How long counts made by listing are reused.
pub const LISTED_COUNTS_LIFETIME: Duration = Duration::from_secs(10);

/// The counts made by listing, and when.
#[derive(Default)]
pub struct ListedCounts {
    last: Mutex<Option<(Instant, Value)>>,
}

impl ListedCounts {
    /// `{"counts": {status: n}, "counts_exact": bool, "counts_cap": n | null}`.
    pub async fn by_status(
        &self,
        embedded: Option<&InProcessClient>,
        client: &Client,
    ) -> Result<Value, ClientError> {
        if let Some(embedded) = embedded
            && let Ok(stats) = embedded.stats().await
        {
            let counts: BTreeMap<&str, u64> = STATUSES
                .iter()
                .map(|status| (*status, stats.instances.get(status).copied().unwrap_or(0)))
                .collect();
            return Ok(json!({ "counts": counts, "counts_exact": true, "counts_cap": null }));
        }
        if let Some((at, counts)) = &*self.last.lock().unwrap_or_else(PoisonError::into_inner)
            && at.elapsed() < LISTED_COUNTS_LIFETIME
        {
            return Ok(counts.clone());
        }
        let counts = by_listing(client).await?;
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) =
            Some((Instant::now(), counts.clone()));
        Ok(counts)
    }
}

/// Counts each status by listing it, up to [`COUNT_CAP`].
async fn by_listing(client: &Client) -> Result<Value, ClientError> {
    let listings = STATUSES.iter().map(|status| async move {
        let status_code = parse_status("status", status)?;
        let listing = client
            .list(ListOptions {
                statuses: vec![status_code],
                paging: Paging {
                    limit: COUNT_CAP,
                    page_size: COUNT_CAP,
                    continuation_token: None,
                },
                ..ListOptions::default()
            })
            .await?;
        let listed = listing["instances"].as_array().map_or(0, Vec::len);
        let more = !listing["continuation_token"].is_null();
        Ok::<_, ClientError>((*status, listed, more))
    });
    let mut counts = BTreeMap::new();
    let mut exact = true;
    for counted in futures::future::join_all(listings).await {
        let (status, listed, more) = counted?;
        exact &= !more;
        counts.insert(status, listed);
    }
    Ok(json!({
        "counts": counts,
        "counts_exact": exact,
        "counts_cap": (!exact).then_some(COUNT_CAP),
    }))
}
