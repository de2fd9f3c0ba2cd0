//! The targets of issue 18: a figure against its limit, PASS or MISS.

use serde::Serialize;

/// How a figure compares with its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Verdict {
    /// Met.
    #[serde(rename = "PASS")]
    Pass,
    /// Missed.
    #[serde(rename = "MISS")]
    Miss,
    /// No figure: the run did not measure it.
    #[serde(rename = "-")]
    Unmeasured,
}

impl Verdict {
    /// As printed.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::Miss => "MISS",
            Verdict::Unmeasured => "-",
        }
    }
}

/// One target with its figure (the JSON shape of the summaries' `targets`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Target {
    /// What is measured.
    pub name: String,
    /// The limit, as text (`<= 2 ms`).
    pub target: String,
    /// The measured figure, if any.
    pub figure: Option<f64>,
    /// The figure's unit.
    pub unit: String,
    /// PASS, MISS, or `-` without a figure.
    pub verdict: Verdict,
}

/// Column widths and decimals of a summary's target lines.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    /// Width of the name column.
    pub name: usize,
    /// Width of the limit and figure columns.
    pub value: usize,
    /// Decimals of the figure.
    pub decimals: usize,
}

impl Target {
    /// A target; `met` only counts when there is a figure.
    pub fn new(name: String, target: &str, figure: Option<f64>, unit: &str, met: bool) -> Target {
        let verdict = match (figure, met) {
            (None, _) => Verdict::Unmeasured,
            (Some(_), true) => Verdict::Pass,
            (Some(_), false) => Verdict::Miss,
        };
        Target {
            name,
            target: target.into(),
            figure,
            unit: unit.into(),
            verdict,
        }
    }

    /// The printed line: `  NAME target LIMIT figure FIGURE VERDICT`.
    pub fn line(&self, layout: Layout) -> String {
        let Layout {
            name: nw,
            value: vw,
            decimals,
        } = layout;
        let shown = match self.figure {
            Some(figure) => format!("{figure:.decimals$} {}", self.unit),
            None => "-".into(),
        };
        format!(
            "  {:<nw$} target {:<vw$} figure {shown:<vw$} {}",
            self.name,
            self.target,
            self.verdict.as_str()
        )
    }
}

/// The verdicts of `targets`, in order (for tests).
#[cfg(test)]
pub fn verdicts(targets: &[Target]) -> Vec<&'static str> {
    targets.iter().map(|t| t.verdict.as_str()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts() {
        let t = |figure, met| Target::new("x".into(), "<= 2 ms", figure, "ms", met).verdict;
        assert_eq!(t(Some(1.0), true), Verdict::Pass);
        assert_eq!(t(Some(3.0), false), Verdict::Miss);
        assert_eq!(t(None, true), Verdict::Unmeasured);
        let json = serde_json::to_value(Target::new("x".into(), "<= 2 ms", None, "ms", false));
        assert_eq!(json.unwrap()["verdict"], "-");
    }

    #[test]
    fn line_layout() {
        let layout = Layout {
            name: 10,
            value: 8,
            decimals: 2,
        };
        let t = Target::new("name".into(), "<= 2 ms", Some(1.234), "ms", true);
        assert_eq!(
            t.line(layout),
            "  name       target <= 2 ms  figure 1.23 ms  PASS"
        );
        let t = Target::new("name".into(), "<= 2 ms", None, "ms", true);
        assert_eq!(
            t.line(layout),
            "  name       target <= 2 ms  figure -        -"
        );
    }
}
