//! Errors of the in-memory vector index.

/// What can go wrong when inserting into or searching an in-memory index.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IndexError {
    /// A vector or query whose length differs from the index's dimension.
    #[error("vector has {actual} dimensions; the index has {expected}")]
    DimensionMismatch {
        /// The index's dimension.
        expected: usize,
        /// The given vector's length.
        actual: usize,
    },
    /// A vector or query whose length differs from its collection's dimension.
    #[error("vector has {actual} dimensions; collection `{collection}` has {expected}")]
    CollectionDimensionMismatch {
        /// The collection.
        collection: String,
        /// The collection's dimension.
        expected: usize,
        /// The given vector's length.
        actual: usize,
    },
    /// A NaN or infinite component.
    #[error("vector has a non-finite value (NaN or infinity) at position {position}")]
    NonFinite {
        /// Index of the first offending component.
        position: usize,
    },
    /// An all-zero vector, which has no direction and so no cosine similarity.
    #[error("vector is all zeros and cannot be normalised")]
    ZeroVector,
    /// `i64::MIN`, which the HNSW graph reserves for freed slots.
    #[error("id {0} is reserved and cannot be indexed")]
    ReservedId(i64),
    /// A dimension of zero or an out-of-range HNSW parameter.
    #[error("invalid index configuration: {0}")]
    InvalidConfig(String),
    /// The HNSW library reported a failure (e.g. out of memory).
    #[error("HNSW graph error: {0}")]
    Graph(String),
}
