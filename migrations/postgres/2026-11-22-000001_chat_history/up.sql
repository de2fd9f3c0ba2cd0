-- Chat sessions and messages (seed 001 plus user_id, agent, course_id, status).
-- Ids are UUID text and metadata JSON text, as on SQLite, so one diesel schema serves both.
CREATE TABLE chat_sessions (
    id            TEXT PRIMARY KEY NOT NULL,
    title         TEXT NOT NULL,
    model_id      TEXT NOT NULL,
    user_id       TEXT NOT NULL,
    agent         TEXT NOT NULL DEFAULT 'dashboard',
    course_id     TEXT,
    status        TEXT NOT NULL DEFAULT 'active'
                  CHECK (status IN ('active', 'archived', 'deleted')),
    created_at    TIMESTAMP NOT NULL,
    updated_at    TIMESTAMP NOT NULL,
    message_count BIGINT NOT NULL DEFAULT 0,
    metadata      TEXT NOT NULL DEFAULT '{}'
);

CREATE INDEX idx_chat_sessions_user_id ON chat_sessions (user_id, updated_at DESC, id DESC);
CREATE INDEX idx_chat_sessions_updated_at ON chat_sessions (updated_at);

CREATE TABLE chat_messages (
    -- insertion order used by cursor pagination
    seq           BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    id            TEXT PRIMARY KEY NOT NULL,
    session_id    TEXT NOT NULL REFERENCES chat_sessions (id) ON DELETE CASCADE,
    role          TEXT NOT NULL CHECK (role IN ('user', 'assistant', 'system', 'tool')),
    content       TEXT NOT NULL,
    timestamp     TIMESTAMP NOT NULL,
    model_id      TEXT,
    tokens_used   BIGINT,
    response_time DOUBLE PRECISION,
    metadata      TEXT NOT NULL DEFAULT '{}',
    -- full-text vector; 'simple' = no stemming, like SQLite's unicode61
    content_tsv   TSVECTOR GENERATED ALWAYS AS (to_tsvector('simple', content)) STORED
);

CREATE INDEX idx_chat_messages_session_id ON chat_messages (session_id, seq);
CREATE INDEX idx_chat_messages_timestamp ON chat_messages (session_id, timestamp);
CREATE INDEX idx_chat_messages_fts ON chat_messages USING GIN (content_tsv);
