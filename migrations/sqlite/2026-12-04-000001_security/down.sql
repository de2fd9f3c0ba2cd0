DROP INDEX IF EXISTS idx_chat_sessions_external_key;
ALTER TABLE chat_sessions DROP COLUMN external_key;
