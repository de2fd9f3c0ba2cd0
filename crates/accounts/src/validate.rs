//! Input validation: emails, display names, the password policy, settings
//! patches, catalogue ids. Every check returns a distinct [`AccountsError`];
//! nothing here panics on any input.

use chrono::{DateTime, NaiveDateTime, SubsecRound, Utc};
use confab_models::accounts::{AiStyle, UserSettings};
use serde_json::{Map, Value};

use crate::error::AccountsError;

/// Shortest password accepted, in characters.
pub const MIN_PASSWORD_CHARS: usize = 10;
/// Longest password accepted, in bytes (hashing cost is bounded).
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// Fewest different characters a password must use.
pub const MIN_DISTINCT_CHARS: usize = 5;
/// Longest display name, in characters.
pub const MAX_DISPLAY_NAME: usize = 100;
/// Longest email address, in bytes.
const MAX_EMAIL: usize = 254;
/// Longest preferred model name.
const MAX_MODEL_NAME: usize = 200;
/// Longest catalogue id.
pub const MAX_SLUG: usize = 100;

/// The current time, at the microsecond precision both backends store.
pub(crate) fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// [`now`] as stored.
pub(crate) fn now_naive() -> NaiveDateTime {
    now().naive_utc()
}

/// Checks an email address and returns it trimmed and lowercased.
pub fn email(value: &str) -> Result<String, AccountsError> {
    let e = value.trim().to_lowercase();
    let bad = |why: &str| Err(AccountsError::InvalidEmail(why.to_owned()));
    if e.is_empty() {
        return bad("it is empty");
    }
    if e.len() > MAX_EMAIL {
        return bad("it is longer than 254 bytes");
    }
    let Some((local, domain)) = e.rsplit_once('@') else {
        return bad("it has no @");
    };
    if local.is_empty() || local.chars().count() > 64 {
        return bad("the part before @ must be 1 to 64 characters");
    }
    let local_ok = local.chars().all(|c| {
        c.is_alphanumeric() || (c.is_ascii_punctuation() && !"\"(),:;<>@[\\]`".contains(c))
    });
    if !local_ok || local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return bad("the part before @ contains characters that are not allowed");
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 {
        return bad("the domain needs a dot (like example.com)");
    }
    for label in &labels {
        if label.is_empty()
            || label.chars().count() > 63
            || label.starts_with('-')
            || label.ends_with('-')
            || !label.chars().all(|c| c.is_alphanumeric() || c == '-')
        {
            return bad("the domain is not a valid host name");
        }
    }
    if labels
        .last()
        .is_some_and(|tld| tld.chars().all(|c| c.is_ascii_digit()))
    {
        return bad("the domain is not a valid host name");
    }
    Ok(e)
}

/// Checks a password against the policy: at least [`MIN_PASSWORD_CHARS`]
/// characters, characters of at least two kinds (lowercase, uppercase,
/// digits, symbols), at least [`MIN_DISTINCT_CHARS`] different
/// characters, and not the email address or its name part. The error
/// lists everything that is missing.
pub fn password(password: &str, email: &str) -> Result<(), AccountsError> {
    let mut problems: Vec<String> = Vec::new();
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        problems.push(format!(
            "it must be at least {MIN_PASSWORD_CHARS} characters long (it has {chars})"
        ));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        problems.push(format!(
            "it must be at most {MAX_PASSWORD_BYTES} bytes long"
        ));
    }
    if password.chars().any(char::is_control) {
        problems.push("it must not contain control characters".to_owned());
    }
    let (mut lower, mut upper, mut digit, mut other) = (false, false, false, false);
    for c in password.chars() {
        if c.is_lowercase() {
            lower = true;
        } else if c.is_uppercase() {
            upper = true;
        } else if c.is_numeric() {
            digit = true;
        } else {
            other = true;
        }
    }
    let kinds = [lower, upper, digit, other].iter().filter(|k| **k).count();
    if chars > 0 && kinds < 2 {
        let (only, add) = if lower {
            ("lowercase letters", "uppercase letters, digits or symbols")
        } else if upper {
            ("uppercase letters", "lowercase letters, digits or symbols")
        } else if digit {
            ("digits", "letters or symbols")
        } else {
            ("symbols", "letters or digits")
        };
        problems.push(format!("it uses only {only}: add {add}"));
    }
    let mut distinct: Vec<char> = password.chars().collect();
    distinct.sort_unstable();
    distinct.dedup();
    if chars > 0 && distinct.len() < MIN_DISTINCT_CHARS {
        problems.push(format!(
            "it must use at least {MIN_DISTINCT_CHARS} different characters (it uses {})",
            distinct.len()
        ));
    }
    let lowered = password.trim().to_lowercase();
    let email = email.trim().to_lowercase();
    if !email.is_empty() {
        let name = email.rsplit_once('@').map_or("", |(l, _)| l);
        if lowered == email || (!name.is_empty() && lowered == name) {
            problems.push("it must not be your email address".to_owned());
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(AccountsError::WeakPassword(problems.join("; ")))
    }
}

/// Checks and trims a display name.
pub fn display_name(value: &str) -> Result<String, AccountsError> {
    let v = value.trim();
    if v.is_empty() {
        return Err(AccountsError::InvalidField {
            field: "display_name",
            reason: "must not be empty".into(),
        });
    }
    if v.chars().count() > MAX_DISPLAY_NAME {
        return Err(AccountsError::InvalidField {
            field: "display_name",
            reason: format!("must be at most {MAX_DISPLAY_NAME} characters"),
        });
    }
    if v.chars().any(char::is_control) {
        return Err(AccountsError::InvalidField {
            field: "display_name",
            reason: "must not contain control characters".into(),
        });
    }
    Ok(v.to_owned())
}

/// Checks a short name (an API key's name, a title) of at most `max` characters.
pub(crate) fn short_name(
    field: &'static str,
    value: &str,
    max: usize,
) -> Result<String, AccountsError> {
    let v = value.trim();
    if v.is_empty() {
        return Err(AccountsError::InvalidField {
            field,
            reason: "must not be empty".into(),
        });
    }
    if v.chars().count() > max || v.chars().any(char::is_control) {
        return Err(AccountsError::InvalidField {
            field,
            reason: format!("must be at most {max} printable characters"),
        });
    }
    Ok(v.to_owned())
}

/// RFC 7396 JSON merge patch of `patch` onto `target`.
fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = Value::Object(Map::new());
            }
            if let Value::Object(t) = target {
                for (k, v) in p {
                    if v.is_null() {
                        t.remove(k);
                    } else {
                        merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                    }
                }
            }
        }
        other => *target = other.clone(),
    }
}

/// Applies a settings merge patch to the stored settings and checks the
/// result: `ai_style` one of the styles, `preferred_model` a short name or
/// null, the whole at most `max_bytes` of JSON. Returns the new object.
pub(crate) fn settings_patch(
    current: &Map<String, Value>,
    patch: &Value,
    max_bytes: usize,
) -> Result<Map<String, Value>, AccountsError> {
    let bad = |field: &'static str, reason: String| AccountsError::InvalidField { field, reason };
    if !patch.is_object() {
        return Err(bad("settings", "must be a JSON object".into()));
    }
    let mut merged = Value::Object(current.clone());
    merge_patch(&mut merged, patch);
    let Value::Object(mut map) = merged else {
        return Err(bad("settings", "must be a JSON object".into()));
    };
    match map.get("ai_style") {
        None => {}
        Some(Value::String(s)) if s.parse::<AiStyle>().is_ok() => {}
        Some(other) => {
            let allowed: Vec<&str> = AiStyle::ALL.iter().map(|s| s.as_str()).collect();
            return Err(bad(
                "ai_style",
                format!("must be one of {}, not {other}", allowed.join(", ")),
            ));
        }
    }
    match map.get("preferred_model").cloned() {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => {
            let t = s.trim();
            if t.is_empty() {
                map.insert("preferred_model".into(), Value::Null);
            } else if t.chars().count() > MAX_MODEL_NAME || t.chars().any(char::is_control) {
                return Err(bad(
                    "preferred_model",
                    format!("must be at most {MAX_MODEL_NAME} printable characters"),
                ));
            } else {
                map.insert("preferred_model".into(), Value::String(t.to_owned()));
            }
        }
        Some(_) => {
            return Err(bad(
                "preferred_model",
                "must be a model name or null".into(),
            ));
        }
    }
    let size = serde_json::to_string(&map).map_or(usize::MAX, |s| s.len());
    if size > max_bytes {
        return Err(bad(
            "settings",
            format!("are {size} bytes of JSON; the limit is {max_bytes}"),
        ));
    }
    Ok(map)
}

/// Settings as typed, from the stored object.
pub(crate) fn settings_from_map(map: Map<String, Value>) -> Result<UserSettings, AccountsError> {
    serde_json::from_value(Value::Object(map))
        .map_err(|e| AccountsError::Corrupt(format!("settings: {e}")))
}

/// Whether `id` is a catalogue id: 1 to [`MAX_SLUG`] characters of `a-z`,
/// `0-9`, `-` and `_`, starting with a letter or digit.
pub fn is_slug(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_SLUG
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && id.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
}

/// A catalogue id made from a name: ASCII letters and digits lowercased,
/// runs of anything else as one `-`; empty when nothing is left.
pub fn slugify(name: &str) -> String {
    let mut out = String::new();
    let mut dash = false;
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            if dash && !out.is_empty() {
                out.push('-');
            }
            dash = false;
            out.push(c.to_ascii_lowercase());
        } else {
            dash = true;
        }
        if out.len() >= MAX_SLUG {
            break;
        }
    }
    out.truncate(MAX_SLUG);
    out.trim_end_matches('-').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn emails() {
        assert_eq!(email("  Alice@Example.COM ").unwrap(), "alice@example.com");
        assert_eq!(
            email("a.b+tag@sub.example.org").unwrap(),
            "a.b+tag@sub.example.org"
        );
        assert_eq!(email("юзер@пример.рф").unwrap(), "юзер@пример.рф");
        for bad in [
            "",
            "plain",
            "@example.com",
            "a@",
            "a@localhost",
            "a@b..com",
            "a b@example.com",
            ".a@example.com",
            "a..b@example.com",
            "a@-x.com",
            "a@1.2.3.4",
            "a@exa mple.com",
            "a\n@example.com",
        ] {
            assert!(
                matches!(email(bad), Err(AccountsError::InvalidEmail(_))),
                "{bad:?}"
            );
        }
        assert!(email(&format!("{}@example.com", "a".repeat(65))).is_err());
    }

    fn weak(pw: &str, mail: &str) -> String {
        match password(pw, mail) {
            Err(AccountsError::WeakPassword(m)) => m,
            other => panic!("{pw:?}: {other:?}"),
        }
    }

    #[test]
    fn password_policy() {
        password("Correct horse 7", "a@example.com").unwrap();
        password("correct-horse-battery", "a@example.com").unwrap();
        password("пароль-надёжный", "a@example.com").unwrap();
        assert_eq!(
            weak("Ab1!x", "a@example.com"),
            "it must be at least 10 characters long (it has 5)"
        );
        assert_eq!(
            weak("abcdefghijkl", "a@example.com"),
            "it uses only lowercase letters: add uppercase letters, digits or symbols"
        );
        assert_eq!(
            weak("1234567890", "a@example.com"),
            "it uses only digits: add letters or symbols"
        );
        assert_eq!(
            weak("ABCDEFGHIJKL", "a@example.com"),
            "it uses only uppercase letters: add lowercase letters, digits or symbols"
        );
        assert_eq!(
            weak("aA1aA1aA1aA1", "a@example.com"),
            "it must use at least 5 different characters (it uses 3)"
        );
        assert_eq!(
            weak("Alice.Smith@Example.com", "alice.smith@example.com"),
            "it must not be your email address"
        );
        assert_eq!(
            weak("alice.smith", "alice.smith@example.com"),
            "it must not be your email address"
        );
        let both = weak("12345", "a@example.com");
        assert!(both.contains("at least 10 characters"), "{both}");
        assert!(both.contains("only digits"), "{both}");
        assert!(weak(&"aB3$".repeat(300), "").contains("at most 1024 bytes"));
    }

    #[test]
    fn display_names() {
        assert_eq!(display_name("  Ann  ").unwrap(), "Ann");
        assert!(display_name(" ").is_err());
        assert!(display_name("a\u{7}").is_err());
        assert!(display_name(&"я".repeat(101)).is_err());
    }

    #[test]
    fn settings_patches() {
        let cur = Map::new();
        let m = settings_patch(
            &cur,
            &json!({"ai_style": "socratic", "preferred_model": " llama3 ", "theme": {"dark": true}}),
            8192,
        )
        .unwrap();
        assert_eq!(m["ai_style"], "socratic");
        assert_eq!(m["preferred_model"], "llama3");
        let m2 = settings_patch(
            &m,
            &json!({"theme": {"dark": null, "font": 14}, "preferred_model": null}),
            8192,
        )
        .unwrap();
        assert_eq!(m2["theme"], json!({"font": 14}));
        assert!(!m2.contains_key("preferred_model"));
        assert_eq!(m2["ai_style"], "socratic");
        let typed = settings_from_map(m2).unwrap();
        assert_eq!(typed.ai_style, AiStyle::Socratic);
        assert_eq!(typed.preferred_model, None);
        assert_eq!(typed.extra["theme"], json!({"font": 14}));
        for bad in [
            json!({"ai_style": "rude"}),
            json!({"ai_style": 3}),
            json!({"preferred_model": 5}),
            json!([1]),
            json!("x"),
        ] {
            assert!(
                matches!(
                    settings_patch(&cur, &bad, 8192),
                    Err(AccountsError::InvalidField { .. })
                ),
                "{bad}"
            );
        }
        assert!(settings_patch(&cur, &json!({"k": "v".repeat(9000)}), 8192).is_err());
        assert_eq!(
            settings_patch(&cur, &json!({"preferred_model": "  "}), 8192).unwrap()["preferred_model"],
            Value::Null
        );
    }

    #[test]
    fn slugs() {
        assert!(is_slug("rust-basics"));
        assert!(is_slug("a_1"));
        assert!(!is_slug("-a"));
        assert!(!is_slug("A"));
        assert!(!is_slug("a/b"));
        assert!(!is_slug(""));
        assert!(!is_slug(&"a".repeat(101)));
        assert_eq!(slugify("  Ownership & Borrowing!  "), "ownership-borrowing");
        assert_eq!(slugify("Привет"), "");
        assert_eq!(slugify("01-intro"), "01-intro");
        assert_eq!(slugify(&"ab ".repeat(100)).len(), 100);
    }
}
