DROP TRIGGER IF EXISTS rag_chunks_fts_ai;
DROP TRIGGER IF EXISTS rag_chunks_fts_ad;
DROP TABLE IF EXISTS rag_chunks_fts;

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

INSERT INTO rag_chunks_fts (rag_chunks_fts) VALUES ('rebuild');
