//! Rate limits and caches, in-process and in Redis: two real gateway
//! replicas on 127.0.0.1 over one database (and, in Redis mode, one Redis)
//! share one rate-limit budget and see each other's writes at once; a
//! Redis that dies mid-run degrades (in-process limits, no cache, health
//! 503) and is picked up again when it returns.
//!
//! Redis mode needs `TEST_REDIS_URL` (`scripts/with-redis.sh cargo test -p
//! api-gateway --test redis`) and `redis-server` on PATH for the outage
//! test; without it these tests print SKIPPED, unless
//! `CONFAB_REQUIRE_REDIS=1` (CI), which fails them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::web;
use api_gateway::ratelimit::{Limit, RateLimiter};
use api_gateway::shared::SharedRedis;
use api_gateway::{Config, GatewayState};
use confab_store::Db;
use confab_testkit::TestDb;
use confab_web::Vars;
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

const SECRET: &str = "a-test-secret-that-is-long-enough-0123456789";

/// `TEST_REDIS_URL`, or a loud skip (a failure under `CONFAB_REQUIRE_REDIS=1`).
fn redis_url(test: &str) -> Option<String> {
    match std::env::var("TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            if std::env::var("CONFAB_REQUIRE_REDIS").as_deref() == Ok("1") {
                panic!("CONFAB_REQUIRE_REDIS=1 but TEST_REDIS_URL is not set ({test})");
            }
            confab_testkit::skipped(&format!(
                "{test} with Redis: TEST_REDIS_URL is not set (run under scripts/with-redis.sh)"
            ));
            None
        }
    }
}

/// A key prefix no other test uses.
fn prefix() -> String {
    format!("confab-test-{}:", uuid::Uuid::new_v4().simple())
}

fn config(redis: Option<&str>, prefix: &str, extra: &[(&str, &str)]) -> Config {
    let mut pairs: Vec<(String, String)> = vec![
        ("DATABASE_URL".into(), "postgres://unused".into()),
        ("GATEWAY_BIND".into(), "127.0.0.1:0".into()),
        ("HTTP_WORKERS".into(), "2".into()),
        // No chat-service: these tests never chat.
        ("CHAT_SERVICE_URLS".into(), "http://127.0.0.1:9".into()),
        ("JWT_SECRET".into(), SECRET.into()),
        ("SHUTDOWN_GRACE_SECS".into(), "1".into()),
        ("REDIS_KEY_PREFIX".into(), prefix.into()),
    ];
    if let Some(url) = redis {
        pairs.push(("REDIS_URL".into(), url.into()));
    }
    for (k, v) in extra {
        pairs.push(((*k).into(), (*v).into()));
    }
    Config::from_vars(&Vars::from_pairs(pairs)).unwrap()
}

/// One gateway replica.
struct Replica {
    url: String,
    state: web::Data<GatewayState>,
    _running: api_gateway::Running,
}

async fn replica(db: &Db, config: &Config) -> Replica {
    let state = api_gateway::build_state(db.clone(), config, SECRET.to_owned()).unwrap();
    state.accounts.catalog.load_demo_if_empty().await.unwrap();
    let state = web::Data::new(state);
    let running = api_gateway::serve(state.clone(), config).unwrap();
    Replica {
        url: running.url(),
        state,
        _running: running,
    }
}

/// Replicas A and B: two servers with Redis, the same one in-process
/// (in-process state is per replica by design).
async fn pair(db: &Db, redis: Option<&str>, extra: &[(&str, &str)]) -> (Replica, Option<Replica>) {
    let config = config(redis, &prefix(), extra);
    let a = replica(db, &config).await;
    let b = match redis {
        Some(_) => Some(replica(db, &config).await),
        None => None,
    };
    (a, b)
}

async fn register(client: &Client, base: &str, email: &str) -> (String, String) {
    let resp = client
        .post(format!("{base}/api/auth/register"))
        .json(&json!({"email": email, "password": "correct-horse-42"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let body: Value = resp.json().await.unwrap();
    (
        body["tokens"]["access_token"].as_str().unwrap().to_owned(),
        body["user"]["id"].as_str().unwrap().to_owned(),
    )
}

async fn get(client: &Client, base: &str, path: &str, token: &str) -> (StatusCode, Value) {
    let resp = client
        .get(format!("{base}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn assert_429(resp: reqwest::Response, retry_after: bool) {
    assert_eq!(resp.status(), 429);
    if !retry_after {
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "rate_limited", "{body}");
        return;
    }
    let retry: u64 = resp
        .headers()
        .get("retry-after")
        .expect("Retry-After")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1, "{retry}");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "rate_limited", "{body}");
}

/// N requests in total across both replicas, then 429 on both; the same
/// for login attempts per client IP.
async fn shared_budget(redis: Option<&str>) {
    let db = TestDb::sqlite();
    let (a, b) = pair(
        db.db(),
        redis,
        &[
            ("RATE_LIMIT_USER_PER_MIN", "10"),
            ("RATE_LIMIT_AUTH_PER_MIN", "4"),
        ],
    )
    .await;
    let b_url = b.as_ref().map_or(a.url.clone(), |b| b.url.clone());
    let client = Client::new();
    let (token, _) = register(&client, &a.url, "budget@example.com").await;
    for i in 0..10 {
        let base = if i % 2 == 0 { &a.url } else { &b_url };
        let (status, _) = get(&client, base, "/api/users/me", &token).await;
        assert_eq!(status, 200, "request {i} on {base}");
    }
    for base in [&a.url, &b_url] {
        let resp = client
            .get(format!("{base}/api/users/me"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_429(resp, true).await;
    }
    // Auth: the registration took one attempt; three more, then 429 on both.
    for i in 0..3 {
        let base = if i % 2 == 0 { &b_url } else { &a.url };
        let resp = client
            .post(format!("{base}/api/auth/login"))
            .json(&json!({"email": "budget@example.com", "password": "wrong-password-1"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401, "attempt {i}");
    }
    for base in [&a.url, &b_url] {
        let resp = client
            .post(format!("{base}/api/auth/login"))
            .json(&json!({"email": "budget@example.com", "password": "correct-horse-42"}))
            .send()
            .await
            .unwrap();
        assert_429(resp, true).await;
    }
}

/// Profile, logout everywhere, password change and deletion through A's
/// routes are seen on B at once, and B really serves the user from its
/// cache in between.
async fn user_writes_seen_everywhere(redis: Option<&str>) {
    let db = TestDb::sqlite();
    // In-process the user cache is off by default; on here to test it.
    let (a, b) = pair(db.db(), redis, &[("CACHE_USER_TTL_SECS", "30")]).await;
    let b_url = b.as_ref().map_or(a.url.clone(), |b| b.url.clone());
    let client = Client::new();
    let (token, id) = register(&client, &a.url, "writer@example.com").await;
    let uid = uuid::Uuid::parse_str(&id).unwrap();
    let (_, me) = get(&client, &b_url, "/api/users/me", &token).await;
    assert_eq!(me["display_name"], "writer");

    // A change behind the gateway's back: B still answers from its cache.
    let update: confab_accounts::models::ProfileUpdate =
        serde_json::from_value(json!({"display_name": "Behind"})).unwrap();
    a.state
        .accounts
        .users
        .update_profile(uid, update)
        .await
        .unwrap();
    let (_, me) = get(&client, &b_url, "/api/users/me", &token).await;
    assert_eq!(me["display_name"], "writer", "served from the cache");

    // PATCH on A: B sees it on the next request.
    let resp = client
        .patch(format!("{}/api/users/me", a.url))
        .bearer_auth(&token)
        .json(&json!({"display_name": "Renamed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let (_, me) = get(&client, &b_url, "/api/users/me", &token).await;
    assert_eq!(me["display_name"], "Renamed");

    // Log out everywhere through A's route, both caches warm: the old
    // token is refused on B at once (B's cache alone would still accept it:
    // the token's version matches the cached entry's).
    for base in [&a.url, &b_url] {
        let (status, _) = get(&client, base, "/api/users/me", &token).await;
        assert_eq!(status, 200, "warm on {base}");
    }
    let resp = client
        .post(format!("{}/api/auth/logout-all", a.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    for base in [&b_url, &a.url] {
        let (status, _) = get(&client, base, "/api/users/me", &token).await;
        assert_eq!(status, 401, "token revoked everywhere ({base})");
    }

    // A password change through A: the old token is refused on B at once.
    let token = login(&client, &a.url, "writer@example.com", "correct-horse-42").await;
    for base in [&a.url, &b_url] {
        let (status, _) = get(&client, base, "/api/users/me", &token).await;
        assert_eq!(status, 200, "warm on {base}");
    }
    let resp = client
        .post(format!("{}/api/users/me/password", a.url))
        .bearer_auth(&token)
        .json(
            &json!({"current_password": "correct-horse-42", "new_password": "new-horse-battery-7"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    let fresh = body["tokens"]["access_token"].as_str().unwrap().to_owned();
    let (status, _) = get(&client, &b_url, "/api/users/me", &token).await;
    assert_eq!(status, 401, "old token after a password change");
    let (status, _) = get(&client, &b_url, "/api/users/me", &fresh).await;
    assert_eq!(status, 200, "the returned token");

    // Deleting the account through A stops its token on B at once.
    let (status, _) = get(&client, &a.url, "/api/users/me", &fresh).await;
    assert_eq!(status, 200);
    let resp = client
        .delete(format!("{}/api/users/me", a.url))
        .bearer_auth(&fresh)
        .json(&json!({"password": "new-horse-battery-7"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let (status, _) = get(&client, &b_url, "/api/users/me", &fresh).await;
    assert_eq!(status, 401, "deleted account");
    assert!(a.state.accounts.users.get_user(uid).await.is_err());
}

/// Signs in and returns the access token.
async fn login(client: &Client, base: &str, email: &str, password: &str) -> String {
    let resp = client
        .post(format!("{base}/api/auth/login"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    body["tokens"]["access_token"].as_str().unwrap().to_owned()
}

/// A catalogue change plus the import's invalidation is seen at once; a
/// completion on A shows on B's dashboard, track and lesson at once.
async fn catalogue_and_progress(redis: Option<&str>) {
    let db = TestDb::sqlite();
    let (a, b) = pair(db.db(), redis, &[]).await;
    let b_url = b.as_ref().map_or(a.url.clone(), |b| b.url.clone());
    let client = Client::new();
    let (token, _) = register(&client, &a.url, "learner@example.com").await;
    let (_, dash) = get(&client, &b_url, "/api/dashboard/tracks", &token).await;
    let cards = dash["items"].as_array().unwrap().clone();
    assert!(cards.len() >= 2, "{dash}");
    let track_id = cards[0]["id"].as_str().unwrap().to_owned();
    let (_, track) = get(&client, &b_url, &format!("/api/tracks/{track_id}"), &token).await;
    let lesson_id = track["modules"][0]["lessons"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, lesson) = get(
        &client,
        &b_url,
        &format!("/api/lessons/{lesson_id}"),
        &token,
    )
    .await;
    assert_eq!(lesson["id"], lesson_id.as_str());
    assert_eq!(cards[0]["lessons_completed"], 0);

    // Progress on A: B's views are fresh.
    let resp = client
        .post(format!("{}/api/lessons/{lesson_id}/complete", a.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let (_, dash) = get(&client, &b_url, "/api/dashboard/tracks", &token).await;
    let card = dash["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == track_id.as_str())
        .unwrap()
        .clone();
    assert_eq!(card["lessons_completed"], 1, "{card}");
    let (_, track) = get(&client, &b_url, &format!("/api/tracks/{track_id}"), &token).await;
    assert_eq!(track["lessons_completed"], 1, "{track}");
    assert_eq!(track["modules"][0]["lessons"][0]["completed"], true);

    // A catalogue change: cached until the import's invalidation, then gone.
    a.state
        .accounts
        .catalog
        .delete_track(&track_id)
        .await
        .unwrap();
    let (status, _) = get(&client, &b_url, &format!("/api/tracks/{track_id}"), &token).await;
    assert_eq!(status, 200, "served from the cache until invalidated");
    match &a.state.redis {
        // What `api-gateway import-courses` does with REDIS_URL set.
        Some(r) => assert!(api_gateway::cache::bump_generation(r).await),
        None => a.state.cache.invalidate_all().await,
    }
    let (status, _) = get(&client, &b_url, &format!("/api/tracks/{track_id}"), &token).await;
    assert_eq!(status, 404);
    let (_, dash) = get(&client, &b_url, "/api/dashboard/tracks", &token).await;
    assert!(
        dash["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["id"] != track_id.as_str()),
        "{dash}"
    );
}

/// Two tests of one scenario `body(redis)`: `$in_process` with the
/// in-process limiter and caches, `$redis` with Redis (SKIPPED without
/// TEST_REDIS_URL unless CONFAB_REQUIRE_REDIS=1).
macro_rules! both_ways {
    ($body:ident: $in_process:ident, $redis:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $in_process() {
            $body(None).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $redis() {
            if let Some(url) = redis_url(stringify!($redis)) {
                $body(Some(&url)).await;
            }
        }
    };
}

both_ways!(shared_budget: shared_budget_in_process, shared_budget_redis);
both_ways!(user_writes_seen_everywhere: user_writes_in_process, user_writes_redis);
both_ways!(catalogue_and_progress: catalogue_and_progress_in_process, catalogue_and_progress_redis);

/// The Lua token bucket against real Redis: burst, refusal with a short
/// wait, refill; two limiters with the same name share buckets; keys expire.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bucket_script_against_redis() {
    let Some(url) = redis_url("bucket_script_against_redis") else {
        return;
    };
    let p = prefix();
    let redis = Arc::new(SharedRedis::new(&url, &p, Duration::from_millis(250)).unwrap());
    let limit = Limit {
        burst: 3.0,
        per_minute: 6000.0,
    };
    let one = RateLimiter::shared(limit, redis.clone(), "t");
    let two = RateLimiter::shared(limit, redis.clone(), "t");
    assert!(one.check("k").await.is_ok());
    assert!(two.check("k").await.is_ok());
    assert!(one.check("k").await.is_ok());
    let wait = two.check("k").await.unwrap_err();
    assert!(wait <= Duration::from_millis(20), "{wait:?}");
    assert!(one.check("other").await.is_ok(), "keys are independent");
    // The bucket refills: waiting what the limiter asks, `k` passes again.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut wait = wait;
    loop {
        tokio::time::sleep(wait).await;
        match two.check("k").await {
            Ok(()) => break,
            Err(again) => wait = again,
        }
        assert!(Instant::now() < deadline, "not refilled");
    }
    let key = format!("{p}rl:t:k");
    let ttl: i64 = redis
        .call(|mut c| async move { redis::cmd("PTTL").arg(key).query_async(&mut c).await })
        .await
        .unwrap();
    assert!(ttl > 0 && ttl <= 1_100, "{ttl}");
}

/// A redis-server child on a free port.
struct RedisChild {
    child: Child,
    port: u16,
}

impl RedisChild {
    fn start(port: u16) -> RedisChild {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server on PATH (apt-get install -y redis-server)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        RedisChild { child, port }
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RedisChild {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn health(client: &Client, base: &str) -> (StatusCode, Value) {
    let resp = client
        .get(format!("{base}/api/health"))
        .send()
        .await
        .unwrap();
    (resp.status(), resp.json().await.unwrap())
}

/// Calls `/api/users/me` (must answer 200) until the gateway's per-user
/// bucket `user_key` exists in Redis; panics with `what` after 15 s.
async fn until_redis_used(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    redis: &SharedRedis,
    user_key: &str,
    what: &str,
) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, _) = get(client, url, "/api/users/me", token).await;
        assert_eq!(status, 200);
        let k = user_key.to_owned();
        let exists: Option<i64> = redis
            .call(|mut c| async move { redis::cmd("EXISTS").arg(k).query_async(&mut c).await })
            .await;
        if exists == Some(1) {
            return;
        }
        assert!(Instant::now() < deadline, "the gateway {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Redis down at start, killed mid-run, restarted: requests keep
/// succeeding quickly (in-process limits, no cache), health says `down`,
/// and the gateway goes back to Redis when it answers again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_outage_degrades_and_recovers() {
    if redis_url("redis_outage_degrades_and_recovers").is_none() {
        return;
    }
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("redis://127.0.0.1:{port}/");
    let db = TestDb::sqlite();
    let client = Client::new();
    // Down at start: the gateway starts, serves, and says so.
    let p = prefix();
    let gw = replica(db.db(), &config(Some(&url), &p, &[])).await;
    let (token, id) = register(&client, &gw.url, "outage@example.com").await;
    let (status, _) = get(&client, &gw.url, "/api/users/me", &token).await;
    assert_eq!(status, 200);
    let (status, body) = health(&client, &gw.url).await;
    assert_eq!(status, 503);
    assert_eq!(body["redis"]["status"], "down", "{body}");

    let mut server = RedisChild::start(port);
    let redis = SharedRedis::new(&url, &p, Duration::from_millis(500)).unwrap();
    let user_key = format!("{p}rl:user:{id}");
    until_redis_used(
        &client,
        &gw.url,
        &token,
        &redis,
        &user_key,
        "never used Redis",
    )
    .await;
    let (status, body) = health(&client, &gw.url).await;
    assert_eq!(body["redis"]["status"], "ok", "{body}");
    // The chat-service is absent, so overall health stays degraded here.
    assert_eq!(status, 503);

    // Killed mid-run: every request still answers, quickly.
    server.stop();
    for path in ["/api/users/me", "/api/dashboard/tracks", "/api/users/me"] {
        let started = Instant::now();
        let (status, _) = get(&client, &gw.url, path, &token).await;
        assert_eq!(status, 200, "{path} with Redis down");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{path} hung {:?} on a dead Redis",
            started.elapsed()
        );
    }
    let (status, body) = health(&client, &gw.url).await;
    assert_eq!(status, 503);
    assert_eq!(body["redis"]["status"], "down", "{body}");

    // Back: the gateway uses Redis again (a fresh bucket appears there).
    let _server = RedisChild::start(server.port);
    until_redis_used(
        &client,
        &gw.url,
        &token,
        &redis,
        &user_key,
        "did not go back to Redis",
    )
    .await;
    let (_, body) = health(&client, &gw.url).await;
    assert_eq!(body["redis"]["status"], "ok", "{body}");
}
