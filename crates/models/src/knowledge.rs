//! Knowledge bases: a user's own documents for retrieval (`/api/knowledge`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A knowledge base as listed and returned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KnowledgeBase {
    /// Base id.
    pub id: Uuid,
    /// Display name.
    pub name: String,
    /// Owner (an administrator for shared bases).
    pub owner_id: String,
    /// Published by an administrator: readable by every user.
    pub shared: bool,
    /// Whether the caller may change it (owner, or an admin for shared bases).
    pub writable: bool,
    /// Embedding model of the stored vectors.
    pub embedding_model: String,
    /// Their dimensions.
    pub dimensions: i32,
    /// `true` while the stored vectors are of another model than the
    /// configured one (keyword search only until the re-embed job ends).
    pub reembedding: bool,
    /// Documents in it.
    pub document_count: i64,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// Body of `POST /api/knowledge`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewKnowledgeBase {
    /// Display name (1..=200 characters).
    pub name: String,
    /// Publish to every user (administrators only).
    #[serde(default)]
    pub shared: bool,
}

/// Body of `PATCH /api/knowledge/{id}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct KnowledgeBaseUpdate {
    /// New name.
    #[serde(default)]
    pub name: Option<String>,
}

/// Ingestion state of a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DocumentStatus {
    /// Waiting for a worker.
    Queued,
    /// Being extracted, chunked and embedded.
    Processing,
    /// Searchable.
    Ready,
    /// Not ingested: see `error`.
    Failed,
}

impl DocumentStatus {
    /// The stored / wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Processing => "processing",
            Self::Ready => "ready",
            Self::Failed => "failed",
        }
    }

    /// Parses a stored name (unknown names read as `failed`).
    pub fn parse(s: &str) -> Self {
        match s {
            "queued" => Self::Queued,
            "processing" => Self::Processing,
            "ready" => Self::Ready,
            _ => Self::Failed,
        }
    }

    /// `ready` or `failed`: no more changes without a new upload.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Ready | Self::Failed)
    }
}

/// A document of a knowledge base.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KnowledgeDocument {
    /// Document id.
    pub id: Uuid,
    /// The base.
    pub knowledge_base_id: Uuid,
    /// File name as uploaded (sanitised).
    pub filename: String,
    /// Detected type: `pdf`, `docx`, `markdown`, `html` or `text`.
    pub content_type: String,
    /// Size of the upload in bytes.
    pub size_bytes: i64,
    /// Ingestion state.
    pub status: DocumentStatus,
    /// Why it failed (status `failed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Chunks in the index.
    pub chunk_count: i64,
    /// Pages (PDF).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_count: Option<i32>,
    /// Upload time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// One indexed chunk of a document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KnowledgeChunk {
    /// Position in the document.
    pub index: i32,
    /// Heading path (Markdown, HTML, DOCX).
    pub heading: String,
    /// 1-based page (PDF).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<i32>,
    /// The text.
    pub content: String,
}

/// A document with a preview of its text and its chunks
/// (`GET /api/knowledge/{id}/documents/{doc}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KnowledgeDocumentDetail {
    /// The document.
    #[serde(flatten)]
    pub document: KnowledgeDocument,
    /// The first characters of its text.
    pub preview: String,
    /// Its chunks, in order.
    pub chunks: Vec<KnowledgeChunk>,
}

/// What one uploaded file became (`POST /api/knowledge/{id}/documents`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = KnowledgeUpload))]
pub struct UploadResult {
    /// The document (new, replaced, or unchanged).
    pub document: KnowledgeDocument,
    /// `queued` (new or changed content) or `unchanged` (identical re-upload: nothing to do).
    pub outcome: String,
}

/// A progress event of `GET /api/knowledge/{id}/events`: a document's state changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KnowledgeEvent {
    /// The document now.
    pub document: KnowledgeDocument,
}
