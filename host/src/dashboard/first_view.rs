//! A page comes with its first view's data: the shell carries the API's answers to the
//! reads the page's script makes first, so a fresh load (a shared link, a new tab) shows
//! its data without a request after the page. In a browser opening a new document each
//! request is tens of milliseconds on a busy machine; the page times are in the README.
//!
//! Each read is answered by the API's own routes with the page request's own headers,
//! so it is admitted exactly as the script's request would be ([`super::access`]). A read
//! the API would not answer with 200 (a token is needed, another site's page asked, the
//! instance is unknown) is left out: the script then makes that request itself and
//! handles its answer (a token prompt, an error) as it handles any. So is a read not
//! answered within [`WAIT`]: a slow or unreachable backend must not hold the page back,
//! and the page shows its own progress and errors for what it asks itself.
//!
//! A page reads the API route of its own name with its own query string
//! (`/instances?status=RUNNING` reads `/api/instances?status=RUNNING`); the instances page
//! reads the overview too. app.js asks for exactly these paths, and takes an answer found
//! here instead, once, for the first view only.
//!
//! When the reads are slow (a name's scan), the shell's head is sent at once and the data
//! after it ([`body`]): the browser sets up the new document and fetches the script while
//! the reads are made, rather than after.

use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::request::Parts;
use axum::http::{Method, Request, StatusCode};
use futures::StreamExt;
use futures::future::join_all;
use futures::stream;
use tower::ServiceExt;

/// Reads answered within this go out with the page's head in one piece; slower ones after
/// it (see [`body`]). The embedded backend answers most reads at 50,000 instances in 1-5 ms;
/// a status among them, 500 rows or a name's scan take 10-30.
pub const QUICK: Duration = Duration::from_millis(8);

/// How long the page waits for its first reads; what is not answered by then is left for
/// the script. Ten times what the slowest read takes on the embedded backend at 50,000
/// instances (a rare name's scan, ~40 ms), well under what a person notices as a wait.
pub const WAIT: Duration = Duration::from_millis(400);

/// An answer larger than this is left for the script to ask for: the bound on what one
/// page request holds in memory (a browser fetches the same bytes either way).
const MAX_ANSWER_BYTES: usize = 64 * 1024 * 1024;

/// The API paths the page at `path` (with `query`) reads first: as app.js builds them
/// from `location.search`, which is empty for an empty query (`/instances?`).
pub fn reads(path: &str, query: Option<&str>) -> Vec<String> {
    let query = query
        .filter(|query| !query.is_empty())
        .map(|query| format!("?{query}"))
        .unwrap_or_default();
    match path {
        "/" | "/instances" => vec!["/api/overview".to_owned(), format!("/api/instances{query}")],
        "/instance" | "/entities" | "/entity" => vec![format!("/api{path}{query}")],
        "/plugins" => vec!["/api/plugins".to_owned()],
        _ => Vec::new(),
    }
}

/// The answers of `api` to the first reads of the page `page` asks for, each as
/// (the path read, its JSON), read together; reads not answered with 200 within `wait`
/// are left out.
pub async fn answers(api: &Router, page: &Parts, wait: Duration) -> Vec<(String, Bytes)> {
    if page.method != Method::GET {
        return Vec::new();
    }
    let reads = reads(page.uri.path(), page.uri.query())
        .into_iter()
        .map(|path| async move {
            let read = answer(api, page, &path);
            match tokio::time::timeout(wait, read).await {
                Ok(Some(json)) => Some((path, json)),
                _ => None,
            }
        });
    join_all(reads).await.into_iter().flatten().collect()
}

/// `api`'s answer to GET `path` with the headers of `page`, if it is a 200.
async fn answer(api: &Router, page: &Parts, path: &str) -> Option<Bytes> {
    let mut request = Request::get(path).body(Body::empty()).ok()?;
    *request.headers_mut() = page.headers.clone();
    let Ok(response) = api.clone().oneshot(request).await;
    if response.status() != StatusCode::OK {
        return None;
    }
    axum::body::to_bytes(response.into_body(), MAX_ANSWER_BYTES)
        .await
        .ok()
}

/// The body of the page `page` asks for: `shell` with the answers of `api` to the page's
/// first reads at the end of its head ([`element`]). When the reads take longer than
/// `quick`, what comes before them is sent at once and the rest when they are answered.
/// `None` when the page makes no reads (or is not a GET) or `shell` has no head.
pub async fn body(api: Router, page: Parts, shell: &str, quick: Duration) -> Option<Body> {
    if page.method != Method::GET || reads(page.uri.path(), page.uri.query()).is_empty() {
        return None;
    }
    let at = shell.find("</head>")?;
    let head = Bytes::copy_from_slice(&shell.as_bytes()[..at]);
    let rest = shell[at..].to_owned();
    let mut data =
        Box::pin(async move { Bytes::from(element(&answers(&api, &page, WAIT).await) + &rest) });
    // Quick reads: the page goes out whole. Sent in two parts, Chromium may paint the
    // shell without its data in between, a frame's work on a busy machine before the one
    // that matters; that is worth it only to overlap reads that are slow.
    if let Ok(data) = tokio::time::timeout(quick, &mut data).await {
        return Some(Body::from([&head[..], &data[..]].concat()));
    }
    let chunks = stream::iter([Ok::<_, Infallible>(head)])
        .chain(stream::once(async move { Ok::<_, Infallible>(data.await) }));
    Some(Body::from_stream(chunks))
}

/// `answers` in a `<script type="application/json" id="first-view">` (data, never run:
/// the Content-Security-Policy allows no inline script): one JSON object from each path
/// read to its answer. Empty when there are none.
pub fn element(answers: &[(String, Bytes)]) -> String {
    if answers.is_empty() {
        return String::new();
    }
    let mut json = String::from("{");
    for (index, (path, answer)) in answers.iter().enumerate() {
        if index > 0 {
            json.push(',');
        }
        // A string always serializes.
        json.push_str(&serde_json::to_string(path).unwrap_or_default());
        json.push(':');
        json.push_str(&String::from_utf8_lossy(answer));
    }
    json.push('}');
    // In JSON a "<" can only be inside a string, where \u003c means the same; written so,
    // no text of the data can end the element ("</script>") or open a comment.
    let json = json.replace('<', "\\u003c");
    format!("<script type=\"application/json\" id=\"first-view\">{json}</script>\n")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use axum::http::HeaderMap;
    use axum::routing::get;
    use serde_json::{Value, json};

    use super::*;

    #[test]
    fn a_page_reads_the_api_route_of_its_name_with_its_query() {
        assert_eq!(
            reads("/instances", Some("status=RUNNING&name=a%20b")),
            ["/api/overview", "/api/instances?status=RUNNING&name=a%20b"]
        );
        assert_eq!(reads("/", None), ["/api/overview", "/api/instances"]);
        assert_eq!(
            reads("/instances", Some("")),
            ["/api/overview", "/api/instances"]
        );
        assert_eq!(reads("/instance", Some("id=x")), ["/api/instance?id=x"]);
        assert_eq!(reads("/entities", None), ["/api/entities"]);
        assert_eq!(
            reads("/entity", Some("id=%40a%40b")),
            ["/api/entity?id=%40a%40b"]
        );
        assert_eq!(reads("/plugins", Some("ignored=1")), ["/api/plugins"]);
        assert!(reads("/assets/app.js", None).is_empty());
    }

    fn page(uri: &str, headers: &[(&'static str, &'static str)]) -> Parts {
        let mut request = Request::get(uri).body(()).unwrap();
        for (name, value) in headers {
            request.headers_mut().insert(*name, value.parse().unwrap());
        }
        request.into_parts().0
    }

    #[tokio::test]
    async fn answers_come_from_the_api_with_the_page_requests_headers_and_only_200s() {
        // The overview admits only requests carrying the page's `x-who`; the listing
        // echoes its query; the instance answers 401 as to a caller without a token.
        let api = Router::new()
            .route(
                "/api/overview",
                get(|headers: HeaderMap| async move {
                    match headers.get("x-who") {
                        Some(who) => (
                            StatusCode::OK,
                            format!("{{\"who\":\"{}\"}}", who.to_str().unwrap()),
                        ),
                        None => (StatusCode::FORBIDDEN, "{}".to_owned()),
                    }
                }),
            )
            .route(
                "/api/instances",
                get(|uri: axum::http::Uri| async move {
                    format!("{{\"query\":\"{}\"}}", uri.query().unwrap_or_default())
                }),
            )
            .route(
                "/api/instance",
                get(|| async { (StatusCode::UNAUTHORIZED, "{\"token_required\":true}") }),
            );
        let got = answers(
            &api,
            &page("/instances?status=RUNNING", &[("x-who", "me")]),
            WAIT,
        )
        .await;
        let got: Vec<(String, Value)> = got
            .into_iter()
            .map(|(path, json)| (path, serde_json::from_slice(&json).unwrap()))
            .collect();
        assert_eq!(
            got,
            [
                ("/api/overview".to_owned(), json!({"who": "me"})),
                (
                    "/api/instances?status=RUNNING".to_owned(),
                    json!({"query": "status=RUNNING"})
                ),
            ]
        );
        let without = answers(&api, &page("/instances", &[]), WAIT).await;
        assert_eq!(without.len(), 1, "the refused overview is left out");
        assert!(
            answers(&api, &page("/instance?id=x", &[]), WAIT)
                .await
                .is_empty()
        );
    }

    #[tokio::test]
    async fn a_read_not_answered_in_time_is_left_to_the_script() {
        // The listing never answers (a backend that hangs); the overview does at once. The
        // page is not held back by the one, and comes with the other.
        let api = Router::new()
            .route("/api/overview", get(|| async { "{\"counts\":{}}" }))
            .route(
                "/api/instances",
                get(|| async {
                    std::future::pending::<()>().await;
                    "{}"
                }),
            );
        let wait = Duration::from_millis(50);
        let page = page("/instances", &[]);
        let got = tokio::time::timeout(Duration::from_secs(5), answers(&api, &page, wait))
            .await
            .expect("the page was held back by a read that never ends");
        let paths: Vec<&str> = got.iter().map(|(path, _)| path.as_str()).collect();
        assert_eq!(paths, ["/api/overview"]);
    }

    #[tokio::test]
    async fn the_head_comes_at_once_then_the_data_at_its_end_which_cannot_end_its_element() {
        // The instance read answers only when let go, so what the body yields before is seen.
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        let released = std::sync::Arc::new(std::sync::Mutex::new(Some(released)));
        let hostile = r#"{"output":"</script><script>alert(1)</script><!--"}"#;
        let api = Router::new().route(
            "/api/instance",
            get(move || {
                let released = released.lock().unwrap().take();
                async move {
                    if let Some(released) = released {
                        released.await.ok();
                    }
                    hostile
                }
            }),
        );
        let shell = "<html><head><title>t</title>\n</head><body></body></html>";
        let page = page("/instance?id=%3C/script%3E", &[]);
        let body = body(api, page, shell, Duration::ZERO).await.unwrap();
        let mut chunks = body.into_data_stream();
        let head = tokio::time::timeout(Duration::from_secs(5), chunks.next())
            .await
            .expect("the head waited for the reads")
            .unwrap()
            .unwrap();
        assert_eq!(&head[..], b"<html><head><title>t</title>\n");
        release.send(()).unwrap();
        let mut page = String::from_utf8(head.to_vec()).unwrap();
        while let Some(chunk) = chunks.next().await {
            page.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
        }
        let start = page
            .find("<script type=\"application/json\" id=\"first-view\">")
            .unwrap();
        let end = page[start..].find("</script>").unwrap() + start;
        assert!(
            page[end..].starts_with("</script>\n</head><body></body></html>"),
            "{page}"
        );
        let data = &page[start + "<script type=\"application/json\" id=\"first-view\">".len()..end];
        assert!(!data.contains('<'), "{data}");
        let parsed: Value = serde_json::from_str(data).unwrap();
        assert_eq!(
            parsed,
            json!({"/api/instance?id=%3C/script%3E": {"output": "</script><script>alert(1)</script><!--"}})
        );
    }

    #[test]
    fn no_text_of_a_path_or_an_answer_can_end_the_element() {
        let hostile = Bytes::from_static(br#"{"output":"</script><!--"}"#);
        let element = element(&[("/api/instance?id=</script>".to_owned(), hostile)]);
        let data = element
            .strip_prefix("<script type=\"application/json\" id=\"first-view\">")
            .and_then(|rest| rest.strip_suffix("</script>\n"))
            .unwrap();
        assert!(!data.contains('<'), "{data}");
        let parsed: Value = serde_json::from_str(data).unwrap();
        assert_eq!(
            parsed,
            json!({"/api/instance?id=</script>": {"output": "</script><!--"}})
        );
        assert_eq!(super::element(&[]), "");
    }

    #[tokio::test]
    async fn quick_reads_go_out_with_the_page_in_one_piece() {
        let api = Router::new().route("/api/plugins", get(|| async { "[1]" }));
        let shell = "<html><head></head><body></body></html>";
        let quick = Duration::from_secs(5);
        let body = body(api, page("/plugins", &[]), shell, quick)
            .await
            .unwrap();
        let mut chunks = body.into_data_stream();
        let whole = chunks.next().await.unwrap().unwrap();
        assert_eq!(
            std::str::from_utf8(&whole).unwrap(),
            "<html><head><script type=\"application/json\" id=\"first-view\">{\"/api/plugins\":[1]}</script>\n</head><body></body></html>"
        );
        assert!(chunks.next().await.is_none());
    }

    #[tokio::test]
    async fn with_no_answer_the_shell_comes_whole_and_without_data() {
        let api = Router::new();
        let shell = "<html><head></head><body></body></html>";
        for quick in [Duration::ZERO, Duration::from_secs(5)] {
            let body = body(api.clone(), page("/plugins", &[]), shell, quick)
                .await
                .unwrap();
            let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
            assert_eq!(&bytes[..], shell.as_bytes());
        }
    }

    #[tokio::test]
    async fn a_page_without_reads_or_a_head_has_no_data() {
        let shell = "<html><head></head><body></body></html>";
        let api = Router::new();
        let quick = Duration::ZERO;
        assert!(
            body(api.clone(), page("/nowhere", &[]), shell, quick)
                .await
                .is_none()
        );
        let no_head = "<p>no head</p>";
        assert!(
            body(api.clone(), page("/plugins", &[]), no_head, quick)
                .await
                .is_none()
        );
        let mut head = page("/plugins", &[]);
        head.method = Method::HEAD;
        assert!(body(api, head, shell, quick).await.is_none());
    }
}
