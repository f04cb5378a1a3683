//! Read-only queries: instance listings (with continuation tokens) and histories.

use std::ops::Bound;

use durabletask_proto::*;
use prost::Message;
use tonic::Status;

use super::events::{self, Nanos};
use super::hub::Hub;
use super::instances;
use crate::store::Store;

/// The most bytes of instance states one page of `QueryInstances` carries (a page holds
/// at least one instance): under the 4 MiB that gRPC clients accept by default.
pub(super) const PAGE_BYTES: usize = 2 * 1024 * 1024;

/// A continuation token: the sort key of the last item returned, `<nanos>|<id>`.
fn cursor_token(at: Nanos, id: &str) -> String {
    format!("{at}|{id}")
}

fn parse_cursor(token: &str) -> Result<(Nanos, String), Status> {
    token
        .split_once('|')
        .and_then(|(at, id)| Some((at.parse().ok()?, id.to_owned())))
        .ok_or_else(|| Status::invalid_argument(format!("invalid continuation token '{token}'")))
}

/// The most finished instances' records a listing reads from the store at once.
const RECORDS_PER_READ: usize = 256;

impl Hub {
    /// `QueryInstances`, ordered by creation time then id: walks the creation index from
    /// the cursor, so a page costs about its own size; the records of finished
    /// instances on the page are read from the store.
    pub fn query_instances(
        &self,
        request: &QueryInstancesRequest,
        store: &Store,
    ) -> Result<QueryInstancesResponse, Status> {
        let query = request.query.clone().unwrap_or_default();
        let from = query.created_time_from.as_ref().map(events::from_timestamp);
        let to = query.created_time_to.as_ref().map(events::from_timestamp);
        let prefix = query.instance_id_prefix.unwrap_or_default();
        let after = match query.continuation_token.as_deref() {
            Some(token) if !token.is_empty() => Some(parse_cursor(token)?),
            _ => None,
        };
        // Start at the later of the cursor and the `from` bound ("" sorts before any id).
        let start = match (&after, from) {
            (Some((at, _)), Some(from)) if from > *at => Bound::Included((from, "")),
            (Some((at, id)), _) => Bound::Excluded((*at, id.as_str())),
            (None, Some(from)) => Bound::Included((from, "")),
            (None, None) => Bound::Unbounded,
        };
        let page_size = usize::try_from(query.max_instance_count)
            .ok()
            .filter(|&size| size > 0)
            .unwrap_or(usize::MAX);
        // A page ends at `page_size` items or at PAGE_BYTES, whichever comes first, so
        // a few instances with large payloads cannot make a listing too big to send.
        // Matching instances are taken in chunks and each chunk's records read together:
        // a finished instance's record is in the store, and one read per chunk costs one
        // round trip on PostgreSQL, not one per instance. A chunk is bounded, so that a
        // listing without a page size does not read the whole hub at once.
        let mut matching = self
            .instances
            .created_from(start)
            .take_while(|(created_at, _)| to.is_none_or(|to| *created_at < to))
            .filter(|(_, id)| id.starts_with(&prefix))
            .filter(|(_, id)| self.has_status(id, &query.runtime_status));
        let mut orchestration_state = Vec::new();
        let mut bytes = 0usize;
        let mut last: Option<(Nanos, &str)> = None;
        let mut more = false;
        'page: loop {
            let wanted = page_size
                .saturating_sub(orchestration_state.len())
                .saturating_add(1)
                .min(RECORDS_PER_READ);
            let chunk: Vec<(Nanos, &str)> = matching.by_ref().take(wanted).collect();
            if chunk.is_empty() {
                break;
            }
            let ids: Vec<&str> = chunk.iter().map(|(_, id)| *id).collect();
            let records = self
                .instances
                .stored_records(&ids, store)
                .map_err(|error| Status::internal(format!("could not read instances: {error}")))?;
            for (&(created_at, id), record) in chunk.iter().zip(records) {
                let Some(record) = record else {
                    continue;
                };
                if orchestration_state.len() == page_size {
                    more = true;
                    break 'page;
                }
                let state = instances::orchestration_state(&record, query.fetch_inputs_and_outputs);
                let size = state.encoded_len();
                // A page ends at `page_size` items or at PAGE_BYTES, whichever comes
                // first, so a few instances with large payloads cannot make a listing
                // too big to send.
                if !orchestration_state.is_empty() && bytes + size > PAGE_BYTES {
                    more = true;
                    break 'page;
                }
                bytes += size;
                last = Some((created_at, id));
                orchestration_state.push(state);
            }
        }
        let continuation_token = if more {
            last.map(|(at, id)| cursor_token(at, id))
        } else {
            None
        };
        Ok(QueryInstancesResponse {
            orchestration_state,
            continuation_token,
        })
    }

    /// `ListInstanceIds`: finished instances, ordered by completion time then id (the
    /// completion index, from the cursor).
    pub fn list_instance_ids(
        &self,
        request: &ListInstanceIdsRequest,
    ) -> Result<ListInstanceIdsResponse, Status> {
        let from = request
            .completed_time_from
            .as_ref()
            .map(events::from_timestamp);
        let to = request
            .completed_time_to
            .as_ref()
            .map(events::from_timestamp);
        let after = match request.last_instance_key.as_deref() {
            Some(token) if !token.is_empty() => Some(parse_cursor(token)?),
            _ => None,
        };
        let page_size = usize::try_from(request.page_size)
            .ok()
            .filter(|&size| size > 0)
            .unwrap_or(100);
        let completed = self
            .instances
            .completed_after(after.as_ref().map(|(at, id)| (*at, id.as_str())));
        let mut matching: Vec<(Nanos, &str)> = Vec::new();
        let mut more = false;
        for (at, id) in completed {
            if from.is_some_and(|from| at < from) {
                continue;
            }
            if to.is_some_and(|to| at >= to) {
                break;
            }
            if !self.has_status(id, &request.runtime_status) {
                continue;
            }
            if matching.len() == page_size {
                more = true;
                break;
            }
            matching.push((at, id));
        }
        let last_instance_key = if more {
            matching.last().map(|(at, id)| cursor_token(*at, id))
        } else {
            None
        };
        Ok(ListInstanceIdsResponse {
            instance_ids: matching.into_iter().map(|(_, id)| id.to_owned()).collect(),
            last_instance_key,
        })
    }

    /// Whether `id` has one of `statuses` (any status when empty).
    fn has_status(&self, id: &str, statuses: &[i32]) -> bool {
        statuses.is_empty()
            || self
                .instances
                .status(id)
                .is_some_and(|status| statuses.contains(&status))
    }

    /// `StreamInstanceHistory`: the whole history (from the store if not in memory).
    pub fn history(&self, instance_id: &str, store: &Store) -> Result<Vec<HistoryEvent>, Status> {
        self.instances
            .history(instance_id, store)
            .map_err(|error| Status::internal(format!("could not read the history: {error}")))?
            .ok_or_else(|| {
                Status::not_found(format!("orchestration instance '{instance_id}' not found"))
            })
    }
}
