//! The sweep chart: net value, revenue at risk and effort value saved against the swept value,
//! drawn by the one chart module (`dealledger_reports::chart`) every chart comes from.

use crate::sim::Swept;
use crate::SweepReport;
use dealledger_reports::chart::{Lines, Series};
use dealledger_reports::output::{units, Money};

/// The unit of a swept rule's values, for the x axis.
fn rule_unit(rule: &str) -> &'static str {
    match Swept::parse(rule) {
        Some(Swept::Stalled) => "x the stage's p90",
        Some(Swept::UnansweredTouches) => "touches",
        _ => "days",
    }
}

/// The chart of a sweep: the three money figures by value (net value where it has one), the
/// best marked when one is named.
pub fn sweep_chart(report: &SweepReport) -> Lines {
    let of = |pick: fn(&crate::Outcome) -> Option<Money>| -> Vec<f64> {
        report.rows.iter().map(|r| pick(&r.outcome).map_or(f64::NAN, units)).collect()
    };
    let (priced_in, revenue_in) = (report.scope.priced_in, report.scope.currency);
    // Two currencies are never drawn against one axis: revenue at risk joins the others only
    // when it is in theirs.
    let mut series = vec![
        Series::new("net value", of(|o| o.net_value)),
        Series::new("effort value saved", of(|o| Some(o.effort_value_saved))),
    ];
    if priced_in == revenue_in {
        series.insert(1, Series::new("revenue at risk", of(|o| Some(o.revenue_at_risk))));
    }
    Lines {
        title: format!(
            "What if: {} swept, deals in {revenue_in}, history to {}",
            report.rule, report.as_of.0
        ),
        x_label: format!("{} ({})", report.rule, rule_unit(&report.rule)),
        unit: priced_in.to_string(),
        xs: report.rows.iter().map(|r| r.value).collect(),
        series,
        mark: report.best.as_ref().map(|b| (b.value, format!("best: {} = {}", report.rule, b.value))),
    }
}

/// The sweep chart as a self-contained SVG (`whatif --plot`).
pub fn sweep_svg(report: &SweepReport) -> String {
    sweep_chart(report).svg()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Coverage, Outcome, SweepRow};
    use dealledger_events::Currency;
    use dealledger_reports::basis::Basis;
    use dealledger_reports::chart::{text_width, WIDTH};
    use dealledger_reports::output::{Instant, Money};

    /// A sweep of gone_dark 5..60 whose net value runs from -40.9 M to 28.2 M, best at 60.
    fn sweep() -> SweepReport {
        let usd = |minor: i128| Money::new(minor, Currency::USD);
        let row = |value: f64| SweepRow {
            value,
            outcome: Outcome {
                cut: 1,
                cut_won: 0,
                cut_bad: 1,
                cut_open: 0,
                bad_deals: 1,
                revenue_at_risk: usd(0),
                effort_hours_saved: 1.0,
                effort_value_saved: usd(0),
                calendar_days_saved: 1.0,
                calendar_value_saved: usd(0),
                precision: None,
                recall: None,
                net_value: Some(usd(((-40.9e6 + (value - 5.0) * 69.1e6 / 55.0) * 100.0) as i128)),
            },
        };
        let rows: Vec<SweepRow> = (5..=60).map(|v| row(f64::from(v))).collect();
        SweepReport {
            rule: "gone_dark".into(),
            policy: crate::Policy::default(),
            as_of: Instant(dealledger_events::Timestamp(0)),
            best: rows.last().cloned(),
            rows,
            scope: Coverage {
                currency: Currency::USD,
                deals: 1,
                with_touches: 1,
                won: 0,
                won_with_amount: 0,
                left_out: Vec::new(),
                priced_in: Currency::USD,
            },
            basis: Basis::default(),
        }
    }

    #[test]
    fn the_sweep_chart_has_round_ticks_units_and_every_label_inside() {
        let svg = sweep_svg(&sweep());
        for text in svg.split("<text ").skip(1) {
            let attr = |name: &str| {
                text.split(&format!(r#"{name}=""#)).nth(1).and_then(|r| r.split('"').next()).unwrap_or("")
            };
            let body = text.split('>').nth(1).and_then(|r| r.split('<').next()).unwrap_or("");
            let (x, w) = (attr("x").parse::<f64>().unwrap(), text_width(body));
            let (from, to) = match attr("text-anchor") {
                "end" => (x - w, x),
                "middle" => (x - w / 2.0, x + w / 2.0),
                _ => (x, x + w),
            };
            assert!(from >= 0.0 && to <= WIDTH, "`{body}` spans {from:.1}..{to:.1}");
            // Ticks are round: no `17.6`, no `-40.9M`.
            assert!(!body.contains("40.9") && !body.contains("10.7M"), "`{body}`");
        }
        assert!(svg.contains(">-40M<") && svg.contains(">20M<"), "{svg}");
        assert!(svg.contains(">USD<") && svg.contains(">gone_dark (days)<"), "axes say their units: {svg}");
        assert!(svg.contains(r#"class="zero""#), "a zero line");
    }
}
