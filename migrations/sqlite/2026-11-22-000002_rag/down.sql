DROP TABLE IF EXISTS rag_state;
DROP TRIGGER IF EXISTS rag_chunks_fts_ad;
DROP TRIGGER IF EXISTS rag_chunks_fts_ai;
DROP TABLE IF EXISTS rag_chunks_fts;
DROP TABLE IF EXISTS rag_chunks;
DROP TABLE IF EXISTS rag_documents;
DROP TABLE IF EXISTS rag_collections;
