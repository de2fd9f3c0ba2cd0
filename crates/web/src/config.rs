//! Configuration from the environment, for the binaries only.
//!
//! [`Vars::from_env`] is the one place that reads the process environment
//! (plus an optional `.env` file); everything else takes a [`Vars`] or an
//! already built config, so library crates never read the environment.

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use crate::auth::AuthConfig;
use crate::extract::DEFAULT_MAX_BODY_BYTES;

/// A variable could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The value does not parse or is out of range.
    #[error("{name}: {reason}")]
    Invalid {
        /// Variable name.
        name: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The `.env` file exists but cannot be read.
    #[error("cannot read {path}: {reason}")]
    EnvFile {
        /// File path.
        path: String,
        /// The I/O error.
        reason: String,
    },
}

/// A snapshot of configuration variables: the process environment over an
/// optional `.env` file. Empty values count as unset.
#[derive(Debug, Clone, Default)]
pub struct Vars {
    map: HashMap<String, String>,
}

impl Vars {
    /// The process environment, over `.env` in the current directory when
    /// present (variables already set in the environment win).
    pub fn from_env() -> Result<Self, ConfigError> {
        let mut vars = Self::from_env_file(Path::new(".env"))?;
        vars.map.extend(std::env::vars());
        Ok(vars)
    }

    /// The variables of a `.env` file (`KEY=VALUE` lines, `#` comments,
    /// optional `export ` and quotes); an absent file gives none.
    pub fn from_env_file(path: &Path) -> Result<Self, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => {
                return Err(ConfigError::EnvFile {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                });
            }
        };
        Ok(Self::from_pairs(text.lines().filter_map(parse_env_line)))
    }

    /// Variables from pairs (tests, embedding).
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self {
            map: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// Sets a variable (tests, overrides).
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.map.insert(name.into(), value.into());
    }

    /// A variable's trimmed value; `None` when unset or empty.
    pub fn get(&self, name: &str) -> Option<String> {
        self.map
            .get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    }

    /// A variable's value or `default`.
    pub fn get_or(&self, name: &str, default: &str) -> String {
        self.get(name).unwrap_or_else(|| default.to_owned())
    }

    /// A lookup function for configs that take one (`LlmConfig::from_vars`).
    pub fn lookup(&self) -> impl Fn(&str) -> Option<String> + '_ {
        move |name| self.get(name)
    }

    /// A variable parsed as `T`, `None` when unset.
    pub fn parse<T>(&self, name: &'static str) -> Result<Option<T>, ConfigError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        self.get(name)
            .map(|v| {
                v.parse::<T>().map_err(|e| ConfigError::Invalid {
                    name,
                    reason: format!("cannot use `{v}`: {e}"),
                })
            })
            .transpose()
    }

    /// A variable parsed as `T`, or `default` when unset.
    pub fn parse_or<T>(&self, name: &'static str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        Ok(self.parse(name)?.unwrap_or(default))
    }

    /// A boolean (`1/0`, `true/false`, `yes/no`, `on/off`), or `default` when unset.
    pub fn flag(&self, name: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self.get(name).map(|v| v.to_ascii_lowercase()) {
            None => Ok(default),
            Some(v) => match v.as_str() {
                "1" | "true" | "yes" | "on" => Ok(true),
                "0" | "false" | "no" | "off" => Ok(false),
                _ => Err(ConfigError::Invalid {
                    name,
                    reason: format!("`{v}` is not a boolean (true/false)"),
                }),
            },
        }
    }

    /// A duration in whole seconds, or `default` when unset.
    pub fn seconds(&self, name: &'static str, default: Duration) -> Result<Duration, ConfigError> {
        Ok(self
            .parse::<u64>(name)?
            .map_or(default, Duration::from_secs))
    }

    /// A duration in milliseconds, or `default` when unset.
    pub fn millis(&self, name: &'static str, default: Duration) -> Result<Duration, ConfigError> {
        Ok(self
            .parse::<u64>(name)?
            .map_or(default, Duration::from_millis))
    }
}

/// One `.env` line as a pair, or `None` for blanks and comments.
fn parse_env_line(line: &str) -> Option<(String, String)> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let line = line.strip_prefix("export ").unwrap_or(line);
    let (key, value) = line.split_once('=')?;
    let key = key.trim();
    if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return None;
    }
    let value = value.trim();
    let value = match value.chars().next() {
        Some(q @ ('"' | '\'')) => value[1..]
            .find(q)
            .map_or(&value[1..], |end| &value[1..=end]),
        _ => value.split(" #").next().unwrap_or(value).trim_end(),
    };
    Some((key.to_owned(), value.to_owned()))
}

/// HTTP server settings shared by the binaries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    /// `HOST:PORT` to listen on (port 0 picks a free port).
    pub bind: String,
    /// Worker threads; `None` = one per CPU core.
    pub workers: Option<usize>,
    /// Largest JSON request body, in bytes.
    pub max_body_bytes: usize,
    /// How long running requests and streams get to finish on shutdown.
    pub shutdown_grace: Duration,
}

impl HttpConfig {
    /// Defaults with this bind address.
    pub fn new(bind: impl Into<String>) -> Self {
        Self {
            bind: bind.into(),
            workers: None,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            shutdown_grace: Duration::from_secs(10),
        }
    }

    /// Reads the bind address from `bind_var` (default `default_bind`),
    /// `HTTP_WORKERS`, `HTTP_MAX_BODY_BYTES` (default 1 MiB) and
    /// `SHUTDOWN_GRACE_SECS` (default 10).
    pub fn from_vars(
        vars: &Vars,
        bind_var: &'static str,
        default_bind: &str,
    ) -> Result<Self, ConfigError> {
        let defaults = Self::new(vars.get_or(bind_var, default_bind));
        let workers = vars.parse::<usize>("HTTP_WORKERS")?;
        if workers == Some(0) {
            return Err(ConfigError::Invalid {
                name: "HTTP_WORKERS",
                reason: "must be at least 1".into(),
            });
        }
        let max_body_bytes = vars.parse_or("HTTP_MAX_BODY_BYTES", defaults.max_body_bytes)?;
        if max_body_bytes == 0 {
            return Err(ConfigError::Invalid {
                name: "HTTP_MAX_BODY_BYTES",
                reason: "must be at least 1".into(),
            });
        }
        Ok(Self {
            workers,
            max_body_bytes,
            shutdown_grace: vars.seconds("SHUTDOWN_GRACE_SECS", defaults.shutdown_grace)?,
            ..defaults
        })
    }
}

impl AuthConfig {
    /// Reads `AGENT_RUNTIME__INTERNAL_API_KEY` (unset or empty = standalone).
    pub fn from_vars(vars: &Vars) -> Self {
        match vars.get("AGENT_RUNTIME__INTERNAL_API_KEY") {
            Some(key) => AuthConfig::with_internal_key(key),
            None => AuthConfig::standalone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_lines() {
        assert_eq!(
            parse_env_line("A=1"),
            Some(("A".to_owned(), "1".to_owned()))
        );
        assert_eq!(
            parse_env_line("export B = two words # note"),
            Some(("B".to_owned(), "two words".to_owned()))
        );
        assert_eq!(
            parse_env_line(r#"C="quoted # not a comment" trailing"#),
            Some(("C".to_owned(), "quoted # not a comment".to_owned()))
        );
        assert_eq!(
            parse_env_line("D='x=y'"),
            Some(("D".to_owned(), "x=y".to_owned()))
        );
        assert_eq!(parse_env_line("# A=1"), None);
        assert_eq!(parse_env_line("not a pair"), None);
        assert_eq!(parse_env_line("BAD KEY=1"), None);
    }

    #[test]
    fn env_file_is_optional_and_environment_wins() {
        let dir = std::env::temp_dir().join(format!("confab-web-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join(".env");
        assert!(
            Vars::from_env_file(&file)
                .unwrap()
                .get("ANYTHING")
                .is_none()
        );
        std::fs::write(&file, "X_FROM_FILE=1\nEMPTY=\n").unwrap();
        let vars = Vars::from_env_file(&file).unwrap();
        assert_eq!(vars.get("X_FROM_FILE").as_deref(), Some("1"));
        assert_eq!(vars.get("EMPTY"), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn typed_values() {
        let vars = Vars::from_pairs([
            ("N", "12"),
            ("BAD", "x"),
            ("YES", "On"),
            ("S", "3"),
            ("CHAT_SERVICE_BIND", "127.0.0.1:0"),
            ("HTTP_MAX_BODY_BYTES", "2048"),
        ]);
        assert_eq!(vars.parse::<u32>("N").unwrap(), Some(12));
        assert_eq!(vars.parse::<u32>("MISSING").unwrap(), None);
        let err = vars.parse::<u32>("BAD").unwrap_err();
        assert!(err.to_string().starts_with("BAD: cannot use `x`"), "{err}");
        assert!(vars.flag("YES", false).unwrap());
        assert!(!vars.flag("MISSING", false).unwrap());
        assert!(vars.flag("BAD", false).is_err());
        assert_eq!(
            vars.seconds("S", Duration::ZERO).unwrap(),
            Duration::from_secs(3)
        );
        let http = HttpConfig::from_vars(&vars, "CHAT_SERVICE_BIND", "127.0.0.1:8001").unwrap();
        assert_eq!(http.bind, "127.0.0.1:0");
        assert_eq!(http.max_body_bytes, 2048);
        assert_eq!(http.workers, None);
        let http = HttpConfig::from_vars(&Vars::default(), "X_BIND", "127.0.0.1:8001").unwrap();
        assert_eq!(http, HttpConfig::new("127.0.0.1:8001"));
        assert!(
            HttpConfig::from_vars(&Vars::from_pairs([("HTTP_WORKERS", "0")]), "X_BIND", "a:1")
                .is_err()
        );
        assert!(
            !AuthConfig::from_vars(&Vars::from_pairs([(
                "AGENT_RUNTIME__INTERNAL_API_KEY",
                " "
            )]))
            .requires_internal_key()
        );
        assert!(
            AuthConfig::from_vars(&Vars::from_pairs([(
                "AGENT_RUNTIME__INTERNAL_API_KEY",
                "k"
            )]))
            .requires_internal_key()
        );
    }
}
