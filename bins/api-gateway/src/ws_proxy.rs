//! `/ws/chat` through the gateway: the client's socket is bridged to a
//! chat-service socket frame by frame (nothing is buffered), closes travel
//! both ways, and a client that goes away closes the upstream socket (which
//! cancels the answer there).

use std::time::Instant;

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

type UpSocket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Connects to an instance's `/ws/chat` as `identity` (query string passed
/// on without the `token` parameter), then upgrades the client and bridges.
pub async fn bridge(
    proxy: &Proxy,
    req: &HttpRequest,
    payload: actix_web::web::Payload,
    identity: &Identity,
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
            pump(session, stream, upstream).await
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
) {
    let (mut to_up, mut from_up) = upstream.split();
    let client_close = loop {
        tokio::select! {
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
