//! The web client as served by the gateway (the browser itself is tested by
//! `scripts/browser-tests.sh`): `/` and `/assets/*` from the binary, cache
//! headers, pre-compressed bodies by `Accept-Encoding`, the strict CSP,
//! `304` on a matching ETag, liveness at `/livez`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{gateway, gateway_config};
use confab_testkit::TestDb;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_serves_the_web_client() {
    let test_db = TestDb::sqlite();
    // No chat-service is needed for static files.
    let gw = gateway(test_db.db().clone(), &gateway_config("http://127.0.0.1:9")).await;
    let client = reqwest::Client::new();
    let url = gw.url();

    // The page: no-cache, strict CSP, gzip when asked.
    let resp = client
        .get(format!("{url}/"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let h = resp.headers().clone();
    assert_eq!(h["cache-control"], "no-cache");
    assert_eq!(h["content-encoding"], "gzip");
    assert!(h["vary"].to_str().unwrap().contains("Accept-Encoding"));
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert!(h["content-type"].to_str().unwrap().starts_with("text/html"));
    let csp = h["content-security-policy"].to_str().unwrap().to_owned();
    for part in [
        "default-src 'none'",
        "script-src 'self';",
        "style-src 'self';",
        "frame-ancestors 'none'",
        "object-src 'none'",
        "base-uri 'none'",
    ] {
        assert!(csp.contains(part), "{part} missing from {csp}");
    }
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{csp}"
    );
    let host = url.trim_start_matches("http://");
    assert!(
        csp.contains(&format!("connect-src 'self' ws://{host} wss://{host}")),
        "{csp}"
    );
    let etag = h["etag"].to_str().unwrap().to_owned();
    let gz = resp.bytes().await.unwrap();
    assert!(gz.starts_with(&[0x1f, 0x8b]), "not gzip");
    // The same page uncompressed when the client takes no encoding.
    let resp = client.get(format!("{url}/")).send().await.unwrap();
    assert!(resp.headers().get("content-encoding").is_none());
    assert_eq!(resp.headers()["etag"].to_str().unwrap(), etag);
    let html = resp.text().await.unwrap();
    assert!(html.contains("<div id=\"app\""), "{html}");
    assert!(!html.contains("<script>"), "inline script in {html}");

    // Revalidation: 304 on the same ETag.
    let resp = client
        .get(format!("{url}/"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 304);

    // Every referenced asset: content-hashed, immutable, brotli when asked.
    let assets: Vec<&str> = html
        .split('"')
        .filter(|s| s.starts_with("/assets/"))
        .collect();
    assert!(
        assets.iter().any(|a| a.starts_with("/assets/app.")),
        "{assets:?}"
    );
    for asset in &assets {
        let resp = client
            .get(format!("{url}{asset}"))
            .header("accept-encoding", "br;q=1.0, gzip;q=0.5")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{asset}");
        let h = resp.headers();
        assert_eq!(h["cache-control"], "public, max-age=31536000, immutable");
        assert!(
            !h.contains_key("content-encoding") || h["content-encoding"] == "br",
            "{asset}: {:?}",
            h.get("content-encoding")
        );
        let name = asset.rsplit('/').next().unwrap();
        let hash = name.split('.').rev().nth(1).unwrap();
        assert!(
            hash.len() == 8 && hash.chars().all(|c| c.is_ascii_hexdigit()),
            "{asset} is not content-hashed"
        );
    }
    // Without Accept-Encoding: the file itself.
    let app = assets
        .iter()
        .find(|a| a.starts_with("/assets/app."))
        .unwrap();
    let resp = client.get(format!("{url}{app}")).send().await.unwrap();
    assert!(resp.headers().get("content-encoding").is_none());
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    let js = resp.text().await.unwrap();
    assert!(
        js.contains("import "),
        "not the module: {}",
        &js[..200.min(js.len())]
    );

    // An unknown asset is a JSON 404; HEAD works; liveness moved to /livez.
    let resp = client
        .get(format!("{url}/assets/nope.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "not_found");
    let resp = client.head(format!("{url}/")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let live: Value = client
        .get(format!("{url}/livez"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(live["status"], "ok");
    gw.shutdown().await.unwrap();
}
