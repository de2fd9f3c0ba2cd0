//! A small WebSocket client for tests of confab's chat protocol: JSON text
//! frames out and in, pings skipped, every wait bounded by a patience
//! (a test that waits too long fails with a message instead of hanging).
//!
//! ```no_run
//! # async fn demo() {
//! use confab_testkit::ws::WsClient;
//! use serde_json::json;
//!
//! let mut ws = WsClient::connect("ws://127.0.0.1:8080/ws/chat", &[("X-User-Id", "alice")])
//!     .await
//!     .unwrap();
//! let events = ws
//!     .converse(&json!({"type": "init"}), &json!({"type": "chat_message", "content": "hi"}))
//!     .await;
//! assert_eq!(events.last().unwrap()["type"], "done");
//! # }
//! ```

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Response;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error, Message};

/// The underlying socket type.
pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// How long a client waits for a handshake or a frame unless told otherwise.
pub const DEFAULT_PATIENCE: Duration = Duration::from_secs(10);

/// What arrives on a socket.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// A text frame, parsed as JSON.
    Event(Value),
    /// A close frame (its code), or `None` when the socket ended without one.
    Closed(Option<CloseCode>),
}

/// Whether `event` ends an answer (`done` or `error`).
pub fn is_end(event: &Value) -> bool {
    event["type"] == "done" || event["type"] == "error"
}

/// A connected test client.
pub struct WsClient {
    socket: Socket,
    response: Response,
    patience: Duration,
}

impl std::fmt::Debug for WsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsClient")
            .field("patience", &self.patience)
            .finish_non_exhaustive()
    }
}

impl WsClient {
    /// Connects to `url` with extra handshake `headers`, waiting at most
    /// [`DEFAULT_PATIENCE`] (and then for every frame).
    pub async fn connect(url: &str, headers: &[(&str, &str)]) -> Result<Self, Error> {
        Self::connect_within(url, headers, DEFAULT_PATIENCE).await
    }

    /// [`WsClient::connect`] with another patience. A handshake that takes
    /// longer panics; a refused one is an `Err`.
    pub async fn connect_within(
        url: &str,
        headers: &[(&str, &str)],
        patience: Duration,
    ) -> Result<Self, Error> {
        let mut request = url.into_client_request()?;
        for (name, value) in headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .unwrap_or_else(|e| panic!("bad header name {name}: {e}"));
            let value = HeaderValue::from_str(value)
                .unwrap_or_else(|e| panic!("bad value of header {name}: {e}"));
            request.headers_mut().insert(name, value);
        }
        let (socket, response) =
            tokio::time::timeout(patience, tokio_tungstenite::connect_async(request))
                .await
                .unwrap_or_else(|_| {
                    panic!("WebSocket handshake with {url} took over {patience:?}")
                })?;
        Ok(Self {
            socket,
            response,
            patience,
        })
    }

    /// The server's handshake response (status, headers).
    pub fn response(&self) -> &Response {
        &self.response
    }

    /// The socket itself, for frames this client does not model (binary,
    /// raw text, close codes).
    pub fn socket(&mut self) -> &mut Socket {
        &mut self.socket
    }

    /// Sends `value` as a JSON text frame; `Err` when the socket is gone.
    pub async fn try_send(&mut self, value: &Value) -> Result<(), Error> {
        self.socket
            .send(Message::Text(value.to_string().into()))
            .await
    }

    /// Sends `value` as a JSON text frame (panics when the socket is gone).
    pub async fn send(&mut self, value: &Value) {
        self.try_send(value)
            .await
            .unwrap_or_else(|e| panic!("sending {value}: {e}"));
    }

    /// The next text frame or the end of the socket, skipping pings, pongs
    /// and raw frames. Panics after the patience, or on a binary frame or
    /// text that is not JSON.
    pub async fn next_frame(&mut self) -> Frame {
        loop {
            let msg = tokio::time::timeout(self.patience, self.socket.next())
                .await
                .unwrap_or_else(|_| panic!("no WebSocket frame within {:?}", self.patience));
            match msg {
                Some(Ok(Message::Text(t))) => {
                    let event = serde_json::from_str(&t)
                        .unwrap_or_else(|e| panic!("a text frame that is not JSON ({e}): {t}"));
                    return Frame::Event(event);
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                Some(Ok(Message::Binary(b))) => panic!("unexpected binary frame {b:?}"),
                Some(Ok(Message::Close(frame))) => return Frame::Closed(frame.map(|f| f.code)),
                Some(Err(_)) | None => return Frame::Closed(None),
            }
        }
    }

    /// The next event, or `None` once the socket is closed or broken.
    pub async fn next_event(&mut self) -> Option<Value> {
        match self.next_frame().await {
            Frame::Event(e) => Some(e),
            Frame::Closed(_) => None,
        }
    }

    /// The next event; panics when the socket closes instead.
    pub async fn event(&mut self) -> Value {
        match self.next_frame().await {
            Frame::Event(e) => e,
            Frame::Closed(code) => panic!("the socket closed ({code:?}) while an event was due"),
        }
    }

    /// Events up to and including `done` or `error`.
    pub async fn until_end(&mut self) -> Vec<Value> {
        self.read_answer(None).await
    }

    /// Sends `init`, then `message` once `ready` arrives; returns every
    /// event (`ready` first) up to and including `done` or `error`.
    pub async fn converse(&mut self, init: &Value, message: &Value) -> Vec<Value> {
        self.send(init).await;
        self.read_answer(Some(message)).await
    }

    /// Events up to the end of an answer, sending `on_ready` after `ready`.
    async fn read_answer(&mut self, mut on_ready: Option<&Value>) -> Vec<Value> {
        let mut events = Vec::new();
        loop {
            let e = self.event().await;
            if e["type"] == "ready"
                && let Some(message) = on_ready.take()
            {
                self.send(message).await;
            }
            let end = is_end(&e);
            events.push(e);
            if end {
                return events;
            }
        }
    }

    /// Sends a close frame (errors ignored: the server may be gone).
    pub async fn close(mut self) {
        let _ = self.socket.close(None).await;
    }
}
