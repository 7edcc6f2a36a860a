//! The acceptance suite every connector runs — the kit's counterpart of Airbyte's connector
//! acceptance tests. Checks are plain functions over what a connector printed, so each can be
//! shown to fail on a broken output; [`SourceSuite`] and [`DestinationSuite`] run them against
//! a real binary and collect a [`Report`].

mod destination;
mod schema_rules;
mod source;

pub use destination::{DestinationReader, DestinationSuite, checks as destination_checks};
pub use schema_rules::{record_validator, spec_problems};
pub use source::{SourceSuite, checks};

use std::fmt::Write as _;

/// The result of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The check passed.
    Pass,
    /// The check failed, with the reason.
    Fail(String),
    /// Not applicable to this connector or fixture set, with the reason.
    Skip(String),
}

impl Verdict {
    /// Passes when `problems` is empty, else fails listing them.
    pub fn from_problems(problems: Vec<String>) -> Self {
        if problems.is_empty() {
            Verdict::Pass
        } else {
            Verdict::Fail(problems.join("; "))
        }
    }

    /// True for a failure.
    pub fn is_fail(&self) -> bool {
        matches!(self, Verdict::Fail(_))
    }
}

/// One check's name, verdict and, for a failure, what lay behind it.
#[derive(Debug, Clone)]
pub struct CheckOutcome {
    /// The check's name.
    pub name: String,
    /// Its verdict.
    pub verdict: Verdict,
    /// The command, exit code and output behind a failure.
    pub details: Option<String>,
}

/// All outcomes of a suite run.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Every check run, in order.
    pub checks: Vec<CheckOutcome>,
}

impl Report {
    /// Records a check's verdict; `details` are kept only for a failure.
    pub fn push(&mut self, name: &str, verdict: Verdict, details: Option<String>) {
        let details = if verdict.is_fail() { details } else { None };
        self.checks.push(CheckOutcome {
            name: name.to_string(),
            verdict,
            details,
        });
    }

    /// True when no check failed.
    pub fn passed(&self) -> bool {
        !self.checks.iter().any(|c| c.verdict.is_fail())
    }

    /// The verdict of the check called `name`.
    pub fn verdict(&self, name: &str) -> Option<&Verdict> {
        self.checks
            .iter()
            .find(|c| c.name == name)
            .map(|c| &c.verdict)
    }

    /// A table of checks: name, PASS/FAIL/SKIP, reason.
    pub fn table(&self) -> String {
        let width = self
            .checks
            .iter()
            .map(|c| c.name.len())
            .max()
            .unwrap_or(5)
            .max(5);
        let mut s = format!("{:<width$}  result  reason\n", "check");
        for c in &self.checks {
            let (result, reason) = match &c.verdict {
                Verdict::Pass => ("PASS", ""),
                Verdict::Fail(r) => ("FAIL", r.as_str()),
                Verdict::Skip(r) => ("SKIP", r.as_str()),
            };
            let reason: String = reason.chars().take(300).collect();
            let _ = writeln!(s, "{:<width$}  {result:<6}  {reason}", c.name);
        }
        s
    }

    /// Panics with the table and the details of every failed check.
    pub fn assert_all_passed(&self) {
        if self.passed() {
            return;
        }
        let mut s = self.table();
        for c in self.checks.iter().filter(|c| c.verdict.is_fail()) {
            if let Some(d) = &c.details {
                let _ = write!(s, "\n==== {} ====\n{d}", c.name);
            }
        }
        panic!("acceptance checks failed:\n{s}");
    }
}
