//! A strict line parser for the OpenMetrics/Prometheus text exposition
//! (shared by chat-service's and api-gateway's metrics tests).
#![allow(dead_code)]

use std::collections::BTreeMap;

/// A parsed exposition.
#[derive(Debug, Default)]
pub struct Exposition {
    /// Family name -> type.
    pub families: BTreeMap<String, String>,
    /// `name{labels}` exactly as written -> value.
    pub samples: BTreeMap<String, f64>,
}

impl Exposition {
    /// The value of a sample key (0 when absent).
    pub fn value(&self, key: &str) -> f64 {
        self.samples.get(key).copied().unwrap_or(0.0)
    }
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars().enumerate().all(|(i, c)| {
            c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit())
        })
}

/// Splits `name{a="b",...}` into name and labels; checks the label syntax.
fn split_key(key: &str) -> Result<(String, Vec<(String, String)>), String> {
    let Some(open) = key.find('{') else {
        return Ok((key.to_owned(), Vec::new()));
    };
    let name = &key[..open];
    let inner = key[open + 1..]
        .strip_suffix('}')
        .ok_or_else(|| format!("unclosed labels: {key}"))?;
    let mut labels = Vec::new();
    let mut rest = inner;
    while !rest.is_empty() {
        let eq = rest
            .find("=\"")
            .ok_or_else(|| format!("bad label in {key}"))?;
        let lname = &rest[..eq];
        if !valid_name(lname) {
            return Err(format!("bad label name `{lname}` in {key}"));
        }
        let after = &rest[eq + 2..];
        let mut end = None;
        let mut escaped = false;
        for (i, c) in after.char_indices() {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => {
                    end = Some(i);
                    break;
                }
                _ => {}
            }
        }
        let end = end.ok_or_else(|| format!("unterminated label value in {key}"))?;
        labels.push((lname.to_owned(), after[..end].to_owned()));
        rest = &after[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
    Ok((name.to_owned(), labels))
}

/// Parses and checks: every sample belongs to a family declared by
/// `# TYPE` with a `# HELP`; values are numbers; each histogram series has
/// increasing `le`, non-decreasing cumulative counts, a `+Inf` bucket
/// equal to `_count`, and a `_sum`; the text ends with `# EOF`.
pub fn parse(text: &str) -> Result<Exposition, String> {
    let mut out = Exposition::default();
    let mut helps = BTreeMap::new();
    let mut eof = false;
    for line in text.lines() {
        if eof {
            return Err(format!("text after # EOF: {line}"));
        }
        if line == "# EOF" {
            eof = true;
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').ok_or("HELP without text")?;
            helps.insert(name.to_owned(), help.to_owned());
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').ok_or("TYPE without kind")?;
            if ![
                "counter",
                "gauge",
                "histogram",
                "summary",
                "info",
                "stateset",
                "unknown",
            ]
            .contains(&kind)
            {
                return Err(format!("unknown type {kind}"));
            }
            if !valid_name(name) {
                return Err(format!("bad metric name {name}"));
            }
            out.families.insert(name.to_owned(), kind.to_owned());
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        if line.is_empty() {
            return Err("empty line".into());
        }
        let (key, value) = line
            .rsplit_once(' ')
            .ok_or_else(|| format!("no value: {line}"))?;
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().map_err(|_| format!("bad value in {line}"))?,
        };
        let (name, _) = split_key(key)?;
        let family = out
            .families
            .iter()
            .filter(|(f, kind)| {
                let suffixes: &[&str] = match kind.as_str() {
                    "counter" => &["_total", "_created"],
                    "histogram" => &["_bucket", "_sum", "_count", "_created"],
                    _ => &[""],
                };
                suffixes.iter().any(|s| name == format!("{f}{s}"))
            })
            .map(|(f, _)| f.clone())
            .next()
            .ok_or_else(|| format!("sample {name} of no declared family"))?;
        if !helps.contains_key(&family) {
            return Err(format!("family {family} has no HELP"));
        }
        if out.samples.insert(key.to_owned(), value).is_some() {
            return Err(format!("duplicate sample {key}"));
        }
    }
    if !eof {
        return Err("no # EOF".into());
    }
    check_histograms(&out)?;
    Ok(out)
}

fn check_histograms(out: &Exposition) -> Result<(), String> {
    // series (family + labels without le) -> [(le, count)]
    let mut series: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for (key, value) in &out.samples {
        let (name, labels) = split_key(key)?;
        let Some(family) = name.strip_suffix("_bucket") else {
            continue;
        };
        if out.families.get(family).map(String::as_str) != Some("histogram") {
            continue;
        }
        let le = labels
            .iter()
            .find(|(k, _)| k == "le")
            .ok_or_else(|| format!("bucket without le: {key}"))?;
        let le: f64 = if le.1 == "+Inf" {
            f64::INFINITY
        } else {
            le.1.parse().map_err(|_| format!("bad le in {key}"))?
        };
        let rest: Vec<String> = labels
            .iter()
            .filter(|(k, _)| k != "le")
            .map(|(k, v)| format!("{k}=\"{v}\""))
            .collect();
        series
            .entry(format!("{family}|{}", rest.join(",")))
            .or_default()
            .push((le, *value));
    }
    for (id, mut buckets) in series {
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        if buckets.last().map(|b| b.0) != Some(f64::INFINITY) {
            return Err(format!("{id}: no +Inf bucket"));
        }
        for w in buckets.windows(2) {
            if w[1].1 < w[0].1 {
                return Err(format!("{id}: buckets not monotone"));
            }
        }
        let (family, labels) = id.split_once('|').unwrap_or((&id, ""));
        let key = |suffix: &str| {
            if labels.is_empty() {
                format!("{family}{suffix}")
            } else {
                format!("{family}{suffix}{{{labels}}}")
            }
        };
        let count = out
            .samples
            .get(&key("_count"))
            .ok_or_else(|| format!("{id}: no _count"))?;
        if buckets.last().map(|b| b.1) != Some(*count) {
            return Err(format!("{id}: +Inf bucket != _count"));
        }
        if !out.samples.contains_key(&key("_sum")) {
            return Err(format!("{id}: no _sum"));
        }
    }
    Ok(())
}

#[test]
fn parser_rejects_broken_histograms() {
    let good = "# HELP h x\n# TYPE h histogram\nh_sum 1.0\nh_count 2\nh_bucket{le=\"0.1\"} 1\nh_bucket{le=\"+Inf\"} 2\n# EOF\n";
    assert!(parse(good).is_ok());
    assert!(parse(&good.replace("h_count 2", "h_count 3")).is_err());
    assert!(parse(&good.replace("le=\"0.1\"} 1", "le=\"0.1\"} 5")).is_err());
    assert!(parse(&good.replace("# HELP h x\n", "")).is_err());
    assert!(parse(&good.replace("# EOF\n", "")).is_err());
}
