//! Tracing setup for the binaries: human-readable or JSON lines on stderr,
//! filtered by a level or `tracing` directive string.

use std::str::FromStr;

use tracing_subscriber::EnvFilter;

use crate::config::{ConfigError, Vars};

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Pretty,
    /// One JSON object per event (for log collectors).
    Json,
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "pretty" | "text" | "plain" => Ok(LogFormat::Pretty),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("unknown log format `{other}`: use json or pretty")),
        }
    }
}

/// How to log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// Line format.
    pub format: LogFormat,
    /// A level (`info`) or directives (`info,actix_server=warn`).
    pub filter: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Pretty,
            filter: "info".to_owned(),
        }
    }
}

impl LogConfig {
    /// Reads `LOG_FORMAT` (json | pretty, default pretty) and the level from
    /// `LOG_LEVEL`, else `AGENT_RUNTIME__LOG_LEVEL`, else `RUST_LOG`, else `info`.
    pub fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        let format = vars.parse_or("LOG_FORMAT", LogFormat::Pretty)?;
        let filter = vars
            .get("LOG_LEVEL")
            .or_else(|| vars.get("AGENT_RUNTIME__LOG_LEVEL"))
            .or_else(|| vars.get("RUST_LOG"))
            .unwrap_or_else(|| "info".to_owned());
        EnvFilter::try_new(&filter).map_err(|e| ConfigError::Invalid {
            name: "LOG_LEVEL",
            reason: format!("`{filter}` is not a level or filter directive: {e}"),
        })?;
        Ok(Self { format, filter })
    }
}

/// Installs the global subscriber (logs to stderr). Returns false when one
/// was already installed (e.g. by an earlier test), which is not an error.
pub fn init_tracing(config: &LogConfig) -> bool {
    let filter = EnvFilter::try_new(&config.filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init()
            .is_ok(),
        LogFormat::Pretty => builder.try_init().is_ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_format_and_level_in_order() {
        let c = LogConfig::from_vars(&Vars::from_pairs([
            ("LOG_FORMAT", "JSON"),
            ("AGENT_RUNTIME__LOG_LEVEL", "debug"),
        ]))
        .unwrap();
        assert_eq!(c.format, LogFormat::Json);
        assert_eq!(c.filter, "debug");
        let c = LogConfig::from_vars(&Vars::from_pairs([
            ("LOG_LEVEL", "warn,confab=debug"),
            ("AGENT_RUNTIME__LOG_LEVEL", "debug"),
        ]))
        .unwrap();
        assert_eq!(c.filter, "warn,confab=debug");
        assert_eq!(
            LogConfig::from_vars(&Vars::from_pairs([("X", "y")])).unwrap(),
            LogConfig::default()
        );
        assert!(LogConfig::from_vars(&Vars::from_pairs([("LOG_FORMAT", "xml")])).is_err());
        assert!(LogConfig::from_vars(&Vars::from_pairs([("LOG_LEVEL", "info,[[")])).is_err());
    }
}
