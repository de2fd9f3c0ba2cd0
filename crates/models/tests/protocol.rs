//! Pins the exact JSON of every chat event and client message.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

use chrono::{TimeZone, Utc};
use confab_models::*;
use serde_json::json;
use uuid::Uuid;

const SID: &str = "0190f5a0-0000-7000-8000-000000000001";
const MID: &str = "0190f5a0-0000-7000-8000-000000000002";

fn sid() -> Uuid {
    SID.parse().unwrap()
}
fn mid() -> Uuid {
    MID.parse().unwrap()
}

fn message() -> Message {
    Message {
        id: mid(),
        session_id: sid(),
        role: MessageRole::User,
        content: "hi".into(),
        timestamp: Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap(),
        model_id: None,
        tokens_used: Some(3),
        response_time: None,
        metadata: Metadata::new(),
    }
}

fn source() -> SourceInfo {
    let mut metadata = Metadata::new();
    metadata.insert("chunk_index".into(), json!(2));
    SourceInfo {
        file_path: "docs/a.md".into(),
        content: "passage".into(),
        score: 0.5,
        metadata,
    }
}

/// Serialises `event`, compares with `expected`, and parses it back.
fn pin(event: ServerEvent, expected: serde_json::Value) {
    let got = serde_json::to_value(&event).unwrap();
    assert_eq!(got, expected);
    let back: ServerEvent = serde_json::from_value(expected).unwrap();
    assert_eq!(back, event);
}

#[test]
fn ready_event() {
    pin(
        ServerEvent::Ready {
            session_id: sid(),
            agent: "dashboard".into(),
            backend: "simple".into(),
            history: vec![message()],
        },
        json!({
            "type": "ready",
            "session_id": SID,
            "agent": "dashboard",
            "backend": "simple",
            "history": [{
                "id": MID,
                "session_id": SID,
                "role": "user",
                "content": "hi",
                "timestamp": "2026-01-02T03:04:05Z",
                "model_id": null,
                "tokens_used": 3,
                "response_time": null,
                "metadata": {}
            }]
        }),
    );
}

#[test]
fn stage_token_and_error_events() {
    pin(
        ServerEvent::Stage {
            stage: "retrieving".into(),
            content: "Searching the course".into(),
        },
        json!({"type": "stage", "stage": "retrieving", "content": "Searching the course"}),
    );
    pin(
        ServerEvent::Token {
            content: "Hel".into(),
        },
        json!({"type": "token", "content": "Hel"}),
    );
    pin(
        ServerEvent::error("busy", "a reply is already streaming"),
        json!({"type": "error", "code": "busy", "message": "a reply is already streaming"}),
    );
    pin(ServerEvent::Pong, json!({"type": "pong"}));
}

#[test]
fn tool_events() {
    pin(
        ServerEvent::ToolCall {
            id: "call_1".into(),
            name: "list_tracks".into(),
            arguments: json!({"limit": 5}),
        },
        json!({"type": "tool_call", "id": "call_1", "name": "list_tracks", "arguments": {"limit": 5}}),
    );
    pin(
        ServerEvent::ToolResult {
            id: "call_1".into(),
            name: "list_tracks".into(),
            content: "[]".into(),
            is_error: false,
        },
        json!({"type": "tool_result", "id": "call_1", "name": "list_tracks", "content": "[]", "is_error": false}),
    );
}

#[test]
fn sources_event() {
    pin(
        ServerEvent::Sources {
            sources: vec![source()],
        },
        json!({"type": "sources", "sources": [{
            "file_path": "docs/a.md",
            "content": "passage",
            "score": 0.5,
            "metadata": {"chunk_index": 2}
        }]}),
    );
}

#[test]
fn done_event() {
    for (reason, text) in [
        (FinishReason::Stop, "stop"),
        (FinishReason::Length, "length"),
        (FinishReason::ToolCalls, "tool_calls"),
        (FinishReason::Cancelled, "cancelled"),
        (FinishReason::Error, "error"),
    ] {
        pin(
            ServerEvent::Done {
                session_id: sid(),
                message_id: mid(),
                model: "builtin".into(),
                usage: Usage::new(10, 5),
                finish_reason: reason,
            },
            json!({
                "type": "done",
                "session_id": SID,
                "message_id": MID,
                "model": "builtin",
                "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
                "finish_reason": text
            }),
        );
    }
}

#[test]
fn client_messages_tagged() {
    let cases = [
        (
            ClientMessage::Init {
                agent: AgentKind::Course,
                course_id: Some("rust-101".into()),
                session_id: Some(sid()),
                knowledge: vec![],
            },
            json!({"type": "init", "agent": "course", "course_id": "rust-101", "session_id": SID}),
        ),
        (
            ClientMessage::Init {
                agent: AgentKind::Dashboard,
                course_id: None,
                session_id: None,
                knowledge: vec![sid()],
            },
            json!({"type": "init", "agent": "dashboard", "knowledge": [SID]}),
        ),
        (
            ClientMessage::Init {
                agent: AgentKind::Dashboard,
                course_id: None,
                session_id: None,
                knowledge: vec![],
            },
            json!({"type": "init", "agent": "dashboard"}),
        ),
        (
            ClientMessage::ChatMessage {
                content: "hello".into(),
            },
            json!({"type": "chat_message", "content": "hello"}),
        ),
        (ClientMessage::Cancel, json!({"type": "cancel"})),
        (ClientMessage::Ping, json!({"type": "ping"})),
    ];
    for (msg, expected) in cases {
        assert_eq!(serde_json::to_value(&msg).unwrap(), expected);
        assert_eq!(ClientMessage::parse(&expected.to_string()).unwrap(), msg);
        assert_eq!(
            serde_json::from_value::<ClientMessage>(expected).unwrap(),
            msg
        );
    }
}

#[test]
fn client_init_defaults_to_dashboard() {
    assert_eq!(
        ClientMessage::parse(r#"{"type":"init"}"#).unwrap(),
        ClientMessage::Init {
            agent: AgentKind::Dashboard,
            course_id: None,
            session_id: None,
            knowledge: vec![],
        }
    );
}

#[test]
fn bare_message_form_is_a_chat_message() {
    assert_eq!(
        ClientMessage::parse(r#"{"message": "Привет"}"#).unwrap(),
        ClientMessage::ChatMessage {
            content: "Привет".into()
        }
    );
}

#[test]
fn malformed_client_frames_are_clear_errors() {
    for (frame, needle) in [
        ("not json", "not valid JSON"),
        ("[1,2]", "JSON object"),
        (r#"{"message": 5}"#, "must be a string"),
        (r#"{"hello": 1}"#, "needs a `type`"),
        (r#"{"type": "shout"}"#, "invalid client message"),
        (r#"{"type": "chat_message"}"#, "content"),
        (
            r#"{"type": "init", "agent": "teacher"}"#,
            "invalid client message",
        ),
        (
            r#"{"type": "init", "session_id": "nope"}"#,
            "invalid client message",
        ),
    ] {
        let err = ClientMessage::parse(frame).unwrap_err();
        assert!(
            err.to_string().contains(needle),
            "{frame}: `{err}` lacks `{needle}`"
        );
    }
}

#[test]
fn chat_response_shape() {
    let r = ChatResponse {
        response: "Hello".into(),
        timestamp: Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap(),
        model: "builtin".into(),
        session_id: sid(),
        message_id: mid(),
        sources: vec![],
    };
    assert_eq!(
        serde_json::to_value(&r).unwrap(),
        json!({
            "response": "Hello",
            "timestamp": "2026-01-02T03:04:05Z",
            "model": "builtin",
            "session_id": SID,
            "message_id": MID,
            "sources": []
        })
    );
}

#[test]
fn export_format_parsing() {
    assert_eq!("JSON".parse::<ExportFormat>(), Ok(ExportFormat::Json));
    assert_eq!("md".parse::<ExportFormat>(), Ok(ExportFormat::Markdown));
    assert_eq!("text".parse::<ExportFormat>(), Ok(ExportFormat::Txt));
    assert!("pdf".parse::<ExportFormat>().is_err());
}

/// chat-service's internal stream to the gateway: the protocol event with
/// the failure's kind and wait beside it, read back typed.
#[test]
fn relay_events_round_trip() {
    use confab_error::ErrorKind;
    use confab_models::RelayEvent;
    let kind = ErrorKind::RateLimited {
        retry_after: Some(std::time::Duration::from_secs(7)),
    };
    let sent = RelayEvent::error(ServerEvent::error("rate_limited", "slow down"), kind);
    let json: serde_json::Value = serde_json::to_value(&sent).unwrap();
    assert_eq!(json["type"], "error");
    assert_eq!(json["code"], "rate_limited");
    assert_eq!(json["kind"], "rate_limited");
    assert_eq!(json["retry_after_secs"], 7);
    let read: RelayEvent = serde_json::from_value(json).unwrap();
    assert_eq!(read.error_kind(), kind);
    let token = RelayEvent::event(ServerEvent::Token {
        content: "hi".into(),
    });
    let text = serde_json::to_string(&token).unwrap();
    assert_eq!(text, r#"{"type":"token","content":"hi"}"#);
    assert_eq!(serde_json::from_str::<RelayEvent>(&text).unwrap(), token);
}
