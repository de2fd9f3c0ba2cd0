//! The agent backend with tools from a real MCP server (`mcp-server-time`
//! from PyPI over stdio): the model's call reaches the server and the
//! server's answer reaches the model.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Fixture, fast};
use confab_agents::mcp::{McpServerConfig, McpServers};
use confab_agents::{BackendConfig, ChatTurn};
use confab_models::ServerEvent;
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

fn time_cmd() -> Option<String> {
    match std::env::var("CONFAB_MCP_TIME_CMD") {
        Ok(cmd) if !cmd.trim().is_empty() => Some(cmd),
        _ => {
            assert!(
                std::env::var("CONFAB_REQUIRE_MCP").as_deref() != Ok("1"),
                "CONFAB_REQUIRE_MCP=1 but CONFAB_MCP_TIME_CMD is not set"
            );
            confab_testkit::skipped("CONFAB_MCP_TIME_CMD not set (scripts/mcp-servers.sh install)");
            None
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_uses_mcp_time_server() {
    let Some(cmd) = time_cmd() else { return };
    let test_db = confab_testkit::TestDb::sqlite();
    let fx = Fixture::new(test_db.db().clone(), fast()).await;
    let (servers, failures) =
        McpServers::connect_all([McpServerConfig::stdio("time", cmd, Vec::<String>::new())]).await;
    assert!(failures.is_empty(), "{failures:?}");
    let mut tools = fx.tools();
    assert!(servers.register_into(&mut tools) >= 2);
    let config = BackendConfig {
        dashboard_tools: vec!["time__get_current_time".into()],
        ..BackendConfig::default()
    };
    let engine = fx.engine_with("tool_call", "agent", tools, config);
    // The fake model fills the tool's required `timezone` with the user's text.
    let events: Vec<ServerEvent> = engine
        .stream_message(ChatTurn::new("tess", "UTC"), CancellationToken::new())
        .collect()
        .await;
    let results: Vec<(String, bool)> = events
        .iter()
        .filter_map(|e| match e {
            ServerEvent::ToolResult {
                content,
                is_error,
                name,
                ..
            } => {
                assert_eq!(name, "time__get_current_time");
                Some((content.clone(), *is_error))
            }
            _ => None,
        })
        .collect();
    assert_eq!(results.len(), 2, "{events:?}");
    let year = chrono::Utc::now().format("%Y").to_string();
    for (content, is_error) in &results {
        assert!(!is_error, "{content}");
        assert!(
            content.contains(&year) && content.contains("UTC"),
            "{content}"
        );
    }
    // The model read the server's answer: it quotes it back.
    let answer: String = events
        .iter()
        .filter_map(|e| match e {
            ServerEvent::Token { content } => Some(content.as_str()),
            _ => None,
        })
        .collect();
    assert!(
        answer.starts_with("tool said: ") && answer.contains(&year),
        "{answer}"
    );
    assert!(matches!(events.last(), Some(ServerEvent::Done { .. })));
    servers.shutdown().await;
}
