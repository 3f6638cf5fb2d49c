//! The sweep chart: net value, revenue at risk and effort value saved against the swept value,
//! as a self-contained SVG (no dependency: a few lines, axes and labels).

use crate::SweepReport;
use std::fmt::Write;

const WIDTH: f64 = 800.0;
const HEIGHT: f64 = 460.0;
const MARGIN_LEFT: f64 = 110.0;
const MARGIN_RIGHT: f64 = 30.0;
const MARGIN_TOP: f64 = 50.0;
const MARGIN_BOTTOM: f64 = 70.0;
const TICKS: usize = 5;

fn money(minor: i128, exponent: u32) -> f64 {
    minor as f64 / 10f64.powi(exponent as i32)
}

fn label(value: f64) -> String {
    let abs = value.abs();
    let (scaled, unit) = if abs >= 1e6 {
        (value / 1e6, "M")
    } else if abs >= 1e3 {
        (value / 1e3, "k")
    } else {
        (value, "")
    };
    format!("{scaled:.1}{unit}")
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// Where values land on the chart: the swept values across, money up.
struct Frame {
    x_min: f64,
    x_max: f64,
    y_min: f64,
    y_max: f64,
}

const PLOT_W: f64 = WIDTH - MARGIN_LEFT - MARGIN_RIGHT;
const PLOT_H: f64 = HEIGHT - MARGIN_TOP - MARGIN_BOTTOM;

impl Frame {
    /// Across: the swept values from first to last; up: every series and zero, with 5% to spare.
    fn new(xs: &[f64], series: &[Series]) -> Frame {
        let (x_min, x_max) = (xs.first().copied().unwrap_or(0.0), xs.last().copied().unwrap_or(1.0));
        let all = series.iter().flat_map(|s| s.values.iter().copied());
        let (y_min, mut y_max) = all.fold((0.0f64, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
        if y_max == y_min {
            y_max = y_min + 1.0;
        }
        let pad = (y_max - y_min) * 0.05;
        Frame { x_min, x_max, y_min: y_min - pad, y_max: y_max + pad }
    }

    fn x(&self, v: f64) -> f64 {
        let (lo, hi) = (self.x_min, self.x_max);
        MARGIN_LEFT + if hi > lo { (v - lo) / (hi - lo) * PLOT_W } else { PLOT_W / 2.0 }
    }

    fn y(&self, v: f64) -> f64 {
        MARGIN_TOP + (self.y_max - v) / (self.y_max - self.y_min) * PLOT_H
    }
}

/// One line of the chart.
struct Series {
    name: &'static str,
    color: &'static str,
    values: Vec<f64>,
}

pub fn sweep_svg(report: &SweepReport) -> String {
    let exponent = report.rows.first().map_or(2, |r| r.outcome.effort_value_saved.currency.exponent());
    let currency =
        report.rows.first().map_or("USD".to_string(), |r| r.outcome.effort_value_saved.currency.to_string());
    let money_of = |pick: fn(&crate::Outcome) -> i128| -> Vec<f64> {
        report.rows.iter().map(|r| money(pick(&r.outcome), exponent)).collect()
    };
    let series = [
        Series {
            name: "net value",
            color: "#1b7837",
            values: money_of(|o| o.net_value.map_or(0, |m| m.minor)),
        },
        Series { name: "revenue at risk", color: "#c51b7d", values: money_of(|o| o.revenue_at_risk.minor) },
        Series {
            name: "effort value saved",
            color: "#2166ac",
            values: money_of(|o| o.effort_value_saved.minor),
        },
    ];
    let xs: Vec<f64> = report.rows.iter().map(|r| r.value).collect();
    let frame = Frame::new(&xs, &series);
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="24" font-size="16" text-anchor="middle">What if: {} swept, history to {}</text>"#,
        WIDTH / 2.0,
        escape(&report.rule),
        report.as_of.0
    );
    axes(&mut svg, &frame, &report.rule, &currency);
    for (i, line) in series.iter().enumerate() {
        polyline(&mut svg, &frame, &xs, line, i);
    }
    if let Some(best) = &report.best {
        let bx = frame.x(best.value);
        let by = frame.y(money(best.outcome.net_value.map_or(0, |m| m.minor), exponent));
        let _ = writeln!(
            svg,
            r##"<circle cx="{bx:.1}" cy="{by:.1}" r="5" fill="#1b7837"/><text x="{:.1}" y="{:.1}">best: {} = {}</text>"##,
            bx + 8.0,
            by - 8.0,
            escape(&report.rule),
            best.value
        );
    }
    svg.push_str("</svg>\n");
    svg
}

/// Grid lines with money labels up the left, swept values along the bottom, the zero line and
/// the rule's name under the axis.
fn axes(svg: &mut String, frame: &Frame, rule: &str, currency: &str) {
    let Frame { x_min, x_max, y_min, y_max } = *frame;
    for i in 0..=TICKS {
        let v = y_min + (y_max - y_min) * i as f64 / TICKS as f64;
        let _ = writeln!(
            svg,
            r##"<line x1="{MARGIN_LEFT}" x2="{}" y1="{yy:.1}" y2="{yy:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{} {currency}</text>"##,
            WIDTH - MARGIN_RIGHT,
            MARGIN_LEFT - 6.0,
            frame.y(v) + 4.0,
            label(v),
            yy = frame.y(v)
        );
        let xv = x_min + (x_max - x_min) * i as f64 / TICKS as f64;
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
            frame.x(xv),
            HEIGHT - MARGIN_BOTTOM + 18.0,
            (xv * 100.0).round() / 100.0
        );
    }
    let _ = writeln!(
        svg,
        r##"<line x1="{MARGIN_LEFT}" x2="{}" y1="{z:.1}" y2="{z:.1}" stroke="#888"/>"##,
        WIDTH - MARGIN_RIGHT,
        z = frame.y(0.0)
    );
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
        MARGIN_LEFT + PLOT_W / 2.0,
        HEIGHT - MARGIN_BOTTOM + 40.0,
        escape(rule)
    );
}

/// A series as a line, and its entry in the legend (the `index`-th).
fn polyline(svg: &mut String, frame: &Frame, xs: &[f64], series: &Series, index: usize) {
    let Series { name, color, values } = series;
    let points: Vec<String> =
        xs.iter().zip(values).map(|(a, b)| format!("{:.1},{:.1}", frame.x(*a), frame.y(*b))).collect();
    let _ = writeln!(
        svg,
        r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
        points.join(" ")
    );
    let lx = MARGIN_LEFT + index as f64 * 200.0;
    let ly = HEIGHT - 14.0;
    let _ = writeln!(
        svg,
        r#"<line x1="{lx}" x2="{}" y1="{ly}" y2="{ly}" stroke="{color}" stroke-width="3"/><text x="{}" y="{}">{name}</text>"#,
        lx + 24.0,
        lx + 30.0,
        ly + 4.0
    );
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
