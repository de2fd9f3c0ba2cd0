//! Opaque pagination cursors.
//!
//! Session pages are ordered by `(updated_at DESC, id DESC)`; their cursor
//! carries both. Message pages follow the insertion sequence `seq`. Cursors
//! are plain ASCII so they travel in query strings without escaping.

use chrono::{DateTime, NaiveDateTime};

use crate::error::HistoryError;

/// Position after a session in a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SessionCursor {
    pub updated_at: NaiveDateTime,
    pub id: String,
}

impl SessionCursor {
    pub fn encode(&self) -> String {
        format!(
            "s{}_{}",
            self.updated_at.and_utc().timestamp_micros(),
            self.id
        )
    }

    pub fn decode(s: &str) -> Result<Self, HistoryError> {
        let bad = || HistoryError::InvalidCursor(s.chars().take(80).collect());
        let rest = s.strip_prefix('s').ok_or_else(bad)?;
        let (micros, id) = rest.split_once('_').ok_or_else(bad)?;
        let micros: i64 = micros.parse().map_err(|_| bad())?;
        let id = uuid::Uuid::parse_str(id).map_err(|_| bad())?;
        let updated_at = DateTime::from_timestamp_micros(micros)
            .ok_or_else(bad)?
            .naive_utc();
        Ok(Self {
            updated_at,
            id: id.to_string(),
        })
    }
}

/// Position of a message in its session.
pub(crate) fn encode_seq(seq: i64) -> String {
    format!("m{seq}")
}

/// Reads a message cursor.
pub(crate) fn decode_seq(s: &str) -> Result<i64, HistoryError> {
    s.strip_prefix('m')
        .and_then(|n| n.parse::<i64>().ok())
        .filter(|n| *n >= 0)
        .ok_or_else(|| HistoryError::InvalidCursor(s.chars().take(80).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_garbage() {
        let c = SessionCursor {
            updated_at: DateTime::from_timestamp_micros(1_700_000_000_123_456)
                .unwrap()
                .naive_utc(),
            id: uuid::Uuid::now_v7().to_string(),
        };
        assert_eq!(SessionCursor::decode(&c.encode()).unwrap(), c);
        assert_eq!(decode_seq(&encode_seq(42)).unwrap(), 42);
        for bad in [
            "",
            "s",
            "s12",
            "sx_y",
            "s1_notauuid",
            "m",
            "m-1",
            "mx",
            "42",
        ] {
            assert!(
                SessionCursor::decode(bad).is_err() || decode_seq(bad).is_err(),
                "{bad}"
            );
        }
        assert!(decode_seq("m-1").is_err());
        assert!(SessionCursor::decode("s99999999999999999999_x").is_err());
    }
}
