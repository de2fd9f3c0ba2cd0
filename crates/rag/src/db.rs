//! Database operations of the retrieval tables (synchronous diesel; callers
//! run them through `Db::run`).

use chrono::NaiveDateTime;
use confab_store::schema::{rag_chunks, rag_collections, rag_documents, rag_state};
use confab_store::sql::{CachedSql, QueryTerm, fts5_any, tsquery_any};
use confab_store::{DbConnection, write_transaction};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Double, Integer, Nullable, Text};

use crate::error::RagError;

/// A document row.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = rag_documents)]
pub(crate) struct DocumentRow {
    pub id: String,
    pub collection: String,
    pub source: String,
    pub title: String,
    pub content_hash: String,
    pub chunk_count: i64,
    pub metadata: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// A chunk as written.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = rag_chunks)]
pub(crate) struct NewChunkRow {
    pub document_id: String,
    pub collection: String,
    pub chunk_index: i32,
    pub title: String,
    pub content: String,
    pub dimensions: i32,
    pub embedding: Vec<u8>,
    pub page: Option<i32>,
}

/// A chunk with its document, as returned to retrieval.
#[derive(Debug, Clone, Queryable)]
pub(crate) struct ChunkDetail {
    pub seq: i64,
    pub chunk_index: i32,
    pub chunk_title: String,
    pub content: String,
    pub collection: String,
    pub document_id: String,
    pub source: String,
    pub document_title: String,
    pub metadata: String,
    pub page: Option<i32>,
}

/// f32 values as little-endian bytes.
pub(crate) fn encode_vector(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Little-endian bytes back to f32 values (a trailing partial value is ignored).
pub(crate) fn decode_vector(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// A pgvector text literal: `[0.1,0.2,...]`.
pub(crate) fn vector_literal(v: &[f32]) -> String {
    let mut s = String::with_capacity(v.len() * 10 + 2);
    s.push('[');
    for (i, x) in v.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&x.to_string());
    }
    s.push(']');
    s
}

/// Records the collection or checks its dimension.
pub(crate) fn ensure_collection(
    conn: &mut DbConnection,
    name: &str,
    dimensions: usize,
    model: &str,
    now: NaiveDateTime,
) -> Result<bool, RagError> {
    let existing: Option<i32> = rag_collections::table
        .filter(rag_collections::name.eq(name))
        .select(rag_collections::dimensions)
        .first(conn)
        .optional()?;
    match existing {
        Some(d) if d as usize == dimensions => Ok(false),
        Some(d) => Err(RagError::DimensionMismatch {
            collection: name.to_owned(),
            expected: d as usize,
            got: dimensions,
        }),
        None => {
            diesel::insert_into(rag_collections::table)
                .values((
                    rag_collections::name.eq(name),
                    rag_collections::dimensions.eq(dimensions as i32),
                    rag_collections::embedding_model.eq(model),
                    rag_collections::created_at.eq(now),
                ))
                .execute(conn)?;
            Ok(true)
        }
    }
}

/// The recorded dimension of a collection.
pub(crate) fn collection_dimensions(
    conn: &mut DbConnection,
    name: &str,
) -> Result<Option<usize>, RagError> {
    Ok(rag_collections::table
        .filter(rag_collections::name.eq(name))
        .select(rag_collections::dimensions)
        .first::<i32>(conn)
        .optional()?
        .map(|d| d as usize))
}

/// A collection's embedding model.
#[derive(Debug, Clone, Queryable)]
pub(crate) struct CollectionModel {
    pub name: String,
    pub model: String,
    pub dimensions: i32,
    /// Whether it is a knowledge base's (those track their model themselves).
    pub knowledge_base: bool,
}

/// The embedding model of every collection, knowledge bases' included.
pub(crate) fn every_collection_model(
    conn: &mut DbConnection,
) -> Result<Vec<CollectionModel>, RagError> {
    Ok(rag_collections::table
        .select((
            rag_collections::name,
            rag_collections::embedding_model,
            rag_collections::dimensions,
            rag_collections::knowledge_base_id.is_not_null(),
        ))
        .load(conn)?)
}

/// Every recorded dimension.
pub(crate) fn all_dimensions(conn: &mut DbConnection) -> Result<Vec<usize>, RagError> {
    let dims: Vec<i32> = rag_collections::table
        .select(rag_collections::dimensions)
        .distinct()
        .load(conn)?;
    Ok(dims.into_iter().map(|d| d as usize).collect())
}

/// The content hash of a document, if it exists.
pub(crate) fn document_hash(
    conn: &mut DbConnection,
    collection: &str,
    source: &str,
) -> Result<Option<String>, RagError> {
    Ok(rag_documents::table
        .filter(rag_documents::collection.eq(collection))
        .filter(rag_documents::source.eq(source))
        .select(rag_documents::content_hash)
        .first(conn)
        .optional()?)
}

pub(crate) fn bump_version(conn: &mut DbConnection) -> Result<(), RagError> {
    diesel::update(rag_state::table.filter(rag_state::id.eq(1)))
        .set(rag_state::version.eq(rag_state::version + 1))
        .execute(conn)?;
    Ok(())
}

/// The change counter.
pub(crate) fn version(conn: &mut DbConnection) -> Result<i64, RagError> {
    Ok(rag_state::table
        .filter(rag_state::id.eq(1))
        .select(rag_state::version)
        .first(conn)?)
}

/// Replaces a document and its chunks in one transaction; `vectors` are
/// also written to the pgvector column when `pgvector` is on.
pub(crate) fn replace_document(
    conn: &mut DbConnection,
    doc: &DocumentRow,
    chunks: &[NewChunkRow],
    vectors: &[Vec<f32>],
    pgvector: bool,
) -> Result<bool, RagError> {
    write_transaction(conn, |conn| {
        let existed = diesel::delete(
            rag_documents::table
                .filter(rag_documents::collection.eq(&doc.collection))
                .filter(rag_documents::source.eq(&doc.source)),
        )
        .execute(conn)?
            > 0;
        diesel::insert_into(rag_documents::table)
            .values(doc)
            .execute(conn)?;
        insert_chunks(conn, chunks, vectors, pgvector)?;
        bump_version(conn)?;
        Ok(existed)
    })
}

/// Inserts chunks (and their pgvector column when `pgvector`); no transaction of its own.
pub(crate) fn insert_chunks(
    conn: &mut DbConnection,
    chunks: &[NewChunkRow],
    vectors: &[Vec<f32>],
    pgvector: bool,
) -> Result<(), RagError> {
    for batch in chunks.chunks(200) {
        let insert = diesel::insert_into(rag_chunks::table).values(batch);
        match conn {
            DbConnection::Sqlite(c) => insert.execute(c)?,
            DbConnection::Pg(c) => insert.execute(c)?,
        };
    }
    if pgvector && let DbConnection::Pg(c) = conn {
        for (chunk, v) in chunks.iter().zip(vectors) {
            diesel::sql_query(
                "UPDATE rag_chunks SET embedding_vec = CAST($1 AS vector) \
                 WHERE document_id = $2 AND chunk_index = $3",
            )
            .bind::<Text, _>(vector_literal(v))
            .bind::<Text, _>(&chunk.document_id)
            .bind::<Integer, _>(chunk.chunk_index)
            .execute(c)?;
        }
    }
    Ok(())
}

/// Deletes a document (and its chunks); whether it existed.
pub(crate) fn delete_document(
    conn: &mut DbConnection,
    collection: &str,
    source: &str,
) -> Result<bool, RagError> {
    write_transaction(conn, |conn| {
        let n = diesel::delete(
            rag_documents::table
                .filter(rag_documents::collection.eq(collection))
                .filter(rag_documents::source.eq(source)),
        )
        .execute(conn)?;
        if n > 0 {
            bump_version(conn)?;
        }
        Ok(n > 0)
    })
}

/// Sources of a collection that start with `prefix`.
pub(crate) fn sources_under(
    conn: &mut DbConnection,
    collection: &str,
    prefix: &str,
) -> Result<Vec<String>, RagError> {
    let all: Vec<String> = rag_documents::table
        .filter(rag_documents::collection.eq(collection))
        .select(rag_documents::source)
        .load(conn)?;
    Ok(all.into_iter().filter(|s| s.starts_with(prefix)).collect())
}

/// Ids and collections of every chunk.
pub(crate) fn chunk_ids(conn: &mut DbConnection) -> Result<Vec<(i64, String, String)>, RagError> {
    Ok(rag_chunks::table
        .select((
            rag_chunks::seq,
            rag_chunks::collection,
            rag_chunks::document_id,
        ))
        .load(conn)?)
}

/// Vectors of the given chunks.
pub(crate) fn chunk_vectors(
    conn: &mut DbConnection,
    seqs: &[i64],
) -> Result<Vec<(i64, String, Vec<f32>)>, RagError> {
    let mut out = Vec::with_capacity(seqs.len());
    for batch in seqs.chunks(500) {
        let rows: Vec<(i64, String, Vec<u8>)> = rag_chunks::table
            .filter(rag_chunks::seq.eq_any(batch))
            .select((
                rag_chunks::seq,
                rag_chunks::collection,
                rag_chunks::embedding,
            ))
            .load(conn)?;
        out.extend(rows.into_iter().map(|(s, c, e)| (s, c, decode_vector(&e))));
    }
    Ok(out)
}

/// Chunks with their documents, in no particular order.
pub(crate) fn chunk_details(
    conn: &mut DbConnection,
    seqs: &[i64],
) -> Result<Vec<ChunkDetail>, RagError> {
    Ok(rag_chunks::table
        .inner_join(rag_documents::table)
        .filter(rag_chunks::seq.eq_any(seqs))
        .select((
            rag_chunks::seq,
            rag_chunks::chunk_index,
            rag_chunks::title,
            rag_chunks::content,
            rag_chunks::collection,
            rag_documents::id,
            rag_documents::source,
            rag_documents::title,
            rag_documents::metadata,
            rag_chunks::page,
        ))
        .load(conn)?)
}

#[derive(QueryableByName)]
struct Ranked {
    #[diesel(sql_type = BigInt)]
    seq: i64,
    #[diesel(sql_type = Double)]
    score: f64,
}

/// Keyword search over chunk titles and text (any word), best first.
///
/// `collections`: `None` searches every collection but knowledge bases
/// (`kb:...`, which are only ever searched by name); `Some` those named.
pub(crate) fn keyword_search(
    conn: &mut DbConnection,
    terms: &[QueryTerm],
    collections: Option<&[String]>,
    limit: usize,
) -> Result<Vec<(i64, f64)>, RagError> {
    if terms.is_empty() || collections.is_some_and(<[String]>::is_empty) {
        return Ok(Vec::new());
    }
    let scope = scope_json(collections);
    let rows: Vec<Ranked> = match conn {
        // The collection column has weight 0: it narrows, it does not rank.
        DbConnection::Sqlite(c) => CachedSql(
            "SELECT f.rowid AS seq, -bm25(rag_chunks_fts, 1.0, 1.0, 0.0) AS score FROM rag_chunks_fts f \
             JOIN rag_chunks c ON c.seq = f.rowid \
             WHERE rag_chunks_fts MATCH ? AND (CASE WHEN ? IS NULL THEN c.collection NOT LIKE 'kb:%' \
               ELSE c.collection IN (SELECT value FROM json_each(?)) END) \
             ORDER BY bm25(rag_chunks_fts, 1.0, 1.0, 0.0) LIMIT ?",
        )
        .bind::<Text, _>(fts5_scoped(terms, collections))
        .bind::<Nullable<Text>, _>(&scope)
        .bind::<Nullable<Text>, _>(&scope)
        .bind::<BigInt, _>(limit as i64)
        .load(c)?,
        DbConnection::Pg(c) if scope.is_none() => {
            let query = tsquery_any(terms);
            CachedSql(
                "SELECT seq, ts_rank(content_tsv, to_tsquery('simple', ?))::float8 AS score FROM rag_chunks \
                 WHERE content_tsv @@ to_tsquery('simple', ?) AND collection NOT LIKE 'kb:%' \
                 ORDER BY score DESC, seq LIMIT ?",
            )
            .bind::<Text, _>(&query)
            .bind::<Text, _>(&query)
            .bind::<BigInt, _>(limit as i64)
            .load(c)?
        }
        // Scoped: the scope's rows first (the collection index), then the
        // words among them. Left to itself the planner takes the words'
        // GIN index, which matches chunks of every collection, and filters
        // after: 145x slower for one base among 1,000 (make bench-knowledge).
        DbConnection::Pg(c) => {
            let query = tsquery_any(terms);
            CachedSql(
                "WITH scoped AS MATERIALIZED ( \
                   SELECT seq, content_tsv FROM rag_chunks \
                   WHERE collection = ANY (ARRAY(SELECT jsonb_array_elements_text(?::jsonb)))) \
                 SELECT seq, ts_rank(content_tsv, to_tsquery('simple', ?))::float8 AS score FROM scoped \
                 WHERE content_tsv @@ to_tsquery('simple', ?) \
                 ORDER BY score DESC, seq LIMIT ?",
            )
            .bind::<Nullable<Text>, _>(&scope)
            .bind::<Text, _>(&query)
            .bind::<Text, _>(&query)
            .bind::<BigInt, _>(limit as i64)
            .load(c)?
        }
    };
    Ok(rows.into_iter().map(|r| (r.seq, r.score)).collect())
}

/// The FTS5 query of a keyword search: any of the words in a chunk's title
/// or text, and, for a scoped search, one of the collections as a phrase of
/// the indexed `collection` column. FTS5 then intersects the words'
/// postings with the few collections' instead of ranking every match of
/// every collection (the SQL filter on `rag_chunks.collection` stays, for
/// exactness: a phrase also matches a longer name that contains it).
fn fts5_scoped(terms: &[QueryTerm], collections: Option<&[String]>) -> String {
    let words = format!("{{title content}} : ({})", fts5_any(terms));
    match collections {
        // A name with no letter or digit has no tokens to look up.
        Some(list) if list.iter().all(|c| c.chars().any(char::is_alphanumeric)) => {
            let names: Vec<String> = list
                .iter()
                .map(|c| format!("\"{}\"", c.replace('"', "\"\"")))
                .collect();
            format!("collection : ({}) AND {words}", names.join(" OR "))
        }
        _ => words,
    }
}

/// A collection scope as a JSON array (bound as one parameter), `None` for "all but knowledge bases".
fn scope_json(collections: Option<&[String]>) -> Option<String> {
    collections.map(|c| serde_json::Value::from(c.to_vec()).to_string())
}

/// Key of the PostgreSQL advisory lock held around pgvector's DDL, so
/// replicas starting together do not race on it (`IF NOT EXISTS` is not
/// safe against a concurrent creator: the loser fails on
/// `pg_class_relname_nsp_index`).
const PGVECTOR_LOCK_KEY: i64 = 0x0063_6f6e_6661_6276; // "confabv"

/// Runs `f` holding [`PGVECTOR_LOCK_KEY`] on PostgreSQL (a session lock,
/// so not across a transaction's lifetime); runs it plainly on SQLite.
fn with_pgvector_lock<T>(
    conn: &mut DbConnection,
    f: impl FnOnce(&mut DbConnection) -> Result<T, RagError>,
) -> Result<T, RagError> {
    let DbConnection::Pg(c) = conn else {
        return f(conn);
    };
    c.batch_execute(&format!("SELECT pg_advisory_lock({PGVECTOR_LOCK_KEY})"))?;
    let result = f(conn);
    if let DbConnection::Pg(c) = conn
        && let Err(e) = c.batch_execute(&format!("SELECT pg_advisory_unlock({PGVECTOR_LOCK_KEY})"))
    {
        // The session lock goes with the connection if it is broken.
        tracing::warn!(error = %e, "could not release the pgvector setup lock");
    }
    result
}

/// Turns pgvector on when the extension can be had: the vector column, a
/// backfill of rows written without it, and an HNSW index per dimension.
/// `Ok(false)` (and nothing changed) when the extension is unavailable.
/// Replicas doing it at once take turns.
pub(crate) fn enable_pgvector(conn: &mut DbConnection) -> Result<bool, RagError> {
    with_pgvector_lock(conn, enable_pgvector_locked)
}

/// [`enable_pgvector`] under its lock.
fn enable_pgvector_locked(conn: &mut DbConnection) -> Result<bool, RagError> {
    let DbConnection::Pg(c) = conn else {
        return Ok(false);
    };
    #[derive(QueryableByName)]
    struct Found {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let installed = |c: &mut diesel::PgConnection| -> Result<bool, RagError> {
        let rows: Vec<Found> =
            diesel::sql_query("SELECT COUNT(*) AS n FROM pg_extension WHERE extname = 'vector'")
                .load(c)?;
        Ok(rows.first().is_some_and(|r| r.n > 0))
    };
    if !installed(c)? {
        let available: Vec<Found> = diesel::sql_query(
            "SELECT COUNT(*) AS n FROM pg_available_extensions WHERE name = 'vector'",
        )
        .load(c)?;
        if available.first().is_none_or(|r| r.n <= 0) {
            return Ok(false);
        }
        if let Err(e) = c.batch_execute("CREATE EXTENSION IF NOT EXISTS vector") {
            tracing::warn!(error = %e, "pgvector is available but cannot be created");
            return Ok(false);
        }
    }
    c.batch_execute("ALTER TABLE rag_chunks ADD COLUMN IF NOT EXISTS embedding_vec vector")?;
    // Rows written while pgvector was off.
    loop {
        let rows: Vec<(i64, Vec<u8>)> = diesel::sql_query(
            "SELECT seq, embedding FROM rag_chunks WHERE embedding_vec IS NULL ORDER BY seq LIMIT 500",
        )
        .load::<SeqBlob>(c)?
        .into_iter()
        .map(|r| (r.seq, r.embedding))
        .collect();
        if rows.is_empty() {
            break;
        }
        for (seq, blob) in rows {
            diesel::sql_query(
                "UPDATE rag_chunks SET embedding_vec = CAST($1 AS vector) WHERE seq = $2",
            )
            .bind::<Text, _>(vector_literal(&decode_vector(&blob)))
            .bind::<BigInt, _>(seq)
            .execute(c)?;
        }
    }
    for dims in all_dimensions(conn)? {
        pgvector_index(conn, dims)?;
    }
    Ok(true)
}

#[derive(QueryableByName)]
struct SeqBlob {
    #[diesel(sql_type = BigInt)]
    seq: i64,
    #[diesel(sql_type = diesel::sql_types::Binary)]
    embedding: Vec<u8>,
}

/// pgvector's HNSW index covers at most this many dimensions.
const PGVECTOR_HNSW_MAX_DIMS: usize = 2000;

/// Creates the HNSW index for one dimension (idempotent).
pub(crate) fn pgvector_index(conn: &mut DbConnection, dims: usize) -> Result<(), RagError> {
    let DbConnection::Pg(c) = conn else {
        return Ok(());
    };
    if dims > PGVECTOR_HNSW_MAX_DIMS {
        tracing::warn!(
            dims,
            "no HNSW index above {PGVECTOR_HNSW_MAX_DIMS} dimensions: exact scans"
        );
        return Ok(());
    }
    c.batch_execute(&format!(
        "CREATE INDEX IF NOT EXISTS rag_chunks_hnsw_{dims} ON rag_chunks \
         USING hnsw ((embedding_vec::vector({dims})) vector_cosine_ops) WHERE dimensions = {dims}"
    ))?;
    Ok(())
}

/// Nearest chunks by cosine similarity through pgvector, best first.
pub(crate) fn pgvector_search(
    conn: &mut DbConnection,
    query: &[f32],
    collections: Option<&[String]>,
    limit: usize,
) -> Result<Vec<(i64, f64)>, RagError> {
    let DbConnection::Pg(c) = conn else {
        return Ok(Vec::new());
    };
    if collections.is_some_and(<[String]>::is_empty) {
        return Ok(Vec::new());
    }
    let scope = scope_json(collections);
    let dims = query.len();
    let sql = format!(
        "SELECT seq, (1 - (embedding_vec::vector({dims}) <=> CAST($1 AS vector({dims}))))::float8 AS score \
         FROM rag_chunks WHERE dimensions = {dims} AND embedding_vec IS NOT NULL \
           AND (CASE WHEN $2::text IS NULL THEN collection NOT LIKE 'kb:%' \
             ELSE collection IN (SELECT jsonb_array_elements_text($2::jsonb)) END) \
         ORDER BY embedding_vec::vector({dims}) <=> CAST($1 AS vector({dims})) LIMIT $3"
    );
    let literal = vector_literal(query);
    let rows: Vec<Ranked> = c
        .transaction(|c| {
            // pgvector >= 0.8 keeps scanning when a filter drops candidates; older versions ignore this.
            if c.batch_execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
                .is_err()
            {
                return Err(diesel::result::Error::RollbackTransaction);
            }
            c.batch_execute("SET LOCAL hnsw.ef_search = 100")?;
            diesel::sql_query(&sql)
                .bind::<Text, _>(&literal)
                .bind::<Nullable<Text>, _>(&scope)
                .bind::<BigInt, _>(limit as i64)
                .load(c)
        })
        .or_else(|e| match e {
            diesel::result::Error::RollbackTransaction => c.transaction(|c| {
                c.batch_execute("SET LOCAL hnsw.ef_search = 200")?;
                diesel::sql_query(&sql)
                    .bind::<Text, _>(&literal)
                    .bind::<Nullable<Text>, _>(&scope)
                    .bind::<BigInt, _>(limit as i64)
                    .load(c)
            }),
            other => Err(other),
        })?;
    Ok(rows.into_iter().map(|r| (r.seq, r.score)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyword_queries_are_scoped_by_collection() {
        let words = [
            QueryTerm {
                text: "rust".into(),
                prefix: false,
            },
            QueryTerm {
                text: "borrow".into(),
                prefix: true,
            },
        ];
        assert_eq!(
            fts5_scoped(&words, None),
            r#"{title content} : ("rust" OR "borrow"*)"#
        );
        assert_eq!(
            fts5_scoped(&words, Some(&["kb:0190-ab".into(), r#"say "hi""#.into()])),
            r#"collection : ("kb:0190-ab" OR "say ""hi""") AND {title content} : ("rust" OR "borrow"*)"#
        );
        // Nothing to look up in a name without letters or digits: no narrowing.
        assert_eq!(
            fts5_scoped(&words, Some(&["--".into()])),
            fts5_scoped(&words, None)
        );
    }

    #[test]
    fn vectors_round_trip() {
        let v = vec![0.5f32, -1.25, 3.0e-7, 0.0];
        assert_eq!(decode_vector(&encode_vector(&v)), v);
        assert_eq!(vector_literal(&[1.0, -0.5]), "[1,-0.5]");
    }
}
