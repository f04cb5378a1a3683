//! What an API request brings: the caller admitted ([`super::access`]) with the
//! connection to call the backend with, the query string's parameters, and for an action
//! its JSON body. The two extractors do that once for every handler.
//!
//! Instance and entity ids travel in the query string (`?id=`), not the path: an id may
//! hold any character, slashes included.

use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use durabletask_client::{Client, JsonText, signal_time};
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use super::Dashboard;
use super::answer::ApiError;

/// A listing's page size unless asked otherwise, and the most it may ask.
pub const DEFAULT_PAGE_SIZE: usize = 50;
pub const MAX_PAGE_SIZE: usize = 500;
/// The largest action body read (an orchestration's input is in it).
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// A read: the admitted caller's connection and the query string.
pub struct Read {
    pub client: Arc<Client>,
    pub params: Params,
}

/// An action: as a [`Read`], plus its JSON body.
pub struct Action<B> {
    pub client: Arc<Client>,
    pub params: Params,
    pub body: B,
}

impl FromRequestParts<Arc<Dashboard>> for Read {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        dashboard: &Arc<Dashboard>,
    ) -> Result<Self, ApiError> {
        Ok(Read {
            client: admit(parts, dashboard)?,
            params: Params::of(parts)?,
        })
    }
}

impl<B: DeserializeOwned> FromRequest<Arc<Dashboard>> for Action<B> {
    type Rejection = ApiError;

    async fn from_request(request: Request, dashboard: &Arc<Dashboard>) -> Result<Self, ApiError> {
        let (parts, body) = request.into_parts();
        let client = admit(&parts, dashboard)?;
        let params = Params::of(&parts)?;
        let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
            .await
            .map_err(|error| ApiError::bad_request(format!("the request body: {error}")))?;
        // An empty body reads as `{}`.
        let bytes: &[u8] = if bytes.is_empty() { b"{}" } else { &bytes };
        let body = serde_json::from_slice(bytes)
            .map_err(|error| ApiError::bad_request(format!("invalid request body: {error}")))?;
        Ok(Action {
            client,
            params,
            body,
        })
    }
}

/// Admits the caller and gives the connection to call the backend with.
fn admit(parts: &Parts, dashboard: &Dashboard) -> Result<Arc<Client>, ApiError> {
    let admitted = dashboard.access.admit(&parts.method, &parts.headers)?;
    Ok(dashboard.client(admitted.pass_on)?)
}

/// The query string's parameters, in order, repeated ones included
/// (`?status=RUNNING&status=FAILED`).
pub struct Params(Vec<(String, String)>);

impl Params {
    fn of(parts: &Parts) -> Result<Params, ApiError> {
        Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
            .map(|Query(pairs)| Params(pairs))
            .map_err(|error| ApiError::bad_request(format!("the query string: {error}")))
    }

    /// The last value of `key`, if given and not empty: exactly as given, never trimmed
    /// (`victim ` and `victim` are two instances).
    pub fn one(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(name, _)| name == key)
            .map(|(_, value)| value.as_str())
            .filter(|value| !value.is_empty())
    }

    /// Every value of `key` (statuses: names without spaces), each split at commas,
    /// blanks left out.
    pub fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> {
        self.0
            .iter()
            .filter(move |(name, _)| name == key)
            .flat_map(|(_, value)| value.split(','))
            .map(str::trim)
            .filter(|value| !value.is_empty())
    }

    /// The value of `key`; its absence is named.
    pub fn required(&self, key: &str) -> Result<&str, ApiError> {
        self.one(key).ok_or_else(|| {
            ApiError::bad_request(format!("the query parameter '{key}' is required"))
        })
    }

    /// `page_size`, from 1 to [`MAX_PAGE_SIZE`]; [`DEFAULT_PAGE_SIZE`] when absent.
    pub fn page_size(&self) -> Result<usize, ApiError> {
        let Some(text) = self.one("page_size") else {
            return Ok(DEFAULT_PAGE_SIZE);
        };
        text.parse()
            .ok()
            .filter(|size| (1..=MAX_PAGE_SIZE).contains(size))
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "invalid page_size '{text}': expected a whole number from 1 to {MAX_PAGE_SIZE}"
                ))
            })
    }

    /// A time: RFC 3339 (`2026-12-07T01:00:00Z`).
    pub fn time(&self, key: &str) -> Result<Option<SystemTime>, ApiError> {
        self.one(key)
            .map(|text| signal_time(key, text, SystemTime::now()))
            .transpose()
            .map_err(ApiError::from)
    }
}

/// A body's JSON payload as the text the backend stores; null is none. Kept as the
/// caller wrote it (`RawValue`): parsing a 16 MiB payload into a `Value` would cost
/// tens of times its size in memory.
pub fn payload(field: &str, value: Option<Box<RawValue>>) -> Result<Option<JsonText>, ApiError> {
    value
        .filter(|value| value.get() != "null")
        .map(|value| JsonText::parse(field, String::from(Box::<str>::from(value))))
        .transpose()
        .map_err(ApiError::from)
}

/// Text a form may leave empty: empty is none; anything else exactly as given.
pub fn given(text: Option<String>) -> Option<String> {
    text.filter(|text| !text.is_empty())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use axum::http::StatusCode;

    fn params(query: &str) -> Params {
        let (parts, ()) = axum::http::Request::builder()
            .uri(format!("/api/instances?{query}"))
            .body(())
            .unwrap()
            .into_parts();
        Params::of(&parts).unwrap()
    }

    #[test]
    fn page_sizes_outside_the_range_are_named() {
        assert_eq!(params("").page_size().unwrap(), DEFAULT_PAGE_SIZE);
        assert_eq!(params("page_size=7").page_size().unwrap(), 7);
        for bad in ["0", "501", "ten"] {
            let error = params(&format!("page_size={bad}")).page_size().unwrap_err();
            assert_eq!(error.status, StatusCode::BAD_REQUEST);
            assert!(error.body["error"].as_str().unwrap().contains(bad));
        }
    }

    #[test]
    fn the_last_non_blank_value_counts_repeats_are_all_read_and_absences_named() {
        let given = params("id=a&id=b&name=&status=RUNNING&status=FAILED,+PENDING&id%2F=x");
        assert_eq!(given.one("id"), Some("b"));
        assert_eq!(given.one("name"), None);
        assert_eq!(
            given.all("status").collect::<Vec<_>>(),
            ["RUNNING", "FAILED", "PENDING"]
        );
        let error = given.required("name").unwrap_err();
        assert!(error.body["error"].as_str().unwrap().contains("'name'"));
        let error = params("created_from=yesterday")
            .time("created_from")
            .unwrap_err();
        assert!(
            error.body["error"]
                .as_str()
                .unwrap()
                .contains("created_from")
        );
    }

    #[test]
    fn payloads_keep_their_json_as_written_and_null_is_none() {
        let raw = |text: &str| Some(RawValue::from_string(text.to_owned()).unwrap());
        assert_eq!(
            payload("input", raw(r#"{"a": [1, 2]}"#))
                .unwrap()
                .unwrap()
                .as_str(),
            r#"{"a": [1, 2]}"#
        );
        assert!(payload("input", raw("null")).unwrap().is_none());
        assert!(payload("input", None).unwrap().is_none());
        assert_eq!(given(Some(String::new())), None);
        assert_eq!(given(Some(" 1.0 ".to_owned())).as_deref(), Some(" 1.0 "));
    }

    #[test]
    fn ids_are_never_trimmed() {
        assert_eq!(params("id=victim%20").one("id"), Some("victim "));
        assert_eq!(params("id=%20").one("id"), Some(" "));
        assert_eq!(params("id=").one("id"), None);
    }
}
