//! Which provider models users may pick (`CONFAB_ALLOWED_MODELS`): the
//! `preferred_model` of their settings and the `model` of `/v1` requests.
//! Default: the configured model (`AGENT_RUNTIME__LLM_MODEL`) only, or none
//! when that is unset (then users get the provider's default model and
//! cannot choose another). A choice outside the list is a 422
//! `model_not_allowed` where it is made; a stored choice that is no longer
//! allowed is dropped from what chat-service is told (the default applies).

use actix_web::http::StatusCode;
use confab_web::{ApiError, Vars};
use serde_json::Value;

/// The models users may pick.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedModels(Vec<String>);

impl AllowedModels {
    /// Exactly these names.
    pub fn new(names: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self(names.into_iter().map(Into::into).collect())
    }

    /// `CONFAB_ALLOWED_MODELS` (comma-separated), else `AGENT_RUNTIME__LLM_MODEL`.
    pub fn from_vars(vars: &Vars) -> Self {
        let list = vars
            .get("CONFAB_ALLOWED_MODELS")
            .or_else(|| vars.get("AGENT_RUNTIME__LLM_MODEL"))
            .unwrap_or_default();
        Self::new(
            list.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
        )
    }

    /// The names, in the configured order.
    pub fn names(&self) -> &[String] {
        &self.0
    }

    /// Whether `model` may be picked.
    pub fn contains(&self, model: &str) -> bool {
        self.0.iter().any(|m| m == model.trim())
    }

    /// The 422 for a model outside the list.
    pub fn refusal(&self, model: &str) -> ApiError {
        let allowed = if self.0.is_empty() {
            "none: the configured model only".to_owned()
        } else {
            self.0.join(", ")
        };
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "model_not_allowed",
            format!("the model `{model}` is not allowed here (allowed: {allowed})"),
        )
    }

    /// 422 unless a settings patch's `preferred_model` (when a non-empty
    /// string) is allowed; other values are left to the settings validation.
    pub fn check_settings_patch(&self, patch: Option<&Value>) -> Result<(), ApiError> {
        match patch.and_then(|p| p.get("preferred_model")) {
            Some(Value::String(m)) if !m.trim().is_empty() && !self.contains(m) => {
                Err(self.refusal(m.trim()))
            }
            _ => Ok(()),
        }
    }

    /// Settings JSON as forwarded to chat-service: a `preferred_model`
    /// outside the list is removed.
    pub fn filter_settings(&self, settings: &str) -> String {
        let Ok(Value::Object(mut map)) = serde_json::from_str::<Value>(settings) else {
            return settings.to_owned();
        };
        let allowed = match map.get("preferred_model") {
            Some(Value::String(m)) => m.trim().is_empty() || self.contains(m),
            _ => true,
        };
        if allowed {
            return settings.to_owned();
        }
        tracing::info!("a stored preferred_model is not allowed: the default model answers");
        map.remove("preferred_model");
        Value::Object(map).to_string()
    }

    /// Settings JSON with `preferred_model` set to `model`.
    pub fn with_model(settings: Option<&str>, model: &str) -> String {
        let mut map = settings
            .and_then(|s| serde_json::from_str::<Value>(s).ok())
            .and_then(|v| match v {
                Value::Object(m) => Some(m),
                _ => None,
            })
            .unwrap_or_default();
        map.insert("preferred_model".into(), Value::String(model.to_owned()));
        Value::Object(map).to_string()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn default_is_the_configured_model_and_others_are_refused() {
        let a = AllowedModels::from_vars(&Vars::from_pairs([("AGENT_RUNTIME__LLM_MODEL", "m1")]));
        assert_eq!(a.names(), ["m1"]);
        let a = AllowedModels::from_vars(&Vars::from_pairs([
            ("AGENT_RUNTIME__LLM_MODEL", "m1"),
            ("CONFAB_ALLOWED_MODELS", " a, b ,,"),
        ]));
        assert_eq!(a.names(), ["a", "b"]);
        assert!(
            AllowedModels::from_vars(&Vars::default())
                .names()
                .is_empty()
        );
        let patch = json!({"preferred_model": "c"});
        assert_eq!(
            a.check_settings_patch(Some(&patch)).unwrap_err().status,
            StatusCode::UNPROCESSABLE_ENTITY
        );
        for ok in [
            json!({"preferred_model": "b"}),
            json!({"preferred_model": null}),
            json!({}),
        ] {
            assert!(a.check_settings_patch(Some(&ok)).is_ok(), "{ok}");
        }
        let stored = json!({"preferred_model": "c", "ai_style": "concise"}).to_string();
        let filtered: Value = serde_json::from_str(&a.filter_settings(&stored)).unwrap();
        assert_eq!(filtered, json!({"ai_style": "concise"}));
        let kept = json!({"preferred_model": "a"}).to_string();
        assert_eq!(a.filter_settings(&kept), kept);
    }
}
