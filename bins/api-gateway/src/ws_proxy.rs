//! `/ws/chat` through the gateway: the client's socket is bridged to a
//! chat-service socket frame by frame (nothing is buffered), closes travel
//! both ways, and a client that goes away closes the upstream socket (which
//! cancels the answer there).
//!
//! Revocation: every bridged socket is registered in [`OpenSockets`] with
//! the credential it was opened with. "Log out everywhere", a password
//! change, an API key revocation and an account deletion close the user's
//! sockets at once in the replica that handled them, and in the other
//! replicas through a Redis channel (`REDIS_URL`); as a backstop every
//! replica re-checks the credentials of all its open sockets against the
//! database every [`RECHECK_EVERY`] (one query per kind), so a missed
//! message or a change made behind the gateway's back closes them within
//! a few seconds too. A closed socket gets an `error` event
//! (`credentials_revoked`), close code 1008, and its upstream socket is
//! closed (which cancels a running answer).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use confab_accounts::Accounts;
use tokio::sync::oneshot;

use crate::auth::{AuthUser, Recheck};
use crate::shared::SharedRedis;

use actix_web::{HttpRequest, HttpResponse};
use actix_ws::{AggregatedMessage, CloseCode, CloseReason};
use confab_web::ApiError;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as UpCode;
use tokio_tungstenite::tungstenite::{self, Message as Up};

use crate::proxy::{Identity, Proxy, unavailable};

/// Largest frame relayed from a client (chat-service applies its own, lower limit).
const MAX_FRAME: usize = 1024 * 1024;

/// How often open sockets' credentials are re-checked against the database.
pub const RECHECK_EVERY: Duration = Duration::from_secs(2);
/// The Redis channel (after the key prefix) revocations are published on.
const CHANNEL: &str = "revoked";

/// One open bridged socket.
#[derive(Debug)]
struct Open {
    user: String,
    recheck: Recheck,
    close: Option<oneshot::Sender<()>>,
}

/// The bridged sockets of this replica, by the user and credential they
/// were opened with (see the module docs).
#[derive(Debug)]
pub struct OpenSockets {
    open: Mutex<HashMap<u64, Open>>,
    next: AtomicU64,
    started: AtomicBool,
    accounts: Accounts,
    redis: Option<Arc<SharedRedis>>,
    recheck_every: Duration,
}

/// Keeps a socket registered; unregisters it on drop.
#[derive(Debug)]
pub struct Registration {
    id: u64,
    sockets: Arc<OpenSockets>,
    /// Fires when the socket's credentials were revoked.
    pub revoked: oneshot::Receiver<()>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Ok(mut open) = self.sockets.open.lock() {
            open.remove(&self.id);
        }
    }
}

impl OpenSockets {
    /// No sockets yet; `redis` carries revocations between replicas.
    pub fn new(
        accounts: Accounts,
        redis: Option<Arc<SharedRedis>>,
        recheck_every: Duration,
    ) -> Self {
        Self {
            open: Mutex::new(HashMap::new()),
            next: AtomicU64::new(0),
            started: AtomicBool::new(false),
            accounts,
            redis,
            recheck_every,
        }
    }

    /// How many sockets are open.
    pub fn len(&self) -> usize {
        self.open.lock().map(|o| o.len()).unwrap_or(0)
    }

    /// Whether no socket is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Registers a socket of `auth` (starting the watcher task on first use).
    pub fn register(self: &Arc<Self>, auth: &AuthUser) -> Registration {
        if !self.started.swap(true, Ordering::SeqCst) {
            tokio::spawn(watch(
                Arc::downgrade(self),
                self.redis.clone(),
                self.recheck_every,
            ));
        }
        let (tx, rx) = oneshot::channel();
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut open) = self.open.lock() {
            open.insert(
                id,
                Open {
                    user: auth.id(),
                    recheck: auth.recheck.clone(),
                    close: Some(tx),
                },
            );
        }
        Registration {
            id,
            sockets: self.clone(),
            revoked: rx,
        }
    }

    /// Closes the user's sockets here and tells the other replicas.
    pub async fn revoke_user(&self, user: &str) {
        // Here: re-checked at once (the database already has the change).
        self.recheck(Some(user)).await;
        if let Some(redis) = &self.redis {
            let (channel, user) = (redis.key(CHANNEL), user.to_owned());
            redis
                .call(|mut c| async move {
                    redis::cmd("PUBLISH")
                        .arg(channel)
                        .arg(user)
                        .query_async::<i64>(&mut c)
                        .await
                })
                .await;
        }
    }

    /// Re-checks the credentials of the open sockets (of `only` that user,
    /// or all) and closes those no longer good. A database error closes
    /// nothing (the next round tries again).
    pub async fn recheck(&self, only: Option<&str>) -> usize {
        let (mut users, mut hashes) = (Vec::new(), Vec::new());
        if let Ok(open) = self.open.lock() {
            for o in open.values().filter(|o| only.is_none_or(|u| u == o.user)) {
                match &o.recheck {
                    Recheck::TokenVersion(_) => users.push(o.user.clone()),
                    Recheck::ApiKey(hash) => hashes.push(hash.clone()),
                }
            }
        }
        if users.is_empty() && hashes.is_empty() {
            return 0;
        }
        users.sort_unstable();
        users.dedup();
        hashes.sort_unstable();
        hashes.dedup();
        let versions = if users.is_empty() {
            HashMap::new()
        } else {
            match self.accounts.tokens.token_versions(users).await {
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!(error = %e, "re-checking WebSocket credentials failed");
                    return 0;
                }
            }
        };
        let live = if hashes.is_empty() {
            Default::default()
        } else {
            match self.accounts.api_keys.live_key_hashes(hashes).await {
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!(error = %e, "re-checking WebSocket credentials failed");
                    return 0;
                }
            }
        };
        let mut closed = 0;
        if let Ok(mut open) = self.open.lock() {
            for o in open
                .values_mut()
                .filter(|o| only.is_none_or(|u| u == o.user))
            {
                let good = match &o.recheck {
                    Recheck::TokenVersion(ver) => versions.get(&o.user) == Some(ver),
                    Recheck::ApiKey(hash) => live.contains(hash),
                };
                if !good && let Some(tx) = o.close.take() {
                    let _ = tx.send(());
                    closed += 1;
                }
            }
        }
        if closed > 0 {
            tracing::info!(closed, "WebSockets closed: credentials revoked");
        }
        closed
    }
}

/// The watcher of one replica: re-checks every socket periodically and
/// re-checks a user's sockets when another replica announces a revocation.
/// Ends when the [`OpenSockets`] is dropped.
async fn watch(sockets: Weak<OpenSockets>, redis: Option<Arc<SharedRedis>>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut messages: Option<
        std::pin::Pin<Box<dyn futures_util::Stream<Item = redis::Msg> + Send>>,
    > = None;
    loop {
        if messages.is_none()
            && let Some(redis) = &redis
        {
            messages = redis.subscribe(&redis.key(CHANNEL)).await;
        }
        let user: Option<String> = tokio::select! {
            _ = tick.tick() => None,
            msg = async {
                match messages.as_mut() {
                    Some(m) => m.next().await,
                    None => std::future::pending().await,
                }
            } => match msg {
                Some(msg) => msg.get_payload::<String>().ok(),
                None => {
                    // The subscription broke: subscribe again next round.
                    messages = None;
                    None
                }
            },
        };
        let Some(sockets) = sockets.upgrade() else {
            return;
        };
        if !sockets.is_empty() {
            sockets.recheck(user.as_deref()).await;
        }
    }
}

type UpSocket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Connects to an instance's `/ws/chat` as `identity` (query string passed
/// on without the `token` parameter), then upgrades the client and bridges.
pub async fn bridge(
    proxy: &Proxy,
    req: &HttpRequest,
    payload: actix_web::web::Payload,
    identity: &Identity,
    registration: Registration,
) -> Result<HttpResponse, ApiError> {
    let query = strip_token(req.query_string());
    let request_id = crate::request_id_of(req);
    let started = Instant::now();
    let mut upstream: Option<UpSocket> = None;
    for candidate in proxy.ws_candidates() {
        let left = proxy.connect_budget().saturating_sub(started.elapsed());
        if left.is_zero() {
            break;
        }
        let url = if query.is_empty() {
            format!("{}/ws/chat", candidate.ws_url())
        } else {
            format!("{}/ws/chat?{query}", candidate.ws_url())
        };
        let mut request = url
            .into_client_request()
            .map_err(|_| ApiError::bad_request("invalid query string"))?;
        // The recheck: whatever the query holds, the upstream path is /ws/chat.
        if !request.uri().path().ends_with("/ws/chat") || query.contains('#') {
            return Err(ApiError::new(
                actix_web::http::StatusCode::BAD_REQUEST,
                "invalid_path",
                "invalid request path: the WebSocket route is /ws/chat",
            ));
        }
        for (name, value) in proxy.identity_headers(identity, &request_id) {
            if let Ok(v) = HeaderValue::from_str(&value) {
                request.headers_mut().insert(name, v);
            }
        }
        match tokio::time::timeout(left, tokio_tungstenite::connect_async(request)).await {
            Ok(Ok((socket, _))) => {
                proxy.upstreams().mark_up(candidate);
                upstream = Some(socket);
                break;
            }
            Ok(Err(tungstenite::Error::Http(resp))) => {
                // The instance answered: pass its refusal on (e.g. 422 bad backend).
                let status = actix_web::http::StatusCode::from_u16(resp.status().as_u16())
                    .unwrap_or(actix_web::http::StatusCode::BAD_GATEWAY);
                let body = resp.body().clone().unwrap_or_default();
                return Ok(HttpResponse::build(status)
                    .content_type("application/json")
                    .body(body));
            }
            Ok(Err(e)) => {
                tracing::warn!(upstream = %candidate.url, error = %e, "WebSocket to chat-service failed");
                proxy.metrics.upstream_error("ws_connect");
                proxy.upstreams().mark_down(candidate);
            }
            Err(_) => {
                proxy.metrics.upstream_error("ws_connect");
                proxy.upstreams().mark_down(candidate);
            }
        }
    }
    let upstream = upstream.ok_or_else(|| {
        proxy.metrics.upstream_error("unavailable");
        unavailable()
    })?;
    let (response, session, stream) = actix_ws::handle(req, payload)
        .map_err(|e| ApiError::bad_request(format!("not a WebSocket upgrade: {e}")))?;
    let stream = stream
        .max_frame_size(MAX_FRAME)
        .aggregate_continuations()
        .max_continuation_size(MAX_FRAME);
    let guard = proxy.metrics.ws_guard();
    // The relay's logs carry the upgrade request's id.
    actix_web::rt::spawn(tracing::Instrument::instrument(
        async move {
            let _guard = guard;
            pump(session, stream, upstream, registration).await
        },
        tracing::Span::current(),
    ));
    Ok(response)
}

/// Relays frames both ways until one side closes.
async fn pump(
    mut client: actix_ws::Session,
    mut from_client: actix_ws::AggregatedMessageStream,
    upstream: UpSocket,
    mut registration: Registration,
) {
    let (mut to_up, mut from_up) = upstream.split();
    let mut watching = true;
    let client_close = loop {
        tokio::select! {
            fired = &mut registration.revoked, if watching => {
                if fired.is_err() {
                    // The sender is gone without a verdict: stop watching.
                    watching = false;
                    continue;
                }
                let event = confab_models::ServerEvent::error(
                    "credentials_revoked",
                    "signed out: the credentials of this connection were revoked; sign in again",
                );
                if let Ok(json) = serde_json::to_string(&event) {
                    let _ = client.text(json).await;
                }
                let _ = to_up.send(Up::Close(None)).await;
                break Some(CloseReason { code: CloseCode::Policy, description: Some("credentials revoked".into()) });
            }
            msg = from_client.recv() => {
                let forwarded = match msg {
                    Some(Ok(AggregatedMessage::Text(t))) => to_up.send(Up::Text(t.to_string().into())).await,
                    Some(Ok(AggregatedMessage::Binary(b))) => to_up.send(Up::Binary(b)).await,
                    Some(Ok(AggregatedMessage::Ping(p))) => {
                        if client.pong(&p).await.is_err() {
                            break None;
                        }
                        Ok(())
                    }
                    Some(Ok(AggregatedMessage::Pong(_))) => Ok(()),
                    Some(Ok(AggregatedMessage::Close(reason))) => {
                        let frame = reason.map(|r| CloseFrame {
                            code: UpCode::from(u16::from(r.code)),
                            reason: r.description.unwrap_or_default().into(),
                        });
                        let _ = to_up.send(Up::Close(frame)).await;
                        break None;
                    }
                    Some(Err(e)) => {
                        let too_large = matches!(e, actix_ws::ProtocolError::Overflow);
                        let _ = to_up.send(Up::Close(None)).await;
                        break Some(CloseReason {
                            code: if too_large { CloseCode::Size } else { CloseCode::Protocol },
                            description: Some(e.to_string()),
                        });
                    }
                    None => {
                        let _ = to_up.send(Up::Close(None)).await;
                        break None;
                    }
                };
                if forwarded.is_err() {
                    break Some(CloseReason { code: CloseCode::Error, description: Some("chat-service went away".into()) });
                }
            }
            msg = from_up.next() => {
                let sent = match msg {
                    Some(Ok(Up::Text(t))) => client.text(t.as_str().to_owned()).await,
                    Some(Ok(Up::Binary(b))) => client.binary(b).await,
                    Some(Ok(Up::Ping(_) | Up::Pong(_) | Up::Frame(_))) => Ok(()),
                    Some(Ok(Up::Close(frame))) => {
                        break Some(match frame {
                            Some(f) => CloseReason {
                                code: CloseCode::from(u16::from(f.code)),
                                description: Some(f.reason.as_str().to_owned()),
                            },
                            None => CloseReason { code: CloseCode::Normal, description: None },
                        });
                    }
                    Some(Err(_)) | None => {
                        break Some(CloseReason { code: CloseCode::Error, description: Some("chat-service went away".into()) });
                    }
                };
                if sent.is_err() {
                    // The client is gone: close upstream so the answer is cancelled there.
                    let _ = to_up.send(Up::Close(None)).await;
                    break None;
                }
            }
        }
    };
    if let Some(reason) = client_close {
        let _ = client.close(Some(reason)).await;
    }
    let _ = to_up.close().await;
}

/// The query string without `token=...` (browsers put the JWT there).
fn strip_token(query: &str) -> String {
    query
        .split('&')
        .filter(|p| !p.is_empty() && !p.starts_with("token="))
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::strip_token;

    #[test]
    fn token_is_removed_from_the_query() {
        assert_eq!(strip_token("token=abc&backend=agent"), "backend=agent");
        assert_eq!(strip_token("backend=agent&token=abc"), "backend=agent");
        assert_eq!(strip_token("token=abc"), "");
        assert_eq!(strip_token(""), "");
    }
}
