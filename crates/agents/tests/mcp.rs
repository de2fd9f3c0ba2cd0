#![allow(clippy::unwrap_used, clippy::expect_used)]
//! MCP tools against real servers: the reference `mcp-server-time` (PyPI,
//! stdio; found through `CONFAB_MCP_TIME_CMD`, see scripts/mcp-servers.sh)
//! and the testkit's streamable-HTTP server built with rmcp.

use std::time::{Duration, Instant};

use chrono::Datelike;
use confab_agents::mcp::{McpConfig, McpError, McpServer, McpServerConfig, McpServers};
use confab_agents::{DynTool, ToolContext, ToolError, ToolRegistry};
use confab_testkit::McpTestServer;
use serde_json::{Value, json};

const TIME_CMD_VAR: &str = "CONFAB_MCP_TIME_CMD";
const REQUIRE_VAR: &str = "CONFAB_REQUIRE_MCP";
const CALL_TIMEOUT: Duration = Duration::from_secs(20);

/// The `mcp-server-time` executable, or `None` (test skipped) when not configured.
fn time_cmd(test: &str) -> Option<String> {
    match std::env::var(TIME_CMD_VAR) {
        Ok(cmd) if !cmd.trim().is_empty() => Some(cmd),
        _ => {
            if std::env::var(REQUIRE_VAR).as_deref() == Ok("1") {
                panic!(
                    "{REQUIRE_VAR}=1 but {TIME_CMD_VAR} is not set (run scripts/mcp-servers.sh install)"
                );
            }
            confab_testkit::skipped(&format!(
                "{test}: {TIME_CMD_VAR} is not set; run `scripts/mcp-servers.sh install` and \
                 export {TIME_CMD_VAR}=\"$(scripts/mcp-servers.sh path)\""
            ));
            None
        }
    }
}

fn time_config(cmd: &str) -> McpServerConfig {
    // Pin the server's idea of "local" so results do not depend on the machine.
    McpServerConfig::stdio("time", cmd, ["--local-timezone", "UTC"])
        .with_connect_timeout(Duration::from_secs(30))
}

fn ctx() -> ToolContext {
    ToolContext::for_user("u1")
}

fn tool<'a>(server: &'a McpServer, name: &str) -> &'a dyn DynTool {
    server
        .tools()
        .iter()
        .find(|t| t.name() == name)
        .unwrap_or_else(|| panic!("no tool {name} in {:?}", server.tool_names()))
        .as_ref()
}

/// Whether the process exists at all (a zombie counts: it was not reaped).
fn pid_alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Whether the process is running (exists and is not a zombie).
fn pid_running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // "PID (COMM) STATE ...": the state follows the last ')'.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// Waits until the process has exited and been reaped.
async fn wait_until_gone(pid: u32) -> bool {
    wait_for(|| !pid_alive(pid)).await
}

async fn wait_for(done: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_server_lists_and_calls_tools() {
    let Some(cmd) = time_cmd("time_server_lists_and_calls_tools") else {
        return;
    };
    let server = McpServer::connect(time_config(&cmd)).await.unwrap();
    let names = server.tool_names();
    assert!(
        names.contains(&"time__get_current_time".to_owned()),
        "{names:?}"
    );
    assert!(
        names.contains(&"time__convert_time".to_owned()),
        "{names:?}"
    );

    let get = tool(&server, "time__get_current_time");
    let def = get.definition();
    assert!(!def.description.is_empty());
    assert_eq!(def.parameters["type"], "object");
    assert!(
        def.parameters["properties"]["timezone"].is_object(),
        "{}",
        def.parameters
    );

    let out = get
        .call_json(json!({"timezone": "UTC"}), &ctx())
        .await
        .unwrap();
    let year = chrono::Utc::now().year().to_string();
    assert!(out.content.contains(&year), "{}", out.content);
    let parsed: Value = serde_json::from_str(&out.content).unwrap();
    assert_eq!(parsed["timezone"], "UTC");
    let datetime = parsed["datetime"].as_str().unwrap();
    let when = chrono::DateTime::parse_from_rfc3339(datetime).unwrap();
    let skew = (chrono::Utc::now() - when.with_timezone(&chrono::Utc))
        .num_seconds()
        .abs();
    assert!(skew < 120, "server time {datetime} is {skew} s off");

    let converted = tool(&server, "time__convert_time")
        .call_json(
            json!({"source_timezone": "UTC", "time": "12:00", "target_timezone": "Asia/Tokyo"}),
            &ctx(),
        )
        .await
        .unwrap();
    assert!(converted.content.contains("21:00"), "{}", converted.content);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_server_invalid_arguments_are_errors() {
    let Some(cmd) = time_cmd("time_server_invalid_arguments_are_errors") else {
        return;
    };
    let server = McpServer::connect(time_config(&cmd)).await.unwrap();
    let get = tool(&server, "time__get_current_time");

    // Missing required argument: the server answers with an error result.
    let missing = get.call_json(json!({}), &ctx()).await;
    assert!(
        matches!(&missing, Err(ToolError::Failed(m) | ToolError::InvalidArguments { reason: m, .. }) if m.contains("timezone")),
        "{missing:?}"
    );
    // Unknown time zone.
    let bad_zone = get
        .call_json(json!({"timezone": "Not/AZone"}), &ctx())
        .await;
    assert!(
        matches!(bad_zone, Err(ToolError::Failed(_))),
        "{bad_zone:?}"
    );
    // Not an object at all: refused before it reaches the server.
    let not_object = get.call_json(json!(["UTC"]), &ctx()).await;
    assert!(
        matches!(not_object, Err(ToolError::InvalidArguments { .. })),
        "{not_object:?}"
    );
    // The connection survived all of that.
    assert!(
        get.call_json(json!({"timezone": "UTC"}), &ctx())
            .await
            .is_ok()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_server_through_the_registry() {
    let Some(cmd) = time_cmd("time_server_through_the_registry") else {
        return;
    };
    let inline = json!({"mcpServers": {"time": {
        "command": cmd, "args": ["--local-timezone", "UTC"], "connect_timeout": 30
    }}})
    .to_string();
    let config = McpConfig::from_env_value(&inline).unwrap();
    let (servers, failures) = McpServers::connect_all(config.servers).await;
    assert!(failures.is_empty(), "{failures:?}");
    let mut registry = ToolRegistry::new();
    assert_eq!(servers.register_into(&mut registry), 2);
    assert_eq!(
        registry
            .definitions(&["time__*".to_owned()])
            .iter()
            .map(|d| d.name.as_str())
            .collect::<Vec<_>>(),
        ["time__convert_time", "time__get_current_time"]
    );

    let out = registry
        .call(
            "time__get_current_time",
            &["*".to_owned()],
            json!({"timezone": "Europe/Paris"}),
            &ctx(),
            CALL_TIMEOUT,
        )
        .await
        .unwrap();
    assert!(out.content.contains("Europe/Paris"), "{}", out.content);
    let err = registry
        .call(
            "time__get_current_time",
            &["*".to_owned()],
            json!({}),
            &ctx(),
            CALL_TIMEOUT,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ToolError::Failed(_) | ToolError::InvalidArguments { .. }
        ),
        "{err:?}"
    );

    // Dropping the servers kills the child; the registered tools then say so.
    let pid = servers.get("time").unwrap().child_pid().await.unwrap();
    drop(servers);
    assert!(
        wait_until_gone(pid).await,
        "child {pid} still there after drop"
    );
    let gone = registry
        .call(
            "time__get_current_time",
            &["*".to_owned()],
            json!({"timezone": "UTC"}),
            &ctx(),
            CALL_TIMEOUT,
        )
        .await;
    assert!(
        matches!(gone, Err(ToolError::Unavailable { .. })),
        "{gone:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_server_killed_child_is_replaced() {
    let Some(cmd) = time_cmd("time_server_killed_child_is_replaced") else {
        return;
    };
    let server = McpServer::connect(time_config(&cmd)).await.unwrap();
    let get = tool(&server, "time__get_current_time");
    let pid = server.child_pid().await.unwrap();
    let status = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(
        wait_for(|| !pid_running(pid)).await,
        "killed child {pid} still running"
    );

    // The death is noticed before the call (and it reconnects), or the
    // call fails as unavailable and the next one reconnects; never a panic.
    let first = get.call_json(json!({"timezone": "UTC"}), &ctx()).await;
    eprintln!("first call after kill: {first:?}");
    assert!(
        matches!(first, Ok(_) | Err(ToolError::Unavailable { .. })),
        "{first:?}"
    );
    let second = get.call_json(json!({"timezone": "UTC"}), &ctx()).await;
    assert!(second.is_ok(), "{second:?}");
    let new_pid = server.child_pid().await.unwrap();
    assert_ne!(new_pid, pid);

    server.disconnect().await;
    assert!(!pid_alive(new_pid), "child {new_pid} survived disconnect");
    assert!(!server.is_connected().await);
    // And a call after a deliberate disconnect reconnects too.
    assert!(
        get.call_json(json!({"timezone": "UTC"}), &ctx())
            .await
            .is_ok()
    );
}

fn test_config(server: &McpTestServer) -> McpServerConfig {
    McpServerConfig::http("test", server.url()).with_connect_timeout(Duration::from_secs(5))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_server_lists_and_calls_tools() {
    let test_server = McpTestServer::start().await;
    let server = McpServer::connect(test_config(&test_server)).await.unwrap();
    let mut names = server.tool_names();
    names.sort();
    assert_eq!(
        names,
        ["test__add", "test__echo", "test__fail", "test__sleep"]
    );
    let add = tool(&server, "test__add").definition();
    assert!(add.description.contains("sum"), "{}", add.description);
    assert!(
        add.parameters["properties"]["a"].is_object(),
        "{}",
        add.parameters
    );

    let mut registry = ToolRegistry::new();
    server.register_into(&mut registry);
    let call = |name: &'static str, args: Value| {
        let registry = registry.clone();
        async move {
            registry
                .call(name, &["test__*".to_owned()], args, &ctx(), CALL_TIMEOUT)
                .await
        }
    };
    assert_eq!(
        call("test__add", json!({"a": 2, "b": 3}))
            .await
            .unwrap()
            .content,
        "5"
    );
    assert_eq!(
        call("test__echo", json!({"text": "héllo wörld"}))
            .await
            .unwrap()
            .content,
        "héllo wörld"
    );
    assert_eq!(
        call("test__fail", json!({})).await,
        Err(ToolError::Failed("fail: this tool always fails".into()))
    );
    // rmcp servers report undecodable arguments as an error result.
    let bad = call("test__add", json!({"a": "two", "b": 3})).await;
    assert!(
        matches!(&bad, Err(ToolError::Failed(m) | ToolError::InvalidArguments { reason: m, .. }) if m.contains("two")),
        "{bad:?}"
    );
    // `null` arguments are an empty object.
    assert_eq!(
        call("test__fail", Value::Null).await.unwrap_err().code(),
        "tool_failed"
    );
    assert_eq!(test_server.tool_calls(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_call_timeout_leaves_the_connection_usable() {
    let test_server = McpTestServer::start().await;
    let server = McpServer::connect(test_config(&test_server)).await.unwrap();
    let mut registry = ToolRegistry::new();
    server.register_into(&mut registry);
    let started = Instant::now();
    let slow = registry
        .call(
            "test__sleep",
            &["*".to_owned()],
            json!({"ms": 5000}),
            &ctx(),
            Duration::from_millis(200),
        )
        .await;
    assert!(matches!(slow, Err(ToolError::Timeout { .. })), "{slow:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
    let fast = registry
        .call(
            "test__sleep",
            &["*".to_owned()],
            json!({"ms": 1}),
            &ctx(),
            CALL_TIMEOUT,
        )
        .await;
    assert_eq!(fast.unwrap().content, "slept 1 ms");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_server_killed_then_restarted_reconnects() {
    let mut test_server = McpTestServer::start().await;
    let server = McpServer::connect(test_config(&test_server)).await.unwrap();
    let mut registry = ToolRegistry::new();
    server.register_into(&mut registry);
    let add = |a: i64| {
        let registry = registry.clone();
        async move {
            registry
                .call(
                    "test__add",
                    &["*".to_owned()],
                    json!({"a": a, "b": 1}),
                    &ctx(),
                    CALL_TIMEOUT,
                )
                .await
        }
    };
    assert_eq!(add(1).await.unwrap().content, "2");

    test_server.stop();
    for _ in 0..2 {
        let started = Instant::now();
        let down = add(2).await;
        eprintln!("call while down: {down:?}");
        assert!(
            matches!(down, Err(ToolError::Unavailable { .. })),
            "{down:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "took {:?}",
            started.elapsed()
        );
    }

    test_server.restart().await.unwrap();
    assert_eq!(add(3).await.unwrap().content, "4");
    // Many calls at once on the fresh connection.
    let results = futures_util::future::join_all((10..18).map(add)).await;
    for (i, r) in results.into_iter().enumerate() {
        assert_eq!(r.unwrap().content, (11 + i).to_string());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_server_killed_during_a_call() {
    let mut test_server = McpTestServer::start().await;
    let server = McpServer::connect(test_config(&test_server)).await.unwrap();
    let sleep = tool(&server, "test__sleep");
    let ctx = ctx();
    let started = Instant::now();
    let call = sleep.call_json(json!({"ms": 10_000}), &ctx);
    let kill = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        test_server.stop();
    };
    let (result, ()) = tokio::join!(call, kill);
    eprintln!(
        "in-flight call when killed: {result:?} after {:?}",
        started.elapsed()
    );
    assert!(
        matches!(result, Err(ToolError::Unavailable { .. })),
        "{result:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "took {:?}",
        started.elapsed()
    );
    test_server.restart().await.unwrap();
    let again = sleep.call_json(json!({"ms": 1}), &ctx).await;
    assert_eq!(again.unwrap().content, "slept 1 ms");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_while_down_all_fail_cleanly() {
    let mut test_server = McpTestServer::start().await;
    let server = McpServer::connect(test_config(&test_server)).await.unwrap();
    let echo = tool(&server, "test__echo");
    let ctx = ctx();
    test_server.stop();
    let results = futures_util::future::join_all(
        (0..6).map(|i| echo.call_json(json!({"text": format!("t{i}")}), &ctx)),
    )
    .await;
    for r in results {
        assert!(matches!(r, Err(ToolError::Unavailable { .. })), "{r:?}");
    }
    test_server.restart().await.unwrap();
    let results = futures_util::future::join_all(
        (0..6).map(|i| echo.call_json(json!({"text": format!("t{i}")}), &ctx)),
    )
    .await;
    for (i, r) in results.into_iter().enumerate() {
        assert_eq!(r.unwrap().content, format!("t{i}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdio_child_that_exits_is_an_error_not_a_hang() {
    let config = McpServerConfig::stdio(
        "quits",
        "sh",
        ["-c", "echo 'bye from the child' >&2; exit 3"],
    )
    .with_connect_timeout(Duration::from_secs(5));
    let started = Instant::now();
    let err = McpServer::connect(config).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    let msg = err.to_string();
    assert!(matches!(err, McpError::Connect { .. }), "{err:?}");
    assert!(msg.contains("quits"), "{msg}");
    assert!(msg.contains("bye from the child"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdio_child_that_never_answers_times_out() {
    let config = McpServerConfig::stdio("mute", "sh", ["-c", "exec sleep 60"])
        .with_connect_timeout(Duration::from_millis(500));
    let started = Instant::now();
    let err = McpServer::connect(config).await.unwrap_err();
    assert!(matches!(err, McpError::ConnectTimeout { .. }), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_all_reports_servers_that_fail() {
    let test_server = McpTestServer::start().await;
    // A port nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let configs = vec![
        test_config(&test_server),
        McpServerConfig::http("down", format!("http://{closed}/mcp"))
            .with_connect_timeout(Duration::from_secs(5)),
        McpServerConfig::stdio("missing", "/nonexistent/mcp-server", Vec::<String>::new()),
        McpServerConfig::stdio("quits", "sh", ["-c", "exit 0"]),
    ];
    let started = Instant::now();
    let (servers, failures) = McpServers::connect_all(configs).await;
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(servers.servers().len(), 1);
    let mut failed: Vec<&str> = failures.iter().map(|(n, _)| n.as_str()).collect();
    failed.sort();
    assert_eq!(failed, ["down", "missing", "quits"]);
    let missing = &failures.iter().find(|(n, _)| n == "missing").unwrap().1;
    assert!(matches!(missing, McpError::Spawn { .. }), "{missing:?}");

    let mut registry = ToolRegistry::new();
    assert_eq!(servers.register_into(&mut registry), 4);
    assert_eq!(registry.names().len(), 4);
    servers.shutdown().await;
    let after = registry
        .call(
            "test__echo",
            &["*".to_owned()],
            json!({"text": "x"}),
            &ctx(),
            CALL_TIMEOUT,
        )
        .await;
    assert!(
        matches!(after, Err(ToolError::Unavailable { .. })),
        "{after:?}"
    );
}
