//! The route table: every route of the service, in one place. Each
//! `service(...)` registers a handler and its OpenAPI operation.
//!
//! Order matters where paths overlap: fixed segments (`/api/sessions/search`)
//! come before `{id}` segments.

use utoipa_actix_web::service_config::ServiceConfig;

use crate::{admin, memory, messages, sessions, system};

/// Registers every route on `cfg`.
pub fn configure(cfg: &mut ServiceConfig) {
    // System (seed 003).
    cfg.service(system::root)
        .service(system::health)
        .service(system::api_health)
        .service(system::stats)
        .service(memory::list_memory)
        .service(memory::remember)
        .service(memory::clear_memory)
        .service(memory::experience);

    // Chat: REST, SSE, seed-004 SSE, WebSocket (not an OpenAPI operation).
    cfg.service(crate::chat::post_chat)
        .service(crate::chat::stream_chat)
        .service(crate::chat::agent_stream)
        .service(crate::chat::completions)
        .route("/ws/chat", actix_web::web::get().to(crate::ws::chat_ws));

    // Sessions: fixed paths first, then `{id}` paths.
    cfg.service(sessions::create_session)
        .service(sessions::list_sessions)
        .service(sessions::search_sessions)
        .service(sessions::user_stats)
        .service(sessions::import_session)
        .service(sessions::get_session)
        .service(sessions::update_session)
        .service(sessions::delete_session)
        .service(sessions::archive_session)
        .service(sessions::unarchive_session)
        .service(sessions::session_statistics)
        .service(sessions::list_messages)
        .service(sessions::add_message)
        .service(sessions::export_session);

    // Messages: search before `{id}`.
    cfg.service(messages::search_messages)
        .service(messages::update_message)
        .service(messages::delete_message)
        .service(messages::give_feedback);

    // Administration.
    cfg.service(admin::cleanup).service(admin::index_course);

    // Knowledge bases.
    {
        use crate::knowledge as kb;
        cfg.service(kb::create_base)
            .service(kb::list_bases)
            .service(kb::get_base)
            .service(kb::update_base)
            .service(kb::delete_base)
            .service(kb::upload)
            .service(kb::list_documents)
            .service(kb::get_document)
            .service(kb::delete_document)
            .service(kb::search)
            .service(kb::events);
    }
}
