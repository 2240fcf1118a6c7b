//! Errors as HTTP answers: every failure is a status code and
//! `{"error": {"kind", "message", "field"?}}`, the kind a stable snake_case name a program
//! branches on. The mapping from the library's error kinds to status codes is here, once:
//! bad input 400, no or unknown token 401, a caller without usable credentials 403, a broker
//! or registry that cannot be reached 503. Not for: deciding what is an error (the library
//! and the request checks do).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use mco_client::{CallError, CallErrorKind, ConnectErrorKind, DiscoveryError, DiscoveryErrorKind};
use serde_json::json;

use crate::callers::CallerClientError;

/// A failed API request.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A stable name for the kind of failure (`invalid_input`, `unauthorized`, ...).
    pub kind: &'static str,
    /// One line for people.
    pub message: String,
    /// The request field at fault (`inputs.service`, `filter.fact`, `timeout`), if one is.
    pub field: Option<String>,
}

impl ApiError {
    /// A failure of `kind` with `status`.
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            kind,
            message: message.into(),
            field: None,
        }
    }

    /// A 400 about the request field `field`.
    pub fn bad_field(field: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError {
            field: Some(field.into()),
            ..ApiError::new(StatusCode::BAD_REQUEST, "invalid_input", message)
        }
    }

    /// No bearer token, or one that speaks for no caller.
    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// The JSON body.
    pub fn body(&self) -> serde_json::Value {
        let mut error = json!({"kind": self.kind, "message": self.message});
        if let Some(field) = &self.field {
            error["field"] = json!(field);
        }
        json!({ "error": error })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body())).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<CallError> for ApiError {
    fn from(e: CallError) -> ApiError {
        let message = e.to_string();
        match e.kind() {
            CallErrorKind::InvalidInput => match e.input_error() {
                Some(input) => ApiError::bad_field(format!("inputs.{}", input.input), message),
                None => ApiError::new(StatusCode::BAD_REQUEST, "invalid_input", message),
            },
            CallErrorKind::UnknownCollective => ApiError {
                field: Some("collective".into()),
                ..ApiError::new(StatusCode::BAD_REQUEST, "unknown_collective", message)
            },
            CallErrorKind::Ddl => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "ddl", message),
            CallErrorKind::Discovery(kind) => discovery(kind, message),
            CallErrorKind::Broker => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "broker_unavailable",
                message,
            ),
            CallErrorKind::NotQueued => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_queued", message)
            }
            CallErrorKind::NoHistory => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "no_event_history", message)
            }
            _ => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message),
        }
    }
}

impl From<DiscoveryError> for ApiError {
    fn from(e: DiscoveryError) -> ApiError {
        discovery(e.kind(), e.to_string())
    }
}

fn discovery(kind: DiscoveryErrorKind, message: String) -> ApiError {
    let (status, name) = match kind {
        DiscoveryErrorKind::InvalidFilter => (StatusCode::BAD_REQUEST, "invalid_filter"),
        DiscoveryErrorKind::Unsupported => (StatusCode::BAD_REQUEST, "unsupported_filter"),
        DiscoveryErrorKind::InvalidNodeList => (StatusCode::BAD_REQUEST, "invalid_discovery"),
        DiscoveryErrorKind::External => (StatusCode::BAD_GATEWAY, "discovery_failed"),
        DiscoveryErrorKind::Registry => (StatusCode::SERVICE_UNAVAILABLE, "registry_unavailable"),
        DiscoveryErrorKind::NotBuilt => (StatusCode::NOT_IMPLEMENTED, "not_built"),
        DiscoveryErrorKind::Broker => (StatusCode::SERVICE_UNAVAILABLE, "broker_unavailable"),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
    };
    let field = matches!(
        kind,
        DiscoveryErrorKind::InvalidFilter | DiscoveryErrorKind::Unsupported
    )
    .then(|| "filter".to_string());
    ApiError {
        field,
        ..ApiError::new(status, name, message)
    }
}

impl From<CallerClientError> for ApiError {
    fn from(e: CallerClientError) -> ApiError {
        let message = e.to_string();
        match &e {
            CallerClientError::NoCredentials { .. } => {
                ApiError::new(StatusCode::FORBIDDEN, "no_credentials", message)
            }
            CallerClientError::Connect(c) => match c.kind() {
                ConnectErrorKind::Unavailable => ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "broker_unavailable",
                    message,
                ),
                ConnectErrorKind::Credentials => {
                    ApiError::new(StatusCode::FORBIDDEN, "caller_credentials", message)
                }
                _ => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "gateway_config", message),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_input_error_names_its_field_and_an_unauthorized_asks_for_a_bearer() {
        let e = ApiError::bad_field("inputs.service", "invalid input service");
        assert_eq!(
            e.body(),
            json!({"error": {"kind": "invalid_input", "message": "invalid input service", "field": "inputs.service"}})
        );
        let r = ApiError::unauthorized("no token").into_response();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(r.headers()[header::WWW_AUTHENTICATE], "Bearer");
    }

    #[test]
    fn library_kinds_become_status_codes() {
        let cases = [
            (CallErrorKind::InvalidInput, 400),
            (CallErrorKind::UnknownCollective, 400),
            (CallErrorKind::Broker, 503),
            (CallErrorKind::NotQueued, 503),
            (CallErrorKind::NoHistory, 503),
            (
                CallErrorKind::Discovery(DiscoveryErrorKind::InvalidFilter),
                400,
            ),
            (CallErrorKind::Discovery(DiscoveryErrorKind::Registry), 503),
        ];
        for (kind, status) in cases {
            let e = ApiError::from(CallError::new(kind, "x"));
            assert_eq!(e.status.as_u16(), status, "{kind:?}");
        }
    }
}
