//! Reading the JSON line a load tool prints (`rate-load`, `ws-load`): the
//! last line of its output that starts with `{`.

use std::path::Path;

use serde_json::Value;

/// The largest share of failed requests a held rate may have.
pub const MAX_ERROR_RATE: f64 = 0.001;

/// The last line of `text` that starts with `{`, parsed; `None` when there
/// is no such line.
pub fn last_json_line(text: &str) -> Result<Option<Value>, String> {
    match text.lines().rfind(|l| l.starts_with('{')) {
        Some(line) => serde_json::from_str(line)
            .map(Some)
            .map_err(|e| format!("not JSON: {e}")),
        None => Ok(None),
    }
}

/// The figures in the file at `path`: `None` when the file does not exist
/// or holds no JSON line.
pub fn load(path: &Path) -> Result<Option<Value>, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => last_json_line(&text).map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// Like [`load`], but the figures must be there.
pub fn load_required(path: &Path) -> Result<Value, String> {
    load(path)?.ok_or_else(|| format!("{}: no figures", path.display()))
}

/// One `rate-load` run's figures.
#[derive(Debug, Clone, Copy)]
pub struct Run<'a>(pub &'a Value);

impl Run<'_> {
    /// A latency percentile (`p50`, `p99`, `max`, ...), ms; `None` when no
    /// request succeeded.
    pub fn latency(self, key: &str) -> Option<f64> {
        self.0["latency_ms"][key].as_f64()
    }

    /// The share of failed requests.
    pub fn error_rate(self) -> Option<f64> {
        self.0["error_rate"].as_f64()
    }

    /// Whether fewer than 0.1% of the requests failed.
    pub fn below_error_limit(self) -> bool {
        self.error_rate().is_some_and(|r| r < MAX_ERROR_RATE)
    }

    /// Whether the run held its rate: fewer than 0.1% errors and a p99
    /// below `p99_limit_ms`.
    pub fn held(self, p99_limit_ms: f64) -> bool {
        self.below_error_limit() && self.latency("p99").is_some_and(|p99| p99 < p99_limit_ms)
    }
}

/// [`Run::held`] of an optional run (no figures: not held).
pub fn held(run: Option<&Value>, p99_limit_ms: f64) -> bool {
    run.is_some_and(|r| Run(r).held(p99_limit_ms))
}

/// Whether a JSON value counts as present: not null, false, zero or empty.
pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|x| x != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// The field at a dotted `path` (`tokens.access_token`, `choices.0.message`):
/// object keys, and indexes into arrays.
pub fn field<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(v, |v, key| match v {
        Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
        Value::Object(map) => map.get(key),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_last_json_line_counts() {
        let text = "rate-load: 200 req/s\n{\"a\":1}\nnoise\n{\"a\":2}\n";
        assert_eq!(last_json_line(text).unwrap(), Some(json!({"a": 2})));
        assert_eq!(last_json_line("no figures\n").unwrap(), None);
        assert!(last_json_line("{broken\n").is_err());
        assert_eq!(load(Path::new("/nonexistent/bench-report")).unwrap(), None);
    }

    #[test]
    fn held_needs_few_errors_and_a_low_p99() {
        let run = |error_rate: f64, p99: Value| json!({"error_rate": error_rate, "latency_ms": {"p50": 1.0, "p99": p99, "max": 9.0}});
        assert!(held(Some(&run(0.0, json!(99.9))), 100.0));
        assert!(held(Some(&run(0.000_9, json!(1.0))), 100.0));
        assert!(
            !held(Some(&run(0.0, json!(100.0))), 100.0),
            "p99 at the limit"
        );
        assert!(!held(Some(&run(0.001, json!(1.0))), 100.0), "0.1% errors");
        assert!(
            !held(Some(&run(0.0, Value::Null)), 100.0),
            "nothing measured"
        );
        let nothing = json!({"error_rate": 1.0, "latency_ms": null});
        assert!(!held(Some(&nothing), 100.0));
        assert!(!held(None, 100.0));
    }

    #[test]
    fn fields_by_path() {
        let v =
            json!({"tokens": {"access_token": "t"}, "choices": [{"message": {"content": "hi"}}]});
        assert_eq!(field(&v, "tokens.access_token"), Some(&json!("t")));
        assert_eq!(field(&v, "choices.0.message.content"), Some(&json!("hi")));
        assert_eq!(field(&v, "choices.1"), None);
        assert_eq!(field(&v, "tokens.refresh"), None);
    }

    #[test]
    fn truthiness() {
        assert!(!truthy(&Value::Null));
        assert!(!truthy(&json!({})));
        assert!(truthy(&json!({"p50": 1.0})));
        assert!(!truthy(&json!(0.0)));
    }
}
