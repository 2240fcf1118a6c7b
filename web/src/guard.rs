//! The two checks every API request passes before a handler sees it: where it comes from
//! (a page on another origin is refused unless configured; allowed ones get CORS headers)
//! and who it is (a bearer token that speaks for a caller, or 401). Bearer tokens are never
//! sent by a browser on its own, so a page elsewhere cannot borrow an operator's session;
//! the origin check refuses it anyway, and keeps tokens pasted into other sites' scripts
//! from working from a browser.
//!
//! Not for: what a caller may do on the nodes (their policies decide, on the signature).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::api::AppState;
use crate::error::ApiError;

/// The caller a request was authenticated as; handlers take it from the request's
/// extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller(pub String);

/// Whether `origin` (a browser's `Origin` header) may call: the gateway's own origin (the
/// `Host` the request was sent to) or a configured one.
pub fn origin_allowed(origin: &str, headers: &HeaderMap, tls: bool, allowed: &[String]) -> bool {
    if allowed.iter().any(|a| a == origin) {
        return true;
    }
    let scheme = if tls { "https" } else { "http" };
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .is_some_and(|host| origin == format!("{scheme}://{host}"))
}

/// Refuses cross-origin requests unless allowed; answers allowed preflights; adds CORS
/// headers for allowed other origins.
pub async fn check_origin(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(origin) = request
        .headers()
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .map(str::to_string)
    else {
        return next.run(request).await;
    };
    let tls = state.settings.tls.is_some();
    if !origin_allowed(
        &origin,
        request.headers(),
        tls,
        &state.settings.allowed_origins,
    ) {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "cross_origin",
            format!("requests from {origin} are not allowed (allowed_origins in [web])"),
        )
        .into_response();
    }
    let cross = state.settings.allowed_origins.contains(&origin);
    let mut response = if request.method() == Method::OPTIONS && cross {
        StatusCode::NO_CONTENT.into_response()
    } else {
        next.run(request).await
    };
    if cross {
        if let Ok(value) = HeaderValue::from_str(&origin) {
            let headers = response.headers_mut();
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
            headers.insert(header::VARY, HeaderValue::from_static("Origin"));
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("GET, POST"),
            );
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static("authorization, content-type, accept"),
            );
            headers.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static("600"),
            );
        }
    }
    response
}

/// Lets through only requests with a bearer token that speaks for a caller, and records who.
pub async fn authenticate(
    State(state): State<Arc<AppState>>,
    mut request: Request,
    next: Next,
) -> Response {
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    let Some(token) = token else {
        return ApiError::unauthorized("no bearer token: send Authorization: Bearer TOKEN")
            .into_response();
    };
    let Some(caller) = state.callers.caller(token) else {
        tracing::warn!("refused a request with an unknown bearer token");
        return ApiError::unauthorized("the bearer token is not known to this gateway")
            .into_response();
    };
    request.extensions_mut().insert(Caller(caller.to_string()));
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_gateway_itself_and_configured_origins_may_call() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        let allowed = vec!["https://portal.example.com".to_string()];
        assert!(origin_allowed(
            "http://127.0.0.1:8080",
            &headers,
            false,
            &allowed
        ));
        assert!(!origin_allowed(
            "https://127.0.0.1:8080",
            &headers,
            false,
            &allowed
        ));
        assert!(origin_allowed(
            "https://127.0.0.1:8080",
            &headers,
            true,
            &allowed
        ));
        assert!(origin_allowed(
            "https://portal.example.com",
            &headers,
            false,
            &allowed
        ));
        assert!(!origin_allowed(
            "https://evil.example",
            &headers,
            false,
            &allowed
        ));
        assert!(!origin_allowed("null", &headers, false, &allowed));
        assert!(!origin_allowed(
            "http://127.0.0.1:8080",
            &HeaderMap::new(),
            false,
            &[]
        ));
    }
}
