//! Read-only queries: instance listings (with continuation tokens) and histories.

use durabletask_proto::*;
use prost::Message;
use tonic::Status;

use super::events::{self, Nanos};
use super::hub::{Hub, Instance};
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

impl Hub {
    /// `QueryInstances`, ordered by creation time then id.
    pub fn query_instances(
        &self,
        request: &QueryInstancesRequest,
    ) -> Result<QueryInstancesResponse, Status> {
        let query = request.query.clone().unwrap_or_default();
        let from = query.created_time_from.as_ref().map(events::from_timestamp);
        let to = query.created_time_to.as_ref().map(events::from_timestamp);
        let prefix = query.instance_id_prefix.unwrap_or_default();
        let after = match query.continuation_token.as_deref() {
            Some(token) if !token.is_empty() => Some(parse_cursor(token)?),
            _ => None,
        };
        let mut matching: Vec<&Instance> = self
            .instances
            .values()
            .filter(|instance| {
                let record = &instance.record;
                (query.runtime_status.is_empty() || query.runtime_status.contains(&record.status))
                    && from.is_none_or(|from| record.created_at >= from)
                    && to.is_none_or(|to| record.created_at < to)
                    && record.instance_id.starts_with(&prefix)
                    && after.as_ref().is_none_or(|(at, id)| {
                        (record.created_at, record.instance_id.as_str()) > (*at, id.as_str())
                    })
            })
            .collect();
        matching.sort_by(|a, b| {
            (a.record.created_at, &a.record.instance_id)
                .cmp(&(b.record.created_at, &b.record.instance_id))
        });
        let page_size = usize::try_from(query.max_instance_count)
            .ok()
            .filter(|&size| size > 0)
            .unwrap_or(usize::MAX);
        // A page ends at `page_size` items or at PAGE_BYTES, whichever comes first, so
        // a few instances with large payloads cannot make a listing too big to send.
        let mut orchestration_state = Vec::new();
        let mut bytes = 0usize;
        let mut last = None;
        let mut more = false;
        for instance in matching {
            if orchestration_state.len() == page_size {
                more = true;
                break;
            }
            let Some(state) = self
                .instance_response(&instance.record.instance_id, query.fetch_inputs_and_outputs)
                .orchestration_state
            else {
                continue;
            };
            let size = state.encoded_len();
            if !orchestration_state.is_empty() && bytes + size > PAGE_BYTES {
                more = true;
                break;
            }
            bytes += size;
            last = Some(instance);
            orchestration_state.push(state);
        }
        let continuation_token = if more {
            last.map(|last| cursor_token(last.record.created_at, &last.record.instance_id))
        } else {
            None
        };
        Ok(QueryInstancesResponse {
            orchestration_state,
            continuation_token,
        })
    }

    /// `ListInstanceIds`: finished instances, ordered by completion time then id.
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
        let mut matching: Vec<(Nanos, &str)> = self
            .instances
            .values()
            .filter(|instance| {
                instance.is_terminal()
                    && (request.runtime_status.is_empty()
                        || request.runtime_status.contains(&instance.record.status))
            })
            .filter_map(|instance| {
                let at = instance.record.completed_at?;
                let id = instance.record.instance_id.as_str();
                let wanted = from.is_none_or(|from| at >= from)
                    && to.is_none_or(|to| at < to)
                    && after.as_ref().is_none_or(|(after_at, after_id)| {
                        (at, id) > (*after_at, after_id.as_str())
                    });
                wanted.then_some((at, id))
            })
            .collect();
        matching.sort_unstable();
        let page_size = usize::try_from(request.page_size)
            .ok()
            .filter(|&size| size > 0)
            .unwrap_or(100);
        let more = matching.len() > page_size;
        matching.truncate(page_size);
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

    /// `StreamInstanceHistory`: the whole history (from the store if not in memory).
    pub fn history(&self, instance_id: &str, store: &Store) -> Result<Vec<HistoryEvent>, Status> {
        let Some(instance) = self.instances.get(instance_id) else {
            return Err(Status::not_found(format!(
                "orchestration instance '{instance_id}' not found"
            )));
        };
        if let Some(history) = &instance.history {
            return Ok(history.clone());
        }
        let encoded = store
            .load_history(&self.name, instance_id)
            .map_err(|error| Status::internal(format!("could not read the history: {error}")))?;
        encoded
            .iter()
            .map(|bytes| HistoryEvent::decode(bytes.as_slice()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| {
                Status::internal(format!("a stored history event does not decode: {error}"))
            })
    }
}
