//! The rag crate's error type.

use std::path::PathBuf;

use confab_error::{DomainError, ErrorKind};
use confab_llm::LlmError;
use confab_store::StoreError;

/// Everything ingestion and retrieval can fail with.
#[derive(Debug, thiserror::Error)]
pub enum RagError {
    /// A collection already holds vectors of another length.
    #[error(
        "collection `{collection}` holds {expected}-dimensional embeddings; the embedding model gives {got}. \
         Use another collection or re-create this one with the new model"
    )]
    DimensionMismatch {
        /// The collection.
        collection: String,
        /// Its recorded dimension.
        expected: usize,
        /// The embedding model's dimension.
        got: usize,
    },
    /// A collection name is empty, too long or has control characters.
    #[error("invalid collection name `{0}`: use 1-100 printable characters")]
    InvalidCollection(String),
    /// Some other argument is unusable.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// Reading a file or folder failed.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The embedding model failed.
    #[error("embedding failed: {0}")]
    Embedding(#[from] LlmError),
    /// The vector index refused a vector.
    #[error("vector index: {0}")]
    Index(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<diesel::result::Error> for RagError {
    fn from(e: diesel::result::Error) -> Self {
        RagError::Store(StoreError::Query(e))
    }
}

impl DomainError for RagError {
    fn kind(&self) -> ErrorKind {
        match self {
            RagError::DimensionMismatch { .. } => ErrorKind::Conflict,
            RagError::InvalidCollection(_) | RagError::InvalidInput(_) => ErrorKind::Invalid,
            RagError::Io { .. } | RagError::Index(_) => ErrorKind::Internal,
            // Retrieval cannot run without its embedding model, whatever
            // the provider said.
            RagError::Embedding(_) => ErrorKind::Unavailable,
            RagError::Store(e) => e.kind(),
        }
    }

    fn code(&self) -> &'static str {
        match self {
            RagError::DimensionMismatch { .. } => "dimension_mismatch",
            RagError::Embedding(e) => e.code(),
            RagError::Store(e) => e.code(),
            _ => self.kind().code(),
        }
    }

    fn public_message(&self) -> String {
        match self {
            RagError::Store(e) => e.public_message(),
            _ => self.to_string(),
        }
    }
}
