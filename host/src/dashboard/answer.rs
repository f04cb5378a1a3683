//! What the API answers: JSON, with the dashboard's protective headers; an error as the
//! HTTP status a browser understands (404 for an unknown instance, 409 for the wrong
//! state, 401 for a missing token, 400 naming a bad parameter) and `{"error": ...}`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use durabletask_client::ClientError;
use serde_json::{Value, json};
use tonic::Code;

use super::access::Refusal;

/// An answer other than 200: its status and JSON body (always with `error`).
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: Value,
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            body: json!({ "error": message.into() }),
        }
    }
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> ApiError {
        ApiError {
            status: refusal.status,
            body: json!({ "error": refusal.message, "token_required": refusal.token_required }),
        }
    }
}

impl From<ClientError> for ApiError {
    fn from(error: ClientError) -> ApiError {
        let status = match &error {
            ClientError::Usage(_) => StatusCode::BAD_REQUEST,
            ClientError::NotFound { .. } | ClientError::EntityNotFound { .. } => {
                StatusCode::NOT_FOUND
            }
            ClientError::WrongState { .. } => StatusCode::CONFLICT,
            ClientError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            ClientError::Started { .. } => StatusCode::BAD_GATEWAY,
            ClientError::Rpc { code, .. } => status_of(*code),
        };
        let mut body = error.to_json();
        // Not-found answers have no `error` of their own; the page shows one.
        if body.get("error").is_none()
            && let Some(object) = body.as_object_mut()
        {
            object.insert("error".to_owned(), json!(error.to_string()));
        }
        ApiError { status, body }
    }
}

/// The HTTP status of a backend's gRPC code.
fn status_of(code: Code) -> StatusCode {
    match code {
        Code::InvalidArgument | Code::OutOfRange => StatusCode::BAD_REQUEST,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::FailedPrecondition | Code::Aborted => StatusCode::CONFLICT,
        // The caller was admitted (`access`): a backend refusing the credentials the
        // dashboard called it with is the backend's problem, not a token to ask for.
        Code::Unauthenticated | Code::PermissionDenied => StatusCode::BAD_GATEWAY,
        Code::ResourceExhausted => StatusCode::PAYLOAD_TOO_LARGE,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        _ => StatusCode::BAD_GATEWAY,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        respond(self.status, self.body)
    }
}

pub fn respond(status: StatusCode, body: Value) -> Response {
    let mut response = (status, axum::Json(body)).into_response();
    let headers = response.headers_mut();
    super::assets::protect(headers);
    // Workflow data: no cache keeps it.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// What a handler answers.
pub type Answer = Result<Response, ApiError>;

/// 200 with this JSON.
pub fn ok(body: Value) -> Answer {
    Ok(respond(StatusCode::OK, body))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn client_errors_get_the_status_a_browser_understands() {
        let rpc = |code| ClientError::Rpc {
            endpoint: "http://x".into(),
            operation: "GetInstance",
            code,
            message: "m".into(),
        };
        let not_found = ApiError::from(ClientError::NotFound {
            instance_id: "x".into(),
        });
        assert_eq!(not_found.status, StatusCode::NOT_FOUND);
        assert_eq!(not_found.body["exists"], false);
        assert!(not_found.body["error"].as_str().unwrap().contains("'x'"));
        // Callers were admitted before: the backend refused the dashboard's credentials.
        let unauthenticated = ApiError::from(rpc(Code::Unauthenticated));
        assert_eq!(unauthenticated.status, StatusCode::BAD_GATEWAY);
        assert!(unauthenticated.body.get("token_required").is_none());
        assert_eq!(
            ApiError::from(rpc(Code::FailedPrecondition)).status,
            StatusCode::CONFLICT
        );
        assert_eq!(
            ApiError::from(rpc(Code::Unavailable)).status,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
}
