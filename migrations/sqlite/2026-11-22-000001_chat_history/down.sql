DROP TRIGGER IF EXISTS chat_messages_fts_au;
DROP TRIGGER IF EXISTS chat_messages_fts_ad;
DROP TRIGGER IF EXISTS chat_messages_fts_ai;
DROP TABLE IF EXISTS chat_messages_fts;
DROP TABLE IF EXISTS chat_messages;
DROP TABLE IF EXISTS chat_sessions;
