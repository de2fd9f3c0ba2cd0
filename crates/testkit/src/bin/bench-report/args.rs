//! The command line of a subcommand: `--name value` (or `--name=value`)
//! options, bare `--flag`s, and positional arguments, in any order.

use std::collections::BTreeMap;
use std::str::FromStr;

/// Parsed arguments of one subcommand; each option is taken once, and
/// [`Args::finish`] rejects whatever was given but not taken.
#[derive(Debug, Default)]
pub struct Args {
    options: BTreeMap<String, String>,
    flags: Vec<String>,
    positional: Vec<String>,
}

impl Args {
    /// Splits `args`; the names in `flags` take no value.
    pub fn parse(args: impl IntoIterator<Item = String>, flags: &[&str]) -> Result<Args, String> {
        let mut parsed = Args::default();
        let mut args = args.into_iter();
        let mut only_positional = false;
        while let Some(arg) = args.next() {
            if only_positional || !arg.starts_with("--") {
                parsed.positional.push(arg);
                continue;
            }
            if arg == "--" {
                only_positional = true;
                continue;
            }
            let (name, inline) = match arg.split_once('=') {
                Some((name, value)) => (name.to_string(), Some(value.to_string())),
                None => (arg, None),
            };
            let bare = name.trim_start_matches("--");
            if flags.contains(&bare) {
                if inline.is_some() {
                    return Err(format!("{name} takes no value"));
                }
                parsed.flags.push(bare.to_string());
                continue;
            }
            let value = match inline {
                Some(value) => value,
                None => args.next().ok_or_else(|| format!("{name} needs a value"))?,
            };
            if parsed.options.insert(bare.to_string(), value).is_some() {
                return Err(format!("{name} given twice"));
            }
        }
        Ok(parsed)
    }

    /// Whether `--name` was given (a flag).
    pub fn flag(&mut self, name: &str) -> bool {
        let before = self.flags.len();
        self.flags.retain(|f| f != name);
        self.flags.len() != before
    }

    /// The value of `--name`, which must be given.
    pub fn text(&mut self, name: &str) -> Result<String, String> {
        self.options
            .remove(name)
            .ok_or_else(|| format!("--{name} is required"))
    }

    /// The value of `--name` parsed as a `T`.
    pub fn parsed<T: FromStr>(&mut self, name: &str) -> Result<T, String> {
        let value = self.text(name)?;
        value
            .parse()
            .map_err(|_| format!("--{name}: cannot read {value:?} as a number"))
    }

    /// The positional arguments (all of them; taken).
    pub fn positional(&mut self) -> Vec<String> {
        std::mem::take(&mut self.positional)
    }

    /// Fails when an option, flag or positional argument was not taken.
    pub fn finish(self) -> Result<(), String> {
        let unknown: Vec<String> = self
            .options
            .keys()
            .chain(&self.flags)
            .map(|name| format!("--{name}"))
            .chain(self.positional)
            .collect();
        if unknown.is_empty() {
            Ok(())
        } else {
            Err(format!("unexpected arguments: {}", unknown.join(" ")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, String> {
        Args::parse(args.iter().map(|s| s.to_string()), &["strict"])
    }

    #[test]
    fn options_flags_and_positionals() {
        let mut a = parse(&["200", "--out", "f.json", "--strict", "--secs=3", "1000"]).unwrap();
        assert!(a.flag("strict"));
        assert_eq!(a.text("out").unwrap(), "f.json");
        assert_eq!(a.parsed::<f64>("secs").unwrap(), 3.0);
        assert_eq!(a.positional(), ["200", "1000"]);
        a.finish().unwrap();
    }

    #[test]
    fn mistakes_are_refused() {
        assert!(parse(&["--out"]).is_err(), "a value is needed");
        assert!(parse(&["--out", "a", "--out", "b"]).is_err(), "twice");
        assert!(parse(&["--strict=1"]).is_err(), "a flag takes no value");
        let mut a = parse(&["--secs", "x", "--other", "1"]).unwrap();
        assert!(a.parsed::<f64>("secs").is_err());
        assert!(a.text("missing").is_err());
        assert!(a.finish().is_err(), "--other was not taken");
    }
}
