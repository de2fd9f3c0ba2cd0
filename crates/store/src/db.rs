//! Connection enum, pool, migrations and the blocking-call helper.

use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::prelude::*;
use diesel::{PgConnection, SqliteConnection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use crate::error::StoreError;
use crate::group::GroupWriter;

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");

/// Key of the PostgreSQL advisory lock held while migrating, so replicas
/// starting together do not race.
const MIGRATION_LOCK_KEY: i64 = 0x636f_6e66_6162; // "confab"

/// A connection to either backend. Diesel's query DSL works on the enum;
/// backend-specific SQL matches on the variant.
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    /// A PostgreSQL connection.
    Pg(PgConnection),
    /// A SQLite connection.
    Sqlite(SqliteConnection),
}

/// Which database engine a [`Db`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite (embedded).
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// Where a database lives, parsed from a URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A SQLite database file.
    Sqlite(PathBuf),
    /// A PostgreSQL connection URL.
    Postgres(String),
}

impl Target {
    /// Parses `sqlite://PATH`, `sqlite:PATH`, a plain file path, or `postgres://` / `postgresql://`.
    pub fn parse(url: &str) -> Result<Self, StoreError> {
        let url = url.trim();
        if url.is_empty() {
            return Err(StoreError::UnsupportedUrl(url.to_owned()));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Target::Postgres(url.to_owned()));
        }
        if let Some(rest) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            if rest.is_empty() || rest.contains(":memory:") {
                return Err(StoreError::UnsupportedUrl(format!(
                    "{url} (in-memory SQLite cannot be pooled; use a file path)"
                )));
            }
            return Ok(Target::Sqlite(PathBuf::from(rest)));
        }
        if url.contains("://") {
            return Err(StoreError::UnsupportedUrl(url.to_owned()));
        }
        Ok(Target::Sqlite(PathBuf::from(url)))
    }

    /// The backend of this target.
    pub fn backend(&self) -> Backend {
        match self {
            Target::Sqlite(_) => Backend::Sqlite,
            Target::Postgres(_) => Backend::Postgres,
        }
    }
}

/// How to open a [`Db`].
#[derive(Debug, Clone)]
pub struct DbConfig {
    /// Database URL (see [`Target::parse`]).
    pub url: String,
    /// Largest number of pooled connections.
    pub max_connections: u32,
    /// How long a caller waits for a free connection before [`StoreError::PoolTimeout`].
    pub connection_timeout: Duration,
    /// SQLite `busy_timeout`: how long a writer waits for the write lock.
    pub sqlite_busy_timeout: Duration,
    /// SQLite: how often a background thread checkpoints the WAL, so
    /// writers do not pay for checkpoints (and their fsync) on commit.
    /// `None` leaves checkpointing to SQLite's auto-checkpoint alone.
    pub sqlite_checkpoint_interval: Option<Duration>,
    /// Group commit for [`Db::write`] on SQLite: at most this many
    /// callers' writes share one transaction (and its commit). `0` or `1`
    /// turns group commit off: each write is then a transaction of its
    /// own, as always on PostgreSQL.
    pub write_batch: usize,
}

impl DbConfig {
    /// Defaults for `url`: 10 connections, 5 s pool timeout, 10 s busy timeout.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            max_connections: 10,
            connection_timeout: Duration::from_secs(5),
            sqlite_busy_timeout: Duration::from_secs(10),
            sqlite_checkpoint_interval: Some(Duration::from_millis(1000)),
            write_batch: 256,
        }
    }
}

/// r2d2 manager: opens connections of one target and prepares them (SQLite PRAGMAs).
#[derive(Debug)]
pub struct ConnectionManager {
    target: Target,
    busy_timeout_ms: u128,
    /// WAL pages that trigger a checkpoint inside a committing writer.
    autocheckpoint_pages: u32,
}

impl ConnectionManager {
    fn establish(&self) -> Result<DbConnection, diesel::ConnectionError> {
        match &self.target {
            Target::Postgres(url) => PgConnection::establish(url).map(DbConnection::Pg),
            Target::Sqlite(path) => {
                let path = path.to_string_lossy();
                let mut conn = SqliteConnection::establish(&path)?;
                conn.batch_execute(&format!(
                    "PRAGMA journal_mode = WAL;
                     PRAGMA synchronous = NORMAL;
                     PRAGMA foreign_keys = ON;
                     PRAGMA busy_timeout = {};
                     PRAGMA wal_autocheckpoint = {};
                     PRAGMA temp_store = MEMORY;
                     PRAGMA journal_size_limit = 67108864;",
                    self.busy_timeout_ms, self.autocheckpoint_pages
                ))
                .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
                Ok(DbConnection::Sqlite(conn))
            }
        }
    }
}

impl r2d2::ManageConnection for ConnectionManager {
    type Connection = DbConnection;
    type Error = diesel::ConnectionError;

    fn connect(&self) -> Result<DbConnection, Self::Error> {
        self.establish()
    }

    /// Run by r2d2 on every checkout. A PostgreSQL connection is checked
    /// with `SELECT 1` (the server may have gone away since its last use);
    /// a SQLite connection is a handle on a local file that cannot go
    /// stale, so it is not: that query was a round of work on every
    /// `Db::run`.
    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), Self::Error> {
        match conn {
            DbConnection::Sqlite(_) => Ok(()),
            DbConnection::Pg(_) => conn
                .batch_execute("SELECT 1")
                .map_err(diesel::ConnectionError::CouldntSetupConfiguration),
        }
    }

    fn has_broken(&self, _conn: &mut DbConnection) -> bool {
        std::thread::panicking()
    }
}

/// Called with the time one [`Db::run`] waited for a pool permit and a
/// connection (binaries feed a metrics histogram with it).
pub type WaitObserver = Arc<dyn Fn(Duration) + Send + Sync>;

/// A pooled connection.
pub type PooledConnection = r2d2::PooledConnection<ConnectionManager>;

/// The database: a connection pool plus what it is connected to. Cheap to clone.
#[derive(Clone)]
pub struct Db {
    pool: r2d2::Pool<ConnectionManager>,
    backend: Backend,
    timeout: Duration,
    /// One permit per pooled connection: [`Db::run`] waits for one before
    /// it takes a blocking thread, so a burst of queries queues here
    /// instead of parking hundreds of threads on the pool.
    permits: Arc<tokio::sync::Semaphore>,
    /// Told how long each [`Db::run`] waited for a permit and a connection.
    wait_observer: Option<WaitObserver>,
    /// Stops the WAL checkpointer thread when the last clone is dropped.
    _checkpointer: Option<Arc<Checkpointer>>,
    /// The group-commit writer of [`Db::write`] (`None`: one transaction per write).
    group: Option<Arc<GroupWriter>>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("backend", &self.backend)
            .field("state", &self.pool.state())
            .finish()
    }
}

impl Db {
    /// Opens the database and applies pending migrations. Blocking: from async
    /// code call [`Db::connect`].
    pub fn open(config: &DbConfig) -> Result<Self, StoreError> {
        let target = Target::parse(&config.url)?;
        if let Target::Sqlite(path) = &target {
            ensure_parent_dir(path)?;
        }
        let backend = target.backend();
        let checkpointer = match (&target, config.sqlite_checkpoint_interval) {
            (Target::Sqlite(path), Some(every)) => Some(Arc::new(Checkpointer::spawn(
                path.clone(),
                every,
                config.sqlite_busy_timeout.as_millis(),
            )?)),
            _ => None,
        };
        let manager = ConnectionManager {
            target,
            busy_timeout_ms: config.sqlite_busy_timeout.as_millis(),
            // With the background checkpointer, writers checkpoint only as a
            // safety valve (~32 MB of WAL); without it, SQLite's default.
            autocheckpoint_pages: if checkpointer.is_some() { 8000 } else { 1000 },
        };
        // Group commit pays on SQLite (one writer at a time anyway; commits
        // shared). PostgreSQL runs writers in parallel on several
        // connections, which one serial writer measured slower than.
        let group = (config.write_batch > 1 && backend == Backend::Sqlite).then(|| {
            // Queued writes are bounded like the pool's callers: a burst
            // beyond a few batches waits for a slot (then `PoolTimeout`).
            Arc::new(GroupWriter::new(config.write_batch, config.write_batch * 4))
        });
        // The group writer's connection comes on top of the `Db::run`
        // permits, so it never waits behind them.
        let pool_size = config.max_connections.max(1) + u32::from(group.is_some());
        let pool = r2d2::Pool::builder()
            .max_size(pool_size)
            .min_idle(Some(1))
            .connection_timeout(config.connection_timeout)
            .build(manager)
            .map_err(|e| StoreError::Connect(e.to_string()))?;
        let db = Db {
            pool,
            backend,
            timeout: config.connection_timeout,
            permits: Arc::new(tokio::sync::Semaphore::new(
                config.max_connections.max(1) as usize
            )),
            wait_observer: None,
            _checkpointer: checkpointer,
            group,
        };
        let mut conn = db.get()?;
        run_migrations(&mut conn)?;
        tracing::debug!(backend = ?backend, "database ready");
        Ok(db)
    }

    /// [`Db::open`] on the blocking pool.
    pub async fn connect(config: DbConfig) -> Result<Self, StoreError> {
        tokio::task::spawn_blocking(move || Db::open(&config))
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?
    }

    /// This database, telling `observer` how long each [`Db::run`] waited
    /// for a connection (set it before cloning: clones share it).
    pub fn with_wait_observer(mut self, observer: WaitObserver) -> Self {
        self.wait_observer = Some(observer);
        self
    }

    /// The backend this database runs on.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Takes a connection from the pool, waiting at most the configured timeout. Blocking.
    pub fn get(&self) -> Result<PooledConnection, StoreError> {
        self.pool
            .get()
            .map_err(|_| StoreError::PoolTimeout(self.timeout))
    }

    /// Runs `f` with a pooled connection on tokio's blocking pool, so diesel
    /// never blocks the async runtime's worker threads.
    pub async fn run<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let waiting = std::time::Instant::now();
        let permit = tokio::time::timeout(self.timeout, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| E::from(StoreError::PoolTimeout(self.timeout)))?
            .map_err(|e| E::from(StoreError::Task(e.to_string())))?;
        let db = self.clone();
        // Logs from the blocking thread stay in the caller's span (request id).
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            let _span = span.enter();
            let _permit = permit;
            let mut conn = db.get()?;
            if let Some(observe) = &db.wait_observer {
                observe(waiting.elapsed());
            }
            f(&mut conn)
        })
        .await
        .map_err(|e| E::from(StoreError::Task(e.to_string())))?
    }

    /// Runs the write `f` in a transaction and returns once it is
    /// committed. With group commit on (the default on SQLite, see
    /// [`DbConfig::write_batch`]) `f` runs on the single writer in its own
    /// savepoint, sharing a transaction with the other writes queued at the
    /// same time: a failing `f` undoes its own changes only, and every
    /// caller hears back after the commit (or that it failed). Otherwise it
    /// is [`write_transaction`] through [`Db::run`]. `f` may use
    /// [`write_transaction`] itself (it nests as a savepoint) and must not
    /// block on anything but the database.
    pub async fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + From<diesel::result::Error> + Send + 'static,
    {
        match &self.group {
            Some(group) => {
                group
                    .write(&self.pool, self.timeout, self.wait_observer.clone(), f)
                    .await
            }
            None => self.run(move |conn| write_transaction(conn, f)).await,
        }
    }

    /// Checks the database answers a trivial query.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.run(|conn| conn.batch_execute("SELECT 1").map_err(StoreError::from))
            .await
    }
}

/// A thread that checkpoints a SQLite WAL every interval on its own
/// connection (`PASSIVE`: never blocks readers or writers). It stops when
/// this handle is dropped.
struct Checkpointer {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Checkpointer {
    fn spawn(path: PathBuf, every: Duration, busy_timeout_ms: u128) -> Result<Self, StoreError> {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || {
                let mut conn: Option<SqliteConnection> = None;
                // Runs until the sender is dropped (recv then reports Disconnected).
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                    if conn.is_none() {
                        conn = checkpoint_connection(&path, busy_timeout_ms)
                            .inspect_err(|e| {
                                tracing::warn!(error = %e, "WAL checkpointer cannot connect");
                            })
                            .ok();
                    }
                    if let Some(c) = conn.as_mut()
                        && let Err(e) = c.batch_execute("PRAGMA wal_checkpoint(PASSIVE);")
                    {
                        tracing::warn!(error = %e, "WAL checkpoint failed");
                        conn = None;
                    }
                }
            })
            .map_err(|e| StoreError::Connect(format!("cannot start the checkpoint thread: {e}")))?;
        Ok(Self {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

/// The checkpointer's own connection, with the pool's busy timeout.
fn checkpoint_connection(
    path: &Path,
    busy_timeout_ms: u128,
) -> Result<SqliteConnection, StoreError> {
    let mut conn = SqliteConnection::establish(&path.to_string_lossy())
        .map_err(|e| StoreError::Connect(e.to_string()))?;
    conn.batch_execute(&format!("PRAGMA busy_timeout = {busy_timeout_ms};"))?;
    Ok(conn)
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn ensure_parent_dir(path: &Path) -> Result<(), StoreError> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() && !dir.exists() => std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Connect(format!("cannot create {}: {e}", dir.display()))),
        _ => Ok(()),
    }
}

fn run_migrations(conn: &mut DbConnection) -> Result<(), StoreError> {
    let result = match conn {
        DbConnection::Sqlite(c) => c.run_pending_migrations(SQLITE_MIGRATIONS).map(|v| v.len()),
        DbConnection::Pg(c) => {
            c.batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})"))?;
            let applied = c
                .run_pending_migrations(POSTGRES_MIGRATIONS)
                .map(|v| v.len());
            c.batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})"))?;
            applied
        }
    };
    let applied = result.map_err(|e| StoreError::Migration(e.to_string()))?;
    if applied > 0 {
        tracing::info!(applied, "applied database migrations");
    }
    Ok(())
}

/// Runs `f` in a write transaction: committed when it returns `Ok`, rolled
/// back on `Err`. On SQLite the transaction begins `IMMEDIATE`, taking the
/// write lock first, so a read-then-write never fails on lock upgrade and
/// concurrent writers wait on `busy_timeout` instead. Called inside a
/// transaction, it is a savepoint of that transaction.
pub fn write_transaction<T, E, F>(conn: &mut DbConnection, f: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E>,
    E: From<diesel::result::Error>,
{
    type Tm = <DbConnection as Connection>::TransactionManager;
    let nested = Tm::transaction_manager_status_mut(conn)
        .transaction_depth()?
        .is_some();
    match conn {
        // Inside a transaction (a group-committed `Db::write`): a savepoint.
        _ if nested => Tm::begin_transaction(conn)?,
        DbConnection::Sqlite(c) => {
            AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE")?;
        }
        DbConnection::Pg(c) => {
            AnsiTransactionManager::begin_transaction(c)?;
        }
    }
    match f(conn) {
        Ok(value) => match Tm::commit_transaction(conn) {
            Ok(()) => Ok(value),
            Err(e) => {
                let _ = Tm::rollback_transaction(conn);
                Err(e.into())
            }
        },
        Err(e) => {
            Tm::rollback_transaction(conn)?;
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        assert_eq!(
            Target::parse("sqlite://data/confab.db").unwrap(),
            Target::Sqlite("data/confab.db".into())
        );
        assert_eq!(
            Target::parse("sqlite:///tmp/x.db").unwrap(),
            Target::Sqlite("/tmp/x.db".into())
        );
        assert_eq!(
            Target::parse("./x.db").unwrap(),
            Target::Sqlite("./x.db".into())
        );
        assert_eq!(
            Target::parse("postgres://u@h/db").unwrap().backend(),
            Backend::Postgres
        );
        assert_eq!(
            Target::parse("postgresql://u@h/db").unwrap().backend(),
            Backend::Postgres
        );
        for bad in ["", "mysql://h/db", "sqlite://", "sqlite::memory:"] {
            assert!(
                matches!(Target::parse(bad), Err(StoreError::UnsupportedUrl(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn opens_sqlite_with_pragmas_and_migrations() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/dir/t.db");
        let db = Db::open(&DbConfig::new(format!("sqlite://{}", path.display()))).unwrap();
        assert_eq!(db.backend(), Backend::Sqlite);
        assert!(path.exists());
        let mut conn = db.get().unwrap();
        #[derive(QueryableByName)]
        struct Row {
            #[diesel(sql_type = diesel::sql_types::Text)]
            journal_mode: String,
        }
        let DbConnection::Sqlite(c) = &mut *conn else {
            panic!("not sqlite")
        };
        let rows: Vec<Row> = diesel::sql_query("PRAGMA journal_mode").load(c).unwrap();
        assert_eq!(rows[0].journal_mode, "wal");
        #[derive(QueryableByName)]
        struct Fk {
            #[diesel(sql_type = diesel::sql_types::Integer)]
            foreign_keys: i32,
        }
        let fk: Vec<Fk> = diesel::sql_query("PRAGMA foreign_keys").load(c).unwrap();
        assert_eq!(fk[0].foreign_keys, 1);
        // Opening again finds nothing to migrate and keeps working.
        drop(conn);
        Db::open(&DbConfig::new(path.display().to_string())).unwrap();
    }

    #[test]
    fn pool_timeout_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = DbConfig::new(dir.path().join("t.db").display().to_string());
        cfg.max_connections = 1;
        cfg.connection_timeout = Duration::from_millis(100);
        let db = Db::open(&cfg).unwrap();
        // max_connections for `Db::run`, plus the group writer's own on SQLite.
        let _held = db.get().unwrap();
        let _writer = db.get().unwrap();
        let Err(err) = db.get() else {
            panic!("a get beyond the pool should time out")
        };
        assert!(matches!(err, StoreError::PoolTimeout(_)));
        assert_eq!(
            err.to_string(),
            "database is busy: no connection available within 100ms"
        );
    }

    #[test]
    fn unreachable_postgres_is_a_connect_error() {
        let mut cfg = DbConfig::new("postgres://nobody@127.0.0.1:1/none");
        cfg.connection_timeout = Duration::from_millis(300);
        let Err(err) = Db::open(&cfg) else {
            panic!("should fail")
        };
        assert!(matches!(err, StoreError::Connect(_)), "{err}");
    }
}
