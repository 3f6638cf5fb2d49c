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

pub fn sweep_svg(report: &SweepReport) -> String {
    let exponent = report.rows.first().map_or(2, |r| r.outcome.net_value.currency.exponent());
    let currency =
        report.rows.first().map_or("USD".to_string(), |r| r.outcome.net_value.currency.to_string());
    let series: [(&str, &str, Vec<f64>); 3] = [
        (
            "net value",
            "#1b7837",
            report.rows.iter().map(|r| money(r.outcome.net_value.minor, exponent)).collect(),
        ),
        (
            "revenue at risk",
            "#c51b7d",
            report.rows.iter().map(|r| money(r.outcome.revenue_at_risk.minor, exponent)).collect(),
        ),
        (
            "effort value saved",
            "#2166ac",
            report.rows.iter().map(|r| money(r.outcome.effort_value_saved.minor, exponent)).collect(),
        ),
    ];
    let xs: Vec<f64> = report.rows.iter().map(|r| r.value).collect();
    let (x_min, x_max) = (xs.first().copied().unwrap_or(0.0), xs.last().copied().unwrap_or(1.0));
    let all = series.iter().flat_map(|s| s.2.iter().copied());
    let (mut y_min, mut y_max) = all.fold((0.0f64, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if y_max == y_min {
        y_max = y_min + 1.0;
    }
    let pad = (y_max - y_min) * 0.05;
    (y_min, y_max) = (y_min - pad, y_max + pad);
    let plot_w = WIDTH - MARGIN_LEFT - MARGIN_RIGHT;
    let plot_h = HEIGHT - MARGIN_TOP - MARGIN_BOTTOM;
    let x = |v: f64| {
        MARGIN_LEFT + if x_max > x_min { (v - x_min) / (x_max - x_min) * plot_w } else { plot_w / 2.0 }
    };
    let y = |v: f64| MARGIN_TOP + (y_max - v) / (y_max - y_min) * plot_h;
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
    for i in 0..=TICKS {
        let v = y_min + (y_max - y_min) * i as f64 / TICKS as f64;
        let _ = writeln!(
            svg,
            r##"<line x1="{MARGIN_LEFT}" x2="{}" y1="{yy:.1}" y2="{yy:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{} {currency}</text>"##,
            WIDTH - MARGIN_RIGHT,
            MARGIN_LEFT - 6.0,
            y(v) + 4.0,
            label(v),
            yy = y(v)
        );
        let xv = x_min + (x_max - x_min) * i as f64 / TICKS as f64;
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
            x(xv),
            HEIGHT - MARGIN_BOTTOM + 18.0,
            (xv * 100.0).round() / 100.0
        );
    }
    let _ = writeln!(
        svg,
        r##"<line x1="{MARGIN_LEFT}" x2="{}" y1="{z:.1}" y2="{z:.1}" stroke="#888"/>"##,
        WIDTH - MARGIN_RIGHT,
        z = y(0.0)
    );
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
        MARGIN_LEFT + plot_w / 2.0,
        HEIGHT - MARGIN_BOTTOM + 40.0,
        escape(&report.rule)
    );
    for (i, (name, color, values)) in series.iter().enumerate() {
        let points: Vec<String> =
            xs.iter().zip(values).map(|(a, b)| format!("{:.1},{:.1}", x(*a), y(*b))).collect();
        let _ = writeln!(
            svg,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
            points.join(" ")
        );
        let lx = MARGIN_LEFT + i as f64 * 200.0;
        let ly = HEIGHT - 14.0;
        let _ = writeln!(
            svg,
            r#"<line x1="{lx}" x2="{}" y1="{ly}" y2="{ly}" stroke="{color}" stroke-width="3"/><text x="{}" y="{}">{name}</text>"#,
            lx + 24.0,
            lx + 30.0,
            ly + 4.0
        );
    }
    if let Some(best) = &report.best {
        let bx = x(best.value);
        let by = y(money(best.outcome.net_value.minor, exponent));
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
