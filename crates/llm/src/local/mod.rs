//! In-process models on the CPU (feature `local`): a quantized GGUF
//! llama-family chat model ([`LocalChat`]) and a BERT-family sentence
//! embedder ([`LocalEmbedder`]), both with candle. Feature `llama` adds
//! `llama::LocalChat`, the chat model on llama.cpp (work in progress).
//!
//! Inference never runs on the async runtime: each model owns dedicated
//! worker threads fed through a bounded queue, and hands results back over
//! channels. A full queue is a [`LlmError::RateLimited`](crate::LlmError)
//! (`busy`) error, not a wait.

mod chat;
mod embed;
#[cfg(feature = "llama")]
pub mod llama;
mod provider;

pub use chat::{LocalChat, LocalChatConfig};
pub use embed::{LocalEmbedConfig, LocalEmbedder};
pub use provider::LocalProvider;
