//! Disqualification policies: rules read from a TOML file or from `--rule name=value`.

use crate::sim::Swept;
use crate::WhatIfError;
use serde::{Deserialize, Serialize};

/// Days a day-counting rule (`gone_dark`, `no_activity`, `past_close_date`, a missing field's
/// grace) may be set to, at most: a hundred years. Past it the rule could never cut, and the
/// arithmetic on instants would saturate: a value that large is a typo, refused rather than run
/// as some other value.
pub const RULE_DAYS_MAX: f64 = 36_525.0;
/// `stalled`, at most: a thousand times a stage's p90.
pub const STALLED_FACTOR_MAX: f64 = 1_000.0;

/// `missing_field = {field, by_stage, grace_days}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MissingField {
    pub field: String,
    pub by_stage: String,
    pub grace_days: f64,
}

/// A policy: each rule cuts an open deal at the first moment its condition holds; several rules
/// cut at the earliest. Durations are in days (fractions allowed).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Days without an inbound touch (the clock starts at opened and restarts at every inbound
    /// touch and at requalified).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gone_dark: Option<f64>,
    /// Days without any touch (restarts at opened, every touch and requalified).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_activity: Option<f64>,
    /// The current stage visit is longer than this times the p90 of that stage's visits that
    /// ended before the visit started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stalled: Option<f64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing_field: Vec<MissingField>,
    /// Outbound touches in a row with no inbound touch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unanswered_touches: Option<u32>,
    /// Days past the expected close date (the end of that day).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub past_close_date: Option<f64>,
}

/// The keys of a policy file's tables, for naming the closest to an unknown one.
fn policy_keys(path: &[&str]) -> Option<&'static [&'static str]> {
    use serde_aux::serde_introspection::serde_introspect;
    match path {
        [] => Some(serde_introspect::<Policy>()),
        ["missing_field"] => Some(serde_introspect::<MissingField>()),
        _ => None,
    }
}

impl Policy {
    pub fn is_empty(&self) -> bool {
        *self == Policy::default()
    }

    /// Reads a policy file's text; `file` names it in errors, which give the line of a bad key
    /// or value as dealledger.toml's do.
    pub fn parse_toml(text: &str, file: &str) -> Result<Policy, WhatIfError> {
        let policy: Policy = dealledger_config::parse_toml(text, file, policy_keys)
            .map_err(|e| WhatIfError::Policy(e.to_string()))?;
        policy.check().map_err(|why| WhatIfError::Policy(format!("{file}: {why}")))?;
        Ok(policy)
    }

    /// Sets one numeric rule (`gone_dark`, `no_activity`, `stalled`, `unanswered_touches`,
    /// `past_close_date`) to `value`.
    pub fn set(&mut self, rule: &str, value: f64) -> Result<(), WhatIfError> {
        let Some(swept) = Swept::parse(rule) else {
            return Err(WhatIfError::Policy(format!(
                "unknown rule `{rule}` (numeric rules: {}; missing_field needs a policy file)",
                Swept::names()
            )));
        };
        out_of_range(swept, value).map_or(Ok(()), |why| Err(WhatIfError::Policy(why)))?;
        match swept {
            Swept::GoneDark => self.gone_dark = Some(value),
            Swept::NoActivity => self.no_activity = Some(value),
            Swept::Stalled => self.stalled = Some(value),
            Swept::PastCloseDate => self.past_close_date = Some(value),
            // In range: a whole number within u32 (out_of_range said so).
            Swept::UnansweredTouches => self.unanswered_touches = Some(value as u32),
        }
        Ok(())
    }

    /// A policy of numeric rules as one text, `gone_dark=14,stalled=1.5`: how a compared policy
    /// travels in a query string.
    pub fn parse_rules(text: &str) -> Result<Policy, WhatIfError> {
        let mut policy = Policy::default();
        for rule in text.split(',').filter(|rule| !rule.trim().is_empty()) {
            policy.set_text(rule)?;
        }
        if policy.is_empty() {
            return Err(WhatIfError::Policy(format!("`{text}`: no rule (expected RULE=VALUE,RULE=VALUE)")));
        }
        Ok(policy)
    }

    /// The rules that count touches: on deals without touches their clocks run from the opening
    /// whatever happened, so their figures say little.
    pub fn touch_rules(&self) -> Vec<&'static str> {
        self.numbers()
            .into_iter()
            .filter(|(rule, value)| value.is_some() && rule.counts_touches())
            .map(|(rule, _)| rule.name())
            .collect()
    }

    /// Every numeric rule with its value, if set, in the order rules are listed.
    fn numbers(&self) -> [(Swept, Option<f64>); 5] {
        [
            (Swept::GoneDark, self.gone_dark),
            (Swept::NoActivity, self.no_activity),
            (Swept::Stalled, self.stalled),
            (Swept::UnansweredTouches, self.unanswered_touches.map(f64::from)),
            (Swept::PastCloseDate, self.past_close_date),
        ]
    }

    /// The policy as a person reads it: `gone_dark=14,stalled=1.5`, then each missing_field
    /// rule as `missing_field budget_confirmed by quote +5 days`.
    pub fn describe(&self) -> String {
        let numeric = Policy { missing_field: Vec::new(), ..self.clone() };
        let mut parts: Vec<String> =
            numeric.rules_text().into_iter().filter(|text| !text.is_empty()).collect();
        for m in &self.missing_field {
            parts.push(format!("missing_field {} by {} +{} days", m.field, m.by_stage, m.grace_days));
        }
        parts.join(", ")
    }

    /// The inverse of [`Policy::parse_rules`]; None for a policy with `missing_field` rules
    /// (they need a policy file).
    pub fn rules_text(&self) -> Option<String> {
        if !self.missing_field.is_empty() {
            return None;
        }
        let rules: Vec<String> = self
            .numbers()
            .iter()
            .filter_map(|(rule, value)| value.map(|v| format!("{}={v}", rule.name())))
            .collect();
        Some(rules.join(","))
    }

    /// `--rule name=value`.
    pub fn set_text(&mut self, text: &str) -> Result<(), WhatIfError> {
        let (rule, value) = text
            .split_once('=')
            .ok_or_else(|| WhatIfError::Policy(format!("`{text}`: expected RULE=VALUE")))?;
        let value: f64 = value
            .trim()
            .parse()
            .map_err(|_| WhatIfError::Policy(format!("`{text}`: `{value}` is not a number")))?;
        self.set(rule.trim(), value)
    }

    fn check(&self) -> Result<(), String> {
        for (rule, value) in self.numbers() {
            if let Some(why) = value.and_then(|v| out_of_range(rule, v)) {
                return Err(why);
            }
        }
        for m in &self.missing_field {
            if !m.grace_days.is_finite() || !(0.0..=RULE_DAYS_MAX).contains(&m.grace_days) {
                return Err(format!(
                    "missing_field {}: grace_days must be a number of days at least 0 and at most {RULE_DAYS_MAX}",
                    m.field
                ));
            }
        }
        Ok(())
    }
}

/// Why `value` is not a value of `rule`, if it is not: each rule's range, never clamped.
fn out_of_range(rule: Swept, value: f64) -> Option<String> {
    let name = rule.name();
    let (low, high, whole) = match rule {
        Swept::GoneDark | Swept::NoActivity | Swept::PastCloseDate => (0.0, RULE_DAYS_MAX, false),
        Swept::Stalled => (0.0, STALLED_FACTOR_MAX, false),
        Swept::UnansweredTouches => (1.0, f64::from(u32::MAX), true),
    };
    let fits = value.is_finite() && (low..=high).contains(&value) && (!whole || value.fract() == 0.0);
    let kind = if whole { "a whole number" } else { "a number" };
    (!fits).then(|| format!("{name} = {value}: must be {kind} at least {low} and at most {high}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_past_a_rules_range_is_refused_not_clamped() {
        for (rule, value) in [
            ("unanswered_touches", 4_294_967_296.0),
            ("unanswered_touches", 1e300),
            ("gone_dark", 1e300),
            ("no_activity", 1e9),
            ("past_close_date", 1e9),
            ("stalled", 1e9),
        ] {
            let e = Policy::default().set(rule, value).unwrap_err();
            assert!(e.to_string().contains("at most"), "{rule}={value}: {e}");
        }
        assert!(Policy::default().set("unanswered_touches", 4_294_967_295.0).is_ok());
        assert!(Policy::default().set("gone_dark", 3650.0).is_ok());
    }

    #[test]
    fn files_and_rules() {
        let p = Policy::parse_toml(
            "gone_dark = 14\nstalled = 1.5\n[[missing_field]]\nfield = \"budget\"\nby_stage = \"quote\"\ngrace_days = 7\n",
            "policy.toml",
        )
        .unwrap();
        assert_eq!(p.gone_dark, Some(14.0));
        assert_eq!(p.missing_field[0].by_stage, "quote");
        let e = Policy::parse_toml("\ngone_drak = 14\n", "policy.toml").unwrap_err().to_string();
        assert!(
            e.starts_with(
                "policy.toml:2:1: unknown key `gone_drak` at the top of the file; did you mean `gone_dark`?"
            ),
            "{e}"
        );
        let e = Policy::parse_toml(
            "[[missing_field]]\nfield = \"f\"\nby_stage = \"quote\"\ngrace_day = 1\n",
            "p",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("unknown key `grace_day` in [[missing_field]]; did you mean `grace_days`?"),
            "{e}"
        );
        assert!(Policy::parse_toml("gone_dark = -1\n", "p").unwrap_err().to_string().contains("at least 0"));
        let numeric =
            Policy::parse_toml("gone_dark = 14.5\nunanswered_touches = 3\nstalled = 2\n", "p").unwrap();
        let text = numeric.rules_text().unwrap();
        assert_eq!(text, "gone_dark=14.5,stalled=2,unanswered_touches=3");
        assert_eq!(Policy::parse_rules(&text).unwrap(), numeric);
        assert_eq!(p.rules_text(), None, "missing_field needs a file");
        assert!(Policy::parse_rules(",").is_err());
        assert!(Policy::parse_rules("gone_dark=1,nope=2")
            .unwrap_err()
            .to_string()
            .contains("unknown rule `nope`"));
        let mut q = Policy::default();
        q.set_text("unanswered_touches=3").unwrap();
        assert_eq!(q.unanswered_touches, Some(3));
        assert!(q.set_text("unanswered_touches=2.5").is_err());
        assert!(q.set_text("nope=1").unwrap_err().to_string().contains("unknown rule `nope`"));
        assert!(q.set_text("gone_dark").unwrap_err().to_string().contains("expected RULE=VALUE"));
    }
}
