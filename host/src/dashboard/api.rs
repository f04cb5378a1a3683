//! `/api/...`: the dashboard's JSON, one handler per page or action. Each gets the
//! admitted caller's connection ([`super::request`]), makes one or a few
//! `durabletask_client::Client` calls and answers their JSON ([`super::answer`]).

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, Method};
use axum::routing::{get, post};
use durabletask_client::{
    EntityListOptions, ListOptions, Paging, SignalOptions, StartOptions, entity_id, parse_status,
};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::Dashboard;
use super::answer::{Answer, ApiError, ok};
use super::listing::{self, Cursor, SCAN_CHUNK};
use super::request::{Action, Read, given, payload};

pub fn routes(dashboard: Arc<Dashboard>) -> Router {
    Router::new()
        .route("/api/overview", get(overview))
        .route("/api/instances", get(instances).post(start))
        .route("/api/instance", get(instance))
        .route("/api/raise-event", post(raise_event))
        .route("/api/suspend", post(suspend))
        .route("/api/resume", post(resume))
        .route("/api/terminate", post(terminate))
        .route("/api/rewind", post(rewind))
        .route("/api/restart", post(restart))
        .route("/api/purge", post(purge))
        .route("/api/entities", get(entities))
        .route("/api/entity", get(entity))
        .route("/api/signal-entity", post(signal_entity))
        .route("/api/plugins", get(plugins))
        .with_state(dashboard)
}

async fn overview(State(dashboard): State<Arc<Dashboard>>, Read { client, .. }: Read) -> Answer {
    let counts = dashboard
        .counts
        .by_status(dashboard.embedded.as_ref(), &client)
        .await?;
    let mut orchestrators = BTreeSet::new();
    let mut entities = BTreeSet::new();
    if let Some(plugins) = &dashboard.plugins {
        for generation in plugins.catalog().generations() {
            let plugin = generation.plugin();
            orchestrators.extend(plugin.orchestrators.iter().cloned());
            entities.extend(plugin.entities.iter().cloned());
        }
    }
    let mut body = json!({
        "version": env!("CARGO_PKG_VERSION"),
        "backend": dashboard.backend,
        "taskhub": dashboard.taskhub,
        "orchestrators": orchestrators,
        "entities": entities,
        "plugins_loaded": dashboard.plugins.is_some(),
        "default_version": dashboard.default_version,
    });
    if let (Some(object), Value::Object(counts)) = (body.as_object_mut(), counts) {
        object.extend(counts);
    }
    ok(body)
}

async fn instances(Read { client, params }: Read) -> Answer {
    let statuses = params
        .all("status")
        .map(|status| parse_status("status", status))
        .collect::<Result<Vec<_>, _>>()?;
    let page_size = params.page_size()?;
    let cursor = params
        .one("cursor")
        .map(Cursor::parse)
        .transpose()
        .map_err(ApiError::bad_request)?
        .unwrap_or_default();
    let filter = ListOptions {
        statuses,
        prefix: params.one("prefix").map(str::to_owned),
        created_from: params.time("created_from")?,
        created_to: params.time("created_to")?,
        payloads: false,
        paging: Paging::default(),
    };
    let paged = |size: usize, token: Option<String>| ListOptions {
        paging: Paging {
            limit: size,
            page_size: size,
            continuation_token: token,
        },
        ..filter.clone()
    };
    let page = match params.one("name") {
        Some(name) => {
            // A closure returning a future (not an async closure): see `listing::scan_by_name`.
            let chunk = |token: Option<String>| {
                let options = paged(SCAN_CHUNK, token);
                let client = Arc::clone(&client);
                async move { client.list_page_named(&options, name).await }
            };
            listing::scan_by_name(page_size, cursor, chunk).await?
        }
        None => {
            let listed = client.list(paged(page_size, cursor.token)).await?;
            let (instances, token) = split_listing(listed, "instances");
            listing::Page {
                scanned: instances.len(),
                instances,
                next: token.map(|token| Cursor {
                    token: Some(token),
                    after: None,
                }),
                scan_limited: false,
            }
        }
    };
    ok(json!({
        "instances": page.instances,
        "next_cursor": page.next.map(|cursor| cursor.encode()),
        "scanned": page.scanned,
        "scan_limited": page.scan_limited,
    }))
}

/// A client listing's items (under `key`) and its continuation token.
fn split_listing(mut listing: Value, key: &str) -> (Vec<Value>, Option<String>) {
    let items = match listing[key].take() {
        Value::Array(items) => items,
        _ => Vec::new(),
    };
    let token = listing["continuation_token"].as_str().map(str::to_owned);
    (items, token)
}

/// An instance page's data in one request: its state, then its history, read in that
/// order so the history is at least as new as the state (the page stops refreshing once
/// the state is finished, and that last refresh must show the final events too).
async fn instance(Read { client, params }: Read) -> Answer {
    let id = params.required("id")?;
    let state = client.status(id).await?;
    let history = client.history(id).await?;
    ok(json!({ "state": state, "history": history }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StartBody {
    name: String,
    input: Option<Box<RawValue>>,
    version: Option<String>,
    instance_id: Option<String>,
}

async fn start(State(dashboard): State<Arc<Dashboard>>, action: Action<StartBody>) -> Answer {
    let Action { client, body, .. } = action;
    let Some(name) = given(Some(body.name)) else {
        return Err(ApiError::bad_request(
            "name: an orchestrator name is required",
        ));
    };
    let options = StartOptions {
        input: payload("input", body.input)?,
        instance_id: given(body.instance_id),
        // As `client start` does: the configured default version when none is given.
        version: given(body.version).or_else(|| dashboard.default_version.clone()),
        ..StartOptions::default()
    };
    ok(client.start(&name, options).await?)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RaiseEventBody {
    name: String,
    data: Option<Box<RawValue>>,
}

async fn raise_event(
    Action {
        client,
        params,
        body,
    }: Action<RaiseEventBody>,
) -> Answer {
    let Some(name) = given(Some(body.name)) else {
        return Err(ApiError::bad_request("name: an event name is required"));
    };
    let data = payload("data", body.data)?;
    ok(client
        .raise_event(params.required("id")?, &name, data)
        .await?)
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ReasonBody {
    reason: Option<String>,
}

async fn suspend(
    Action {
        client,
        params,
        body,
    }: Action<ReasonBody>,
) -> Answer {
    ok(client.suspend(params.required("id")?, body.reason).await?)
}

async fn resume(
    Action {
        client,
        params,
        body,
    }: Action<ReasonBody>,
) -> Answer {
    ok(client.resume(params.required("id")?, body.reason).await?)
}

async fn rewind(
    Action {
        client,
        params,
        body,
    }: Action<ReasonBody>,
) -> Answer {
    ok(client.rewind(params.required("id")?, body.reason).await?)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TerminateBody {
    /// The output the terminated instance gets (any JSON).
    reason: Option<Box<RawValue>>,
    #[serde(default)]
    recursive: bool,
}

async fn terminate(
    Action {
        client,
        params,
        body,
    }: Action<TerminateBody>,
) -> Answer {
    let output = payload("reason", body.reason)?;
    ok(client
        .terminate(params.required("id")?, output, body.recursive)
        .await?)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RestartBody {
    #[serde(default)]
    new_instance_id: bool,
}

async fn restart(
    Action {
        client,
        params,
        body,
    }: Action<RestartBody>,
) -> Answer {
    ok(client
        .restart(params.required("id")?, body.new_instance_id)
        .await?)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EmptyBody {}

async fn purge(Action { client, params, .. }: Action<EmptyBody>) -> Answer {
    ok(client.purge(params.required("id")?).await?)
}

async fn entities(Read { client, params }: Read) -> Answer {
    let size = params.page_size()?;
    let listing = client
        .list_entities(EntityListOptions {
            prefix: params.one("prefix").map(str::to_owned),
            include_state: true,
            paging: Paging {
                limit: size,
                page_size: size,
                continuation_token: params.one("cursor").map(str::to_owned),
            },
        })
        .await?;
    let (entities, token) = split_listing(listing, "entities");
    ok(json!({ "entities": entities, "next_cursor": token }))
}

async fn entity(Read { client, params }: Read) -> Answer {
    let id = entity_id(params.required("id")?)?;
    ok(client.get_entity(&id, true).await?)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignalBody {
    operation: String,
    input: Option<Box<RawValue>>,
}

async fn signal_entity(
    Action {
        client,
        params,
        body,
    }: Action<SignalBody>,
) -> Answer {
    let id = entity_id(params.required("id")?)?;
    let Some(operation) = given(Some(body.operation)) else {
        return Err(ApiError::bad_request(
            "operation: an operation name is required",
        ));
    };
    let options = SignalOptions {
        input: payload("input", body.input)?,
        at: None,
    };
    ok(client.signal_entity(&id, &operation, options).await?)
}

/// The plugin generations: from this host, no backend call (admission only).
async fn plugins(
    State(dashboard): State<Arc<Dashboard>>,
    method: Method,
    headers: HeaderMap,
) -> Answer {
    dashboard.access.admit(&method, &headers)?;
    let generations = dashboard
        .plugins
        .as_ref()
        .map(|plugins| crate::admin::generations_json(plugins))
        .unwrap_or_default();
    ok(json!({ "generations": generations }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn a_listing_splits_into_items_and_token() {
        let (items, token) = split_listing(
            json!({"instances": [1, 2], "continuation_token": "t"}),
            "instances",
        );
        assert_eq!(items, vec![json!(1), json!(2)]);
        assert_eq!(token.as_deref(), Some("t"));
        let (_, token) = split_listing(
            json!({"entities": [], "continuation_token": null}),
            "entities",
        );
        assert_eq!(token, None);
    }

    #[test]
    fn bodies_refuse_unknown_fields() {
        let error = serde_json::from_str::<StartBody>(r#"{"nmae": "x"}"#).unwrap_err();
        assert!(error.to_string().contains("nmae"), "{error}");
    }
}
