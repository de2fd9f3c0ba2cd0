//! A real gateway and a real chat-service, both on 127.0.0.1:0, over one
//! test database, with chat answered by the fake LLM server.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use actix_web::web;
use api_gateway::{Config, GatewayState};
use chat_service::AppState;
use chat_service::chat::ChatLimits;
use confab_history::HistoryConfig;
use confab_llm::LlmConfig;
use confab_store::Db;
use confab_testkit::{FakeLlm, FakeLlmConfig};
use confab_web::Vars;
use reqwest::{Client, Method, RequestBuilder, StatusCode};
use serde_json::{Value, json};

/// The internal key between the two services.
pub const KEY: &str = "gateway-test-key";
/// The password [`Stack::register`] registers with.
pub const PASSWORD: &str = "correct horse 42";
/// The JWT secret of the test gateway.
pub const SECRET: &str = "a-test-secret-that-is-long-enough-0123456789";

/// Both services and the fake LLM.
pub struct Stack {
    pub llm: FakeLlm,
    pub gateway: api_gateway::Running,
    pub chat: Option<chat_service::Running>,
    pub url: String,
    pub chat_url: String,
    pub client: Client,
    pub db: Db,
}

/// A chat-service on `db` answering with the fake server's `model`.
pub async fn chat_service(db: Db, llm: &FakeLlm, model: &str, bind: &str) -> chat_service::Running {
    let vars = Vars::from_pairs([
        ("AGENT_RUNTIME__LLM_PROXY_URL", llm.base_url()),
        ("AGENT_RUNTIME__LLM_MODEL", model.to_owned()),
        ("CONFAB_LLM_MAX_RETRIES", "0".to_owned()),
    ]);
    let llm_config = LlmConfig::from_vars(vars.lookup()).unwrap();
    let state = AppState::new(db.clone(), HistoryConfig::default());
    let wiring = chat_service::wiring::build(
        &vars,
        &llm_config,
        db,
        state.conversation_store(),
        state.memory_store(),
    )
    .await
    .unwrap();
    let state = state.with_wiring(wiring, ChatLimits::default());
    let mut config = chat_service::Config::for_database("sqlite://unused.db").unwrap();
    config.http.bind = bind.to_owned();
    config.http.workers = Some(2);
    config.http.shutdown_grace = Duration::from_secs(1);
    config.auth = confab_web::AuthConfig::with_internal_key(KEY);
    chat_service::serve(web::Data::new(state), &config).unwrap()
}

/// A gateway config in front of `chat_urls`.
pub fn gateway_config(chat_urls: &str) -> Config {
    let vars = Vars::from_pairs([
        ("DATABASE_URL", "postgres://unused"),
        ("GATEWAY_BIND", "127.0.0.1:0"),
        ("HTTP_WORKERS", "2"),
        ("CHAT_SERVICE_URLS", chat_urls),
        ("AGENT_RUNTIME__INTERNAL_API_KEY", KEY),
        ("JWT_SECRET", SECRET),
        ("RATE_LIMIT_AUTH_PER_MIN", "1000"),
        ("SHUTDOWN_GRACE_SECS", "1"),
    ]);
    Config::from_vars(&vars).unwrap()
}

/// A gateway over `db` with `config`.
pub async fn gateway(db: Db, config: &Config) -> api_gateway::Running {
    let state: GatewayState = api_gateway::build_state(db, config, SECRET.to_owned()).unwrap();
    state.accounts.catalog.load_demo_if_empty().await.unwrap();
    api_gateway::serve(web::Data::new(state), config).unwrap()
}

impl Stack {
    /// Everything, with the fake model `model`.
    pub async fn start(db: Db, model: &str, llm_config: FakeLlmConfig) -> Stack {
        let llm = FakeLlm::start_with(llm_config).await;
        let chat = chat_service(db.clone(), &llm, model, "127.0.0.1:0").await;
        let chat_url = chat.url();
        let gateway = gateway(db.clone(), &gateway_config(&chat_url)).await;
        Stack {
            url: gateway.url(),
            llm,
            gateway,
            chat: Some(chat),
            chat_url,
            client: Client::new(),
            db,
        }
    }

    /// Everything, with the fake model `model`, and the gateway's
    /// configuration adjusted by `configure` before it starts.
    pub async fn start_configured(
        db: Db,
        model: &str,
        llm_config: FakeLlmConfig,
        configure: impl FnOnce(&mut Config),
    ) -> Stack {
        let llm = FakeLlm::start_with(llm_config).await;
        let chat = chat_service(db.clone(), &llm, model, "127.0.0.1:0").await;
        let chat_url = chat.url();
        let mut config = gateway_config(&chat_url);
        configure(&mut config);
        let gateway = gateway(db.clone(), &config).await;
        Stack {
            url: gateway.url(),
            llm,
            gateway,
            chat: Some(chat),
            chat_url,
            client: Client::new(),
            db,
        }
    }

    /// Creates an API key named `name` with the access token `access` and
    /// returns the key (its secret).
    pub async fn api_key(&self, access: &str, name: &str) -> String {
        let resp = self
            .authed(access, Method::POST, "/api/users/me/api-keys")
            .json(&json!({ "name": name, "password": PASSWORD }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED);
        let body: Value = resp.json().await.unwrap();
        body["key"].as_str().unwrap().to_owned()
    }

    /// A request to the gateway.
    pub fn req(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, format!("{}{path}", self.url))
    }

    /// A request with a bearer token.
    pub fn authed(&self, token: &str, method: Method, path: &str) -> RequestBuilder {
        self.req(method, path).bearer_auth(token)
    }

    /// Signs in and returns (user id, access token, refresh token).
    pub async fn login(&self, email: &str, password: &str) -> (String, String, String) {
        let resp = self
            .req(Method::POST, "/api/auth/login")
            .json(&json!({"email": email, "password": password}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let body: Value = resp.json().await.unwrap();
        (
            body["user"]["id"].as_str().unwrap().to_owned(),
            body["tokens"]["access_token"].as_str().unwrap().to_owned(),
            body["tokens"]["refresh_token"].as_str().unwrap().to_owned(),
        )
    }

    /// Registers `email` and returns (user id, access token, refresh token).
    pub async fn register(&self, email: &str) -> (String, String, String) {
        let resp = self
            .req(Method::POST, "/api/auth/register")
            .json(&json!({"email": email, "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED);
        let body: Value = resp.json().await.unwrap();
        (
            body["user"]["id"].as_str().unwrap().to_owned(),
            body["tokens"]["access_token"].as_str().unwrap().to_owned(),
            body["tokens"]["refresh_token"].as_str().unwrap().to_owned(),
        )
    }
}

/// `data:` payloads of an SSE body.
pub fn sse_data(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter_map(|frame| frame.trim_start_matches('\n').strip_prefix("data: "))
        .map(str::to_owned)
        .collect()
}

/// The `Retry-After` of `resp` in whole seconds (None when absent).
pub fn retry_after_secs(resp: &reqwest::Response) -> Option<u64> {
    resp.headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().parse().expect("Retry-After in seconds"))
}
