//! Server-Sent Events responses: the response, the framed body with
//! keep-alives, and the relay form of an answer's events.

use std::time::Duration;

use actix_web::HttpResponse;
use actix_web::http::header;
use bytes::Bytes;
use confab_agents::AnswerEvent;
use confab_error::DomainError;
use confab_models::RelayEvent;
use futures_util::{Stream, StreamExt};

use super::ActiveGuard;

/// Interval of SSE keep-alive comments while nothing else is sent.
const SSE_KEEPALIVE: Duration = Duration::from_secs(15);

/// An SSE response around a body stream.
pub fn sse_response(
    body: impl Stream<Item = Result<Bytes, actix_web::Error>> + 'static,
) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/event-stream"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(body)
}

/// `data:` frames for each JSON text, keep-alive comments while idle, an
/// optional last frame; holds `guard` until the stream ends or is dropped.
pub fn sse_body(
    events: impl Stream<Item = String> + Send + 'static,
    guard: ActiveGuard,
    last: Option<&'static str>,
) -> impl Stream<Item = Result<Bytes, actix_web::Error>> + 'static {
    async_stream::stream! {
        let _guard = guard;
        let mut events = Box::pin(events);
        loop {
            match tokio::time::timeout(SSE_KEEPALIVE, events.next()).await {
                Ok(Some(json)) => yield Ok(Bytes::from(format!("data: {json}\n\n"))),
                Ok(None) => break,
                Err(_) => yield Ok(Bytes::from_static(b": keep-alive\n\n")),
            }
        }
        if let Some(last) = last {
            yield Ok(Bytes::from(format!("data: {last}\n\n")));
        }
    }
}

/// [`sse_body`] of events sent as JSON, with no last frame.
pub(super) fn json_sse_body<T: serde::Serialize + 'static>(
    events: impl Stream<Item = T> + Send + 'static,
    guard: ActiveGuard,
) -> impl Stream<Item = Result<Bytes, actix_web::Error>> + 'static {
    sse_body(
        events.map(|e| serde_json::to_string(&e).unwrap_or_default()),
        guard,
        None,
    )
}

/// An answer's event for the gateway: the protocol form, and on a failure
/// its kind and the provider's wait.
pub(super) fn relay_event(event: AnswerEvent) -> RelayEvent {
    match event {
        AnswerEvent::Event(event) => RelayEvent::event(event),
        AnswerEvent::Failed(e) => {
            let kind = e.kind();
            RelayEvent::error(AnswerEvent::Failed(e).into(), kind)
        }
    }
}
