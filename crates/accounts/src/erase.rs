//! Erasing an account: the one list of everything a user owns.
//!
//! [`erase_user`] deletes, in one write transaction, every row that belongs
//! to the user across the whole schema (chat history, memory, feedback,
//! then the `users` row, whose foreign keys cascade to refresh tokens, API
//! keys and lesson progress). One transaction means a crash mid-way leaves
//! either everything or nothing: the account is never half deleted.
//!
//! Knowledge bases go in the same transaction through the trigger
//! `knowledge_bases_owner_deleted` on `users` (the knowledge tables belong
//! to `confab-rag`, which this crate does not know), and their documents,
//! jobs, collections and chunks by cascade. A table that gains a `user_id`
//! adds one step to [`erase_user`] and one field to [`Erased`].

use confab_store::DbConnection;
use confab_store::schema::chat_sessions::dsl as s;
use confab_store::schema::message_feedback::dsl as f;
use confab_store::schema::user_memory::dsl as m;
use confab_store::schema::users::dsl as u;
use diesel::prelude::*;

use crate::error::AccountsError;

/// What [`erase_user`] deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Erased {
    /// Chat sessions (their messages went with them, by cascade).
    pub sessions: usize,
    /// Long-term memory items.
    pub memory_items: usize,
    /// Feedback the user gave.
    pub feedback: usize,
}

/// Deletes the user and everything they own; call inside a write
/// transaction. [`AccountsError::UserNotFound`] (and nothing deleted, once
/// the transaction rolls back) when there is no such user.
pub fn erase_user(conn: &mut DbConnection, user_id: &str) -> Result<Erased, AccountsError> {
    let feedback =
        diesel::delete(f::message_feedback.filter(f::user_id.eq(user_id))).execute(conn)?;
    // Messages (and their full-text rows and other users' feedback on them)
    // cascade with the sessions.
    let sessions = diesel::delete(s::chat_sessions.filter(s::user_id.eq(user_id))).execute(conn)?;
    let memory_items =
        diesel::delete(m::user_memory.filter(m::user_id.eq(user_id))).execute(conn)?;
    // Refresh tokens, API keys and lesson progress cascade with the user.
    let n = diesel::delete(u::users.find(user_id)).execute(conn)?;
    if n == 0 {
        return Err(AccountsError::UserNotFound(user_id.to_owned()));
    }
    Ok(Erased {
        sessions,
        memory_items,
        feedback,
    })
}
