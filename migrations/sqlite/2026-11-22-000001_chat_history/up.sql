-- Chat sessions and messages (seed 001 plus user_id, agent, course_id, status).
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

-- Listing a user's sessions newest first is an index range scan.
CREATE INDEX idx_chat_sessions_user_id ON chat_sessions (user_id, updated_at DESC, id DESC);
-- Cleanup scans by age.
CREATE INDEX idx_chat_sessions_updated_at ON chat_sessions (updated_at);

CREATE TABLE chat_messages (
    -- rowid alias: stable across VACUUM, so the FTS index can key on it;
    -- also the insertion order used by cursor pagination.
    seq           INTEGER PRIMARY KEY,
    id            TEXT NOT NULL UNIQUE,
    session_id    TEXT NOT NULL REFERENCES chat_sessions (id) ON DELETE CASCADE,
    role          TEXT NOT NULL CHECK (role IN ('user', 'assistant', 'system', 'tool')),
    content       TEXT NOT NULL,
    timestamp     TIMESTAMP NOT NULL,
    model_id      TEXT,
    tokens_used   BIGINT,
    response_time DOUBLE,
    metadata      TEXT NOT NULL DEFAULT '{}'
);

CREATE INDEX idx_chat_messages_session_id ON chat_messages (session_id, seq);
CREATE INDEX idx_chat_messages_timestamp ON chat_messages (session_id, timestamp);

-- Full-text index over message content, kept in sync by triggers.
CREATE VIRTUAL TABLE chat_messages_fts USING fts5 (
    content,
    content = 'chat_messages',
    content_rowid = 'seq',
    tokenize = 'unicode61 remove_diacritics 2'
);

CREATE TRIGGER chat_messages_fts_ai AFTER INSERT ON chat_messages BEGIN
    INSERT INTO chat_messages_fts (rowid, content) VALUES (new.seq, new.content);
END;

CREATE TRIGGER chat_messages_fts_ad AFTER DELETE ON chat_messages BEGIN
    INSERT INTO chat_messages_fts (chat_messages_fts, rowid, content)
    VALUES ('delete', old.seq, old.content);
END;

CREATE TRIGGER chat_messages_fts_au AFTER UPDATE OF content ON chat_messages BEGIN
    INSERT INTO chat_messages_fts (chat_messages_fts, rowid, content)
    VALUES ('delete', old.seq, old.content);
    INSERT INTO chat_messages_fts (rowid, content) VALUES (new.seq, new.content);
END;

-- Merge FTS segments in larger, rarer steps: each message is its own
-- transaction, and the default (4) spends much of an insert on merging.
INSERT INTO chat_messages_fts (chat_messages_fts, rank) VALUES ('automerge', 16);
