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
    /// A collection holds vectors of another embedding model.
    #[error(
        "collection `{collection}` was embedded with `{expected}`; the configured embedding model is `{got}`. \
         Vectors of two models cannot be compared: ingest into another collection, or configure `{expected}` \
         (CONFAB_EMBEDDING_PROVIDER / CONFAB_EMBEDDING_MODEL) as chat-service does"
    )]
    ModelMismatch {
        /// The collection.
        collection: String,
        /// Its recorded model.
        expected: String,
        /// The configured model.
        got: String,
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
    /// No such knowledge base or document (for this caller: another user's
    /// private base reads as missing).
    #[error("{0}")]
    NotFound(String),
    /// The caller may read but not change this.
    #[error("{0}")]
    Forbidden(String),
    /// An uploaded file is refused (bad name, type, size, bytes).
    #[error(transparent)]
    Upload(#[from] crate::knowledge::UploadError),
    /// The per-user quota would be exceeded.
    #[error("{0}")]
    Quota(String),
}

impl From<diesel::result::Error> for RagError {
    fn from(e: diesel::result::Error) -> Self {
        RagError::Store(StoreError::Query(e))
    }
}

impl DomainError for RagError {
    fn kind(&self) -> ErrorKind {
        match self {
            RagError::DimensionMismatch { .. } | RagError::ModelMismatch { .. } => {
                ErrorKind::Conflict
            }
            RagError::InvalidCollection(_) | RagError::InvalidInput(_) => ErrorKind::Invalid,
            RagError::NotFound(_) => ErrorKind::NotFound,
            RagError::Forbidden(_) => ErrorKind::Forbidden,
            // 409 `quota_exceeded`: the user's documents or bytes are used up.
            RagError::Quota(_) => ErrorKind::Conflict,
            RagError::Upload(crate::knowledge::UploadError::TooLarge { .. }) => ErrorKind::TooLarge,
            RagError::Upload(crate::knowledge::UploadError::Unsupported(_)) => {
                ErrorKind::UnsupportedMedia
            }
            RagError::Upload(_) => ErrorKind::Invalid,
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
            RagError::ModelMismatch { .. } => "model_mismatch",
            RagError::Quota(_) => "quota_exceeded",
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
