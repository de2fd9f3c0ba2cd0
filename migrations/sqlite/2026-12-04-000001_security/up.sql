-- Seed 004 session keys get their own column and index: finding a user's
-- session for a key is one index lookup, however many sessions they have.
ALTER TABLE chat_sessions ADD COLUMN external_key TEXT;

UPDATE chat_sessions
SET external_key = json_extract(metadata, '$.external_session_id')
WHERE metadata LIKE '%external_session_id%'
  AND json_valid(metadata)
  AND json_type(metadata, '$.external_session_id') = 'text';

CREATE INDEX idx_chat_sessions_external_key
    ON chat_sessions (user_id, external_key, created_at DESC)
    WHERE external_key IS NOT NULL;
