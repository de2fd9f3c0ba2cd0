-- Retrieval: collections of documents split into embedded chunks.
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
    -- rowid alias: stable key for FTS5 and the in-memory vector index
    seq         INTEGER PRIMARY KEY,
    document_id TEXT NOT NULL REFERENCES rag_documents (id) ON DELETE CASCADE,
    collection  TEXT NOT NULL,
    chunk_index INTEGER NOT NULL,
    title       TEXT NOT NULL,
    content     TEXT NOT NULL,
    dimensions  INTEGER NOT NULL,
    -- little-endian f32 values
    embedding   BLOB NOT NULL
);

CREATE INDEX idx_rag_chunks_document ON rag_chunks (document_id, chunk_index);
CREATE INDEX idx_rag_chunks_collection ON rag_chunks (collection);

CREATE VIRTUAL TABLE rag_chunks_fts USING fts5 (
    title,
    content,
    content = 'rag_chunks',
    content_rowid = 'seq',
    tokenize = 'unicode61 remove_diacritics 2'
);

CREATE TRIGGER rag_chunks_fts_ai AFTER INSERT ON rag_chunks BEGIN
    INSERT INTO rag_chunks_fts (rowid, title, content) VALUES (new.seq, new.title, new.content);
END;

CREATE TRIGGER rag_chunks_fts_ad AFTER DELETE ON rag_chunks BEGIN
    INSERT INTO rag_chunks_fts (rag_chunks_fts, rowid, title, content)
    VALUES ('delete', old.seq, old.title, old.content);
END;

-- Bumped by every write, so other processes know to refresh their in-memory index.
CREATE TABLE rag_state (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version BIGINT NOT NULL
);
INSERT INTO rag_state (id, version) VALUES (1, 0);
