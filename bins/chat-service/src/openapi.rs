//! The OpenAPI document's base (info, tags, security scheme). The schemas
//! come from the types the handlers return: `confab_models` derives them
//! (its feature `openapi`), this crate's own response types derive theirs.

/// Tag of session routes.
pub const SESSIONS: &str = "sessions";
/// Tag of message routes.
pub const MESSAGES: &str = "messages";
/// Tag of system routes.
pub const SYSTEM: &str = "system";
/// Tag of memory and experience routes.
pub const MEMORY: &str = "memory";
/// Tag of administrative routes.
pub const ADMIN: &str = "admin";
/// Tag of chat routes.
pub const CHAT: &str = "chat";

/// The document before routes are added.
pub fn base() -> utoipa::openapi::OpenApi {
    use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
    use utoipa::openapi::tag::TagBuilder;
    use utoipa::openapi::{ComponentsBuilder, InfoBuilder, OpenApiBuilder};
    let tag = |name: &str, description: &str| {
        TagBuilder::new()
            .name(name)
            .description(Some(description))
            .build()
    };
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("confab chat-service")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "Chat sessions, history, memory and feedback. Every route under /api acts \
                     for one user: behind the gateway the user comes from X-User-Id, trusted \
                     only with a valid X-Internal-Auth; standalone (no internal key \
                     configured) requests act as the local user. Errors are JSON \
                     {\"error\": code, \"message\": text}.",
                ))
                .build(),
        )
        .tags(Some(vec![
            tag(SESSIONS, "Chat sessions"),
            tag(MESSAGES, "Messages, search and feedback"),
            tag(MEMORY, "Long-term memory and feedback aggregate"),
            tag(SYSTEM, "Liveness, health and statistics"),
            tag(ADMIN, "Administrative operations (role admin)"),
            tag(CHAT, "Chat"),
        ]))
        .components(Some(
            ComponentsBuilder::new()
                .security_scheme(
                    "internal_auth",
                    SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-Internal-Auth"))),
                )
                .build(),
        ))
        .build()
}
