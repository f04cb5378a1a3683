//! Listings page alike: follow the backend's continuation tokens up to a limit.

use serde_json::Value;

use crate::{ClientError, Paging};

/// One answer of a paged query, already rendered.
pub(crate) struct Page {
    pub(crate) items: Vec<Value>,
    pub(crate) continuation_token: Option<String>,
}

/// Calls `fetch(count, token)` for page after page, following continuation tokens until
/// there are no more or `paging.limit` items are in. Returns the items and the token to
/// go on from (None when there is nothing more).
///
/// `fetch` is a closure returning a future rather than an async closure: the future of an
/// async closure that borrows is not provably `Send` (rustc's higher-ranked lifetimes), and
/// the dashboard's handlers, spawned on a multi-threaded runtime, need it to be.
pub(crate) async fn follow_pages<F>(
    paging: Paging,
    mut fetch: impl FnMut(i32, Option<String>) -> F,
) -> Result<(Vec<Value>, Option<String>), ClientError>
where
    F: Future<Output = Result<Page, ClientError>>,
{
    let limit = paging.limit.max(1);
    let page_size = paging.page_size.max(1);
    let mut items = Vec::new();
    let mut token = paging.continuation_token.filter(|token| !token.is_empty());
    loop {
        let remaining = limit - items.len();
        let count = i32::try_from(remaining.min(page_size)).unwrap_or(i32::MAX);
        let page = fetch(count, token.take()).await?;
        let page_was_empty = page.items.is_empty();
        items.extend(page.items.into_iter().take(remaining));
        token = page.continuation_token.filter(|token| !token.is_empty());
        // An empty page with a token would loop forever: stop and hand the token back.
        if token.is_none() || items.len() >= limit || page_was_empty {
            break;
        }
    }
    Ok((items, token))
}
