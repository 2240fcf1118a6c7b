//! The OpenAPI 3 document of the API (`web/openapi.json`), served at `/api/v1/openapi.json`
//! without a token so tools can read it. A test keeps its paths equal to the router's
//! [`crate::api::ROUTES`]; the property-based API test (schemathesis, in the end-to-end
//! tests) runs against the served document. Not for: generating the document from code.

use axum::http::header;
use axum::response::IntoResponse;

/// The document's text.
pub const OPENAPI_JSON: &str = include_str!("../openapi.json");

/// `GET /api/v1/openapi.json`.
pub async fn document() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI_JSON)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn the_document_describes_exactly_the_routes_served() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI_JSON).unwrap();
        let mut documented = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                documented.insert((method.clone(), path.clone()));
            }
        }
        let served: BTreeSet<(String, String)> = crate::api::ROUTES
            .iter()
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .collect();
        assert_eq!(documented, served);
    }
}
