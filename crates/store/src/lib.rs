//! The confab data layer.
//!
//! [`Db`] is an r2d2 pool over [`DbConnection`], a diesel `MultiConnection`
//! enum of SQLite and PostgreSQL, chosen from the database URL. Opening a
//! [`Db`] applies the embedded migrations of that backend. Diesel is
//! synchronous: async callers go through [`Db::run`], which runs the closure
//! on tokio's blocking pool. Writes that read-then-write go through
//! [`write_transaction`], which on SQLite takes the write lock up front
//! (`BEGIN IMMEDIATE`) so concurrent writers queue on `busy_timeout`
//! instead of failing with "database is locked". [`Db::write`] runs a write
//! through the group-commit writer: many callers' writes share one
//! transaction, and each caller is answered once it is committed.

mod db;
mod error;
mod group;
pub mod schema;
pub mod sql;

pub use db::{
    Backend, ConnectionManager, Db, DbConfig, DbConnection, PooledConnection, Target, WaitObserver,
    write_transaction,
};
pub use error::StoreError;

/// Re-export so dependants use the same diesel.
pub use diesel;
