//! The console's charts: small SVG bar and line charts written out as text
//! on the server and embedded in the page (no JavaScript, no chart
//! library). Every piece of text that goes into the SVG is escaped here,
//! because the templates insert the result as markup.

use std::fmt::Write;

/// Drawing area (the SVG scales to its container's width by CSS).
const W: f64 = 960.0;
const H: f64 = 190.0;
/// The widest a bar is drawn (a chart of one run is not one wide block).
const MAX_BAR: f64 = 28.0;
/// Room for the y-axis labels on the left and the x labels below.
const LEFT: f64 = 56.0;
const RIGHT: f64 = 10.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 26.0;

/// One bar: its x label, its stacked parts (value, CSS class) and the
/// tooltip text of the whole bar.
pub struct Bar {
    pub label: String,
    pub parts: Vec<(f64, &'static str)>,
    pub tip: String,
}

/// One line: CSS class, name (legend) and (x label, value) points; a
/// missing value breaks the line.
pub struct Line {
    pub name: String,
    pub class: &'static str,
    pub points: Vec<(String, Option<f64>)>,
}

/// A horizontal reference line (a rule's threshold).
pub struct Threshold {
    pub name: String,
    pub value: f64,
    pub class: &'static str,
}

/// Text safe inside SVG markup and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// A number as an axis label: few digits, thousands as k, millions as M.
fn tick(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if a >= 100.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// The vertical scale: from `lo` to `hi` (widened so a flat series still
/// has height), mapped to pixel rows.
struct Scale {
    lo: f64,
    hi: f64,
}

impl Scale {
    fn new(values: impl Iterator<Item = f64>, from_zero: bool) -> Scale {
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for v in values.filter(|v| v.is_finite()) {
            lo = lo.min(v);
            hi = hi.max(v);
        }
        if !lo.is_finite() {
            (lo, hi) = (0.0, 1.0);
        }
        if from_zero {
            lo = lo.min(0.0);
        }
        if hi - lo < 1e-9 {
            hi = lo + if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
        }
        // Counts and durations from zero top out at their maximum (an axis
        // that says 2, not 2.10); other series get a little room.
        if from_zero && lo == 0.0 {
            return Scale { lo, hi };
        }
        let pad = (hi - lo) * 0.05;
        Scale {
            lo: lo - pad,
            hi: hi + pad,
        }
    }

    fn y(&self, v: f64) -> f64 {
        TOP + (H - TOP - BOTTOM) * (1.0 - (v - self.lo) / (self.hi - self.lo))
    }
}

fn open(svg: &mut String, title: &str) {
    let _ = write!(
        svg,
        r#"<svg class="chart" viewBox="0 0 {W} {H}" role="img" aria-label="{t}" xmlns="http://www.w3.org/2000/svg"><title>{t}</title>"#,
        t = esc(title)
    );
}

/// Y-axis: the bottom and top values and a baseline.
fn axis(svg: &mut String, s: &Scale) {
    for v in [s.lo, s.hi] {
        let y = s.y(v);
        let _ = write!(
            svg,
            r#"<line class="grid" x1="{LEFT}" x2="{x2}" y1="{y:.1}" y2="{y:.1}"/><text class="tick" x="{tx}" y="{ty:.1}" text-anchor="end">{label}</text>"#,
            x2 = W - RIGHT,
            tx = LEFT - 4.0,
            ty = y + 4.0,
            label = esc(&tick(v))
        );
    }
}

/// X labels: the first and the last (the ones in between would collide).
fn x_labels(svg: &mut String, first: Option<&str>, last: Option<&str>) {
    let y = H - 8.0;
    if let Some(f) = first {
        let _ = write!(
            svg,
            r#"<text class="tick" x="{LEFT}" y="{y}">{}</text>"#,
            esc(f)
        );
    }
    if let Some(l) = last.filter(|l| Some(*l) != first) {
        let _ = write!(
            svg,
            r#"<text class="tick" x="{x}" y="{y}" text-anchor="end">{}</text>"#,
            esc(l),
            x = W - RIGHT
        );
    }
}

/// Bars, stacked when a bar has several parts; `empty` is said when there
/// is nothing to draw.
pub fn bars(title: &str, bars: &[Bar], empty: &str) -> String {
    if bars.is_empty() {
        return format!(r#"<p class="muted">{}</p>"#, esc(empty));
    }
    let totals = bars
        .iter()
        .map(|b| b.parts.iter().map(|p| p.0).sum::<f64>());
    let s = Scale::new(totals, true);
    let mut svg = String::new();
    open(&mut svg, title);
    axis(&mut svg, &s);
    let slot = (W - LEFT - RIGHT) / bars.len() as f64;
    let width = (slot * 0.8).clamp(1.0, MAX_BAR);
    for (i, b) in bars.iter().enumerate() {
        let x = LEFT + slot * i as f64 + (slot - width) / 2.0;
        let _ = write!(svg, "<g><title>{}</title>", esc(&b.tip));
        let mut base = 0.0;
        for (v, class) in &b.parts {
            let (y0, y1) = (s.y(base), s.y(base + v));
            base += v;
            let _ = write!(
                svg,
                r#"<rect class="{class}" x="{x:.1}" y="{y1:.1}" width="{width:.1}" height="{h:.1}"/>"#,
                h = (y0 - y1).max(if *v > 0.0 { 1.0 } else { 0.0 })
            );
        }
        svg.push_str("</g>");
    }
    x_labels(
        &mut svg,
        bars.first().map(|b| b.label.as_str()),
        bars.last().map(|b| b.label.as_str()),
    );
    svg.push_str("</svg>");
    svg
}

/// Lines sharing their x labels (taken from the first line), with
/// threshold lines across; with `from_zero` the scale starts at 0 (for
/// amounts such as durations, where the distance from 0 matters).
pub fn lines(
    title: &str,
    lines: &[Line],
    thresholds: &[Threshold],
    from_zero: bool,
    empty: &str,
) -> String {
    let n = lines.iter().map(|l| l.points.len()).max().unwrap_or(0);
    if n == 0 {
        return format!(r#"<p class="muted">{}</p>"#, esc(empty));
    }
    let values = lines
        .iter()
        .flat_map(|l| l.points.iter().filter_map(|p| p.1))
        .chain(thresholds.iter().map(|t| t.value));
    let s = Scale::new(values, from_zero);
    let mut svg = String::new();
    open(&mut svg, title);
    axis(&mut svg, &s);
    let x = |i: usize| {
        if n == 1 {
            (LEFT + W - RIGHT) / 2.0
        } else {
            LEFT + (W - LEFT - RIGHT) * i as f64 / (n - 1) as f64
        }
    };
    for t in thresholds {
        let y = s.y(t.value);
        let _ = write!(
            svg,
            r#"<g><title>{name}: {v}</title><line class="{class}" x1="{LEFT}" x2="{x2}" y1="{y:.1}" y2="{y:.1}"/></g>"#,
            name = esc(&t.name),
            v = esc(&tick(t.value)),
            class = t.class,
            x2 = W - RIGHT
        );
    }
    for l in lines {
        // One path per unbroken run of points.
        let mut d = String::new();
        let mut pen_down = false;
        for (i, (_, v)) in l.points.iter().enumerate() {
            match v {
                Some(v) => {
                    let _ = write!(
                        d,
                        "{}{:.1},{:.1} ",
                        if pen_down { "L" } else { "M" },
                        x(i),
                        s.y(*v)
                    );
                    pen_down = true;
                }
                None => pen_down = false,
            }
        }
        let _ = write!(
            svg,
            r#"<path class="{c}" fill="none" d="{d}"/>"#,
            c = l.class,
            d = d.trim_end()
        );
        for (i, (label, v)) in l.points.iter().enumerate() {
            if let Some(v) = v {
                let _ = write!(
                    svg,
                    r#"<circle class="{c}" cx="{cx:.1}" cy="{cy:.1}" r="2.5"><title>{name} {label}: {v}</title></circle>"#,
                    c = l.class,
                    cx = x(i),
                    cy = s.y(*v),
                    name = esc(&l.name),
                    label = esc(label),
                    v = esc(&tick(*v))
                );
            }
        }
    }
    let first = lines.first().and_then(|l| l.points.first());
    let last = lines.first().and_then(|l| l.points.last());
    x_labels(
        &mut svg,
        first.map(|p| p.0.as_str()),
        last.map(|p| p.0.as_str()),
    );
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_chart_text_is_escaped_and_shapes_are_drawn() {
        let svg = bars(
            "rows <per> run",
            &[
                Bar {
                    label: "<script>".into(),
                    parts: vec![(3.0, "ok"), (2.0, "bad")],
                    tip: "a & b".into(),
                },
                Bar {
                    label: "last".into(),
                    parts: vec![(1.0, "ok")],
                    tip: "\"q\"".into(),
                },
            ],
            "none",
        );
        assert!(!svg.contains("<script>"), "{svg}");
        assert!(svg.contains("&lt;script&gt;") && svg.contains("a &amp; b"));
        assert!(svg.contains("&quot;q&quot;") && svg.contains("rows &lt;per&gt; run"));
        assert_eq!(svg.matches("<rect").count(), 3);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
    }

    #[test]
    fn console_chart_lines_break_at_gaps_and_draw_thresholds() {
        let pts = |vs: &[Option<f64>]| -> Vec<(String, Option<f64>)> {
            vs.iter()
                .enumerate()
                .map(|(i, v)| (format!("p{i}"), *v))
                .collect()
        };
        let svg = lines(
            "csat",
            &[Line {
                name: "ann".into(),
                class: "s0",
                points: pts(&[Some(3.0), None, Some(4.0), Some(4.5)]),
            }],
            &[Threshold {
                name: "warn".into(),
                value: 3.5,
                class: "warn",
            }],
            false,
            "none",
        );
        // Two runs of points: two moves, one line segment after the gap.
        let d = svg.split(r#"d=""#).nth(1).unwrap();
        assert_eq!(d.split('"').next().unwrap().matches('M').count(), 2);
        assert_eq!(svg.matches("<circle").count(), 3);
        assert!(svg.contains(r#"class="warn""#));
        assert!(lines("x", &[], &[], true, "nothing yet").contains("nothing yet"));
    }

    #[test]
    fn console_chart_scale_keeps_a_flat_series_visible() {
        let s = Scale::new([5.0, 5.0].into_iter(), false);
        assert!(s.hi > s.lo);
        let y = s.y(5.0);
        assert!(y > TOP && y < H - BOTTOM, "{y}");
        let z = Scale::new(std::iter::empty(), true);
        assert_eq!(z.lo, 0.0);
    }
}
