//! The page itself: one HTML shell for every route (the script reads the path and the
//! query string, so a shared URL opens the same view), its script and its stylesheet,
//! compiled into the binary.
//!
//! None of them holds data, so they are served without a token; every answer forbids
//! framing (a page of another site cannot overlay the dashboard's buttons) and loading
//! anything from elsewhere.

use std::sync::LazyLock;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, Uri, header};
use axum::response::Response;
use axum::routing::get;
use sha2::{Digest, Sha256};

use super::first_view;

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

/// The pages and their assets; `api` answers the first reads each page comes with.
pub fn routes(api: Router) -> Router {
    let mut router = Router::new();
    for page in PAGES {
        let api = api.clone();
        router = router.route(
            page,
            get(move |request: Request| async move { index(&api, request).await }),
        );
    }
    router
        .route(
            "/assets/app.js",
            get(|uri: Uri| async move {
                asset(&uri, "app.js", APP_JS, "text/javascript; charset=utf-8")
            }),
        )
        .route(
            "/assets/app.css",
            get(|uri: Uri| async move { asset(&uri, "app.css", APP_CSS, "text/css; charset=utf-8") }),
        )
}

/// The assets' version: a hash of the script and the stylesheet, which the shell's links
/// carry (`/assets/app.js?v=<version>`). A browser keeps assets of a version for good and
/// only revalidates the shell (a few kB): a page costs one small request before its data,
/// and the script's compiled code is reused; a new build has new links.
static VERSION: LazyLock<String> = LazyLock::new(|| {
    let digest = Sha256::new()
        .chain_update(APP_JS)
        .chain_update(APP_CSS)
        .finalize();
    digest[..8]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
});

/// The shell with versioned links.
static VERSIONED_INDEX: LazyLock<String> = LazyLock::new(|| {
    INDEX_HTML
        .replace("/assets/app.js", &format!("/assets/app.js?v={}", *VERSION))
        .replace(
            "/assets/app.css",
            &format!("/assets/app.css?v={}", *VERSION),
        )
});

/// The shell, with the data of the page's first view when the API gives it
/// ([`first_view`]).
async fn index(api: &Router, request: Request) -> Response {
    let shell = dev_override("index.html").unwrap_or_else(|| VERSIONED_INDEX.clone());
    let (page, _) = request.into_parts();
    match first_view::body(api.clone(), page, &shell, first_view::QUICK).await {
        // Workflow data: no cache keeps it, as no cache keeps the API's answers. (Whether
        // any read is answered is known only after the head is sent.)
        Some(body) => respond(body, "text/html; charset=utf-8", "no-store"),
        // Always revalidated: the binary is the version, and an upgraded host serves its
        // own.
        None => respond(shell, "text/html; charset=utf-8", "no-cache"),
    }
}

fn asset(uri: &Uri, name: &str, built_in: &'static str, content_type: &'static str) -> Response {
    if let Some(body) = dev_override(name) {
        return respond(body, content_type, "no-cache");
    }
    let current = uri
        .query()
        .and_then(|query| query.strip_prefix("v="))
        .is_some_and(|version| version == VERSION.as_str());
    // A link of another build (or none) gets this build's asset, not to be kept.
    let cache = if current {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    respond(built_in.to_owned(), content_type, cache)
}

fn respond(body: impl Into<Body>, content_type: &'static str, cache: &'static str) -> Response {
    let mut response = Response::new(body.into());
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    protect(headers);
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn the_shell_links_this_builds_assets_which_may_be_kept() {
        assert_eq!(VERSION.len(), 16);
        let script = format!("/assets/app.js?v={}", *VERSION);
        assert!(VERSIONED_INDEX.contains(&script), "{}", *VERSIONED_INDEX);
        let uri: Uri = script.parse().unwrap();
        let kept = asset(&uri, "app.js", APP_JS, "text/javascript");
        assert_eq!(
            kept.headers()[header::CACHE_CONTROL],
            "public, max-age=31536000, immutable"
        );
        assert_eq!(kept.headers()[header::X_FRAME_OPTIONS], "DENY");
        let stale: Uri = "/assets/app.js?v=0000000000000000".parse().unwrap();
        let answered = asset(&stale, "app.js", APP_JS, "text/javascript");
        assert_eq!(answered.headers()[header::CACHE_CONTROL], "no-cache");
    }
}
