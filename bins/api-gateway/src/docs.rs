//! `/openapi.json` for the whole public API and the interactive docs at
//! `/docs` (Swagger UI served from the binary: works offline).
//!
//! The document is the gateway's own routes plus chat-service's routes
//! that the gateway forwards, fetched from an instance's `/openapi.json`
//! (so the two never drift); when no instance answers, the gateway's own
//! part is served alone.

use std::time::Duration;

use actix_web::{HttpResponse, web};
use serde_json::Value;
use utoipa::OpenApi;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};

use crate::chat::FORWARDED;
use crate::state::GatewayState;

/// The gateway's own routes.
#[derive(OpenApi)]
#[openapi(
    info(title = "confab API", description = "confab: accounts, courses, chat (REST, SSE, WebSocket `/ws/chat`), sessions and history, OpenAI-compatible API. Authenticate with `Authorization: Bearer <access token or API key>`."),
    paths(
        crate::system::root, crate::system::health,
        crate::account::register, crate::account::login, crate::account::refresh, crate::account::logout,
        crate::account::logout_all, crate::account::change_password, crate::account::delete_me,
        crate::account::me, crate::account::update_me, crate::account::my_progress,
        crate::account::list_keys, crate::account::create_key, crate::account::revoke_key,
        crate::courses::dashboard_tracks, crate::courses::track, crate::courses::lesson, crate::courses::complete_lesson,
        crate::openai::models, crate::openai::chat_completions,
    ),
    components(schemas(confab_web::ErrorBody)),
    modifiers(&BearerAuth),
)]
pub struct GatewayApi;

/// Adds the bearer security scheme.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The gateway's own document as JSON.
pub fn own_document() -> Value {
    serde_json::to_value(GatewayApi::openapi()).unwrap_or(Value::Null)
}

/// Whether chat-service's `path` is one the gateway forwards.
fn forwarded(path: &str) -> bool {
    FORWARDED
        .iter()
        .any(|p| path == *p || path.starts_with(&format!("{p}/")))
        && path != "/api/chat/completions"
}

/// Merges chat-service's forwarded paths and schemas into `doc`.
pub fn merge(doc: &mut Value, chat: &Value) {
    if let (Some(paths), Some(theirs)) = (doc["paths"].as_object_mut(), chat["paths"].as_object()) {
        for (path, item) in theirs {
            if forwarded(path) {
                let mut item = item.clone();
                if let Some(ops) = item.as_object_mut() {
                    for op in ops.values_mut() {
                        if let Some(op) = op.as_object_mut() {
                            op.insert("security".into(), serde_json::json!([{ "bearer": [] }]));
                        }
                    }
                }
                paths.insert(path.clone(), item);
            }
        }
    }
    if let Some(theirs) = chat["components"]["schemas"].as_object() {
        if !doc["components"].is_object() {
            doc["components"] = serde_json::json!({});
        }
        if !doc["components"]["schemas"].is_object() {
            doc["components"]["schemas"] = serde_json::json!({});
        }
        if let Some(schemas) = doc["components"]["schemas"].as_object_mut() {
            for (name, schema) in theirs {
                schemas
                    .entry(name.clone())
                    .or_insert_with(|| schema.clone());
            }
        }
    }
}

/// `GET /openapi.json`.
pub async fn openapi_json(state: web::Data<GatewayState>) -> HttpResponse {
    let mut doc = own_document();
    for upstream in state.proxy.upstreams().order() {
        let url = format!("{}/openapi.json", upstream.url);
        let fetched = tokio::time::timeout(Duration::from_secs(2), async {
            state
                .proxy
                .client()
                .get(&url)
                .send()
                .await?
                .json::<Value>()
                .await
        })
        .await;
        if let Ok(Ok(chat)) = fetched {
            merge(&mut doc, &chat);
            break;
        }
    }
    HttpResponse::Ok().json(doc)
}

/// The Swagger UI service at `/docs/`.
pub fn swagger() -> utoipa_swagger_ui::SwaggerUi {
    utoipa_swagger_ui::SwaggerUi::new("/docs/{_:.*}")
        .config(utoipa_swagger_ui::Config::from("/openapi.json"))
}

/// `GET /docs`: to `/docs/`.
pub async fn docs_redirect() -> HttpResponse {
    HttpResponse::Found()
        .insert_header(("location", "/docs/"))
        .finish()
}
