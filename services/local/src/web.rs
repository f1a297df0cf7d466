//! The local stack's pages: `/demo` (a chat built on the client SDK) and
//! `/dashboard` (the stack's live state). Their HTML, scripts and styles
//! are compiled into the binary (`services/local/web/`), so they need no
//! build step; the demo loads the SDK itself from `/sdk/`, served from the
//! SDK's build output (`--sdk-dir`, by default `clients/js/dist` of this
//! checkout), so the page always runs the SDK as it is built.

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use crate::config::StackConfig;
use crate::state::AppState;

/// Where the SDK's build output is when the stack runs from a checkout.
pub const DEFAULT_SDK_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../clients/js/dist");
/// The module the demo imports.
const SDK_ENTRY: &str = "index.js";

/// Files compiled in: name, content type, body.
const ASSETS: &[(&str, &str, &str)] = &[
    ("demo.js", JAVASCRIPT, include_str!("../web/demo.js")),
    ("demo.css", CSS, include_str!("../web/demo.css")),
    (
        "dashboard.js",
        JAVASCRIPT,
        include_str!("../web/dashboard.js"),
    ),
    ("common.css", CSS, include_str!("../web/common.css")),
    (
        "uPlot.iife.min.js",
        JAVASCRIPT,
        include_str!("../web/vendor/uPlot.iife.min.js"),
    ),
    (
        "uPlot.min.css",
        CSS,
        include_str!("../web/vendor/uPlot.min.css"),
    ),
];
const JAVASCRIPT: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const DEMO_HTML: &str = include_str!("../web/demo.html");
const DASHBOARD_HTML: &str = include_str!("../web/dashboard.html");

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/demo", axum::routing::get(demo))
        .route("/dashboard", axum::routing::get(dashboard))
        .route("/web/{file}", axum::routing::get(asset))
        .route("/sdk/{file}", axum::routing::get(sdk_file))
}

/// The SDK build output the demo loads.
pub fn sdk_dir(config: &StackConfig) -> PathBuf {
    config
        .sdk_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_SDK_DIR))
}

/// Whether the SDK is built where the demo loads it from.
pub fn sdk_built(config: &StackConfig) -> bool {
    sdk_dir(config).join(SDK_ENTRY).is_file()
}

async fn demo(State(app): State<Arc<AppState>>) -> Response {
    let dir = sdk_dir(&app.config);
    if !sdk_built(&app.config) {
        // The page cannot work without the SDK: say how to build it.
        let page = format!(
            "<!doctype html><meta charset=utf-8><title>fanout demo</title>\
             <h1>The demo needs the client SDK built</h1>\
             <p>No <code>{}</code> in <code>{}</code>. From the repository root:</p>\
             <pre>npm --prefix clients/js ci\nnpm --prefix clients/js run build</pre>\
             <p>then reload. (Or point <code>--sdk-dir</code> / <code>FANOUT_SDK_DIR</code> at a built SDK.)</p>",
            SDK_ENTRY,
            html_escape(&dir.display().to_string())
        );
        return (StatusCode::SERVICE_UNAVAILABLE, Html(page)).into_response();
    }
    // The page connects to this stack's stage.
    let page = DEMO_HTML.replace("{{STAGE}}", &app.config.stage);
    no_store(Html(page).into_response())
}

async fn dashboard() -> Response {
    no_store(Html(DASHBOARD_HTML).into_response())
}

async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, content_type, body)) => {
            no_store(([(header::CONTENT_TYPE, *content_type)], *body).into_response())
        }
        None => (StatusCode::NOT_FOUND, format!("no page asset '{file}'")).into_response(),
    }
}

/// A file of the SDK's build output: plain names only (no directories,
/// no dot files), so nothing outside the folder can be asked for.
async fn sdk_file(State(app): State<Arc<AppState>>, Path(file): Path<String>) -> Response {
    let plain = !file.starts_with('.')
        && file
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    let content_type = if file.ends_with(".js") {
        JAVASCRIPT
    } else if file.ends_with(".map") {
        "application/json"
    } else if file.ends_with(".ts") {
        "text/plain; charset=utf-8"
    } else {
        ""
    };
    if !plain || content_type.is_empty() {
        return (StatusCode::NOT_FOUND, "not an SDK file").into_response();
    }
    let path = sdk_dir(&app.config).join(&file);
    match tokio::fs::read(&path).await {
        Ok(body) => no_store(([(header::CONTENT_TYPE, content_type)], body).into_response()),
        Err(e) => (
            StatusCode::NOT_FOUND,
            format!(
                "{}: {e} (build the SDK: npm --prefix clients/js ci && npm --prefix clients/js run build)",
                path.display()
            ),
        )
            .into_response(),
    }
}

/// Pages are for development: always fetched fresh, so a rebuilt SDK or
/// stack shows at the next reload.
fn no_store(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    response
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
