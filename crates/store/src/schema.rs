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
        /// The caller's own key for the session (seed 004 string session ids).
        external_key -> Nullable<Text>,
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

diesel::table! {
    /// Retrieval collections: one embedding dimension each.
    rag_collections (name) {
        /// Collection name (`docs`, `course:<id>`, ...).
        name -> Text,
        /// Vector length of every chunk in it.
        dimensions -> Integer,
        /// Embedding model that produced them.
        embedding_model -> Text,
        /// Creation time (UTC).
        created_at -> Timestamp,
        /// The knowledge base this collection belongs to (`kb:<id>`), if any.
        knowledge_base_id -> Nullable<Text>,
    }
}

diesel::table! {
    /// Ingested documents.
    rag_documents (id) {
        /// UUID text.
        id -> Text,
        /// Owning collection.
        collection -> Text,
        /// Where it came from (file path or lesson reference), unique per collection.
        source -> Text,
        /// Title.
        title -> Text,
        /// Hash of the ingested text: unchanged documents are skipped.
        content_hash -> Text,
        /// Number of chunks.
        chunk_count -> BigInt,
        /// JSON object text.
        metadata -> Text,
        /// First ingestion (UTC).
        created_at -> Timestamp,
        /// Last change (UTC).
        updated_at -> Timestamp,
        /// The knowledge-base document this is the index of, if any.
        knowledge_document_id -> Nullable<Text>,
    }
}

diesel::table! {
    /// Embedded chunks of documents.
    rag_chunks (seq) {
        /// Row id (rowid alias / identity).
        seq -> BigInt,
        /// Owning document.
        document_id -> Text,
        /// Collection (denormalised for filtering).
        collection -> Text,
        /// Position in the document.
        chunk_index -> Integer,
        /// Heading path.
        title -> Text,
        /// Chunk text.
        content -> Text,
        /// Vector length.
        dimensions -> Integer,
        /// Little-endian f32 vector.
        embedding -> Binary,
        /// 1-based page (PDF documents).
        page -> Nullable<Integer>,
    }
}

diesel::table! {
    /// Change counter of the retrieval tables.
    rag_state (id) {
        /// Always 1.
        id -> Integer,
        /// Bumped by every write.
        version -> BigInt,
    }
}

diesel::joinable!(rag_chunks -> rag_documents (document_id));
diesel::allow_tables_to_appear_in_same_query!(rag_documents, rag_chunks);

diesel::table! {
    /// Long-term memory items of users.
    user_memory (id) {
        /// UUID text.
        id -> Text,
        /// Owner.
        user_id -> Text,
        /// What to remember.
        content -> Text,
        /// When stored (UTC).
        created_at -> Timestamp,
        /// JSON object text.
        metadata -> Text,
    }
}

diesel::table! {
    /// Feedback on assistant messages (one per user and message).
    message_feedback (id) {
        /// UUID text.
        id -> Text,
        /// The message it is about (cascade-deleted with it).
        message_id -> Text,
        /// The session of that message.
        session_id -> Text,
        /// Who gave it.
        user_id -> Text,
        /// 1..=5.
        score -> Integer,
        /// Free text.
        comment -> Nullable<Text>,
        /// When given or last changed (UTC).
        created_at -> Timestamp,
    }
}

diesel::joinable!(message_feedback -> chat_messages (message_id));
diesel::allow_tables_to_appear_in_same_query!(chat_sessions, message_feedback);
diesel::allow_tables_to_appear_in_same_query!(chat_messages, message_feedback);

diesel::table! {
    /// User accounts.
    users (id) {
        /// UUID text.
        id -> Text,
        /// Email address, lowercased (unique).
        email -> Text,
        /// Name shown to people.
        display_name -> Text,
        /// argon2id PHC string.
        password_hash -> Text,
        /// user | admin.
        role -> Text,
        /// JSON object text.
        settings -> Text,
        /// Written into access tokens; bumping it invalidates older ones.
        token_version -> BigInt,
        /// Creation time (UTC).
        created_at -> Timestamp,
        /// Last change (UTC).
        updated_at -> Timestamp,
    }
}

diesel::table! {
    /// Refresh tokens (hashed), grouped in rotation families.
    refresh_tokens (id) {
        /// UUID text.
        id -> Text,
        /// Owner (cascade-deleted with the user).
        user_id -> Text,
        /// SHA-256 of the token, hex.
        token_hash -> Text,
        /// Rotation family: every successor of one login.
        family_id -> Text,
        /// Expiry (UTC).
        expires_at -> Timestamp,
        /// When revoked (UTC): used, logged out, or the family was revoked.
        revoked_at -> Nullable<Timestamp>,
        /// The token that replaced it on refresh.
        replaced_by -> Nullable<Text>,
        /// Creation time (UTC).
        created_at -> Timestamp,
    }
}

diesel::table! {
    /// API keys (hashed) of users.
    api_keys (id) {
        /// UUID text.
        id -> Text,
        /// Owner (cascade-deleted with the user).
        user_id -> Text,
        /// Name given by the owner.
        name -> Text,
        /// First characters of the key, shown to recognise it.
        prefix -> Text,
        /// SHA-256 of the key, hex.
        key_hash -> Text,
        /// Creation time (UTC).
        created_at -> Timestamp,
        /// Last use (UTC).
        last_used_at -> Nullable<Timestamp>,
        /// When revoked (UTC).
        revoked_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    /// Course tracks.
    tracks (id) {
        /// Slug.
        id -> Text,
        /// Title.
        title -> Text,
        /// Description.
        description -> Text,
        /// Order.
        position -> Integer,
        /// First import (UTC).
        created_at -> Timestamp,
        /// Last change (UTC).
        updated_at -> Timestamp,
    }
}

diesel::table! {
    /// Modules of tracks.
    modules (id) {
        /// Slug.
        id -> Text,
        /// Owning track.
        track_id -> Text,
        /// Title.
        title -> Text,
        /// Order in the track.
        position -> Integer,
    }
}

diesel::table! {
    /// Lessons of modules.
    lessons (id) {
        /// Slug.
        id -> Text,
        /// Owning module.
        module_id -> Text,
        /// Title.
        title -> Text,
        /// Markdown content.
        content -> Text,
        /// Order in the module.
        position -> Integer,
    }
}

diesel::table! {
    /// Completed lessons per user.
    lesson_progress (user_id, lesson_id) {
        /// The user.
        user_id -> Text,
        /// The lesson.
        lesson_id -> Text,
        /// When first completed (UTC).
        completed_at -> Timestamp,
    }
}

diesel::joinable!(refresh_tokens -> users (user_id));
diesel::joinable!(api_keys -> users (user_id));
diesel::joinable!(modules -> tracks (track_id));
diesel::joinable!(lessons -> modules (module_id));
diesel::joinable!(lesson_progress -> users (user_id));
diesel::joinable!(lesson_progress -> lessons (lesson_id));
diesel::allow_tables_to_appear_in_same_query!(
    users,
    refresh_tokens,
    api_keys,
    tracks,
    modules,
    lessons,
    lesson_progress,
);

diesel::table! {
    /// Knowledge bases: users' own document collections (`rag_collections` `kb:<id>`).
    knowledge_bases (id) {
        /// UUID text.
        id -> Text,
        /// Owner (an admin for shared bases).
        owner_id -> Text,
        /// Display name.
        name -> Text,
        /// Readable by every user.
        shared -> Bool,
        /// Embedding model of the stored vectors.
        embedding_model -> Text,
        /// Their length.
        dimensions -> Integer,
        /// Creation time (UTC).
        created_at -> Timestamp,
        /// Last change (UTC).
        updated_at -> Timestamp,
    }
}

diesel::table! {
    /// Documents uploaded to knowledge bases.
    knowledge_documents (id) {
        /// UUID text.
        id -> Text,
        /// The base.
        kb_id -> Text,
        /// Sanitised file name, unique per base.
        filename -> Text,
        /// Detected type (`pdf`, `docx`, `markdown`, `html`, `text`).
        content_type -> Text,
        /// Uploaded bytes.
        size_bytes -> BigInt,
        /// Hash of the uploaded bytes.
        content_hash -> Text,
        /// `queued`, `processing`, `ready` or `failed`.
        status -> Text,
        /// Why it failed.
        error -> Nullable<Text>,
        /// Chunks in the index.
        chunk_count -> BigInt,
        /// Pages (PDF).
        page_count -> Nullable<Integer>,
        /// Upload time (UTC).
        created_at -> Timestamp,
        /// Last change (UTC).
        updated_at -> Timestamp,
    }
}

diesel::table! {
    /// Durable ingestion and re-embedding jobs.
    knowledge_jobs (id) {
        /// UUID text.
        id -> Text,
        /// The base.
        kb_id -> Text,
        /// The document (ingest jobs).
        document_id -> Nullable<Text>,
        /// `ingest` or `reembed`.
        kind -> Text,
        /// `queued` or `running`.
        status -> Text,
        /// Times claimed.
        attempts -> Integer,
        /// A running job's lease end (UTC).
        lease_until -> Nullable<Timestamp>,
        /// Uploaded bytes of an ingest job.
        payload -> Nullable<Binary>,
        /// Creation time (UTC).
        created_at -> Timestamp,
        /// Last change (UTC).
        updated_at -> Timestamp,
    }
}

diesel::joinable!(knowledge_documents -> knowledge_bases (kb_id));
diesel::joinable!(knowledge_jobs -> knowledge_bases (kb_id));
diesel::allow_tables_to_appear_in_same_query!(knowledge_bases, knowledge_documents, knowledge_jobs);
