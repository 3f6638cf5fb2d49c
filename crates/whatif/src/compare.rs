//! Policies side by side, and the text forms a sweep and a policy take on a command line or in a
//! query string: what the CLI and the daemon share.

use crate::WhatIfError;
use crate::{Policy, Prepared, WhatIfReport};
use dealledger_reports::basis::Basis;
use dealledger_reports::output::{Cell, Instant, Table};
use dealledger_reports::Report;
use serde::Serialize;

/// Values in one sweep, at most.
pub const SWEEP_VALUES_MAX: usize = 10_000;

/// Policies in one comparison, at most.
pub const COMPARED_POLICIES_MAX: usize = 32;

/// `RULE=FROM..TO[:STEP]` (`gone_dark=7..60`, `stalled=1..3:0.25`) as the rule and its values.
pub fn sweep_values(text: &str) -> Result<(String, Vec<f64>), WhatIfError> {
    let bad = |why: &str| WhatIfError::Sweep(format!("`{text}`: {why}"));
    let (rule, range) = text.split_once('=').ok_or_else(|| bad("expected RULE=FROM..TO[:STEP]"))?;
    let (range, step) = range.split_once(':').map_or((range, "1"), |(r, s)| (r, s));
    let (from, to) = range.split_once("..").ok_or_else(|| bad("expected FROM..TO"))?;
    let number = |s: &str| s.trim().parse::<f64>().map_err(|_| bad(&format!("`{s}` is not a number")));
    let (from, to, step) = (number(from)?, number(to)?, number(step)?);
    if !from.is_finite() || !to.is_finite() || !step.is_finite() || step <= 0.0 || from > to {
        return Err(bad("needs FROM <= TO and a positive STEP"));
    }
    let count = ((to - from) / step + 1e-9).floor();
    if count >= SWEEP_VALUES_MAX as f64 {
        return Err(bad(&format!("{} values; at most {SWEEP_VALUES_MAX}", count + 1.0)));
    }
    let count = count as usize + 1;
    // Values as from + i * step, rounded to 9 decimals so 0.1 steps print as written.
    let values = (0..count).map(|i| ((from + i as f64 * step) * 1e9).round() / 1e9).collect();
    Ok((rule.trim().to_string(), values))
}

/// Several policies run on the same history.
#[derive(Serialize)]
pub struct Comparison {
    pub as_of: Instant,
    pub policies: Vec<WhatIfReport>,
    /// What the comparison stands on: every policy's notes, once each.
    #[serde(flatten)]
    pub basis: Basis,
}

impl Prepared<'_> {
    /// Each policy's outcome, in the order given, under its name.
    pub fn compare(&self, policies: &[(String, Policy)]) -> Result<Comparison, WhatIfError> {
        if policies.len() > COMPARED_POLICIES_MAX {
            return Err(WhatIfError::Compare(format!(
                "{} policies; at most {COMPARED_POLICIES_MAX}",
                policies.len()
            )));
        }
        let run = |(part, (label, policy)): (usize, &(String, Policy))| {
            let mut report =
                self.run_part(policy, false, false, (part, policies.len())).map_err(|e| match e {
                    WhatIfError::Stopped(why) => WhatIfError::Stopped(why),
                    e => WhatIfError::Compare(e.to_string()),
                })?;
            report.label = Some(label.clone());
            Ok(report)
        };
        let policies = policies.iter().enumerate().map(run).collect::<Result<Vec<_>, _>>()?;
        let mut basis = Basis::default();
        for report in &policies {
            for note in &report.basis.notes {
                if !basis.notes.contains(note) {
                    basis.note(note.clone());
                }
            }
            basis.offer = basis.offer.or(report.basis.offer);
        }
        Ok(Comparison { as_of: Instant(self.scope.as_of), policies, basis })
    }
}

impl Report for Comparison {
    fn tables(&self) -> Vec<Table> {
        let mut table = Table::new(
            format!("Policies compared, history to {}", self.as_of.0),
            &[
                "policy",
                "cut",
                "cut won",
                "cut bad",
                "cut open",
                "revenue at risk",
                "effort value saved",
                "calendar value saved",
                "precision",
                "recall",
                "net value",
            ],
        );
        for r in &self.policies {
            let o = &r.outcome;
            let ratio = |v: Option<f64>| v.map_or(Cell::Null, |v| Cell::Num(v, 3));
            table.push(vec![
                Cell::Text(r.label.clone().unwrap_or_else(|| r.policy.describe())),
                Cell::Int(o.cut as i64),
                Cell::Int(o.cut_won as i64),
                Cell::Int(o.cut_bad as i64),
                Cell::Int(o.cut_open as i64),
                Cell::Money(o.revenue_at_risk),
                Cell::Money(o.effort_value_saved),
                Cell::Money(o.calendar_value_saved),
                ratio(o.precision),
                ratio(o.recall),
                o.net_value.map_or(Cell::Null, Cell::Money),
            ]);
        }
        vec![table]
    }

    fn note_lines(&self) -> Vec<String> {
        self.basis.lines()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweep_ranges() {
        assert_eq!(sweep_values("gone_dark=7..9").unwrap(), ("gone_dark".into(), vec![7.0, 8.0, 9.0]));
        assert_eq!(sweep_values("stalled=1..1.5:0.25").unwrap().1, vec![1.0, 1.25, 1.5]);
        assert_eq!(sweep_values("x=0..0.3:0.1").unwrap().1, vec![0.0, 0.1, 0.2, 0.3]);
        for bad in ["gone_dark", "g=1", "g=a..2", "g=2..1", "g=1..2:0", "g=1..2:-1", "g=0..1e300", "g=NaN..1"]
        {
            assert!(sweep_values(bad).is_err(), "{bad}");
        }
        assert!(sweep_values("g=0..10000").unwrap_err().to_string().contains("at most 10000"));
        assert_eq!(sweep_values("g=0..9999").unwrap().1.len(), 10_000);
    }
}
