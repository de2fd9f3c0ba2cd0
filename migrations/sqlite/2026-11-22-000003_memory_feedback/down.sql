DROP TABLE IF EXISTS message_feedback;
DROP TABLE IF EXISTS user_memory;
