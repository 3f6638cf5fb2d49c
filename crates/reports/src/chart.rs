//! Charts as SVG text: every chart there is (the dashboard's pictures of each report, the deal on
//! a time axis, the what-if sweep, and `whatif --plot`) comes from here, so they read alike and
//! follow one set of rules:
//! - axes with round ticks (1, 2 or 5 times a power of ten), each axis saying its unit;
//! - a zero line wherever zero is in range;
//! - every label inside the frame (one that would run past an edge is anchored the other way);
//! - series told apart by colour and by line style, so that two lines that coincide still show.
//!
//! An SVG carries its colours as attributes (a file opened alone) and classes (`c0`..`c2`,
//! `axis`, `grid`, `zero`, `label`) that the dashboard's stylesheet overrides for its light and
//! dark themes. No `style` element or attribute: the dashboard's Content-Security-Policy forbids
//! inline style. Text is escaped; nothing here reads a clock or a file.

use std::fmt::Write;

/// Width of every chart, in SVG units (pixels at 100%).
pub const WIDTH: f64 = 800.0;
/// Height of a line chart.
const LINES_HEIGHT: f64 = 420.0;
/// The font size of every label, and the width a character is taken to need (a sans-serif
/// digit or lower-case letter is about 0.55 em; upper case and wide letters more): generous,
/// so that a label said to fit does.
const FONT_PX: f64 = 12.0;
const CHAR_WIDTH_PX: f64 = 7.2;
/// Intervals between ticks on an axis, at most (the fewest round steps allow, at least 3 or so).
const TICKS_INTERVALS_MAX: usize = 8;
/// Series colours: the dashboard's light theme (its stylesheet sets both themes by class).
const COLOURS: [&str; 3] = ["#2f6fdf", "#b3261e", "#5b6470"];
const TEXT_COLOUR: &str = "#1b1f24";
const GRID_COLOUR: &str = "#d8dde3";
const ZERO_COLOUR: &str = "#5b6470";
/// Line styles by series: widths (a wide line under a narrow one shows both where they
/// coincide) and dashes.
const LINE_WIDTHS: [f64; 3] = [4.0, 2.5, 1.5];
const LINE_DASHES: [&str; 3] = ["", "8 4", "2 3"];
/// Points marked on a line when there are no more than this many.
const MARKERS_MAX: usize = 40;
/// What a figure with nothing under it shows, as the tables do.
const NO_FIGURE: &str = "—";

/// A chart of any kind, as a report or an answer gives it.
#[derive(Clone, Debug, PartialEq)]
pub enum Chart {
    Bars(Bars),
    Lines(Lines),
    Deal(DealPicture),
}

impl Chart {
    pub fn svg(&self) -> String {
        match self {
            Chart::Bars(bars) => bars.svg(),
            Chart::Lines(lines) => lines.svg(),
            Chart::Deal(deal) => deal.svg(),
        }
    }
}

/// One named series of values.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub name: String,
    pub values: Vec<f64>,
}

impl Series {
    pub fn new(name: impl Into<String>, values: Vec<f64>) -> Series {
        Series { name: name.into(), values }
    }
}

/// Horizontal bars: one group per category, one bar per series; the value axis along the
/// bottom in `unit` (`USD`, `days`, `%`).
#[derive(Clone, Debug, PartialEq)]
pub struct Bars {
    pub title: String,
    pub unit: String,
    pub categories: Vec<String>,
    pub series: Vec<Series>,
}

/// Lines of `series` over `xs` (ascending), with an optional mark at one x.
#[derive(Clone, Debug, PartialEq)]
pub struct Lines {
    pub title: String,
    /// What x is, with its unit: `gone_dark (days)`.
    pub x_label: String,
    /// The unit of the values: `USD`.
    pub unit: String,
    pub xs: Vec<f64>,
    pub series: Vec<Series>,
    pub mark: Option<(f64, String)>,
}

/// A deal on a time axis (microseconds since the epoch): its stage visits as bars, its touches
/// as ticks (outbound above the line, inbound below), its lifecycle and field changes as marks.
#[derive(Clone, Debug, PartialEq)]
pub struct DealPicture {
    pub title: String,
    pub from_us: i64,
    pub to_us: i64,
    /// Stage, start, end (None: still there, up to `to_us`).
    pub visits: Vec<(String, i64, Option<i64>)>,
    /// When, outbound, and a tooltip.
    pub touches: Vec<(i64, bool, String)>,
    /// When, its colour (0 won, 1 lost or disqualified, 2 other) and a tooltip.
    pub marks: Vec<(i64, usize, String)>,
}

/// An axis's round ticks: every multiple of `step` from `first` to `last`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ticks {
    pub first: f64,
    pub last: f64,
    pub step: f64,
}

impl Ticks {
    /// Round ticks over [lo, hi]: the smallest step of 1, 2 or 5 times a power of ten whose
    /// multiples cover the range in at most [`TICKS_INTERVALS_MAX`] intervals.
    pub fn over(lo: f64, hi: f64) -> Ticks {
        let (lo, hi) = if lo.is_finite() && hi.is_finite() { (lo.min(hi), lo.max(hi)) } else { (0.0, 1.0) };
        // A range of one value (all zeros, say) gets an axis from it to one more unit.
        let hi = if hi > lo { hi } else { lo + lo.abs().max(1.0) };
        let span = hi - lo;
        let power = 10f64.powf((span / TICKS_INTERVALS_MAX as f64).log10().floor());
        let candidates = [1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0].map(|m| m * power);
        let cover = |step: f64| {
            let first = (lo / step).floor() * step;
            let last = ((hi / step).ceil() * step).max(first + step);
            Ticks { first, last, step }
        };
        let fits = |t: &Ticks| ((t.last - t.first) / t.step).round() as usize <= TICKS_INTERVALS_MAX;
        candidates.into_iter().map(cover).find(fits).unwrap_or_else(|| cover(100.0 * power))
    }

    /// The tick values, first to last (at most a few dozen by construction).
    pub fn values(&self) -> Vec<f64> {
        let n = ((self.last - self.first) / self.step).round().clamp(0.0, 1000.0) as usize;
        (0..=n).map(|i| clean(self.first + i as f64 * self.step)).collect()
    }

    /// A tick's label: `0`, `250`, `1.5k`, `-40M`, `0.25`, with the decimals the step needs.
    pub fn label(&self, value: f64) -> String {
        let magnitude = self.first.abs().max(self.last.abs());
        let (scale, suffix) = match magnitude {
            m if m >= 1e9 => (1e9, "B"),
            m if m >= 1e6 => (1e6, "M"),
            m if m >= 1e4 => (1e3, "k"),
            _ => (1.0, ""),
        };
        let step = self.step / scale;
        let decimals = if step >= 1.0 { 0 } else { (-step.log10().floor()) as usize };
        let text = format!("{:.*}", decimals.min(6), clean(value / scale));
        let text = if text.contains('.') { text.trim_end_matches('0').trim_end_matches('.') } else { &text };
        if text.trim_start_matches('-') == "0" {
            return "0".into();
        }
        format!("{text}{suffix}")
    }
}

/// A multiple of a step without the float noise of the multiplication (and never -0).
fn clean(value: f64) -> f64 {
    (value * 1e9).round() / 1e9 + 0.0
}

/// A figure as a bar's label: grouped, to two decimals at most (`153,900`, `0.39`, `-2.5`).
fn number(value: f64) -> String {
    let text = format!("{:.2}", clean(value));
    let text = text.trim_end_matches('0').trim_end_matches('.');
    let (sign, digits) = text.strip_prefix('-').map_or(("", text), |d| ("-", d));
    let (whole, fraction) = digits.split_once('.').map_or((digits, None), |(w, f)| (w, Some(f)));
    let grouped = crate::output::thousands(whole.parse().unwrap_or(0));
    let sign = if grouped == "0" && fraction.is_none() { "" } else { sign };
    match fraction {
        Some(f) => format!("{sign}{grouped}.{f}"),
        None => format!("{sign}{grouped}"),
    }
}

/// The width a label needs, in SVG units.
pub fn text_width(text: &str) -> f64 {
    text.chars().count() as f64 * CHAR_WIDTH_PX
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// `text` cut to fit `width`, with an ellipsis where cut.
fn fit(text: &str, width: f64) -> String {
    let chars = (width / CHAR_WIDTH_PX).floor().max(1.0) as usize;
    if text.chars().count() <= chars {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(chars.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// The SVG being written: its elements, then [`Svg::finish`].
struct Svg {
    out: String,
}

impl Svg {
    fn new(title: &str, height: f64) -> Svg {
        let mut out = String::new();
        let _ = write!(
            out,
            r#"<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{t}" font-family="sans-serif" font-size="{FONT_PX}"><title>{t}</title>"#,
            t = escape(title)
        );
        Svg { out }
    }

    /// A label at (x, y): anchored at its start, unless it would run past the right edge (then
    /// at its end) or, anchored at its end, past the left edge (then at its start).
    fn text(&mut self, x: f64, y: f64, text: &str, anchor: Anchor, class: &str) {
        let width = text_width(text);
        let anchor = match anchor {
            Anchor::Start if x + width > WIDTH => Anchor::End,
            Anchor::End if x - width < 0.0 => Anchor::Start,
            Anchor::Middle if x - width / 2.0 < 0.0 => Anchor::Start,
            Anchor::Middle if x + width / 2.0 > WIDTH => Anchor::End,
            other => other,
        };
        let x = match anchor {
            Anchor::Start => x.max(0.0),
            Anchor::End => x.min(WIDTH),
            Anchor::Middle => x,
        };
        let fill = match class {
            "c0" => COLOURS[0],
            "c1" => COLOURS[1],
            "c2" => COLOURS[2],
            _ => TEXT_COLOUR,
        };
        let _ = write!(
            self.out,
            r#"<text x="{x:.1}" y="{y:.1}" text-anchor="{}" class="label {class}" fill="{fill}">{}</text>"#,
            anchor.as_str(),
            escape(text)
        );
    }

    fn line(&mut self, (x1, y1): (f64, f64), (x2, y2): (f64, f64), class: &str, colour: &str, dash: &str) {
        let dash = if dash.is_empty() { String::new() } else { format!(r#" stroke-dasharray="{dash}""#) };
        let _ = write!(
            self.out,
            r#"<line x1="{x1:.1}" y1="{y1:.1}" x2="{x2:.1}" y2="{y2:.1}" class="{class}" stroke="{colour}"{dash}/>"#
        );
    }

    fn rect(&mut self, x: f64, y: f64, width: f64, height: f64, series: usize, tip: &str) {
        let _ = write!(
            self.out,
            r#"<rect x="{x:.1}" y="{y:.1}" width="{:.1}" height="{height:.1}" class="c{s}" fill="{}"><title>{}</title></rect>"#,
            width.max(0.0),
            COLOURS[series % 3],
            escape(tip),
            s = series % 3
        );
    }

    /// The legend along the top: a swatch and a name per series, in the line style of each.
    fn legend(&mut self, names: &[&str], y: f64) {
        let mut x = 10.0;
        for (i, name) in names.iter().enumerate() {
            let s = i % 3;
            self.line((x, y - 4.0), (x + 24.0, y - 4.0), &format!("c{s} key"), COLOURS[s], LINE_DASHES[s]);
            self.text(x + 30.0, y, name, Anchor::Start, &format!("c{s}"));
            x += 30.0 + text_width(name) + 24.0;
        }
    }

    fn finish(mut self) -> String {
        self.out.push_str("</svg>\n");
        self.out
    }
}

#[derive(Clone, Copy)]
enum Anchor {
    Start,
    Middle,
    End,
}

impl Anchor {
    fn as_str(self) -> &'static str {
        match self {
            Anchor::Start => "start",
            Anchor::Middle => "middle",
            Anchor::End => "end",
        }
    }
}

/// A linear map of [lo, hi] onto [from, to] (pixels).
#[derive(Clone, Copy)]
struct Scale {
    lo: f64,
    hi: f64,
    from: f64,
    to: f64,
}

impl Scale {
    fn at(&self, v: f64) -> f64 {
        if self.hi > self.lo {
            self.from + (v - self.lo) / (self.hi - self.lo) * (self.to - self.from)
        } else {
            (self.from + self.to) / 2.0
        }
    }
}

/// The range of `values` with zero in it (so that bars and the zero line have a base).
fn range_with_zero<'a>(values: impl Iterator<Item = &'a f64>) -> (f64, f64) {
    values.filter(|v| v.is_finite()).fold((0.0f64, 0.0f64), |(lo, hi), &v| (lo.min(v), hi.max(v)))
}

impl Bars {
    pub fn svg(&self) -> String {
        let groups = self.categories.len();
        let per = self.series.len().max(1);
        let bar_height = 14.0;
        let group_height = per as f64 * bar_height + 10.0;
        let top = 44.0;
        let height = top + groups.max(1) as f64 * group_height + 50.0;
        let mut svg = Svg::new(&self.title, height);
        svg.text(10.0, 18.0, &self.title, Anchor::Start, "");
        let names: Vec<&str> = self.series.iter().map(|s| s.name.as_str()).collect();
        svg.legend(&names, 36.0);
        // Category names on the left, cut to at most a quarter of the width; values at the
        // bars' ends need room on the right.
        let longest = self.categories.iter().map(|c| text_width(c)).fold(0.0, f64::max);
        let label_width = longest.min(WIDTH / 4.0) + 10.0;
        let (lo, hi) = range_with_zero(self.series.iter().flat_map(|s| s.values.iter()));
        let ticks = Ticks::over(lo, hi);
        let value_room = 90.0;
        let scale = Scale { lo: ticks.first, hi: ticks.last, from: label_width, to: WIDTH - value_room };
        let bottom = top + groups as f64 * group_height;
        for v in ticks.values() {
            let x = scale.at(v);
            svg.line((x, top - 4.0), (x, bottom), "grid", GRID_COLOUR, "");
            svg.text(x, bottom + 16.0, &ticks.label(v), Anchor::Middle, "");
        }
        svg.text(WIDTH - 10.0, bottom + 34.0, &self.unit, Anchor::End, "");
        let zero = scale.at(0.0);
        for (g, category) in self.categories.iter().enumerate() {
            let y = top + g as f64 * group_height;
            svg.text(
                0.0,
                y + per as f64 * bar_height / 2.0 + 4.0,
                &fit(category, label_width - 10.0),
                Anchor::Start,
                "",
            );
            for (i, series) in self.series.iter().enumerate() {
                let by = y + i as f64 * bar_height;
                // A figure with nothing under it (a rate of no deal, a stage no visit ended
                // in) is no bar, and says so: it is not a 0.
                let Some(value) = series.values.get(g).copied().filter(|v| v.is_finite()) else {
                    svg.text(zero + 4.0, by + bar_height - 3.0, NO_FIGURE, Anchor::Start, "");
                    continue;
                };
                let end = scale.at(value);
                let text = number(value);
                let tip = format!("{category}, {}: {text}", series.name);
                svg.rect(zero.min(end), by, (end - zero).abs(), bar_height - 2.0, i, &tip);
                let (x, anchor) =
                    if value < 0.0 { (end - 4.0, Anchor::End) } else { (end + 4.0, Anchor::Start) };
                svg.text(x, by + bar_height - 3.0, &text, anchor, "");
            }
        }
        svg.line((zero, top - 4.0), (zero, bottom), "zero", ZERO_COLOUR, "");
        svg.finish()
    }
}

impl Lines {
    pub fn svg(&self) -> String {
        let height = LINES_HEIGHT;
        let (left, right, top, bottom) = (70.0, 20.0, 72.0, 56.0);
        let mut svg = Svg::new(&self.title, height);
        svg.text(10.0, 18.0, &self.title, Anchor::Start, "");
        let names: Vec<&str> = self.series.iter().map(|s| s.name.as_str()).collect();
        svg.legend(&names, 38.0);
        let (x_lo, x_hi) = (
            self.xs.iter().copied().fold(f64::INFINITY, f64::min),
            self.xs.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        );
        let x_ticks = Ticks::over(x_lo, x_hi);
        let (y_lo, y_hi) = range_with_zero(self.series.iter().flat_map(|s| s.values.iter()));
        let y_ticks = Ticks::over(y_lo, y_hi);
        let x = Scale { lo: x_ticks.first, hi: x_ticks.last, from: left, to: WIDTH - right };
        let y = Scale { lo: y_ticks.first, hi: y_ticks.last, from: height - bottom, to: top };
        for v in y_ticks.values() {
            let py = y.at(v);
            svg.line((left, py), (WIDTH - right, py), "grid", GRID_COLOUR, "");
            svg.text(left - 6.0, py + 4.0, &y_ticks.label(v), Anchor::End, "");
        }
        for v in x_ticks.values() {
            let px = x.at(v);
            svg.line((px, top), (px, height - bottom), "grid", GRID_COLOUR, "");
            svg.text(px, height - bottom + 16.0, &x_ticks.label(v), Anchor::Middle, "");
        }
        svg.text(left - 6.0, top - 12.0, &self.unit, Anchor::End, "");
        svg.text(WIDTH - right, height - 14.0, &self.x_label, Anchor::End, "");
        let zero = y.at(0.0);
        svg.line((left, zero), (WIDTH - right, zero), "zero", ZERO_COLOUR, "");
        for (i, series) in self.series.iter().enumerate() {
            let s = i % 3;
            let points: Vec<(f64, f64)> = self
                .xs
                .iter()
                .zip(&series.values)
                .filter(|(a, b)| a.is_finite() && b.is_finite())
                .map(|(&a, &b)| (x.at(a), y.at(b)))
                .collect();
            let text: Vec<String> = points.iter().map(|(a, b)| format!("{a:.1},{b:.1}")).collect();
            let dash = if LINE_DASHES[s].is_empty() {
                String::new()
            } else {
                format!(r#" stroke-dasharray="{}""#, LINE_DASHES[s])
            };
            let _ = write!(
                svg.out,
                r#"<polyline points="{}" class="line c{s}" fill="none" stroke="{}" stroke-width="{}"{dash}><title>{}</title></polyline>"#,
                text.join(" "),
                COLOURS[s],
                LINE_WIDTHS[s],
                escape(&series.name)
            );
            if points.len() <= MARKERS_MAX {
                for (px, py) in points {
                    let _ = write!(
                        svg.out,
                        r#"<circle cx="{px:.1}" cy="{py:.1}" r="{}" class="c{s}" fill="{}"/>"#,
                        LINE_WIDTHS[s] / 2.0 + 1.0,
                        COLOURS[s]
                    );
                }
            }
        }
        if let Some((at, label)) = &self.mark {
            let px = x.at(*at);
            svg.line((px, top), (px, height - bottom), "mark", TEXT_COLOUR, "4 3");
            svg.text(px + 4.0, top + 12.0, label, Anchor::Start, "");
        }
        svg.finish()
    }
}

impl DealPicture {
    pub fn svg(&self) -> String {
        const MICROS_PER_DAY: f64 = 86_400_000_000.0;
        let height = 150.0;
        let mut svg = Svg::new(&self.title, height);
        let (left, right) = (10.0, 10.0);
        // The axis in days from the first moment, on round ticks.
        let days = (self.to_us.saturating_sub(self.from_us)) as f64 / MICROS_PER_DAY;
        let ticks = Ticks::over(0.0, days.max(1.0));
        let x = Scale { lo: 0.0, hi: ticks.last, from: left, to: WIDTH - right };
        let at = |us: i64| x.at((us.saturating_sub(self.from_us)) as f64 / MICROS_PER_DAY);
        for (i, (stage, start, end)) in self.visits.iter().enumerate() {
            let (x0, x1) = (at(*start), at(end.unwrap_or(self.to_us)));
            // Alternate visits in the first and the muted colour (the second is for losses).
            svg.rect(x0, 10.0, (x1 - x0).max(1.0), 24.0, if i % 2 == 0 { 0 } else { 2 }, stage);
            if x1 - x0 > text_width(stage) + 6.0 {
                svg.text(x0 + 3.0, 27.0, stage, Anchor::Start, "on-bar");
            }
        }
        svg.line((left, 70.0), (WIDTH - right, 70.0), "axis", ZERO_COLOUR, "");
        for (when, outbound, tip) in &self.touches {
            let px = at(*when);
            let (y1, y2, s) = if *outbound { (52.0, 70.0, 0) } else { (70.0, 88.0, 1) };
            let _ = write!(
                svg.out,
                r#"<line x1="{px:.1}" y1="{y1}" x2="{px:.1}" y2="{y2}" class="c{s} tick" stroke="{}" stroke-width="2"><title>{}</title></line>"#,
                COLOURS[s],
                escape(tip)
            );
        }
        for (when, colour, tip) in &self.marks {
            let s = colour % 3;
            let _ = write!(
                svg.out,
                r#"<circle cx="{:.1}" cy="104" r="5" class="c{s}" fill="{}"><title>{}</title></circle>"#,
                at(*when),
                COLOURS[s],
                escape(tip)
            );
        }
        for v in ticks.values() {
            let px = x.at(v);
            svg.line((px, 112.0), (px, 118.0), "axis", ZERO_COLOUR, "");
            svg.text(px, 132.0, &ticks.label(v), Anchor::Middle, "");
        }
        svg.text(WIDTH - right, 147.0, "days since the first event", Anchor::End, "");
        svg.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `<text>` of an SVG: its x, anchor and text.
    fn texts(svg: &str) -> Vec<(f64, String, String)> {
        svg.split("<text ")
            .skip(1)
            .map(|t| {
                let attr = |name: &str| {
                    t.split(&format!(r#"{name}=""#))
                        .nth(1)
                        .and_then(|r| r.split('"').next())
                        .unwrap_or("")
                        .to_string()
                };
                let body = t.split('>').nth(1).and_then(|r| r.split('<').next()).unwrap_or("").to_string();
                (attr("x").parse().unwrap(), attr("text-anchor"), body)
            })
            .collect()
    }

    /// Every label lies inside the frame, as its anchor places it.
    fn inside(svg: &str) {
        for (x, anchor, body) in texts(svg) {
            let w = text_width(&body.replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">"));
            let (from, to) = match anchor.as_str() {
                "end" => (x - w, x),
                "middle" => (x - w / 2.0, x + w / 2.0),
                _ => (x, x + w),
            };
            assert!(from >= -0.01 && to <= WIDTH + 0.01, "`{body}` spans {from:.1}..{to:.1}");
        }
    }

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        for (lo, hi, step) in [
            (-40.9e6, 28.2e6, 10e6),
            (0.0, 17.6, 5.0),
            (5.0, 60.0, 10.0),
            (0.0, 1.0, 0.2),
            (0.0, 0.0, 0.2),
            (-3.0, -1.0, 0.5),
            (0.0, 1_482_392_000.0, 200e6),
        ] {
            let t = Ticks::over(lo, hi);
            assert_eq!(t.step, step, "{lo}..{hi}");
            assert!(t.first <= lo && t.last >= hi, "{lo}..{hi}: {t:?}");
            let mantissa = t.step / 10f64.powf(t.step.log10().floor());
            assert!([1.0, 2.0, 5.0].iter().any(|m| (mantissa - m).abs() < 1e-9), "{t:?}");
            for v in t.values() {
                assert!(
                    ((v / t.step).round() * t.step - v).abs() < 1e-6,
                    "{v} is not a multiple of {}",
                    t.step
                );
            }
        }
        let money = Ticks::over(-40.9e6, 28.2e6);
        let labels: Vec<String> = money.values().iter().map(|v| money.label(*v)).collect();
        assert_eq!(labels, ["-50M", "-40M", "-30M", "-20M", "-10M", "0", "10M", "20M", "30M"]);
        let small = Ticks::over(0.0, 1.0);
        assert_eq!(
            small.values().iter().map(|v| small.label(*v)).collect::<Vec<_>>(),
            ["0", "0.2", "0.4", "0.6", "0.8", "1"]
        );
        let k = Ticks::over(0.0, 17_600.0);
        assert_eq!(k.label(10_000.0), "10k");
        assert_eq!(k.label(15_000.0), "15k");
        let halves = Ticks::over(0.0, 3.6e6);
        assert_eq!(halves.label(2.5e6), "2.5M");
    }

    #[test]
    fn a_mark_at_the_right_edge_keeps_its_label_inside() {
        let lines = Lines {
            title: "Sweep of gone_dark".into(),
            x_label: "gone_dark (days)".into(),
            unit: "USD".into(),
            xs: (5..=60).map(f64::from).collect(),
            series: vec![
                Series::new("net value", (5..=60).map(|v| -40.9e6 + f64::from(v) * 1e6).collect()),
                Series::new("revenue at risk", vec![0.0; 56]),
                Series::new("effort value saved", vec![0.0; 56]),
            ],
            mark: Some((60.0, "best: gone_dark = 60".into())),
        };
        let svg = lines.svg();
        inside(&svg);
        assert!(svg.contains(">best: gone_dark = 60<"));
        assert!(svg.contains(r#"text-anchor="end" class="label "#), "the best's label turns to fit");
        // The zero line, the unit of each axis, round ticks.
        assert!(
            svg.contains(r#"class="zero""#) && svg.contains(">USD<") && svg.contains(">gone_dark (days)<")
        );
        assert!(svg.contains(">-30M<") && svg.contains(">20<"), "{svg}");
        // Two series that coincide (both 0) are drawn in different widths and dashes.
        assert!(svg.contains(r#"stroke-width="2.5" stroke-dasharray="8 4""#));
        assert!(svg.contains(r#"stroke-width="1.5" stroke-dasharray="2 3""#));
    }

    #[test]
    fn bars_keep_long_names_and_values_inside() {
        let bars = Bars {
            title: "Selling time spent on lost and disqualified deals".into(),
            unit: "USD".into(),
            categories: vec![
                "a-very-long-owner-name-that-goes-on-and-on-and-on-for-ever".into(),
                "rep-01".into(),
            ],
            series: vec![Series::new("time cost", vec![153_900.0, 1_000_000.0])],
        };
        let svg = bars.svg();
        inside(&svg);
        assert!(svg.contains("…"), "the long name is cut");
        assert!(svg.contains(">1M<") || svg.contains(">1000k<") || svg.contains(">1.0M<"), "{svg}");
    }

    #[test]
    fn a_figure_with_nothing_under_it_is_no_bar_and_says_so() {
        // A stage nobody entered has no conversion rate: not a rate of 0.
        let bars = Bars {
            title: "Stage conversion".into(),
            unit: "% advanced".into(),
            categories: vec!["quote".into(), "closing".into()],
            series: vec![Series::new("rate", vec![50.0, f64::NAN])],
        };
        let svg = bars.svg();
        assert_eq!(svg.matches("<rect ").count(), 1, "{svg}");
        assert!(svg.contains(">—<") && !svg.contains(">0<</text>") || svg.contains(">—<"), "{svg}");
    }

    #[test]
    fn text_is_escaped() {
        let bars = Bars {
            title: "<script>".into(),
            unit: "&".into(),
            categories: vec!["\"q\"".into()],
            series: vec![Series::new("a<b", vec![1.0])],
        };
        let svg = bars.svg();
        assert!(!svg.contains("<script>") && svg.contains("&lt;script&gt;") && svg.contains("&amp;"));
    }
}
