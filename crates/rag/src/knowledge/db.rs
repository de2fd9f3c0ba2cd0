//! Database operations of the knowledge tables (synchronous diesel; callers
//! run them through `Db::run`).

use chrono::NaiveDateTime;
use confab_store::DbConnection;
use confab_store::schema::{
    knowledge_bases, knowledge_documents, knowledge_jobs, rag_chunks, rag_collections,
    rag_documents,
};
use diesel::prelude::*;

use crate::error::RagError;

/// A knowledge base row.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = knowledge_bases)]
pub(crate) struct BaseRow {
    pub id: String,
    pub owner_id: String,
    pub name: String,
    pub shared: bool,
    pub embedding_model: String,
    pub dimensions: i32,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// A knowledge document row.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = knowledge_documents)]
pub(crate) struct DocRow {
    pub id: String,
    pub kb_id: String,
    pub filename: String,
    pub content_type: String,
    pub size_bytes: i64,
    pub content_hash: String,
    pub status: String,
    pub error: Option<String>,
    pub chunk_count: i64,
    pub page_count: Option<i32>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// A job as written.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = knowledge_jobs)]
pub(crate) struct NewJob {
    pub id: String,
    pub kb_id: String,
    pub document_id: Option<String>,
    pub kind: String,
    pub status: String,
    pub attempts: i32,
    pub lease_until: Option<NaiveDateTime>,
    pub payload: Option<Vec<u8>>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// The collection name of a base.
pub(crate) fn collection_of(id: &str) -> String {
    format!("{}{id}", crate::service::KB_PREFIX)
}

pub(crate) fn base(conn: &mut DbConnection, id: &str) -> Result<Option<BaseRow>, RagError> {
    Ok(knowledge_bases::table
        .find(id)
        .select(BaseRow::as_select())
        .first(conn)
        .optional()?)
}

/// Bases the user owns, and the shared ones, oldest first.
pub(crate) fn readable_bases(
    conn: &mut DbConnection,
    user_id: &str,
) -> Result<Vec<BaseRow>, RagError> {
    Ok(knowledge_bases::table
        .filter(
            knowledge_bases::owner_id
                .eq(user_id)
                .or(knowledge_bases::shared.eq(true)),
        )
        .order((knowledge_bases::created_at, knowledge_bases::id))
        .select(BaseRow::as_select())
        .load(conn)?)
}

/// Bases by id (those that exist).
pub(crate) fn bases(conn: &mut DbConnection, ids: &[String]) -> Result<Vec<BaseRow>, RagError> {
    Ok(knowledge_bases::table
        .filter(knowledge_bases::id.eq_any(ids))
        .select(BaseRow::as_select())
        .load(conn)?)
}

/// Every base (for the embedder check).
pub(crate) fn all_bases(conn: &mut DbConnection) -> Result<Vec<BaseRow>, RagError> {
    Ok(knowledge_bases::table
        .select(BaseRow::as_select())
        .load(conn)?)
}

/// Document counts of the given bases.
pub(crate) fn document_counts(
    conn: &mut DbConnection,
    ids: &[String],
) -> Result<Vec<(String, i64)>, RagError> {
    Ok(knowledge_documents::table
        .filter(knowledge_documents::kb_id.eq_any(ids))
        .group_by(knowledge_documents::kb_id)
        .select((knowledge_documents::kb_id, diesel::dsl::count_star()))
        .load(conn)?)
}

/// Creates a base and its retrieval collection.
pub(crate) fn insert_base(conn: &mut DbConnection, row: &BaseRow) -> Result<(), RagError> {
    diesel::insert_into(knowledge_bases::table)
        .values(row)
        .execute(conn)?;
    diesel::insert_into(rag_collections::table)
        .values((
            rag_collections::name.eq(collection_of(&row.id)),
            rag_collections::dimensions.eq(row.dimensions),
            rag_collections::embedding_model.eq(&row.embedding_model),
            rag_collections::created_at.eq(row.created_at),
            rag_collections::knowledge_base_id.eq(Some(&row.id)),
        ))
        .execute(conn)?;
    Ok(())
}

pub(crate) fn documents(conn: &mut DbConnection, kb_id: &str) -> Result<Vec<DocRow>, RagError> {
    Ok(knowledge_documents::table
        .filter(knowledge_documents::kb_id.eq(kb_id))
        .order((knowledge_documents::created_at, knowledge_documents::id))
        .select(DocRow::as_select())
        .load(conn)?)
}

pub(crate) fn document(
    conn: &mut DbConnection,
    kb_id: &str,
    id: &str,
) -> Result<Option<DocRow>, RagError> {
    Ok(knowledge_documents::table
        .filter(knowledge_documents::kb_id.eq(kb_id))
        .filter(knowledge_documents::id.eq(id))
        .select(DocRow::as_select())
        .first(conn)
        .optional()?)
}

pub(crate) fn document_by_name(
    conn: &mut DbConnection,
    kb_id: &str,
    filename: &str,
) -> Result<Option<DocRow>, RagError> {
    Ok(knowledge_documents::table
        .filter(knowledge_documents::kb_id.eq(kb_id))
        .filter(knowledge_documents::filename.eq(filename))
        .select(DocRow::as_select())
        .first(conn)
        .optional()?)
}

/// Documents and bytes stored in the bases `owner_id` owns.
pub(crate) fn usage(conn: &mut DbConnection, owner_id: &str) -> Result<(i64, i64), RagError> {
    let sizes: Vec<i64> = knowledge_documents::table
        .inner_join(knowledge_bases::table)
        .filter(knowledge_bases::owner_id.eq(owner_id))
        .select(knowledge_documents::size_bytes)
        .load(conn)?;
    Ok((sizes.len() as i64, sizes.iter().sum()))
}

/// One chunk of a knowledge document: (index, heading, page, text).
pub(crate) type DocChunk = (i32, String, Option<i32>, String);

/// Chunks of one knowledge document, in order.
pub(crate) fn document_chunks(
    conn: &mut DbConnection,
    doc_id: &str,
) -> Result<Vec<DocChunk>, RagError> {
    Ok(rag_chunks::table
        .inner_join(rag_documents::table)
        .filter(rag_documents::knowledge_document_id.eq(doc_id))
        .order(rag_chunks::chunk_index)
        .select((
            rag_chunks::chunk_index,
            rag_chunks::title,
            rag_chunks::page,
            rag_chunks::content,
        ))
        .load(conn)?)
}

/// Chunks stored in a collection.
pub(crate) fn chunk_count(conn: &mut DbConnection, collection: &str) -> Result<i64, RagError> {
    Ok(rag_chunks::table
        .filter(rag_chunks::collection.eq(collection))
        .count()
        .get_result(conn)?)
}

/// Every chunk of a collection, for re-embedding:
/// (document id, index, heading, text, page).
pub(crate) type StoredChunk = (String, i32, String, String, Option<i32>);

pub(crate) fn collection_chunks(
    conn: &mut DbConnection,
    collection: &str,
) -> Result<Vec<StoredChunk>, RagError> {
    Ok(rag_chunks::table
        .filter(rag_chunks::collection.eq(collection))
        .order((rag_chunks::document_id, rag_chunks::chunk_index))
        .select((
            rag_chunks::document_id,
            rag_chunks::chunk_index,
            rag_chunks::title,
            rag_chunks::content,
            rag_chunks::page,
        ))
        .load(conn)?)
}

/// Whether a re-embed job for the base is waiting or running.
pub(crate) fn has_reembed_job(conn: &mut DbConnection, kb_id: &str) -> Result<bool, RagError> {
    let n: i64 = knowledge_jobs::table
        .filter(knowledge_jobs::kb_id.eq(kb_id))
        .filter(knowledge_jobs::kind.eq("reembed"))
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}

pub(crate) fn insert_job(conn: &mut DbConnection, job: &NewJob) -> Result<(), RagError> {
    diesel::insert_into(knowledge_jobs::table)
        .values(job)
        .execute(conn)?;
    Ok(())
}
