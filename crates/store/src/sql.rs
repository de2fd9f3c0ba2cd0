//! Raw SQL helpers shared by the domain crates: placeholders for both
//! backends, [`raw_load!`](crate::raw_load), and full-text query builders
//! that turn any user input into plain words.

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
