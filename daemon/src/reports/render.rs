//! A report's facts as an e-mail: the text part and the HTML part say the
//! same things (every line of the text is in the HTML), and each chart is
//! an inline PNG the HTML refers to by Content-ID (`cid:section-N`).

use conveyor_config::{Goal, ReportSection, SectionKind};

use super::chart;
use super::sections::{Facts, KpiCell, Rag};

/// One rendered section.
#[derive(Debug, Clone, Default)]
pub struct Part {
    pub text: String,
    pub html: String,
    /// `(content id, PNG)`.
    pub image: Option<(String, Vec<u8>)>,
}

/// `v` with at most two decimals, no trailing zeros (4.2, 4.25, 310).
pub fn num(v: f64) -> String {
    let s = format!("{v:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.to_string()
    }
}

pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn goal_words(goal: &Goal) -> String {
    let side = match goal.direction {
        conveyor_config::Direction::Above => "at least",
        conveyor_config::Direction::Below => "at most",
    };
    format!("goal {side} {}", num(goal.goal))
}

/// Renders section number `index` from what it found.
pub fn part(index: usize, section: &ReportSection, facts: &Facts) -> Part {
    let mut text = Vec::new();
    let mut html = String::new();
    if !section.title.is_empty() {
        text.push(section.title.clone());
        text.push("-".repeat(section.title.chars().count()));
        html.push_str(&format!("<h2>{}</h2>\n", escape(&section.title)));
    }
    let mut image = None;
    match (&section.kind, facts) {
        (SectionKind::Kpis(kpis), Facts::Kpis { rows }) => {
            if rows.is_empty() {
                say(&mut text, &mut html, "No values in these periods.");
            }
            for (i, kpi) in kpis.iter().enumerate() {
                let cells: Vec<(&String, &KpiCell)> = rows
                    .iter()
                    .filter_map(|(e, cells)| cells[i].as_ref().map(|c| (e, c)))
                    .collect();
                if cells.is_empty() {
                    continue;
                }
                let meeting = cells.iter().filter(|(_, c)| c.rag == Rag::Green).count();
                let mut line = format!(
                    "{}: {meeting} of {} meet the objective ({}).",
                    kpi.series.label,
                    cells.len(),
                    goal_words(&kpi.goal)
                );
                // Who never met it over the whole window stands out.
                let never: Vec<&str> = cells
                    .iter()
                    .filter(|(_, c)| c.met == 0 && c.periods > 1)
                    .map(|(e, _)| e.as_str())
                    .collect();
                if !never.is_empty() {
                    let seen = cells.iter().map(|(_, c)| c.periods).max().unwrap_or(0);
                    line.push_str(&format!(
                        " Met in none of the {seen} periods: {}.",
                        names(&never, NAMED)
                    ));
                }
                say(&mut text, &mut html, &line);
            }
            if !rows.is_empty() {
                table_kpis(section, &mut text, &mut html, kpis, rows);
            }
        }
        (SectionKind::Trend(series, goal), Facts::Trend { points, entities }) => {
            let values: Vec<Option<f64>> = points.iter().map(|(_, v)| *v).collect();
            let latest = points.iter().rev().find_map(|(p, v)| v.map(|v| (p, v)));
            let mut line = format!(
                "{} per period, the average of {entities} entit{}",
                series.label,
                if *entities == 1 { "y" } else { "ies" }
            );
            match latest {
                Some((p, v)) => line.push_str(&format!(": {} in the latest period ({p})", num(v))),
                None => line.push_str(": no values in these periods"),
            }
            if let Some(g) = goal {
                let met = values.iter().flatten().filter(|v| g.met(**v)).count();
                line.push_str(&format!(
                    "; {}; met in {met} of {} periods",
                    goal_words(g),
                    values.iter().flatten().count()
                ));
            }
            line.push('.');
            say(&mut text, &mut html, &line);
            if values.iter().flatten().count() >= 2 {
                let cid = format!("section-{index}");
                html.push_str(&format!(
                    "<p><img src=\"cid:{cid}\" width=\"{}\" height=\"{}\" alt=\"{}\"></p>\n",
                    chart::WIDTH,
                    chart::HEIGHT,
                    escape(&format!("{} per period", series.label))
                ));
                image = Some((cid, chart::trend_png(&values, goal.map(|g| g.goal))));
            }
            let rows: Vec<Vec<String>> = points
                .iter()
                .map(|(p, v)| vec![p.clone(), v.map(num).unwrap_or_else(|| "—".into())])
                .collect();
            grid(
                &mut text,
                &mut html,
                &["period".into(), series.label.clone()],
                &rows,
                &[],
            );
        }
        (
            SectionKind::Correlation { x, y },
            Facts::Correlation {
                points,
                r,
                slope,
                intercept,
            },
        ) => {
            let line = match (r, slope) {
                (Some(r), Some(slope)) => {
                    // The slope per a step of x the data really spans.
                    let (lo, hi) = points
                        .iter()
                        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
                            (lo.min(p.1), hi.max(p.1))
                        });
                    let by = step((hi - lo) / 4.0);
                    format!(
                        "Across {} entities, {} and {} show {} (r = {}): each {} more of {} goes with {} {} of {}.",
                        points.len(),
                        x.label,
                        y.label,
                        strength(*r),
                        num(*r),
                        num(by),
                        x.label,
                        num((slope * by).abs()),
                        if *slope < 0.0 { "less" } else { "more" },
                        y.label
                    )
                }
                _ => format!(
                    "{} and {}: too few entities with both values to say how they relate ({}).",
                    x.label,
                    y.label,
                    points.len()
                ),
            };
            say(&mut text, &mut html, &line);
            if points.len() >= 2 {
                let cid = format!("section-{index}");
                html.push_str(&format!(
                    "<p><img src=\"cid:{cid}\" width=\"{}\" height=\"{}\" alt=\"{}\"></p>\n",
                    chart::WIDTH,
                    chart::HEIGHT,
                    escape(&format!("{} against {}", y.label, x.label))
                ));
                let xy: Vec<(f64, f64)> = points.iter().map(|(_, a, b)| (*a, *b)).collect();
                image = Some((cid, chart::scatter_png(&xy, slope.zip(*intercept))));
            }
            let rows: Vec<Vec<String>> = points
                .iter()
                .map(|(e, a, b)| vec![e.clone(), num(*a), num(*b)])
                .collect();
            grid(
                &mut text,
                &mut html,
                &[who(section), x.label.clone(), y.label.clone()],
                &rows,
                &[],
            );
        }
        (
            SectionKind::Table { .. },
            Facts::Table {
                columns,
                rows,
                more,
            },
        ) => {
            if rows.is_empty() {
                say(&mut text, &mut html, "No rows.");
            } else {
                grid(&mut text, &mut html, columns, rows, &[]);
            }
            if *more > 0 {
                say(
                    &mut text,
                    &mut html,
                    &format!("… and {more} more rows (in the warehouse)."),
                );
            }
        }
        // `compute` answers each kind with its own facts.
        _ => say(&mut text, &mut html, "(this section could not be computed)"),
    }
    Part {
        text: text.join("\n"),
        html,
        image,
    }
}

/// How many names a sentence lists before "and N more".
const NAMED: usize = 5;

/// `a, b, c` — or the first `most` and how many more.
fn names(all: &[&str], most: usize) -> String {
    if all.len() <= most {
        return all.join(", ");
    }
    format!("{} and {} more", all[..most].join(", "), all.len() - most)
}

/// A round step (1, 2 or 5 times a power of ten) near `spread`, to say a
/// slope in units a reader can picture ("each 10 more …").
fn step(spread: f64) -> f64 {
    if !spread.is_finite() || spread <= 0.0 {
        return 1.0;
    }
    let power = 10f64.powf(spread.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .min_by(|a, b| (a - spread).abs().total_cmp(&(b - spread).abs()))
        .unwrap_or(power)
}

/// A sentence in both parts.
fn say(text: &mut Vec<String>, html: &mut String, line: &str) {
    text.push(line.to_string());
    html.push_str(&format!("<p>{}</p>\n", escape(line)));
}

fn strength(r: f64) -> &'static str {
    match r.abs() {
        a if a >= 0.7 => {
            if r < 0.0 {
                "a strong negative relation"
            } else {
                "a strong positive relation"
            }
        }
        a if a >= 0.4 => {
            if r < 0.0 {
                "a moderate negative relation"
            } else {
                "a moderate positive relation"
            }
        }
        a if a >= 0.2 => "a weak relation",
        _ => "no clear relation",
    }
}

/// The heading of the entity column: the label column people know it by,
/// in words (`agent_name` → `agent name`), or `entity`.
fn who(section: &ReportSection) -> String {
    section
        .entity_label
        .as_deref()
        .unwrap_or("entity")
        .replace('_', " ")
}

fn table_kpis(
    section: &ReportSection,
    text: &mut Vec<String>,
    html: &mut String,
    kpis: &[conveyor_config::Kpi],
    rows: &[(String, Vec<Option<KpiCell>>)],
) {
    let mut header = vec![who(section)];
    for k in kpis {
        header.push(k.series.label.clone());
        header.push("met".into());
    }
    let mut colours = Vec::new();
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|(entity, cells)| {
            let mut row = vec![entity.clone()];
            let mut rag = vec![None];
            for c in cells {
                match c {
                    Some(c) => {
                        row.push(format!("{} {}", num(c.latest), c.rag.word()));
                        row.push(format!("{}/{}", c.met, c.periods));
                        rag.push(Some(c.rag));
                    }
                    None => {
                        row.push("—".into());
                        row.push("—".into());
                        rag.push(None);
                    }
                }
                rag.push(None);
            }
            colours.push(rag);
            row
        })
        .collect();
    grid(text, html, &header, &body, &colours);
}

/// A table in both parts: padded columns in the text, `<table>` in the
/// HTML with a red/amber/green background where `rag` says.
fn grid(
    text: &mut Vec<String>,
    html: &mut String,
    header: &[String],
    rows: &[Vec<String>],
    rag: &[Vec<Option<Rag>>],
) {
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .chain([&header[i]])
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[String]| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    text.push(String::new());
    text.push(line(header));
    for r in rows {
        text.push(line(r));
    }
    text.push(String::new());
    html.push_str("<table cellpadding=\"4\" style=\"border-collapse:collapse\">\n<tr>");
    for h in header {
        html.push_str(&format!("<th align=\"left\">{}</th>", escape(h)));
    }
    html.push_str("</tr>\n");
    for (i, r) in rows.iter().enumerate() {
        html.push_str("<tr>");
        for (j, c) in r.iter().enumerate() {
            let colour = rag.get(i).and_then(|row| row.get(j).copied().flatten());
            let style = match colour {
                Some(Rag::Green) => " style=\"background:#d4f0dc\"",
                Some(Rag::Amber) => " style=\"background:#fdebc8\"",
                Some(Rag::Red) => " style=\"background:#f8d0d0\"",
                None => "",
            };
            html.push_str(&format!("<td{style}>{}</td>", escape(c)));
        }
        html.push_str("</tr>\n");
    }
    html.push_str("</table>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slope_is_said_per_a_round_step_of_what_the_data_spans() {
        assert_eq!(step(12.0), 10.0);
        assert_eq!(step(0.3), 0.2);
        assert_eq!(step(40.0), 50.0);
        assert_eq!(step(0.0), 1.0);
        assert_eq!(names(&["a", "b"], 5), "a, b");
        assert_eq!(names(&["a", "b", "c"], 2), "a, b and 1 more");
        assert_eq!(num(4.0), "4");
        assert_eq!(num(-0.001), "0");
        assert_eq!(num(98.456), "98.46");
    }
}
