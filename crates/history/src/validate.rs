//! Input validation shared by the services. Every check returns a distinct
//! [`HistoryError`]; nothing here panics on any input.

use chrono::{DateTime, NaiveDateTime, SubsecRound, Utc};
use confab_models::Metadata;
use uuid::Uuid;

use crate::config::HistoryConfig;
use crate::error::HistoryError;

/// Longest user id accepted.
const MAX_USER_ID: usize = 128;
/// Longest short identifier (model, agent, course) accepted.
const MAX_NAME: usize = 200;

/// The current time, at the microsecond precision both backends store.
pub(crate) fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// [`now`] as stored.
pub(crate) fn now_naive() -> NaiveDateTime {
    now().naive_utc()
}

fn shorten(s: &str) -> String {
    let mut out: String = s.chars().take(64).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

/// Parses a session or message id.
pub(crate) fn id(kind: &'static str, value: &str) -> Result<Uuid, HistoryError> {
    Uuid::parse_str(value.trim()).map_err(|_| HistoryError::InvalidId {
        kind,
        value: shorten(value),
    })
}

/// Longest external session key (seed 004), in characters.
pub const MAX_EXTERNAL_KEY: usize = 200;

/// Checks an external session key (seed 004): trimmed, 1..=200 printable
/// characters.
pub(crate) fn external_key(key: &str) -> Result<String, HistoryError> {
    let key = key.trim();
    if key.is_empty() || key.chars().count() > MAX_EXTERNAL_KEY || key.chars().any(char::is_control)
    {
        return Err(HistoryError::InvalidField {
            field: "session_id",
            reason: format!("must have 1..={MAX_EXTERNAL_KEY} printable characters"),
        });
    }
    Ok(key.to_owned())
}

/// Checks a user id.
pub(crate) fn user(user_id: &str) -> Result<(), HistoryError> {
    if user_id.is_empty() {
        return Err(HistoryError::InvalidUser("empty".into()));
    }
    if user_id.chars().count() > MAX_USER_ID {
        return Err(HistoryError::InvalidUser(format!(
            "longer than {MAX_USER_ID} characters"
        )));
    }
    if user_id.chars().any(char::is_control) {
        return Err(HistoryError::InvalidUser(
            "contains control characters".into(),
        ));
    }
    Ok(())
}

/// Checks and trims a title.
pub(crate) fn title(config: &HistoryConfig, title: &str) -> Result<String, HistoryError> {
    let t = title.trim();
    if t.is_empty() {
        return Err(HistoryError::EmptyTitle);
    }
    let len = t.chars().count();
    if len > config.max_title_chars {
        return Err(HistoryError::TitleTooLong {
            len,
            max: config.max_title_chars,
        });
    }
    if t.contains('\0') {
        return Err(HistoryError::InvalidField {
            field: "title",
            reason: "contains a NUL character".into(),
        });
    }
    Ok(t.to_owned())
}

/// Checks message content (kept as given: whitespace can matter in code blocks).
pub(crate) fn content(config: &HistoryConfig, content: &str) -> Result<(), HistoryError> {
    if content.trim().is_empty() {
        return Err(HistoryError::EmptyContent);
    }
    if content.len() > config.max_content_bytes {
        return Err(HistoryError::ContentTooLong {
            len: content.len(),
            max: config.max_content_bytes,
        });
    }
    if content.contains('\0') {
        return Err(HistoryError::InvalidField {
            field: "content",
            reason: "contains a NUL character".into(),
        });
    }
    Ok(())
}

/// Checks a short free text (memory item, feedback comment): trimmed, at
/// most `max_chars` characters, no NUL. Blank text is `None`.
pub(crate) fn short_text(
    field: &'static str,
    value: &str,
    max_chars: usize,
) -> Result<Option<String>, HistoryError> {
    let v = value.trim();
    if v.is_empty() {
        return Ok(None);
    }
    let len = v.chars().count();
    if len > max_chars {
        return Err(HistoryError::InvalidField {
            field,
            reason: format!("is {len} characters long; the limit is {max_chars}"),
        });
    }
    if v.contains('\0') {
        return Err(HistoryError::InvalidField {
            field,
            reason: "contains a NUL character".into(),
        });
    }
    Ok(Some(v.to_owned()))
}

/// Checks a short name such as a model, agent or course id.
pub(crate) fn name(field: &'static str, value: &str) -> Result<String, HistoryError> {
    let v = value.trim();
    if v.is_empty() {
        return Err(HistoryError::InvalidField {
            field,
            reason: "must not be empty".into(),
        });
    }
    if v.chars().count() > MAX_NAME || v.chars().any(char::is_control) {
        return Err(HistoryError::InvalidField {
            field,
            reason: format!("must be at most {MAX_NAME} printable characters"),
        });
    }
    Ok(v.to_owned())
}

/// Checks metadata: absent or `null` is an empty object; anything but an object is refused.
pub(crate) fn metadata(
    config: &HistoryConfig,
    value: Option<serde_json::Value>,
) -> Result<Metadata, HistoryError> {
    use serde_json::Value;
    let map = match value {
        None | Some(Value::Null) => return Ok(Metadata::new()),
        Some(Value::Object(map)) => map,
        Some(Value::Array(_)) => return Err(HistoryError::MetadataNotObject("an array")),
        Some(Value::String(_)) => return Err(HistoryError::MetadataNotObject("a string")),
        Some(Value::Number(_)) => return Err(HistoryError::MetadataNotObject("a number")),
        Some(Value::Bool(_)) => return Err(HistoryError::MetadataNotObject("a boolean")),
    };
    let size = metadata_json(&map).len();
    if size > config.max_metadata_bytes {
        return Err(HistoryError::InvalidField {
            field: "metadata",
            reason: format!(
                "is {size} bytes of JSON; the limit is {}",
                config.max_metadata_bytes
            ),
        });
    }
    Ok(map)
}

/// Metadata as stored.
pub(crate) fn metadata_json(map: &Metadata) -> String {
    // Serialising a map of JSON values cannot fail.
    serde_json::to_string(map).unwrap_or_else(|_| "{}".to_owned())
}

/// Most tokens one message may account for (sums over millions of
/// messages stay far inside `i64`).
pub const MAX_TOKENS_USED: i64 = 1_000_000_000;
/// Longest response time recorded, in seconds (a day).
pub const MAX_RESPONSE_TIME: f64 = 86_400.0;

/// Checks `tokens_used` and `response_time`.
pub(crate) fn accounting(
    tokens_used: Option<i64>,
    response_time: Option<f64>,
) -> Result<(), HistoryError> {
    if tokens_used.is_some_and(|t| !(0..=MAX_TOKENS_USED).contains(&t)) {
        return Err(HistoryError::InvalidField {
            field: "tokens_used",
            reason: format!("must be between 0 and {MAX_TOKENS_USED}"),
        });
    }
    if response_time.is_some_and(|t| !t.is_finite() || !(0.0..=MAX_RESPONSE_TIME).contains(&t)) {
        return Err(HistoryError::InvalidField {
            field: "response_time",
            reason: format!("must be a number of seconds between 0 and {MAX_RESPONSE_TIME}"),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounting_is_bounded() {
        assert!(accounting(Some(0), Some(0.0)).is_ok());
        assert!(accounting(Some(MAX_TOKENS_USED), Some(MAX_RESPONSE_TIME)).is_ok());
        assert!(accounting(Some(MAX_TOKENS_USED + 1), None).is_err());
        assert!(accounting(Some(i64::MAX), None).is_err());
        assert!(accounting(Some(-1), None).is_err());
        assert!(accounting(None, Some(MAX_RESPONSE_TIME + 1.0)).is_err());
        assert!(accounting(None, Some(f64::NAN)).is_err());
    }
    use serde_json::json;

    #[test]
    fn rejects_bad_input_with_distinct_errors() {
        let c = HistoryConfig::default();
        assert!(matches!(
            id("session", "x"),
            Err(HistoryError::InvalidId {
                kind: "session",
                ..
            })
        ));
        assert!(matches!(title(&c, "   "), Err(HistoryError::EmptyTitle)));
        assert!(matches!(
            title(&c, &"a".repeat(201)),
            Err(HistoryError::TitleTooLong { len: 201, max: 200 })
        ));
        assert_eq!(title(&c, &"я".repeat(200)).unwrap().chars().count(), 200);
        assert!(matches!(content(&c, ""), Err(HistoryError::EmptyContent)));
        assert!(matches!(
            content(&c, &"a".repeat(64 * 1024 + 1)),
            Err(HistoryError::ContentTooLong { .. })
        ));
        assert!(matches!(
            content(&c, "a\0b"),
            Err(HistoryError::InvalidField { .. })
        ));
        assert!(matches!(
            metadata(&c, Some(json!([1]))),
            Err(HistoryError::MetadataNotObject("an array"))
        ));
        assert!(matches!(
            metadata(&c, Some(json!("x"))),
            Err(HistoryError::MetadataNotObject("a string"))
        ));
        assert!(metadata(&c, Some(json!(null))).unwrap().is_empty());
        assert!(matches!(
            metadata(&c, Some(json!({"k": "v".repeat(20_000)}))),
            Err(HistoryError::InvalidField {
                field: "metadata",
                ..
            })
        ));
        assert!(matches!(user(""), Err(HistoryError::InvalidUser(_))));
        assert!(matches!(user("a\nb"), Err(HistoryError::InvalidUser(_))));
        assert!(accounting(Some(-1), None).is_err());
        assert!(accounting(None, Some(f64::NAN)).is_err());
        assert!(accounting(Some(10), Some(1.5)).is_ok());
    }
}
