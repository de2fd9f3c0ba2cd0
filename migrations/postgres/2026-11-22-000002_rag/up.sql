-- Retrieval: collections of documents split into embedded chunks.
-- When the pgvector extension is available, confab-rag adds an
-- `embedding_vec vector` column and per-dimension HNSW indexes at startup.
CREATE TABLE rag_collections (
    name            TEXT PRIMARY KEY NOT NULL,
    dimensions      INTEGER NOT NULL CHECK (dimensions > 0),
    embedding_model TEXT NOT NULL,
    created_at      TIMESTAMP NOT NULL
);

CREATE TABLE rag_documents (
    id           TEXT PRIMARY KEY NOT NULL,
    collection   TEXT NOT NULL REFERENCES rag_collections (name) ON DELETE CASCADE,
    source       TEXT NOT NULL,
    title        TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    chunk_count  BIGINT NOT NULL DEFAULT 0,
    metadata     TEXT NOT NULL DEFAULT '{}',
    created_at   TIMESTAMP NOT NULL,
    updated_at   TIMESTAMP NOT NULL,
    UNIQUE (collection, source)
);

CREATE TABLE rag_chunks (
    seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    document_id TEXT NOT NULL REFERENCES rag_documents (id) ON DELETE CASCADE,
    collection  TEXT NOT NULL,
    chunk_index INTEGER NOT NULL,
    title       TEXT NOT NULL,
    content     TEXT NOT NULL,
    dimensions  INTEGER NOT NULL,
    -- little-endian f32 values
    embedding   BYTEA NOT NULL,
    content_tsv TSVECTOR GENERATED ALWAYS AS (to_tsvector('simple', title || ' ' || content)) STORED
);

CREATE INDEX idx_rag_chunks_document ON rag_chunks (document_id, chunk_index);
CREATE INDEX idx_rag_chunks_collection ON rag_chunks (collection);
CREATE INDEX idx_rag_chunks_fts ON rag_chunks USING GIN (content_tsv);

CREATE TABLE rag_state (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version BIGINT NOT NULL
);
INSERT INTO rag_state (id, version) VALUES (1, 0);
