//! The OpenAPI description at `/openapi.json`, and Swagger UI at `/docs` with its
//! assets built into the binary, so the page works with no internet access.
//!
//! The document is generated from the handlers; the request schema of `/predict` is
//! filled in from the serving model's own input schema on every request, so it always
//! describes the model that would answer.

use super::AppState;
use super::error::ErrorBody;
use crate::model::LoadedModel;
use crate::runtime::FieldType;
use axum::Json;
use axum::extract::State;
use serde_json::{Map, Value, json};
use utoipa::OpenApi;
use utoipa_swagger_ui::{Config, SwaggerUi};

pub const OPENAPI_PATH: &str = "/openapi.json";
pub const DOCS_PATH: &str = "/docs";

/// The document's own header and the documentation routes; each handler module describes
/// its own routes, and [`document`] merges them.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "predict-host",
        description = "Predictions from a WebAssembly component plugin, hot-swapped without restarts."
    ),
    paths(openapi_json, docs_redirect, docs_page, docs_asset),
    components(schemas(ErrorBody))
)]
struct ApiDoc;

/// The OpenAPI document for this server as configured and serving now.
pub fn document(state: &AppState) -> Value {
    let mut doc = ApiDoc::openapi();
    doc.merge(super::predict::PredictDocs::openapi());
    doc.merge(super::status::StatusDocs::openapi());
    if state.admin.is_some() {
        doc.merge(super::admin::AdminDocs::openapi());
    }
    doc.merge(super::v2::V2Docs::openapi());
    let mut doc = serde_json::to_value(doc).expect("the OpenAPI document serializes");
    doc["info"]["version"] = json!(env!("CARGO_PKG_VERSION"));
    let schemas = &mut doc["components"]["schemas"];
    schemas["PredictRow"] = row_schema(state.slot.current().as_deref());
    schemas["PredictRequest"] = json!({
        "description": "One row, or a non-empty batch of rows answered in the same order.",
        "oneOf": [
            { "$ref": "#/components/schemas/PredictRow" },
            {
                "type": "array",
                "items": { "$ref": "#/components/schemas/PredictRow" },
                "minItems": 1,
                "maxItems": state.max_batch_rows,
            },
        ],
    });
    doc
}

/// The schema of one row of the serving model, with the runbook's basket as the example.
fn row_schema(model: Option<&LoadedModel>) -> Value {
    let Some(model) = model else {
        return json!({ "type": "object", "description": "No model version is loaded yet." });
    };
    let mut properties = Map::new();
    let mut example = Map::new();
    for field in &model.info.inputs {
        let kind = match field.type_ {
            FieldType::Number => "number",
            FieldType::Text => "string",
        };
        let kinds = if field.required { json!(kind) } else { json!([kind, "null"]) };
        let mut property = json!({ "type": kinds, "description": field.description });
        if !field.categories.is_empty() {
            property["examples"] = json!(field.categories);
        }
        properties.insert(field.name.clone(), property);
    }
    for field in &model.info.sample {
        let value = match &field.value {
            crate::runtime::Value::Number(x) => json!(x),
            crate::runtime::Value::Text(s) => json!(s),
        };
        example.insert(field.name.clone(), value);
    }
    let required: Vec<&str> =
        model.info.inputs.iter().filter(|f| f.required).map(|f| f.name.as_str()).collect();
    json!({
        "type": "object",
        "description": format!("One input row of {} (model version {}).", model.info.name, model.version),
        "properties": properties,
        "required": required,
        "additionalProperties": true,
        "example": example,
    })
}

/// This document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    responses((status = 200, description = "The OpenAPI 3 description of this server", body = Object))
)]
pub async fn openapi_json(State(state): State<AppState>) -> Json<Value> {
    Json(document(&state))
}

/// Interactive documentation (Swagger UI, served by this host).
#[utoipa::path(
    get,
    path = "/docs/",
    tag = "operations",
    responses((status = 200, description = "The Swagger UI page", body = String, content_type = "text/html"))
)]
#[allow(dead_code)] // documents a route the Swagger UI router serves
fn docs_page() {}

/// Redirects to `/docs/`.
#[utoipa::path(get, path = "/docs", tag = "operations",
    responses((status = 303, description = "See /docs/", headers(("location" = String)))))]
#[allow(dead_code)] // documents a route the Swagger UI router serves
fn docs_redirect() {}

/// The Swagger UI's own assets (scripts, styles, icons).
#[utoipa::path(get, path = "/docs/{file}", tag = "operations",
    params(("file" = String, Path, description = "Asset name")),
    responses(
        (status = 200, description = "The asset", content(
            (String = "text/css"), (String = "text/javascript"), (String = "text/html"), (String = "image/png"))),
        (status = 404, description = "No such asset", body = ErrorBody),
    ))]
#[allow(dead_code)] // documents a route the Swagger UI router serves
fn docs_asset() {}

/// The Swagger UI router: `/docs/` and its assets, reading `/openapi.json`.
pub fn swagger_ui() -> SwaggerUi {
    SwaggerUi::new(DOCS_PATH).config(Config::new([OPENAPI_PATH]))
}
