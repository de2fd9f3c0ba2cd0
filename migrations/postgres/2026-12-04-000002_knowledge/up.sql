-- Knowledge bases: a user's own documents for retrieval (issue 15).
-- A base's chunks live in the retrieval tables (rag_collections /
-- rag_documents / rag_chunks) under the collection `kb:<id>`; the foreign
-- keys added below make deleting a base or a document remove its chunks in
-- the same statement, and deleting a `users` row remove that user's bases
-- (trigger `knowledge_bases_owner_deleted`).
CREATE TABLE knowledge_bases (
    id              TEXT PRIMARY KEY NOT NULL,
    -- no foreign key: chat-service callers (the internal service user, users of
    -- another accounts store) need not have a `users` row; the trigger below
    -- removes a deleted user's bases instead
    owner_id        TEXT NOT NULL,
    name            TEXT NOT NULL,
    -- published by an admin: readable by every user
    shared          BOOLEAN NOT NULL DEFAULT FALSE,
    -- the embedder that made the stored vectors
    embedding_model TEXT NOT NULL,
    dimensions      INTEGER NOT NULL CHECK (dimensions > 0),
    created_at      TIMESTAMP NOT NULL,
    updated_at      TIMESTAMP NOT NULL
);
CREATE INDEX idx_knowledge_bases_owner ON knowledge_bases (owner_id, created_at);
CREATE INDEX idx_knowledge_bases_shared ON knowledge_bases (shared);

CREATE TABLE knowledge_documents (
    id           TEXT PRIMARY KEY NOT NULL,
    kb_id        TEXT NOT NULL REFERENCES knowledge_bases (id) ON DELETE CASCADE,
    filename     TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size_bytes   BIGINT NOT NULL,
    content_hash TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('queued', 'processing', 'ready', 'failed')),
    error        TEXT,
    chunk_count  BIGINT NOT NULL DEFAULT 0,
    page_count   INTEGER,
    created_at   TIMESTAMP NOT NULL,
    updated_at   TIMESTAMP NOT NULL,
    UNIQUE (kb_id, filename)
);
CREATE INDEX idx_knowledge_documents_status ON knowledge_documents (status);

-- Durable ingestion / re-embedding jobs. A worker claims one by setting
-- `running` with a lease; a lease that runs out (the worker died) makes the
-- job claimable again.
CREATE TABLE knowledge_jobs (
    id           TEXT PRIMARY KEY NOT NULL,
    kb_id        TEXT NOT NULL REFERENCES knowledge_bases (id) ON DELETE CASCADE,
    document_id  TEXT REFERENCES knowledge_documents (id) ON DELETE CASCADE,
    kind         TEXT NOT NULL CHECK (kind IN ('ingest', 'reembed')),
    status       TEXT NOT NULL CHECK (status IN ('queued', 'running')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    lease_until  TIMESTAMP,
    -- the uploaded bytes of an ingest job (dropped when the job ends)
    payload      BYTEA,
    created_at   TIMESTAMP NOT NULL,
    updated_at   TIMESTAMP NOT NULL
);
CREATE INDEX idx_knowledge_jobs_claim ON knowledge_jobs (status, created_at);

ALTER TABLE rag_collections ADD COLUMN knowledge_base_id TEXT
    REFERENCES knowledge_bases (id) ON DELETE CASCADE;
ALTER TABLE rag_documents ADD COLUMN knowledge_document_id TEXT
    REFERENCES knowledge_documents (id) ON DELETE CASCADE;
-- 1-based page of a PDF chunk
ALTER TABLE rag_chunks ADD COLUMN page INTEGER;
CREATE INDEX idx_rag_collections_kb ON rag_collections (knowledge_base_id);
CREATE INDEX idx_rag_documents_kdoc ON rag_documents (knowledge_document_id);

-- Cascaded deletes change the index too: tell other processes.
CREATE FUNCTION rag_bump_version() RETURNS trigger AS $$
BEGIN
    UPDATE rag_state SET version = version + 1 WHERE id = 1;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER rag_documents_version_ad AFTER DELETE ON rag_documents
    FOR EACH STATEMENT EXECUTE FUNCTION rag_bump_version();

CREATE FUNCTION knowledge_bases_owner_deleted() RETURNS trigger AS $$
BEGIN
    DELETE FROM knowledge_bases WHERE owner_id = OLD.id;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER knowledge_bases_owner_deleted AFTER DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION knowledge_bases_owner_deleted();
