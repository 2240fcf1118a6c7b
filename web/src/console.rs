//! The browser console: one page, its script and its style, compiled into the binary (no
//! build step, nothing to install beside `mco-web`). The page asks for a bearer token, builds
//! a form per action from the DDL the API serves, and reads a call's NDJSON stream. Not for:
//! anything the API does not offer to every other client.

use axum::http::header;
use axum::response::IntoResponse;

/// `GET /`.
pub async fn page() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            // The page runs only its own script and talks only to this gateway.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
            ),
            (header::X_FRAME_OPTIONS, "DENY"),
        ],
        include_str!("../console/index.html"),
    )
}

/// `GET /console.js`.
pub async fn script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("../console/console.js"),
    )
}

/// `GET /console.css`.
pub async fn style() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("../console/console.css"),
    )
}
