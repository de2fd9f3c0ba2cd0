//! Raw SQL helpers shared by the domain crates: placeholders for both
//! backends, [`raw_load!`](crate::raw_load), and full-text query builders
//! that turn any user input into plain words.

use std::marker::PhantomData;

use diesel::backend::Backend;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::serialize::ToSql;
use diesel::sql_types::{HasSqlType, Untyped};
use diesel::{QueryResult, RunQueryDsl};

/// Rewrites `?` placeholders as `$1, $2, ...` for PostgreSQL.
pub fn pg_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut n = 0;
    for ch in sql.chars() {
        if ch == '?' {
            n += 1;
            out.push('$');
            out.push_str(&n.to_string());
        } else {
            out.push(ch);
        }
    }
    out
}

/// Runs one `sql_query` (written with `?` placeholders) on whichever
/// backend the connection is, binding `type => value` pairs in order.
#[macro_export]
macro_rules! raw_load {
    ($conn:expr, $sql:expr, $row:ty; $($ty:ty => $val:expr),* $(,)?) => {{
        use $crate::diesel::RunQueryDsl as _;
        match $conn {
            $crate::DbConnection::Sqlite(c) => $crate::diesel::sql_query($sql)
                $(.bind::<$ty, _>($val))*
                .load::<$row>(c),
            $crate::DbConnection::Pg(c) => $crate::diesel::sql_query($crate::sql::pg_placeholders($sql))
                $(.bind::<$ty, _>($val))*
                .load::<$row>(c),
        }
    }};
}

/// Raw SQL with a constant text, whose prepared statement the connection
/// keeps and reuses, on either backend.
///
/// Diesel never caches a `sql_query` (its text could be anything), so a
/// hot raw query is parsed and planned again on every call: about 7% of
/// chat-service's CPU on `/v1` (`make bench-gateway` under `perf`). The
/// text here is a `&'static str`, so the cache (keyed by text) stays
/// bounded. Every `?` is a placeholder (written `$n` on PostgreSQL); bind
/// one value per `?`, in order, with [`CachedSql::bind`] and
/// [`Bound::bind`].
#[derive(Debug, Clone, Copy)]
pub struct CachedSql(pub &'static str);

impl CachedSql {
    /// Binds the value of the first `?`.
    pub fn bind<ST, V>(self, value: V) -> Bound<Self, V, ST> {
        Bound {
            query: self,
            value,
            sql: self.0,
            index: 1,
            sql_type: PhantomData,
        }
    }
}

/// The `n`th piece of `sql` split at its placeholders (empty past the end).
fn segment(sql: &str, n: usize) -> &str {
    sql.split('?').nth(n).unwrap_or_default()
}

impl QueryId for CachedSql {
    type QueryId = ();
    // No static id: the statement cache keys it by its SQL text.
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<DB: Backend> QueryFragment<DB> for CachedSql {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql(segment(self.0, 0));
        Ok(())
    }
}

impl Query for CachedSql {
    type SqlType = Untyped;
}

impl<Conn> RunQueryDsl<Conn> for CachedSql {}

/// A [`CachedSql`] with its first `index` placeholders bound.
#[derive(Debug, Clone, Copy)]
pub struct Bound<Q, V, ST> {
    query: Q,
    value: V,
    sql: &'static str,
    index: usize,
    sql_type: PhantomData<ST>,
}

impl<Q, V, ST> Bound<Q, V, ST> {
    /// Binds the value of the next `?`.
    pub fn bind<ST2, V2>(self, value: V2) -> Bound<Self, V2, ST2> {
        let (sql, index) = (self.sql, self.index + 1);
        Bound {
            query: self,
            value,
            sql,
            index,
            sql_type: PhantomData,
        }
    }
}

impl<Q, V, ST> QueryId for Bound<Q, V, ST> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q, V, ST, DB> QueryFragment<DB> for Bound<Q, V, ST>
where
    DB: Backend + HasSqlType<ST>,
    Q: QueryFragment<DB>,
    V: ToSql<ST, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        self.query.walk_ast(out.reborrow())?;
        out.push_bind_param(&self.value)?;
        out.push_sql(segment(self.sql, self.index));
        Ok(())
    }
}

impl<Q, V, ST> Query for Bound<Q, V, ST> {
    type SqlType = Untyped;
}

impl<Conn, Q, V, ST> RunQueryDsl<Conn> for Bound<Q, V, ST> {}

/// Most words of a search query that are used.
const MAX_TOKENS: usize = 32;
/// Longest word kept (longer ones are cut).
const MAX_TOKEN_CHARS: usize = 64;

/// The words of a user's search query: runs of letters and digits,
/// lowercased. Everything else (quotes, operators, SQL) is a separator, so
/// no input can change the meaning of the full-text query.
pub fn search_tokens(query: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for word in query.split(|c: char| !c.is_alphanumeric()) {
        if word.is_empty() {
            continue;
        }
        let token: String = word
            .chars()
            .take(MAX_TOKEN_CHARS)
            .collect::<String>()
            .to_lowercase();
        if !out.contains(&token) {
            out.push(token);
        }
        if out.len() == MAX_TOKENS {
            break;
        }
    }
    out
}

/// An FTS5 MATCH expression: every token quoted, all required (`any` = false) or any one.
pub fn fts5_match(tokens: &[String], any: bool) -> String {
    let words = tokens.iter().map(|t| (t.as_str(), false));
    join_terms(words, '"', "*", if any { " OR " } else { " " })
}

/// A `to_tsquery` expression: every token quoted, joined by `&` or `|`.
pub fn tsquery(tokens: &[String], any: bool) -> String {
    let words = tokens.iter().map(|t| (t.as_str(), false));
    join_terms(words, '\'', ":*", if any { " | " } else { " & " })
}

/// Quotes each `(word, prefix)` (tokens hold no quotes: see
/// [`search_tokens`]), marks prefixes, joins them with `sep`.
fn join_terms<'a>(
    terms: impl Iterator<Item = (&'a str, bool)>,
    quote: char,
    prefix_mark: &str,
    sep: &str,
) -> String {
    let quoted: Vec<String> = terms
        .map(|(t, prefix)| format!("{quote}{t}{quote}{}", if prefix { prefix_mark } else { "" }))
        .collect();
    quoted.join(sep)
}

/// One word of a full-text query, from [`search_tokens`] (letters and
/// digits only): matched whole, or as the prefix of indexed words (a stem,
/// so that `borrow` finds `borrowed`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryTerm {
    /// The word or stem.
    pub text: String,
    /// Whether indexed words that start with `text` match too.
    pub prefix: bool,
}

/// An FTS5 MATCH expression matching any of `terms` (`"word"`, `"stem"*`).
pub fn fts5_any(terms: &[QueryTerm]) -> String {
    join_terms(
        terms.iter().map(|t| (t.text.as_str(), t.prefix)),
        '"',
        "*",
        " OR ",
    )
}

/// A `to_tsquery` expression matching any of `terms` (`'word'`, `'stem':*`).
pub fn tsquery_any(terms: &[QueryTerm]) -> String {
    join_terms(
        terms.iter().map(|t| (t.text.as_str(), t.prefix)),
        '\'',
        ":*",
        " | ",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders() {
        assert_eq!(
            pg_placeholders("a = ? AND b = ? OR c = ?"),
            "a = $1 AND b = $2 OR c = $3"
        );
    }

    /// A `CachedSql` statement is prepared once per connection and reused;
    /// a `sql_query` of the same text is prepared on every call.
    #[test]
    fn cached_sql_is_prepared_once() {
        use diesel::connection::{Connection as _, InstrumentationEvent};
        use diesel::sql_types::{BigInt, Text};
        use std::sync::{Arc, Mutex};

        #[derive(diesel::QueryableByName, Debug, PartialEq)]
        struct Row {
            #[diesel(sql_type = BigInt)]
            n: i64,
            #[diesel(sql_type = Text)]
            s: String,
        }
        let mut conn = diesel::SqliteConnection::establish(":memory:").expect("sqlite");
        let cached = Arc::new(Mutex::new(Vec::<String>::new()));
        let seen = cached.clone();
        conn.set_instrumentation(move |event: InstrumentationEvent<'_>| {
            if let InstrumentationEvent::CacheQuery { sql, .. } = event {
                seen.lock().expect("lock").push(sql.to_owned());
            }
        });
        const SQL: &str = "SELECT ? + 1 AS n, ? AS s";
        for i in 0..3_i64 {
            let rows: Vec<Row> = CachedSql(SQL)
                .bind::<BigInt, _>(i)
                .bind::<Text, _>(format!("v{i}"))
                .load(&mut conn)
                .expect("load");
            assert_eq!(
                rows,
                [Row {
                    n: i + 1,
                    s: format!("v{i}")
                }]
            );
        }
        for _ in 0..2 {
            let _: Vec<Row> = diesel::sql_query("SELECT 1 AS n, 'x' AS s")
                .load(&mut conn)
                .expect("load");
        }
        assert_eq!(*cached.lock().expect("lock"), [SQL.to_owned()]);
    }

    #[test]
    fn prefix_terms() {
        let terms = [
            QueryTerm {
                text: "mutably".into(),
                prefix: false,
            },
            QueryTerm {
                text: "mutabl".into(),
                prefix: true,
            },
        ];
        assert_eq!(fts5_any(&terms), "\"mutably\" OR \"mutabl\"*");
        assert_eq!(tsquery_any(&terms), "'mutably' | 'mutabl':*");
        assert_eq!(fts5_any(&[]), "");
    }

    #[test]
    fn tokens_strip_syntax() {
        assert_eq!(
            search_tokens(r#""Hello" wor*ld NEAR(a b) -x '; DROP TABLE t; --"#),
            [
                "hello", "wor", "ld", "near", "a", "b", "x", "drop", "table", "t"
            ]
        );
        assert_eq!(
            search_tokens("Привет, МИР! שלום"),
            ["привет", "мир", "שלום"]
        );
        assert!(search_tokens(" \"*()-' ").is_empty());
        assert_eq!(search_tokens(&"word ".repeat(5000)), ["word"]);
        assert_eq!(search_tokens(&"x".repeat(10_000))[0].len(), 64);
        assert_eq!(fts5_match(&["a".into(), "b".into()], false), r#""a" "b""#);
        assert_eq!(fts5_match(&["a".into(), "b".into()], true), r#""a" OR "b""#);
        assert_eq!(tsquery(&["a".into(), "b".into()], false), "'a' & 'b'");
    }
}
