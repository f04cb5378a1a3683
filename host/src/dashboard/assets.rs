//! The page itself: one HTML shell for every route (the script reads the path and the
//! query string, so a shared URL opens the same view), its script and its stylesheet,
//! compiled into the binary.
//!
//! None of them holds data, so they are served without a token; every answer forbids
//! framing (a page of another site cannot overlay the dashboard's buttons) and loading
//! anything from elsewhere.

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");

/// The paths the page routes on; each answers the shell.
pub const PAGES: [&str; 6] = [
    "/",
    "/instances",
    "/instance",
    "/entities",
    "/entity",
    "/plugins",
];

const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

pub fn routes() -> Router {
    let mut router = Router::new();
    for page in PAGES {
        router = router.route(
            page,
            get(|| async { asset("index.html", INDEX_HTML, "text/html; charset=utf-8") }),
        );
    }
    router
        .route(
            "/assets/app.js",
            get(|| async { asset("app.js", APP_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/assets/app.css",
            get(|| async { asset("app.css", APP_CSS, "text/css; charset=utf-8") }),
        )
}

fn asset(name: &str, built_in: &'static str, content_type: &'static str) -> Response {
    let body = dev_override(name).unwrap_or_else(|| built_in.to_owned());
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    protect(headers);
    // The binary is the version: a host upgraded in place serves its own page at once.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// The headers every dashboard answer carries.
pub fn protect(headers: &mut axum::http::HeaderMap) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
}

/// Debug builds only: `DURABLETASK_DASHBOARD_DEV_ASSETS=<folder>` serves the assets from
/// that folder, read at each request, so the page can be worked on without rebuilding.
#[cfg(debug_assertions)]
fn dev_override(name: &str) -> Option<String> {
    let folder = std::env::var_os("DURABLETASK_DASHBOARD_DEV_ASSETS")?;
    std::fs::read_to_string(std::path::Path::new(&folder).join(name)).ok()
}

#[cfg(not(debug_assertions))]
fn dev_override(_name: &str) -> Option<String> {
    None
}
