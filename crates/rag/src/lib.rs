//! Retrieval for confab: turns documents into cited answers' raw material.
//!
//! Ingestion reads files and folders (Markdown, text, HTML) or text given
//! directly, splits them into heading-aware chunks ([`chunk`]), embeds the
//! chunks through any `confab_llm::EmbeddingModel`, and stores them in the
//! same database as everything else. Retrieval fuses vector search
//! ([`index`]) and keyword search by reciprocal rank fusion and returns
//! `SourceInfo`s with scores in 0..=1.

pub mod chunk;
mod db;
mod error;
pub mod extract;
pub mod index;
pub mod knowledge;
mod service;

pub use error::RagError;
pub use knowledge::{IngestStages, KnowledgeConfig, KnowledgeService};
pub use service::{
    IngestOutcome, IngestSummary, Progress, Rag, RagConfig, SearchMode, SearchOptions,
};
