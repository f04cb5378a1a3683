//! Who may use the dashboard's API, and as whom it calls the backend.
//!
//! The dashboard can terminate and purge instances, so it is guarded like the backend
//! itself: "behind the same token as the backend when one is set".
//!
//! - Embedded backend with `[embedded] token_file`: a caller must present one of that
//!   file's tokens, and the dashboard calls the backend with the caller's own token, so
//!   the backend's check applies twice and a revoked token stops working at once.
//! - Otherwise, with `[admin] dashboard_token_file`: a caller must present one of its
//!   tokens; the backend is called with the host's own credentials. (Not `[admin]
//!   token_file`: that is a scraper's token, which must not steer workflows.)
//! - Without either, it is refused when the host calls a remote backend with credentials
//!   (anyone reaching the admin listener would act with them) and when the admin
//!   listener is reachable from other machines (`insecure = true` let them read metrics,
//!   not purge workflows).
//! - Otherwise open, as the backend is: to this machine's users, on loopback.
//!
//! Browsers add two threats a gRPC client does not have; both are closed here for every
//! policy:
//! - Cross-site requests (CSRF): a POST must carry `content-type: application/json`,
//!   which a page of another origin cannot send without a CORS preflight this server
//!   never grants, and a request whose `Origin` or `Sec-Fetch-Site` says it came from
//!   another site is refused.
//! - DNS rebinding: without a token, a web site could point its own name at 127.0.0.1
//!   and read the API as "same origin". An open dashboard therefore answers only
//!   requests addressed to an IP address or `localhost`.

use std::net::IpAddr;
use std::sync::Arc;

use axum::http::{HeaderMap, Method, StatusCode, header};
use durabletask_backend::TokenFile;

/// How callers are admitted.
pub enum Access {
    /// No token anywhere: whoever reaches the listener.
    Open,
    /// The embedded backend's tokens; the caller's token is passed on to the backend.
    BackendTokens(Arc<TokenFile>),
    /// `[admin] dashboard_token_file`; the backend is called with the host's credentials.
    DashboardTokens(Arc<TokenFile>),
    /// The API is off, for the reason given.
    Refused(String),
}

/// Why a request is turned away: the status and the message shown.
#[derive(Debug, PartialEq, Eq)]
pub struct Refusal {
    pub status: StatusCode,
    pub message: String,
    /// The page should ask for a token (and retry with it).
    pub token_required: bool,
}

/// An admitted request: the token to call the backend with, if the caller's is passed on.
#[derive(Debug, PartialEq, Eq)]
pub struct Admitted {
    pub pass_on: Option<String>,
}

impl Access {
    /// Checks one request to `/api/...`.
    pub fn admit(&self, method: &Method, headers: &HeaderMap) -> Result<Admitted, Refusal> {
        refuse_cross_site(method, headers)?;
        let presented = bearer(headers);
        match self {
            Access::Refused(reason) => Err(Refusal {
                status: StatusCode::FORBIDDEN,
                message: reason.clone(),
                token_required: false,
            }),
            Access::Open => {
                refuse_named_host(headers)?;
                Ok(Admitted { pass_on: None })
            }
            Access::BackendTokens(tokens) => match presented {
                Some(token) if tokens.accepts(token) => Ok(Admitted {
                    pass_on: Some(token.to_owned()),
                }),
                _ => Err(token_required(
                    "a bearer token of the backend's [embedded] token_file is required",
                )),
            },
            Access::DashboardTokens(tokens) => match presented {
                Some(token) if tokens.accepts(token) => Ok(Admitted { pass_on: None }),
                _ => Err(token_required(
                    "a bearer token of [admin] dashboard_token_file is required",
                )),
            },
        }
    }
}

fn token_required(message: &str) -> Refusal {
    Refusal {
        status: StatusCode::UNAUTHORIZED,
        message: message.to_owned(),
        token_required: true,
    }
}

fn forbidden(message: String) -> Refusal {
    Refusal {
        status: StatusCode::FORBIDDEN,
        message,
        token_required: false,
    }
}

/// The token of `Authorization: Bearer <token>` (the scheme in any case, RFC 7235).
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// A POST must be JSON from this origin (see the module's comment).
fn refuse_cross_site(method: &Method, headers: &HeaderMap) -> Result<(), Refusal> {
    if headers
        .get("sec-fetch-site")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|site| site == "cross-site")
    {
        return Err(forbidden(
            "the dashboard's API does not answer requests made by other web sites".to_owned(),
        ));
    }
    if method == Method::GET || method == Method::HEAD {
        return Ok(());
    }
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|kind| {
            kind.split(';')
                .next()
                .is_some_and(|kind| kind.trim().eq_ignore_ascii_case("application/json"))
        });
    if !json {
        return Err(Refusal {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            message: "an action must be sent as content-type: application/json".to_owned(),
            token_required: false,
        });
    }
    let origin = headers
        .get(header::ORIGIN)
        .and_then(|value| value.to_str().ok());
    let host = headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok());
    if let Some(origin) = origin {
        let same = host.is_some_and(|host| {
            origin
                .strip_prefix("http://")
                .or_else(|| origin.strip_prefix("https://"))
                .is_some_and(|authority| authority.eq_ignore_ascii_case(host))
        });
        if !same {
            return Err(forbidden(format!(
                "an action from origin {origin} is refused: only the dashboard's own pages may send one"
            )));
        }
    }
    Ok(())
}

/// An open dashboard answers only requests addressed to an IP address or `localhost`.
fn refuse_named_host(headers: &HeaderMap) -> Result<(), Refusal> {
    let host = headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    if is_address(host) {
        return Ok(());
    }
    Err(forbidden(format!(
        "the dashboard without a token answers only requests addressed to an IP address or localhost, not '{host}' (another web site could point that name at this listener): set [admin] token_file to use it under a name"
    )))
}

/// `127.0.0.1:9464`, `[::1]:9464`, `localhost:9464` (with or without the port).
fn is_address(host: &str) -> bool {
    let port_ok = |port: &str| {
        port.is_empty()
            || port
                .strip_prefix(':')
                .is_some_and(|port| port.parse::<u16>().is_ok())
    };
    match host.strip_prefix('[') {
        Some(rest) => rest
            .split_once(']')
            .is_some_and(|(ip, port)| ip.parse::<std::net::Ipv6Addr>().is_ok() && port_ok(port)),
        None => {
            let (name, port) = host
                .rfind(':')
                .map_or((host, ""), |colon| host.split_at(colon));
            port_ok(port)
                && (name.eq_ignore_ascii_case("localhost") || name.parse::<IpAddr>().is_ok())
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn token_file(text: &str) -> (tempfile::TempDir, Arc<TokenFile>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens");
        std::fs::write(&path, text).unwrap();
        let file = TokenFile::open(&path).unwrap();
        (dir, file)
    }

    #[test]
    fn open_answers_requests_to_addresses_only() {
        let open = Access::Open;
        for host in [
            "127.0.0.1:9464",
            "[::1]:9464",
            "[::1]",
            "LOCALHOST:9464",
            "10.0.0.2",
        ] {
            assert_eq!(
                open.admit(&Method::GET, &headers(&[("host", host)])),
                Ok(Admitted { pass_on: None }),
                "{host}"
            );
        }
        let refused = open
            .admit(&Method::GET, &headers(&[("host", "evil.example:9464")]))
            .unwrap_err();
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
        assert!(
            refused.message.contains("evil.example"),
            "{}",
            refused.message
        );
    }

    #[test]
    fn an_action_must_be_json_from_the_same_origin() {
        let open = Access::Open;
        let form = headers(&[
            ("host", "127.0.0.1:9464"),
            ("content-type", "application/x-www-form-urlencoded"),
        ]);
        assert_eq!(
            open.admit(&Method::POST, &form).unwrap_err().status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
        let foreign = headers(&[
            ("host", "127.0.0.1:9464"),
            ("content-type", "application/json"),
            ("origin", "http://evil.example"),
        ]);
        let refused = open.admit(&Method::POST, &foreign).unwrap_err();
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
        assert!(
            refused.message.contains("evil.example"),
            "{}",
            refused.message
        );
        let own = headers(&[
            ("host", "127.0.0.1:9464"),
            ("content-type", "application/json; charset=utf-8"),
            ("origin", "http://127.0.0.1:9464"),
        ]);
        assert!(open.admit(&Method::POST, &own).is_ok());
        let cross_site = headers(&[("host", "127.0.0.1:9464"), ("sec-fetch-site", "cross-site")]);
        assert!(open.admit(&Method::GET, &cross_site).is_err());
    }

    #[test]
    fn backend_tokens_are_checked_and_passed_on() {
        let (_dir, tokens) = token_file("alpha\n");
        let access = Access::BackendTokens(tokens);
        let missing = access
            .admit(&Method::GET, &headers(&[("host", "dt.example")]))
            .unwrap_err();
        assert_eq!(missing.status, StatusCode::UNAUTHORIZED);
        assert!(missing.token_required);
        let wrong = headers(&[("authorization", "Bearer beta")]);
        assert!(access.admit(&Method::GET, &wrong).is_err());
        // With a token, any host name is fine: another site cannot learn the token.
        let right = headers(&[("host", "dt.example"), ("authorization", "Bearer alpha")]);
        assert_eq!(
            access.admit(&Method::GET, &right),
            Ok(Admitted {
                pass_on: Some("alpha".to_owned())
            })
        );
    }

    #[test]
    fn dashboard_tokens_are_checked_and_not_passed_on() {
        let (_dir, tokens) = token_file("admin-secret\n");
        let access = Access::DashboardTokens(tokens);
        let right = headers(&[("authorization", "bearer admin-secret")]);
        assert_eq!(
            access.admit(&Method::GET, &right),
            Ok(Admitted { pass_on: None })
        );
        assert!(access.admit(&Method::GET, &HeaderMap::new()).is_err());
    }

    #[test]
    fn refused_says_why() {
        let access = Access::Refused("set [admin] token_file".to_owned());
        let refused = access.admit(&Method::GET, &HeaderMap::new()).unwrap_err();
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
        assert_eq!(refused.message, "set [admin] token_file");
    }
}
