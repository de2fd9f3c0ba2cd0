-- The full-text index also indexes each chunk's collection, so a keyword
-- search scoped to a few collections (a knowledge base among thousands)
-- intersects the query words with those collections' postings instead of
-- ranking every matching chunk of every collection and filtering after.
DROP TRIGGER IF EXISTS rag_chunks_fts_ai;
DROP TRIGGER IF EXISTS rag_chunks_fts_ad;
DROP TABLE IF EXISTS rag_chunks_fts;

CREATE VIRTUAL TABLE rag_chunks_fts USING fts5 (
    title,
    content,
    collection,
    content = 'rag_chunks',
    content_rowid = 'seq',
    tokenize = 'unicode61 remove_diacritics 2'
);

CREATE TRIGGER rag_chunks_fts_ai AFTER INSERT ON rag_chunks BEGIN
    INSERT INTO rag_chunks_fts (rowid, title, content, collection)
    VALUES (new.seq, new.title, new.content, new.collection);
END;

CREATE TRIGGER rag_chunks_fts_ad AFTER DELETE ON rag_chunks BEGIN
    INSERT INTO rag_chunks_fts (rag_chunks_fts, rowid, title, content, collection)
    VALUES ('delete', old.seq, old.title, old.content, old.collection);
END;

INSERT INTO rag_chunks_fts (rag_chunks_fts) VALUES ('rebuild');
