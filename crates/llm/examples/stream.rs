//! Streams a completion from the provider the environment chooses, the way
//! the confab binaries choose it (`LlmConfig::from_vars`).
//!
//! ```text
//! cargo run -p confab-llm --example stream -- "Why is the sky blue?"
//! CONFAB_LLM_PROVIDER=builtin cargo run -p confab-llm --example stream
//! AGENT_RUNTIME__LLM_PROXY_URL=http://127.0.0.1:8080/v1 AGENT_RUNTIME__LLM_MODEL=my-model \
//!     cargo run -p confab-llm --example stream
//! ```
//!
//! Variables (see docs/CONFIG.md): `CONFAB_LLM_PROVIDER` (`builtin`,
//! `openai`, `ollama`), `AGENT_RUNTIME__LLM_PROXY_URL` (an OpenAI-compatible
//! server), `OPENAI_API_KEY`, `OLLAMA_HOST`, `AGENT_RUNTIME__LLM_MODEL`.
//! With none set it answers offline with the built-in model.

use std::io::Write;

use confab_llm::{ChatChunk, ChatMessage, ChatRequest, LlmConfig};
use futures_util::StreamExt;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let prompt = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "Say hello to the confab examples.".into());
    let config = LlmConfig::from_vars(|name| std::env::var(name).ok())?;
    let model = config.chat_model()?;
    println!(
        "provider: {} (model {})",
        model.provider(),
        model.default_model()
    );

    let request = ChatRequest::new(vec![
        ChatMessage::system("You are a concise assistant."),
        ChatMessage::user(prompt),
    ]);
    let mut stream = model.stream(request);
    let (mut chunks, mut stdout) = (0, std::io::stdout());
    while let Some(chunk) = stream.next().await {
        match chunk? {
            ChatChunk::Text(text) => {
                chunks += 1;
                write!(stdout, "{text}")?;
                stdout.flush()?;
            }
            ChatChunk::Usage(usage) => eprintln!("\n(usage: {usage:?})"),
            ChatChunk::Finish(reason) => {
                println!("\nfinished: {reason:?} after {chunks} text chunks")
            }
            ChatChunk::ToolCall(call) => println!("\ntool call: {call:?}"),
        }
    }
    Ok(())
}
