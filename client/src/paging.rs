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
pub(crate) async fn follow_pages(
    paging: Paging,
    mut fetch: impl AsyncFnMut(i32, Option<String>) -> Result<Page, ClientError>,
) -> Result<(Vec<Value>, Option<String>), ClientError> {
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
