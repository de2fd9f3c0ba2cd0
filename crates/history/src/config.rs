//! Limits and defaults of the services, passed in by the caller.

/// Configuration of the services ([`crate::SessionService`], [`crate::HistoryService`],
/// [`crate::MemoryService`], [`crate::FeedbackService`]).
#[derive(Debug, Clone)]
pub struct HistoryConfig {
    /// Largest message content, in bytes (default 64 KiB).
    pub max_content_bytes: usize,
    /// Longest title, in characters (default 200).
    pub max_title_chars: usize,
    /// Largest metadata object, in bytes of JSON (default 16 KiB).
    pub max_metadata_bytes: usize,
    /// Model recorded on sessions created without one.
    pub default_model: String,
    /// Title of sessions created without one.
    pub default_title: String,
    /// Page size when the caller gives none.
    pub default_page_size: u32,
    /// Largest page size a caller may ask for.
    pub max_page_size: u32,
    /// Most messages one import may carry.
    pub max_import_messages: usize,
    /// Longest memory item, in characters (default 4000).
    pub max_memory_chars: usize,
    /// Longest feedback comment, in characters (default 2000).
    pub max_comment_chars: usize,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        Self {
            max_content_bytes: 64 * 1024,
            max_title_chars: 200,
            max_metadata_bytes: 16 * 1024,
            default_model: "builtin".to_owned(),
            default_title: "New chat".to_owned(),
            default_page_size: 50,
            max_page_size: 200,
            max_import_messages: 100_000,
            max_memory_chars: 4000,
            max_comment_chars: 2000,
        }
    }
}

impl HistoryConfig {
    /// The page size to use for a requested `limit`.
    pub fn page_size(&self, limit: Option<u32>) -> u32 {
        limit
            .unwrap_or(self.default_page_size)
            .clamp(1, self.max_page_size.max(1))
    }
}
