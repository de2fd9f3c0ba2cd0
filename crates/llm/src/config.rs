//! Provider configuration, read from environment-style variables by the
//! binaries (the providers themselves never read the environment).
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `CONFAB_LLM_PROVIDER` | `openai`, `ollama` or `builtin` | `openai` when `AGENT_RUNTIME__LLM_PROXY_URL` is set, else `ollama` when `OLLAMA_HOST` is set, else `builtin` |
//! | `AGENT_RUNTIME__LLM_PROXY_URL` | base URL of an OpenAI-compatible server | `https://api.openai.com/v1` when `OPENAI_API_KEY` is set |
//! | `AGENT_RUNTIME__LLM_MODEL` | chat model | `gpt-4o-mini` / `llama3.2` / `builtin` |
//! | `OPENAI_API_KEY` | bearer token for the OpenAI-compatible server | none |
//! | `OLLAMA_HOST` | Ollama server | `http://127.0.0.1:11434` |
//! | `CONFAB_LLM_FALLBACK` | comma-separated fallbacks, each `KIND[=URL][#MODEL]` | none |
//! | `CONFAB_EMBEDDING_PROVIDER` | `openai`, `ollama` or `builtin` | `builtin` |
//! | `CONFAB_EMBEDDING_URL` | embedding server base URL | the chat provider's URL of that kind |
//! | `CONFAB_EMBEDDING_MODEL` | embedding model | `text-embedding-3-small` / `nomic-embed-text` / `builtin` |
//! | `CONFAB_EMBEDDING_DIMENSIONS` | vector length | known for common models, else required |
//! | `CONFAB_LLM_CONNECT_TIMEOUT_MS`, `CONFAB_LLM_READ_TIMEOUT_MS`, `CONFAB_LLM_REQUEST_TIMEOUT_MS` | timeouts | 5000, 120000, 600000 |
//! | `CONFAB_LLM_MAX_RETRIES` | retries before the first token | 2 |

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use crate::error::LlmError;
use crate::http::HttpOptions;
use crate::retry::RetryPolicy;
use crate::{BuiltinProvider, ChatModel, Fallback, OllamaProvider, OpenAiProvider, Provider};

/// Vector length of the built-in embedder.
pub const BUILTIN_DIMENSIONS: usize = 384;

/// Default Ollama address.
pub const DEFAULT_OLLAMA_HOST: &str = "http://127.0.0.1:11434";
/// OpenAI's own API.
pub const OPENAI_API_URL: &str = "https://api.openai.com/v1";

/// Which kind of provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProviderKind {
    /// An OpenAI-compatible server.
    OpenAi,
    /// An Ollama server.
    Ollama,
    /// The offline built-in model.
    Builtin,
}

impl FromStr for ProviderKind {
    type Err = LlmError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "openai" | "openai-compatible" | "vllm" | "llamacpp" | "llama.cpp" => Ok(Self::OpenAi),
            "ollama" => Ok(Self::Ollama),
            "builtin" | "offline" => Ok(Self::Builtin),
            other => Err(LlmError::Config(format!(
                "unknown provider `{other}`: use openai, ollama or builtin"
            ))),
        }
    }
}

impl ProviderKind {
    /// The provider's name.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::OpenAi => "openai",
            ProviderKind::Ollama => "ollama",
            ProviderKind::Builtin => "builtin",
        }
    }
}

/// Settings of one chat provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderConfig {
    /// Kind.
    pub kind: ProviderKind,
    /// Server base URL (unused by `builtin`).
    pub base_url: String,
    /// Chat model.
    pub model: String,
    /// API key (OpenAI-compatible servers).
    pub api_key: Option<String>,
}

/// Settings of the embedding provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbeddingConfig {
    /// Kind.
    pub kind: ProviderKind,
    /// Server base URL (unused by `builtin`).
    pub base_url: String,
    /// Embedding model.
    pub model: String,
    /// Vector length.
    pub dimensions: usize,
    /// API key (OpenAI-compatible servers).
    pub api_key: Option<String>,
}

/// Everything needed to build the chat and embedding models.
#[derive(Debug, Clone, PartialEq)]
pub struct LlmConfig {
    /// The main chat provider.
    pub chat: ProviderConfig,
    /// Tried in order when the main one is unavailable.
    pub fallbacks: Vec<ProviderConfig>,
    /// The embedding provider.
    pub embedding: EmbeddingConfig,
    /// HTTP timeouts.
    pub http: HttpOptions,
    /// Retry policy.
    pub retry: RetryPolicy,
}

impl Default for LlmConfig {
    /// The embedded default: built-in chat and embeddings, no network.
    fn default() -> Self {
        Self {
            chat: ProviderConfig {
                kind: ProviderKind::Builtin,
                base_url: String::new(),
                model: "builtin".into(),
                api_key: None,
            },
            fallbacks: Vec::new(),
            embedding: EmbeddingConfig {
                kind: ProviderKind::Builtin,
                base_url: String::new(),
                model: "builtin".into(),
                dimensions: BUILTIN_DIMENSIONS,
                api_key: None,
            },
            http: HttpOptions::default(),
            retry: RetryPolicy::default(),
        }
    }
}

fn default_model(kind: ProviderKind) -> &'static str {
    match kind {
        ProviderKind::OpenAi => "gpt-4o-mini",
        ProviderKind::Ollama => "llama3.2",
        ProviderKind::Builtin => "builtin",
    }
}

fn default_embedding_model(kind: ProviderKind) -> &'static str {
    match kind {
        ProviderKind::OpenAi => "text-embedding-3-small",
        ProviderKind::Ollama => "nomic-embed-text",
        ProviderKind::Builtin => "builtin",
    }
}

/// Vector length of well-known embedding models.
pub fn known_dimensions(model: &str) -> Option<usize> {
    let base = model.split(':').next().unwrap_or(model);
    Some(match base {
        "text-embedding-3-small" | "text-embedding-ada-002" => 1536,
        "text-embedding-3-large" => 3072,
        "nomic-embed-text" => 768,
        "all-minilm" | "all-MiniLM-L6-v2" | "builtin" => 384,
        "mxbai-embed-large" | "bge-large" => 1024,
        _ => return None,
    })
}

fn millis(
    get: &dyn Fn(&str) -> Option<String>,
    name: &str,
    default: u64,
) -> Result<Duration, LlmError> {
    match get(name) {
        None => Ok(Duration::from_millis(default)),
        Some(v) => v
            .trim()
            .parse::<u64>()
            .map(Duration::from_millis)
            .map_err(|_| {
                LlmError::Config(format!(
                    "{name} must be a number of milliseconds, got `{v}`"
                ))
            }),
    }
}

impl LlmConfig {
    /// Reads the configuration through `get` (e.g. `|k| std::env::var(k).ok()`).
    /// Empty values count as unset.
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<Self, LlmError> {
        let get = |k: &str| {
            get(k)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let proxy_url = get("AGENT_RUNTIME__LLM_PROXY_URL");
        let api_key = get("OPENAI_API_KEY");
        let ollama_host = get("OLLAMA_HOST");
        let kind = match get("CONFAB_LLM_PROVIDER") {
            Some(k) => k.parse()?,
            None if proxy_url.is_some() => ProviderKind::OpenAi,
            None if ollama_host.is_some() => ProviderKind::Ollama,
            None => ProviderKind::Builtin,
        };
        let url_for = |kind: ProviderKind| -> Result<String, LlmError> {
            Ok(match kind {
                ProviderKind::OpenAi => match (&proxy_url, &api_key) {
                    (Some(url), _) => url.clone(),
                    (None, Some(_)) => OPENAI_API_URL.to_owned(),
                    (None, None) => {
                        return Err(LlmError::Config(
                            "the openai provider needs AGENT_RUNTIME__LLM_PROXY_URL (or OPENAI_API_KEY for OpenAI itself)".into(),
                        ));
                    }
                },
                ProviderKind::Ollama => ollama_host
                    .clone()
                    .unwrap_or_else(|| DEFAULT_OLLAMA_HOST.to_owned()),
                ProviderKind::Builtin => String::new(),
            })
        };
        let chat = ProviderConfig {
            kind,
            base_url: url_for(kind)?,
            model: get("AGENT_RUNTIME__LLM_MODEL")
                .unwrap_or_else(|| default_model(kind).to_owned()),
            api_key: api_key.clone(),
        };

        let mut fallbacks = Vec::new();
        if let Some(list) = get("CONFAB_LLM_FALLBACK") {
            for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
                let (rest, model) = match entry.split_once('#') {
                    Some((r, m)) => (r, Some(m.trim().to_owned())),
                    None => (entry, None),
                };
                let (kind, url) = match rest.split_once('=') {
                    Some((k, u)) => (k.parse::<ProviderKind>()?, Some(u.trim().to_owned())),
                    None => (rest.parse::<ProviderKind>()?, None),
                };
                fallbacks.push(ProviderConfig {
                    kind,
                    base_url: match url {
                        Some(u) => u,
                        None => url_for(kind)?,
                    },
                    model: model.unwrap_or_else(|| default_model(kind).to_owned()),
                    api_key: api_key.clone(),
                });
            }
        }

        let ekind = match get("CONFAB_EMBEDDING_PROVIDER") {
            Some(k) => k.parse()?,
            None => ProviderKind::Builtin,
        };
        let emodel = get("CONFAB_EMBEDDING_MODEL")
            .unwrap_or_else(|| default_embedding_model(ekind).to_owned());
        let dimensions = match (ekind, get("CONFAB_EMBEDDING_DIMENSIONS")) {
            (ProviderKind::Builtin, _) => BUILTIN_DIMENSIONS,
            (_, Some(d)) => d.parse::<usize>().ok().filter(|d| *d > 0).ok_or_else(|| {
                LlmError::Config(format!(
                    "CONFAB_EMBEDDING_DIMENSIONS must be a positive number, got `{d}`"
                ))
            })?,
            (_, None) => known_dimensions(&emodel).ok_or_else(|| {
                LlmError::Config(format!(
                    "set CONFAB_EMBEDDING_DIMENSIONS: the vector length of `{emodel}` is not known"
                ))
            })?,
        };
        let embedding = EmbeddingConfig {
            kind: ekind,
            base_url: match get("CONFAB_EMBEDDING_URL") {
                Some(u) => u,
                None => url_for(ekind)?,
            },
            model: emodel,
            dimensions,
            api_key,
        };

        let http = HttpOptions {
            connect_timeout: millis(&get, "CONFAB_LLM_CONNECT_TIMEOUT_MS", 5_000)?,
            read_timeout: millis(&get, "CONFAB_LLM_READ_TIMEOUT_MS", 120_000)?,
            request_timeout: millis(&get, "CONFAB_LLM_REQUEST_TIMEOUT_MS", 600_000)?,
        };
        let retry = RetryPolicy {
            max_retries: match get("CONFAB_LLM_MAX_RETRIES") {
                None => RetryPolicy::default().max_retries,
                Some(v) => v.parse().map_err(|_| {
                    LlmError::Config(format!(
                        "CONFAB_LLM_MAX_RETRIES must be a number, got `{v}`"
                    ))
                })?,
            },
            ..RetryPolicy::default()
        };
        Ok(Self {
            chat,
            fallbacks,
            embedding,
            http,
            retry,
        })
    }

    fn build_one(&self, p: &ProviderConfig) -> Result<Provider, LlmError> {
        Ok(match p.kind {
            ProviderKind::OpenAi => Provider::OpenAi(OpenAiProvider::new(
                &p.base_url,
                p.api_key.clone(),
                p.model.clone(),
                self.http.clone(),
                self.retry.clone(),
            )?),
            ProviderKind::Ollama => Provider::Ollama(OllamaProvider::new(
                &p.base_url,
                p.model.clone(),
                self.http.clone(),
                self.retry.clone(),
            )?),
            ProviderKind::Builtin => Provider::Builtin(BuiltinProvider::new()),
        })
    }

    /// The main chat provider alone.
    pub fn chat_provider(&self) -> Result<Provider, LlmError> {
        self.build_one(&self.chat)
    }

    /// The chat model to use: the main provider, behind a [`Fallback`]
    /// chain when fallbacks are configured.
    pub fn chat_model(&self) -> Result<Arc<dyn ChatModel>, LlmError> {
        let main = self.chat_provider()?;
        if self.fallbacks.is_empty() {
            return Ok(Arc::new(main));
        }
        let mut chain: Vec<Arc<dyn ChatModel>> = vec![Arc::new(main)];
        for f in &self.fallbacks {
            chain.push(Arc::new(self.build_one(f)?));
        }
        Ok(Arc::new(Fallback::new(chain)?))
    }

    /// The embedding model.
    pub fn embedding_model(&self) -> Result<Provider, LlmError> {
        let e = &self.embedding;
        let as_chat = ProviderConfig {
            kind: e.kind,
            base_url: e.base_url.clone(),
            model: e.model.clone(),
            api_key: e.api_key.clone(),
        };
        Ok(match self.build_one(&as_chat)? {
            Provider::OpenAi(p) => {
                Provider::OpenAi(p.with_embeddings(e.model.clone(), e.dimensions))
            }
            Provider::Ollama(p) => {
                Provider::Ollama(p.with_embeddings(e.model.clone(), e.dimensions))
            }
            b @ Provider::Builtin(_) => b,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::EmbeddingModel;

    fn cfg(vars: &[(&str, &str)]) -> Result<LlmConfig, LlmError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        LlmConfig::from_vars(|k| map.get(k).cloned())
    }

    #[test]
    fn nothing_configured_is_builtin() {
        let c = cfg(&[]).unwrap();
        assert_eq!(c, LlmConfig::default());
        assert_eq!(c.chat_model().unwrap().provider(), "builtin");
        assert_eq!(c.embedding_model().unwrap().dimensions(), 384);
    }

    #[test]
    fn proxy_url_means_openai() {
        let c = cfg(&[
            ("AGENT_RUNTIME__LLM_PROXY_URL", "http://127.0.0.1:8080"),
            ("AGENT_RUNTIME__LLM_MODEL", "smollm2"),
            ("CONFAB_LLM_FALLBACK", "ollama#qwen2.5, builtin"),
            ("CONFAB_LLM_READ_TIMEOUT_MS", "1500"),
        ])
        .unwrap();
        assert_eq!(c.chat.kind, ProviderKind::OpenAi);
        assert_eq!(c.chat.model, "smollm2");
        assert_eq!(c.fallbacks.len(), 2);
        assert_eq!(c.fallbacks[0].base_url, DEFAULT_OLLAMA_HOST);
        assert_eq!(c.fallbacks[0].model, "qwen2.5");
        assert_eq!(c.http.read_timeout, Duration::from_millis(1500));
        let model = c.chat_model().unwrap();
        assert_eq!(model.provider(), "openai");
        assert_eq!(model.default_model(), "smollm2");
    }

    #[test]
    fn clear_errors() {
        for (vars, needle) in [
            (vec![("CONFAB_LLM_PROVIDER", "gpt")], "unknown provider"),
            (
                vec![("CONFAB_LLM_PROVIDER", "openai")],
                "AGENT_RUNTIME__LLM_PROXY_URL",
            ),
            (vec![("CONFAB_LLM_READ_TIMEOUT_MS", "soon")], "milliseconds"),
            (
                vec![
                    ("CONFAB_EMBEDDING_PROVIDER", "ollama"),
                    ("CONFAB_EMBEDDING_MODEL", "mystery"),
                ],
                "CONFAB_EMBEDDING_DIMENSIONS",
            ),
            (vec![("CONFAB_LLM_FALLBACK", "nope")], "unknown provider"),
        ] {
            let err = cfg(&vars).unwrap_err();
            assert!(err.to_string().contains(needle), "{vars:?}: {err}");
        }
        let bad_url = cfg(&[("AGENT_RUNTIME__LLM_PROXY_URL", "localhost:8080")]).unwrap();
        assert!(bad_url.chat_model().is_err());
    }

    #[test]
    fn embedding_dimensions() {
        let c = cfg(&[
            ("CONFAB_EMBEDDING_PROVIDER", "ollama"),
            ("CONFAB_EMBEDDING_MODEL", "nomic-embed-text:latest"),
        ])
        .unwrap();
        assert_eq!(c.embedding.dimensions, 768);
        assert_eq!(c.embedding.base_url, DEFAULT_OLLAMA_HOST);
        assert_eq!(c.embedding_model().unwrap().dimensions(), 768);
    }
}
