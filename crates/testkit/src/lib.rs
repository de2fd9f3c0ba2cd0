//! Test helpers for confab crates (dev-only).
//!
//! [`TestDb`] gives every test a fresh, migrated database: a temp SQLite
//! file, or a new PostgreSQL database on the server named by
//! `TEST_DATABASE_URL`, dropped when the `TestDb` is dropped.
//! [`backend_tests!`] runs the same async test bodies on both backends.
//!
//! Without `TEST_DATABASE_URL` the PostgreSQL variants return early (and
//! `make test` says so); with `CONFAB_REQUIRE_POSTGRES=1` (set in CI) they
//! fail instead, so CI can never skip them silently.
//! [`local_embed_model_dir`] and [`local_chat_model`] find the local model
//! files the same way (SKIP, or a failure under `CONFAB_REQUIRE_LOCAL_MODELS=1`).

pub mod fake_llm;
pub use fake_llm::{FakeLlm, FakeLlmConfig};
pub mod mcp_server;
pub use mcp_server::McpTestServer;
pub mod procfs;
pub mod ws;

use std::path::PathBuf;
use std::time::Duration;

use confab_store::diesel::{Connection, PgConnection, connection::SimpleConnection};
use confab_store::{Db, DbConfig};

/// Environment variable naming the PostgreSQL server used by tests.
pub const TEST_DATABASE_URL: &str = "TEST_DATABASE_URL";
/// When set to `1`, a missing `TEST_DATABASE_URL` fails PostgreSQL tests.
pub const REQUIRE_POSTGRES: &str = "CONFAB_REQUIRE_POSTGRES";
/// Environment variable naming a PostgreSQL server that has pgvector.
pub const TEST_PGVECTOR_URL: &str = "TEST_PGVECTOR_URL";
/// When set to `1`, a missing `TEST_PGVECTOR_URL` fails pgvector tests.
pub const REQUIRE_PGVECTOR: &str = "CONFAB_REQUIRE_PGVECTOR";

/// When set to `1`, missing local model files fail the tests that need them.
pub const REQUIRE_LOCAL_MODELS: &str = "CONFAB_REQUIRE_LOCAL_MODELS";
/// Environment variable naming the local sentence-embedding model folder.
pub const LOCAL_EMBED_MODEL: &str = "CONFAB_LOCAL_EMBED_MODEL";
/// Environment variable naming the local GGUF chat model file.
pub const LOCAL_CHAT_MODEL: &str = "CONFAB_LOCAL_CHAT_MODEL";

/// The local embedding model folder (`CONFAB_LOCAL_EMBED_MODEL`, else
/// `models/all-MiniLM-L6-v2` at the repository root) when it holds
/// `model.safetensors`; otherwise prints SKIP and returns `None`, or panics
/// when `CONFAB_REQUIRE_LOCAL_MODELS=1`.
pub fn local_embed_model_dir() -> Option<PathBuf> {
    local_model(
        "local embedding model",
        LOCAL_EMBED_MODEL,
        "all-MiniLM-L6-v2",
        Some("model.safetensors"),
    )
}

/// The local GGUF chat model file (`CONFAB_LOCAL_CHAT_MODEL`, else
/// `models/SmolLM2-135M-Instruct.Q4_1.gguf` at the repository root) when it
/// exists; otherwise prints SKIP and returns `None`, or panics when
/// `CONFAB_REQUIRE_LOCAL_MODELS=1`.
pub fn local_chat_model() -> Option<PathBuf> {
    local_model(
        "local chat model",
        LOCAL_CHAT_MODEL,
        "SmolLM2-135M-Instruct.Q4_1.gguf",
        None,
    )
}

/// `path_var`'s path, else `default` under the repository's `models/`, when
/// it is a file (or a folder holding `inside`).
fn local_model(what: &str, path_var: &str, default: &str, inside: Option<&str>) -> Option<PathBuf> {
    let path = std::env::var_os(path_var)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../models")
                .join(default)
        });
    let (needed, present) = match inside {
        Some(file) => (path.join(file), path.join(file).is_file()),
        None => (path.clone(), path.is_file()),
    };
    if present {
        return Some(path);
    }
    if std::env::var(REQUIRE_LOCAL_MODELS).as_deref() == Ok("1") {
        panic!(
            "{REQUIRE_LOCAL_MODELS}=1 but {} does not exist (run `make models` or set {path_var})",
            needed.display()
        );
    }
    skipped(&format!(
        "{what} not found at {} (run `make models` or set {path_var})",
        needed.display()
    ));
    None
}

/// Environment variable naming a file to which [`skipped`] appends one line
/// per skipped test body; `make test` (scripts/test.sh) sets it and reports
/// those tests as skipped instead of passed.
pub const SKIP_LOG: &str = "CONFAB_SKIP_LOG";

/// Records that the calling test returns early without running its body
/// (`why` says what it lacked): prints `SKIPPED` on stderr and appends the
/// test's name and `why` to the file named by `CONFAB_SKIP_LOG`, if set, so
/// the test runner's "passed" count does not include it.
pub fn skipped(why: &str) {
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("unknown test");
    eprintln!("\n*** SKIPPED {test}: {why} ***\n");
    if let Some(path) = std::env::var_os(SKIP_LOG).filter(|p| !p.is_empty()) {
        use std::io::Write;
        let line = format!("{test}\t{}\n", why.replace(['\n', '\t'], " "));
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(line.as_bytes()));
        if let Err(e) = written {
            panic!(
                "cannot append to {SKIP_LOG} file {}: {e}",
                path.to_string_lossy()
            );
        }
    }
}

/// A fresh, migrated database that cleans up after itself.
pub struct TestDb {
    db: Db,
    url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { admin_url: String, name: String },
}

impl TestDb {
    /// A new SQLite database in a temp directory.
    pub fn sqlite() -> Self {
        Self::sqlite_with(|_| {})
    }

    /// A new SQLite database, with the pool configuration adjusted by `tune`.
    pub fn sqlite_with(tune: impl FnOnce(&mut DbConfig)) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("confab-test-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create temp dir: {e}"));
        let url = format!("sqlite://{}", dir.path().join("test.db").display());
        let mut config = DbConfig::new(url.clone());
        config.max_connections = 16;
        tune(&mut config);
        let db = Db::open(&config).unwrap_or_else(|e| panic!("cannot open {url}: {e}"));
        TestDb {
            db,
            url,
            cleanup: Cleanup::Sqlite(dir),
        }
    }

    /// A new PostgreSQL database on `TEST_DATABASE_URL`'s server, or `None`
    /// when the variable is unset (panics then if `CONFAB_REQUIRE_POSTGRES=1`).
    pub fn postgres() -> Option<Self> {
        Self::postgres_with(|_| {})
    }

    /// [`TestDb::postgres`] with the pool configuration adjusted by `tune`.
    pub fn postgres_with(tune: impl FnOnce(&mut DbConfig)) -> Option<Self> {
        Self::server_with(TEST_DATABASE_URL, REQUIRE_POSTGRES, tune)
    }

    /// A new database on `TEST_PGVECTOR_URL`'s server (PostgreSQL with the
    /// pgvector extension), or `None` when unset (panics then if
    /// `CONFAB_REQUIRE_PGVECTOR=1`).
    pub fn pgvector() -> Option<Self> {
        Self::server_with(TEST_PGVECTOR_URL, REQUIRE_PGVECTOR, |_| {})
    }

    fn server_with(
        url_var: &str,
        require_var: &str,
        tune: impl FnOnce(&mut DbConfig),
    ) -> Option<Self> {
        let Some(admin_url) = std::env::var(url_var).ok().filter(|s| !s.is_empty()) else {
            if std::env::var(require_var).as_deref() == Ok("1") {
                panic!("{require_var}=1 but {url_var} is not set");
            }
            skipped(&format!("{url_var} is not set"));
            return None;
        };
        let name = format!("confab_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::establish(&admin_url)
            .unwrap_or_else(|e| panic!("cannot connect to {url_var}: {e}"));
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap_or_else(|e| panic!("cannot create database {name}: {e}"));
        let url = with_database(&admin_url, &name);
        let mut config = DbConfig::new(url.clone());
        config.max_connections = 16;
        config.connection_timeout = Duration::from_secs(10);
        tune(&mut config);
        let db = Db::open(&config).unwrap_or_else(|e| panic!("cannot open {name}: {e}"));
        Some(TestDb {
            db,
            url,
            cleanup: Cleanup::Postgres { admin_url, name },
        })
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The URL it was opened with.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Cleanup::Postgres { admin_url, name } = &self.cleanup {
            // Best effort: FORCE terminates connections the pool still holds.
            if let Ok(mut admin) = PgConnection::establish(admin_url) {
                let _ =
                    admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
            }
        }
    }
}

/// `url` with its database name replaced by `name` (query string kept).
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

/// Runs each listed `async fn NAME(db: Db)` in the calling module on SQLite,
/// on PostgreSQL and on PostgreSQL with pgvector, as tests `sqlite::NAME`,
/// `postgres::NAME` and `pgvector::NAME` (the last two return early, reported through [`skipped`],
/// when their server is not configured).
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let test_db = $crate::TestDb::sqlite();
                    super::$name(test_db.db().clone()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let Some(test_db) = $crate::TestDb::postgres() else {
                        return;
                    };
                    super::$name(test_db.db().clone()).await;
                }
            )*
        }
        mod pgvector {
            $(
                #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let Some(test_db) = $crate::TestDb::pgvector() else {
                        return;
                    };
                    super::$name(test_db.db().clone()).await;
                }
            )*
        }
    };
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn replaces_database_name() {
        assert_eq!(
            with_database("postgres://u:p@h:5432/postgres", "x"),
            "postgres://u:p@h:5432/x"
        );
        assert_eq!(
            with_database("postgres://u@h/postgres?sslmode=disable", "x"),
            "postgres://u@h/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h", "x"), "postgres://h/x");
    }
}
