//! In-memory vector indexes: what the embedded (SQLite) backend searches, and
//! the fallback when PostgreSQL lacks pgvector.
//!
//! A [`MemoryIndex`] holds one collection's L2-normalised vectors (so scores
//! are cosine similarities in -1..=1). Below
//! [`MemoryIndexConfig::exact_threshold`] vectors a search is an exact scan
//! over contiguous rows with an auto-vectorised dot product; from the
//! threshold on, an HNSW graph (the `usearch` crate, storing `i8`-quantised
//! copies by default) proposes `k * oversample` candidates that are
//! re-scored exactly against the `f32` rows. [`Collections`] keeps one index
//! per collection name and searches one collection or merges all of the
//! query's dimension.
//!
//! None of these types lock: share them as `RwLock<Collections>` (they are
//! `Send + Sync`); searches take `&self`, writes `&mut self`.

mod collections;
mod error;
mod hnsw;
mod memory;
mod vector;

pub use collections::Collections;
pub use error::IndexError;
pub use hnsw::GraphQuantization;
pub use memory::{MemoryIndex, MemoryIndexConfig, SearchMode};
pub use vector::dot;
