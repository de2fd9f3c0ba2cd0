//! docs/CONFIG.md stays complete: every environment variable name the code
//! uses is documented there.
//!
//! The scan is deliberately broad and simple. In the Rust sources of
//! `crates/` and `bins/` (not `target/`; without the `#[cfg(test)] mod
//! tests` tail of `src/` files) every string literal shaped like a variable
//! name (`UPPER_CASE` with at least one `_`) counts: configuration is read
//! through `Vars::get("NAME")` / `parse_or("NAME", ..)` / `seconds(..)`,
//! `LlmConfig::from_vars`' `get("NAME")`, `std::env::var("NAME")` and small
//! helpers in tests and benchmarks, and every one of them takes the name as
//! such a literal, so a new variable cannot slip past whatever helper reads
//! it. The user-facing scripts (`${NAME:-default}`) and the env files
//! (`NAME=value` lines, commented or not) are scanned too. A name counts as
//! documented when CONFIG.md contains it as a whole word.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Literals of that shape that are not configuration confab reads: Cargo's
/// compile-time variables, and variables tests set or clear for the
/// child processes they start.
const NOT_CONFIG: &[&str] = &[
    "CARGO_MANIFEST_DIR",
    "CARGO_PKG_VERSION",
    "OUT_DIR",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_COLOR",
];

/// Scripts users run whose `${NAME:-default}` inputs must be documented.
const SCRIPTS: &[&str] = &[
    "scripts/run.sh",
    "scripts/models.sh",
    "scripts/stack-native.sh",
];

/// Env files whose `NAME=value` lines must be documented.
const ENV_FILES: &[&str] = &["docker/stack.env", ".env.example"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `UPPER_CASE` with at least one underscore, starting with a letter.
fn is_var_name(s: &str) -> bool {
    s.len() >= 3
        && s.starts_with(|c: char| c.is_ascii_uppercase())
        && s.contains('_')
        && !s.ends_with('_')
        && s.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// The contents of the string literals of Rust source `src` (comments,
/// char literals and lifetimes skipped; raw strings understood).
fn string_literals(src: &str) -> Vec<String> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                    i += 1;
                }
                i += 2;
            }
            b'r' if (b.get(i + 1) == Some(&b'"') || b.get(i + 1) == Some(&b'#'))
                && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_')) =>
            {
                let mut j = i + 1;
                let mut hashes = 0;
                while b.get(j) == Some(&b'#') {
                    hashes += 1;
                    j += 1;
                }
                if b.get(j) != Some(&b'"') {
                    i += 1;
                    continue;
                }
                let start = j + 1;
                let close: Vec<u8> = std::iter::once(b'"')
                    .chain(std::iter::repeat_n(b'#', hashes))
                    .collect();
                let end = b[start..]
                    .windows(close.len())
                    .position(|w| w == close.as_slice())
                    .map_or(b.len(), |p| start + p);
                out.push(String::from_utf8_lossy(&b[start..end]).into_owned());
                i = end + close.len();
            }
            b'"' => {
                let start = i + 1;
                let mut j = start;
                while j < b.len() && b[j] != b'"' {
                    j += if b[j] == b'\\' { 2 } else { 1 };
                }
                out.push(String::from_utf8_lossy(&b[start..j.min(b.len())]).into_owned());
                i = j + 1;
            }
            b'\'' => {
                // '\x', 'c' (char literals) or 'a (a lifetime).
                if b.get(i + 1) == Some(&b'\\') {
                    let mut j = i + 2;
                    while j < b.len() && b[j] != b'\'' {
                        j += 1;
                    }
                    i = j + 1;
                } else if let Some(c) = src[i + 1..].chars().next() {
                    let after = i + 1 + c.len_utf8();
                    i = if b.get(after) == Some(&b'\'') {
                        after + 1
                    } else {
                        i + 1
                    };
                } else {
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if path.is_dir() {
            if name != "target" && !name.to_string_lossy().starts_with('.') {
                rust_files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every variable name the code and the user-facing scripts use, with the
/// first file it was found in.
fn used_names(root: &Path) -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    let mut add = |name: &str, file: &Path| {
        if is_var_name(name) && !NOT_CONFIG.contains(&name) {
            found.entry(name.to_owned()).or_insert_with(|| {
                file.strip_prefix(root)
                    .unwrap_or(file)
                    .display()
                    .to_string()
            });
        }
    };

    let mut files = Vec::new();
    rust_files(&root.join("crates"), &mut files);
    rust_files(&root.join("bins"), &mut files);
    assert!(files.len() > 50, "found only {} Rust files", files.len());
    let this_file = Path::new(file!()).file_name();
    for file in files.iter().filter(|f| f.file_name() != this_file) {
        let mut text = std::fs::read_to_string(file).unwrap();
        let in_src = file.components().any(|c| c.as_os_str() == "src");
        if in_src && let Some(pos) = text.find("#[cfg(test)]\nmod tests") {
            text.truncate(pos);
        }
        for lit in string_literals(&text) {
            add(&lit, file);
        }
    }

    for script in SCRIPTS {
        let file = root.join(script);
        let text = std::fs::read_to_string(&file).unwrap();
        for (pos, _) in text.match_indices("${") {
            let rest = &text[pos + 2..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let after = &rest[name.len()..];
            if after.starts_with(":-") || after.starts_with(":=") || after.starts_with('-') {
                add(&name, &file);
            }
        }
    }

    for env_file in ENV_FILES {
        let file = root.join(env_file);
        let text = std::fs::read_to_string(&file).unwrap();
        for line in text.lines() {
            let line = line.trim().trim_start_matches('#').trim();
            let line = line.strip_prefix("export ").unwrap_or(line);
            if let Some((name, _)) = line.split_once('=') {
                add(name.trim(), &file);
            }
        }
    }
    found
}

/// Whether `doc` mentions `name` as a whole word (so `REDIS_URL` is not
/// documented by `TEST_REDIS_URL` alone).
fn mentions(doc: &str, name: &str) -> bool {
    let word = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    doc.match_indices(name).any(|(p, _)| {
        !word(doc[..p].chars().next_back()) && !word(doc[p + name.len()..].chars().next())
    })
}

/// The used names `doc` does not mention, with where each is used.
fn undocumented(used: &BTreeMap<String, String>, doc: &str) -> Vec<String> {
    used.iter()
        .filter(|(name, _)| !mentions(doc, name))
        .map(|(name, file)| format!("{name} (used in {file})"))
        .collect()
}

fn config_md() -> String {
    std::fs::read_to_string(root().join("docs/CONFIG.md")).unwrap()
}

#[test]
fn config_md_names_every_variable_the_code_reads() {
    let used = used_names(&root());
    let missing = undocumented(&used, &config_md());
    assert!(
        missing.is_empty(),
        "docs/CONFIG.md does not mention these variables; add a row for each \
         (default, which binary or script, meaning):\n  {}",
        missing.join("\n  ")
    );
}

#[test]
fn the_scan_sees_known_reads_and_a_deleted_row_fails() {
    let used = used_names(&root());
    for known in [
        "REDIS_URL",                   // Vars::get in bins/api-gateway/src/config.rs
        "CACHE_USER_TTL_SECS",         // a multi-line vars.seconds(..) call
        "CONFAB_LOCAL_THREADS",        // LlmConfig::from_vars' get(..)
        "METRICS_TOKEN",               // crates/web
        "TEST_REDIS_URL",              // std::env::var in a test
        "CONFAB_REQUIRE_LOCAL_MODELS", // a test's require switch
        "CONFAB_BENCH_QUICK",          // benches
        "CONFAB_SKIP_MODELS",          // scripts/run.sh
        "STACK_PG_PORT",               // scripts/stack-native.sh
        "POSTGRES_PASSWORD",           // .env.example
    ] {
        assert!(used.contains_key(known), "the scan missed {known}");
    }
    assert!(!used.contains_key("CARGO_MANIFEST_DIR"));

    // Deleting every line that names REDIS_URL (but keeping the
    // TEST_REDIS_URL lines that do not) must be reported.
    let doc = config_md();
    let cut: String = doc
        .lines()
        .filter(|l| !mentions(l, "REDIS_URL"))
        .collect::<Vec<_>>()
        .join("\n");
    let missing = undocumented(&used, &cut);
    assert!(
        missing.iter().any(|m| m.starts_with("REDIS_URL ")),
        "a deleted REDIS_URL row went unnoticed: {missing:?}"
    );
    assert!(
        !missing.iter().any(|m| m.starts_with("TEST_REDIS_URL ")),
        "TEST_REDIS_URL is still documented: {missing:?}"
    );
}

#[test]
fn literal_scanner_skips_comments_and_chars() {
    let src = r##"
        // vars.get("IN_A_COMMENT")
        /* "IN_A_BLOCK" */
        let q = '"'; let e = '\''; fn f<'a>(x: &'a str) {}
        vars.parse_or(
            "REAL_ONE", 5)?;
        let raw = r#"RAW_ONE"#;
    "##;
    let lits = string_literals(src);
    assert_eq!(lits, vec!["REAL_ONE".to_owned(), "RAW_ONE".to_owned()]);
}
