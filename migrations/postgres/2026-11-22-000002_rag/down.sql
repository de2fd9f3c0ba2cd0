DROP TABLE IF EXISTS rag_state;
DROP TABLE IF EXISTS rag_chunks;
DROP TABLE IF EXISTS rag_documents;
DROP TABLE IF EXISTS rag_collections;
