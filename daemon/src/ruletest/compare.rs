//! Expected against observed, for one evaluation step: alerts, e-mails and
//! webhook calls are each an exact set. A section that differs comes back
//! as diff lines (`-` expected, `+` got) written so that a `+` alert line
//! can be pasted into the test file as it is.

use super::diff::{self, Line};
use super::observe::{Alert, Email, Webhook};
use super::spec::{ExpectedAlert, ExpectedEmail, ExpectedWebhook};

/// `None` when the alerts are exactly those expected; otherwise every
/// alert, in rule/entity order, marked.
pub fn alerts(expected: &[ExpectedAlert], got: &[Alert], show_rule: bool) -> Option<Vec<Line>> {
    let pairs = pair(expected, got, alert_matches);
    if pairs.unmatched_expected.is_empty() && pairs.unmatched_got.is_empty() {
        return None;
    }
    // (rule, entity, order) keeps an expected line just above the line got
    // for the same entity.
    let mut lines: Vec<((String, String, u8), Line)> = Vec::new();
    for &i in &pairs.unmatched_expected {
        let e = &expected[i];
        let key = (e.rule.clone().unwrap_or_default(), e.entity.clone(), 0);
        lines.push((key, Line::Expected(expected_alert_line(e, show_rule))));
    }
    for (j, a) in got.iter().enumerate() {
        let key = (a.rule.clone(), a.entity.clone(), 1);
        let text = alert_line(a, show_rule);
        let line = if pairs.unmatched_got.contains(&j) {
            Line::Got(text)
        } else {
            Line::Same(text)
        };
        lines.push((key, line));
    }
    lines.sort_by(|a, b| a.0.cmp(&b.0));
    Some(lines.into_iter().map(|(_, l)| l).collect())
}

fn alert_matches(e: &ExpectedAlert, a: &Alert) -> bool {
    e.rule.as_ref().is_none_or(|r| *r == a.rule)
        && e.entity == a.entity
        && e.state == a.state
        && e.level.as_ref().is_none_or(|l| *l == a.level)
        && e.value.is_none_or(|v| a.value.is_some_and(|g| close(v, g)))
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

/// A got alert as a TOML inline table, ready for `expect_alerts`.
fn alert_line(a: &Alert, show_rule: bool) -> String {
    let mut fields = Vec::new();
    if show_rule {
        fields.push(format!("rule = {}", quoted(&a.rule)));
    }
    fields.push(format!("entity = {}", quoted(&a.entity)));
    fields.push(format!("state = {}", quoted(&a.state)));
    fields.push(format!("level = {}", quoted(&a.level)));
    if let Some(v) = a.value {
        fields.push(format!("value = {}", number(v)));
    }
    format!("{{ {} }}", fields.join(", "))
}

fn expected_alert_line(e: &ExpectedAlert, show_rule: bool) -> String {
    let mut fields = Vec::new();
    if let Some(r) = e.rule.as_ref().filter(|_| show_rule) {
        fields.push(format!("rule = {}", quoted(r)));
    }
    fields.push(format!("entity = {}", quoted(&e.entity)));
    fields.push(format!("state = {}", quoted(&e.state)));
    if let Some(l) = &e.level {
        fields.push(format!("level = {}", quoted(l)));
    }
    if let Some(v) = e.value {
        fields.push(format!("value = {}", number(v)));
    }
    format!("{{ {} }}", fields.join(", "))
}

/// `None` when exactly the expected e-mails were enqueued. Otherwise each
/// e-mail that differs from the expected one to the same recipient is shown
/// line by line; e-mails as expected are one context line.
pub fn emails(expected: &[ExpectedEmail], got: &[Email], show_rule: bool) -> Option<Vec<Line>> {
    let pairs = pair(expected, got, email_matches);
    let shown = Shown {
        as_expected: |g: &Email| format!("To: {} — Subject: {} (as expected)", g.to, g.subject),
        same_target: |e: &ExpectedEmail, g: &Email| {
            g.to == e.to && e.rule.as_ref().is_none_or(|r| *r == g.rule)
        },
        want: |e: &ExpectedEmail| expected_email_lines(e, show_rule),
        got: |g: &Email| email_lines(g, show_rule),
    };
    differing(&pairs, expected, got, shown)
}

fn email_matches(e: &ExpectedEmail, g: &Email) -> bool {
    e.rule.as_ref().is_none_or(|r| *r == g.rule)
        && e.to == g.to
        && e.subject.as_ref().is_none_or(|s| *s == g.subject)
        && e.subject_contains
            .iter()
            .all(|s| g.subject.contains(s.as_str()))
        && e.body
            .as_ref()
            .is_none_or(|b| b.trim_end() == g.body.trim_end())
        && e.body_contains.iter().all(|s| g.body.contains(s.as_str()))
        && e.html
            .as_ref()
            .is_none_or(|h| g.html.as_deref().map(str::trim_end) == Some(h.trim_end()))
        && e.html_contains
            .iter()
            .all(|s| g.html.as_deref().is_some_and(|h| h.contains(s.as_str())))
}

fn email_lines(g: &Email, show_rule: bool) -> Vec<String> {
    let mut out = Vec::new();
    if show_rule {
        out.push(format!("Rule: {}", g.rule));
    }
    out.push(format!("To: {}", g.to));
    out.push(format!("Subject: {}", g.subject));
    out.extend(body_lines(&g.body));
    if let Some(h) = &g.html {
        out.extend(html_lines(h));
    }
    out
}

fn expected_email_lines(e: &ExpectedEmail, show_rule: bool) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(r) = e.rule.as_ref().filter(|_| show_rule) {
        out.push(format!("Rule: {r}"));
    }
    out.push(format!("To: {}", e.to));
    if let Some(s) = &e.subject {
        out.push(format!("Subject: {s}"));
    }
    for s in &e.subject_contains {
        out.push(format!("Subject contains: {}", quoted(s)));
    }
    if let Some(b) = &e.body {
        out.extend(body_lines(b));
    }
    for s in &e.body_contains {
        out.push(format!("Body contains: {}", quoted(s)));
    }
    if let Some(h) = &e.html {
        out.extend(html_lines(h));
    }
    for s in &e.html_contains {
        out.push(format!("HTML contains: {}", quoted(s)));
    }
    out
}

/// `Body: first line`, the next lines indented under it.
fn body_lines(body: &str) -> Vec<String> {
    labelled_lines("Body: ", body)
}

fn html_lines(html: &str) -> Vec<String> {
    labelled_lines("HTML: ", html)
}

fn labelled_lines(label: &str, text: &str) -> Vec<String> {
    let mut lines = text.trim_end().lines();
    let mut out = vec![format!("{label}{}", lines.next().unwrap_or_default())];
    let indent = " ".repeat(label.len());
    out.extend(lines.map(|l| format!("{indent}{l}")));
    out
}

/// `None` when exactly the expected webhook calls were enqueued; otherwise
/// each call that differs from the expected one to the same URL and
/// entity is shown with its JSON body line by line (keys sorted).
pub fn webhooks(
    expected: &[ExpectedWebhook],
    got: &[Webhook],
    show_rule: bool,
) -> Option<Vec<Line>> {
    let pairs = pair(expected, got, webhook_matches);
    let shown = Shown {
        as_expected: |g: &Webhook| format!("POST {} — entity {} (as expected)", g.url, g.entity),
        same_target: |e: &ExpectedWebhook, g: &Webhook| {
            g.url == e.url
                && e.entity.as_ref().is_none_or(|x| *x == g.entity)
                && e.rule.as_ref().is_none_or(|r| *r == g.rule)
        },
        want: |e: &ExpectedWebhook| expected_webhook_lines(e, show_rule),
        got: |g: &Webhook| webhook_lines(g, show_rule),
    };
    differing(&pairs, expected, got, shown)
}

fn webhook_matches(e: &ExpectedWebhook, g: &Webhook) -> bool {
    e.rule.as_ref().is_none_or(|r| *r == g.rule)
        && e.url == g.url
        && e.entity.as_ref().is_none_or(|x| *x == g.entity)
        && e.body.as_ref().is_none_or(|b| json_eq(b, &g.body))
}

fn webhook_lines(g: &Webhook, show_rule: bool) -> Vec<String> {
    let mut out = Vec::new();
    if show_rule {
        out.push(format!("Rule: {}", g.rule));
    }
    out.push(format!("POST {}", g.url));
    out.push(format!("Entity: {}", g.entity));
    out.extend(json_lines(&g.body));
    out
}

fn expected_webhook_lines(e: &ExpectedWebhook, show_rule: bool) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(r) = e.rule.as_ref().filter(|_| show_rule) {
        out.push(format!("Rule: {r}"));
    }
    out.push(format!("POST {}", e.url));
    if let Some(x) = &e.entity {
        out.push(format!("Entity: {x}"));
    }
    if let Some(b) = &e.body {
        out.extend(json_lines(b));
    }
    out
}

/// Pretty JSON with keys sorted and whole-number floats as integers, so
/// that equal bodies print the same lines.
fn json_lines(v: &serde_json::Value) -> Vec<String> {
    let text = serde_json::to_string_pretty(&canonical(v)).unwrap_or_default();
    text.lines().map(str::to_string).collect()
}

fn canonical(v: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            keys.into_iter()
                .map(|k| (k.clone(), canonical(&m[k])))
                .collect::<serde_json::Map<_, _>>()
                .into()
        }
        Value::Array(a) => a.iter().map(canonical).collect(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 1e15 && !n.is_i64() && !n.is_u64() => {
                (f as i64).into()
            }
            _ => v.clone(),
        },
        _ => v.clone(),
    }
}

/// JSON equality with numbers compared as numbers (`3` equals `3.0`).
fn json_eq(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => close(x, y),
            _ => x == y,
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| json_eq(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

/// Blocks separated by an empty context line.
/// How one kind of notification is shown in a diff.
struct Shown<A, T, W, G> {
    /// The one line for a notification as expected.
    as_expected: A,
    /// Whether an unmatched expected and got notification go to the same
    /// place (then they are diffed line by line).
    same_target: T,
    want: W,
    got: G,
}

/// `None` when every notification was as expected; otherwise one block per
/// notification: as expected (one line), expected and got diffed line by
/// line when they go to the same place, or only expected / only got.
fn differing<E, N>(
    pairs: &Pairs,
    expected: &[E],
    got: &[N],
    shown: Shown<
        impl Fn(&N) -> String,
        impl Fn(&E, &N) -> bool,
        impl Fn(&E) -> Vec<String>,
        impl Fn(&N) -> Vec<String>,
    >,
) -> Option<Vec<Line>> {
    if pairs.unmatched_expected.is_empty() && pairs.unmatched_got.is_empty() {
        return None;
    }
    let mut blocks: Vec<Vec<Line>> = pairs
        .matched
        .iter()
        .map(|&(_, j)| vec![Line::Same((shown.as_expected)(&got[j]))])
        .collect();
    let mut left_got = pairs.unmatched_got.clone();
    for &i in &pairs.unmatched_expected {
        let e = &expected[i];
        let want = (shown.want)(e);
        match left_got
            .iter()
            .position(|&j| (shown.same_target)(e, &got[j]))
        {
            Some(k) => {
                let j = left_got.remove(k);
                blocks.push(diff::lines(&want, &(shown.got)(&got[j])));
            }
            None => blocks.push(want.into_iter().map(Line::Expected).collect()),
        }
    }
    for j in left_got {
        blocks.push((shown.got)(&got[j]).into_iter().map(Line::Got).collect());
    }
    Some(join_blocks(blocks))
}

fn join_blocks(blocks: Vec<Vec<Line>>) -> Vec<Line> {
    let mut out = Vec::new();
    for (i, b) in blocks.into_iter().enumerate() {
        if i > 0 {
            out.push(Line::Same(String::new()));
        }
        out.extend(b);
    }
    out
}

/// Which expected entries found an observed one (each used once, first
/// fit in order), and which on either side are left over.
struct Pairs {
    matched: Vec<(usize, usize)>,
    unmatched_expected: Vec<usize>,
    unmatched_got: Vec<usize>,
}

fn pair<E, G>(expected: &[E], got: &[G], fits: impl Fn(&E, &G) -> bool) -> Pairs {
    let mut used = vec![false; got.len()];
    let mut matched = Vec::new();
    let mut unmatched_expected = Vec::new();
    for (i, e) in expected.iter().enumerate() {
        match (0..got.len()).find(|&j| !used[j] && fits(e, &got[j])) {
            Some(j) => {
                used[j] = true;
                matched.push((i, j));
            }
            None => unmatched_expected.push(i),
        }
    }
    let unmatched_got = (0..got.len()).filter(|&j| !used[j]).collect();
    Pairs {
        matched,
        unmatched_expected,
        unmatched_got,
    }
}

/// A TOML (and JSON) basic string.
fn quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

fn number(v: f64) -> String {
    if v.is_finite() {
        format!("{v}")
    } else {
        format!("{v:?}")
    }
}
