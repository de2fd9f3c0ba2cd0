//! Diesel table definitions shared by both backends.
//!
//! Columns that exist only on one backend (the PostgreSQL `content_tsv`
//! full-text vector, the SQLite FTS5 shadow table) are left out: they are
//! reached with backend-specific SQL in the services that need them.

diesel::table! {
    /// Chat sessions.
    chat_sessions (id) {
        /// UUID text.
        id -> Text,
        /// Title.
        title -> Text,
        /// Default model.
        model_id -> Text,
        /// Owner.
        user_id -> Text,
        /// Agent name.
        agent -> Text,
        /// Course, for course agents.
        course_id -> Nullable<Text>,
        /// active | archived | deleted.
        status -> Text,
        /// Creation time (UTC).
        created_at -> Timestamp,
        /// Last change (UTC); the deletion time for deleted sessions.
        updated_at -> Timestamp,
        /// Number of messages.
        message_count -> BigInt,
        /// JSON object text.
        metadata -> Text,
    }
}

diesel::table! {
    /// Chat messages.
    chat_messages (id) {
        /// Insertion order (rowid alias on SQLite, identity on PostgreSQL).
        seq -> BigInt,
        /// UUID text.
        id -> Text,
        /// Owning session.
        session_id -> Text,
        /// user | assistant | system | tool.
        role -> Text,
        /// Text content.
        content -> Text,
        /// When written (UTC).
        timestamp -> Timestamp,
        /// Model that produced it.
        model_id -> Nullable<Text>,
        /// Tokens spent.
        tokens_used -> Nullable<BigInt>,
        /// Seconds the model took.
        response_time -> Nullable<Double>,
        /// JSON object text.
        metadata -> Text,
    }
}

diesel::joinable!(chat_messages -> chat_sessions (session_id));
diesel::allow_tables_to_appear_in_same_query!(chat_sessions, chat_messages);
