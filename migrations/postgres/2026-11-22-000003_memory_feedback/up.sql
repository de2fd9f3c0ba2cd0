-- Long-term memory items: what a user asked the assistant to remember.
CREATE TABLE user_memory (
    id         TEXT PRIMARY KEY NOT NULL,
    user_id    TEXT NOT NULL,
    content    TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    metadata   TEXT NOT NULL DEFAULT '{}'
);

-- A user's items newest first is an index range scan.
CREATE INDEX idx_user_memory_user ON user_memory (user_id, created_at DESC, id DESC);

-- Feedback on assistant messages: one per user and message (giving it again replaces it).
CREATE TABLE message_feedback (
    id         TEXT PRIMARY KEY NOT NULL,
    message_id TEXT NOT NULL REFERENCES chat_messages (id) ON DELETE CASCADE,
    session_id TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    score      INTEGER NOT NULL CHECK (score BETWEEN 1 AND 5),
    comment    TEXT,
    created_at TIMESTAMP NOT NULL,
    UNIQUE (user_id, message_id)
);

-- Cascade deletes from chat_messages look feedback up by message.
CREATE INDEX idx_message_feedback_message ON message_feedback (message_id);
-- Recent feedback, globally and per user.
CREATE INDEX idx_message_feedback_created ON message_feedback (created_at DESC, id DESC);
CREATE INDEX idx_message_feedback_user ON message_feedback (user_id, created_at DESC, id DESC);
