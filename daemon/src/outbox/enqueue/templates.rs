//! The built-in e-mail a rule action without `subject`/`body` sends — what
//! fired, for whom, the trend against the threshold, the peers, what to do
//! and how to silence it — as minijinja templates over the alert's
//! variables, and the filters every template may use (`num`, `signed`,
//! `ordinal`, `pad`). The text and HTML parts say the same sentences
//! (`content_tests.rs` holds them to it).

use minijinja::{AutoEscape, Environment, UndefinedBehavior, Value};

/// `[FIRING critical] CSAT below target: Ann Lee`.
pub(super) const SUBJECT: &str = "{{ subject_tag }} {{ title }}: {{ who }}";

/// The text part. A reconciliation measure (`compared` among its columns)
/// shows both sides' values instead of a value against a threshold.
pub(super) const TEXT: &str = r#"{{ title }}: {{ who }}

{% if transition == "resolved" %}
Resolved at {{ now }}{% if firing_for %} after firing for {{ firing_for }}{% endif %}.
{% elif escalated %}
Escalated to critical at {{ now }}: it was announced as {{ notified_level or "warn" }} and has been firing since {{ firing_since }}.
{% elif repeat %}
Reminder: still firing ({{ level }}) since {{ firing_since }}, for {{ firing_for }} now.
{% else %}
Firing ({{ level }}) since {{ firing_since }}.
{% endif %}
{% if compared is defined %}
{% if transition == "resolved" %}
{% if absent %}It is no longer reported as an exception.{% else %}It is no longer an exception ({{ status }}).{% endif %}

{% elif "missing_right" in status %}
Found in {{ left_name|replace("_", " ") }}, with no match in {{ right_name|replace("_", " ") }}.
{% elif "missing_left" in status %}
Found in {{ right_name|replace("_", " ") }}, with no match in {{ left_name|replace("_", " ") }}.
{% elif "mismatched" in status %}
{{ left_name|replace("_", " ")|capitalize }} and {{ right_name|replace("_", " ") }} disagree.
{% elif "duplicate" in status %}
Several rows share this key ({{ status }}).
{% else %}
Status: {{ status }}.
{% endif %}
{% if compared %}

  {{ "column"|pad(16) }}{{ left_name|replace("_", " ")|pad(16) }}{{ right_name|replace("_", " ")|pad(16) }}difference
{% for c in compared %}
  {{ c.column|pad(16) }}{{ c.left|num|pad(16) }}{{ c.right|num|pad(16) }}{{ c.delta|signed }}
{% endfor %}
{% endif %}
{% if history|length > 1 %}

Reported as an exception in {{ history|selectattr("breach")|list|length }} of the last {{ history|length }} evaluations.
{% endif %}
{% else %}
{% if transition == "resolved" and absent %}
{{ who }} is no longer reported by the measure; the last value was {{ value|num }} for {{ period }}.
{% elif transition == "resolved" and resolve is none %}
{{ who }} is at {{ value|num }} for {{ period }}, no longer past its peers.
{% elif transition == "resolved" %}
{{ who }} is back at {{ value|num }} for {{ period }} (the alert clears at {{ resolve|num }} or {{ "above" if direction == "below" else "below" }}).
{% elif warn is none and critical is none %}
{{ who }}{% if who != entity %} ({{ entity }}){% endif %} is at {{ value|num }} for {{ period }}, {{ direction }} the {{ peer_percentile|ordinal }} percentile of its peers ({{ peer_threshold|num }}).
{% else %}
{{ who }}{% if who != entity %} ({{ entity }}){% endif %} is at {{ value|num }} for {{ period }}, {{ direction }} the {{ level }} threshold of {{ threshold|num }}.
{% endif %}
{% if window and transition != "resolved" %}
It breached in {{ breaches }} of its last {{ window }} periods.
{% endif %}
{% if history %}

Trend of the last {{ history|length }} period(s){% if warn is not none or critical is not none %} ({% if warn is not none %}warn {{ direction }} {{ warn|num }}{% endif %}{% if warn is not none and critical is not none %}, {% endif %}{% if critical is not none %}critical {{ direction }} {{ critical|num }}{% endif %}){% endif %}:
  {{ "period"|pad(14) }}{{ "value"|pad(10) }}level
{% for h in history %}
  {{ h.period|pad(14) }}{{ h.value|num|pad(10) }}{{ h.level }}
{% endfor %}
{% endif %}
{% if peer_size is not none %}

Compared with {% if peer_group is not none %}the {{ peer_group }} group{% else %}everyone{% endif %} for {{ period }} ({{ peer_size }} in all): median {{ peer_median|num }}{% if peer_percentile is not none %}, {{ peer_percentile|ordinal }} percentile {{ peer_threshold|num }}{% endif %}; {{ peer_breaching }} of {{ peer_size }} {{ "breaches" if peer_breaching == 1 else "breach" }}.
{% endif %}
{% endif %}
{% if description %}

{{ description }}
{% endif %}
{% if next_step and transition != "resolved" %}

What to do: {{ next_step }}
{% endif %}
{% if transition != "resolved" %}

To silence this alert for 7 days, run:
  {{ silence_command }}
{% endif %}

Rule {{ rule }}{% if owner %}, owned by {{ owner }}{% endif %}{% if labels %} ({% for k, v in labels|items %}{{ k }}={{ v }}{% if not loop.last %}, {% endif %}{% endfor %}){% endif %}.
"#;

/// The HTML part: the same sentences, with headings and tables.
pub(super) const HTML: &str = r#"<div style="font-family: sans-serif; max-width: 40em">
<h2>{{ title }}: {{ who }}</h2>
{% if transition == "resolved" %}
<p>Resolved at {{ now }}{% if firing_for %} after firing for {{ firing_for }}{% endif %}.</p>
{% elif escalated %}
<p><b>Escalated to critical</b> at {{ now }}: it was announced as {{ notified_level or "warn" }} and has been firing since {{ firing_since }}.</p>
{% elif repeat %}
<p>Reminder: still firing ({{ level }}) since {{ firing_since }}, for {{ firing_for }} now.</p>
{% else %}
<p>Firing (<b>{{ level }}</b>) since {{ firing_since }}.</p>
{% endif %}
{% if compared is defined %}
{% if transition == "resolved" %}
<p>{% if absent %}It is no longer reported as an exception.{% else %}It is no longer an exception ({{ status }}).{% endif %}</p>
{% elif "missing_right" in status %}
<p>Found in {{ left_name|replace("_", " ") }}, with no match in {{ right_name|replace("_", " ") }}.</p>
{% elif "missing_left" in status %}
<p>Found in {{ right_name|replace("_", " ") }}, with no match in {{ left_name|replace("_", " ") }}.</p>
{% elif "mismatched" in status %}
<p>{{ left_name|replace("_", " ")|capitalize }} and {{ right_name|replace("_", " ") }} disagree.</p>
{% elif "duplicate" in status %}
<p>Several rows share this key ({{ status }}).</p>
{% else %}
<p>Status: {{ status }}.</p>
{% endif %}
{% if compared %}
<table cellpadding="4" style="border-collapse: collapse">
<tr><th align="left">column</th><th align="right">{{ left_name|replace("_", " ") }}</th><th align="right">{{ right_name|replace("_", " ") }}</th><th align="right">difference</th></tr>
{% for c in compared %}
<tr><td>{{ c.column }}</td><td align="right">{{ c.left|num }}</td><td align="right">{{ c.right|num }}</td><td align="right">{{ c.delta|signed }}</td></tr>
{% endfor %}
</table>
{% endif %}
{% if history|length > 1 %}
<p>Reported as an exception in {{ history|selectattr("breach")|list|length }} of the last {{ history|length }} evaluations.</p>
{% endif %}
{% else %}
{% if transition == "resolved" and absent %}
<p>{{ who }} is no longer reported by the measure; the last value was {{ value|num }} for {{ period }}.</p>
{% elif transition == "resolved" and resolve is none %}
<p>{{ who }} is at {{ value|num }} for {{ period }}, no longer past its peers.</p>
{% elif transition == "resolved" %}
<p>{{ who }} is back at {{ value|num }} for {{ period }} (the alert clears at {{ resolve|num }} or {{ "above" if direction == "below" else "below" }}).</p>
{% elif warn is none and critical is none %}
<p><b>{{ who }}</b>{% if who != entity %} ({{ entity }}){% endif %} is at <b>{{ value|num }}</b> for {{ period }}, {{ direction }} the {{ peer_percentile|ordinal }} percentile of its peers ({{ peer_threshold|num }}).</p>
{% else %}
<p><b>{{ who }}</b>{% if who != entity %} ({{ entity }}){% endif %} is at <b>{{ value|num }}</b> for {{ period }}, {{ direction }} the {{ level }} threshold of {{ threshold|num }}.</p>
{% endif %}
{% if window and transition != "resolved" %}
<p>It breached in <b>{{ breaches }} of its last {{ window }} periods</b>.</p>
{% endif %}
{% if history %}
{% if chart %}<p><img src="cid:trend" alt="trend of the last {{ history|length }} periods against the threshold" width="480" height="160"></p>{% endif %}
<p>Trend of the last {{ history|length }} period(s){% if warn is not none or critical is not none %} ({% if warn is not none %}warn {{ direction }} {{ warn|num }}{% endif %}{% if warn is not none and critical is not none %}, {% endif %}{% if critical is not none %}critical {{ direction }} {{ critical|num }}{% endif %}){% endif %}:</p>
<table cellpadding="4" style="border-collapse: collapse">
<tr><th align="left">period</th><th align="right">value</th><th align="left">level</th></tr>
{% for h in history %}
<tr{% if h.breach %} style="color: #b00020"{% endif %}><td>{{ h.period }}</td><td align="right">{{ h.value|num }}</td><td>{{ h.level }}</td></tr>
{% endfor %}
</table>
{% endif %}
{% if peer_size is not none %}
<p>Compared with {% if peer_group is not none %}the {{ peer_group }} group{% else %}everyone{% endif %} for {{ period }} ({{ peer_size }} in all): median {{ peer_median|num }}{% if peer_percentile is not none %}, {{ peer_percentile|ordinal }} percentile {{ peer_threshold|num }}{% endif %}; {{ peer_breaching }} of {{ peer_size }} {{ "breaches" if peer_breaching == 1 else "breach" }}.</p>
{% endif %}
{% endif %}
{% if description %}
<p>{{ description }}</p>
{% endif %}
{% if next_step and transition != "resolved" %}
<p><b>What to do:</b> {{ next_step }}</p>
{% endif %}
{% if transition != "resolved" %}
<p>To silence this alert for 7 days, run:</p>
<pre>{{ silence_command }}</pre>
{% endif %}
<p style="color: #666">Rule {{ rule }}{% if owner %}, owned by {{ owner }}{% endif %}{% if labels %} ({% for k, v in labels|items %}{{ k }}={{ v }}{% if not loop.last %}, {% endif %}{% endfor %}){% endif %}.</p>
</div>
"#;

/// A template environment: an unknown variable is an error, not an empty
/// string in an e-mail. `builtin` trims the built-in templates' block tags
/// (the user's templates render exactly as written).
pub(super) fn environment(escape: AutoEscape, builtin: bool) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(move |_| escape);
    if builtin {
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_keep_trailing_newline(true);
    }
    env.add_filter("num", num);
    env.add_filter("signed", signed);
    env.add_filter("ordinal", ordinal);
    env.add_filter("pad", pad);
    env
}

/// A number as people read it: `3.1`, `79.5`, `12,500`; at most two
/// decimals. None is `—`; text stays as it is.
fn num(v: Value) -> String {
    match v.as_str() {
        Some(s) => return s.to_string(),
        None if v.is_none() || v.is_undefined() => return "—".to_string(),
        None => {}
    }
    match f64::try_from(v.clone()) {
        Ok(x) => format_number(x),
        Err(_) => v.to_string(),
    }
}

/// A difference: `+4.5`, `-2`, `0`; none is `—`.
fn signed(v: Value) -> String {
    match f64::try_from(v.clone()) {
        Ok(x) if x > 0.0 => format!("+{}", format_number(x)),
        Ok(x) => format_number(x),
        Err(_) if v.is_none() || v.is_undefined() => "—".to_string(),
        Err(_) => v.to_string(),
    }
}

/// `10` → `10th`, `1` → `1st`, `22` → `22nd`, `12.5` → `12.5th`.
fn ordinal(v: Value) -> String {
    let Ok(x) = f64::try_from(v.clone()) else {
        return v.to_string();
    };
    let text = format_number(x);
    if x.fract() != 0.0 {
        return format!("{text}th");
    }
    let n = x.abs() as u64;
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{text}{suffix}")
}

/// Left-justified to `width`, with at least two spaces after (a column of
/// a plain-text table).
fn pad(v: Value, width: usize) -> String {
    let text = match v.as_str() {
        Some(s) => s.to_string(),
        None if v.is_none() => "—".to_string(),
        None => v.to_string(),
    };
    let fill = width.saturating_sub(text.chars().count()).max(2);
    format!("{text}{}", " ".repeat(fill))
}

/// Rounded to two decimals, trailing zeros dropped, thousands grouped.
pub(super) fn format_number(x: f64) -> String {
    if !x.is_finite() {
        return x.to_string();
    }
    let rounded = format!("{:.2}", x.abs());
    let (whole, frac) = rounded.split_once('.').unwrap_or((&rounded, ""));
    let frac = frac.trim_end_matches('0');
    let mut grouped = String::new();
    for (i, c) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    let sign = if x < 0.0 && (whole != "0" || !frac.is_empty()) {
        "-"
    } else {
        ""
    };
    if frac.is_empty() {
        format!("{sign}{grouped}")
    } else {
        format!("{sign}{grouped}.{frac}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outbox_numbers_read_as_people_write_them() {
        assert_eq!(format_number(3.1), "3.1");
        assert_eq!(format_number(12500.0), "12,500");
        assert_eq!(format_number(1234567.891), "1,234,567.89");
        assert_eq!(format_number(-4.5), "-4.5");
        assert_eq!(format_number(0.30000000000000004), "0.3");
        assert_eq!(format_number(-0.001), "0");
        assert_eq!(signed(Value::from(4.5)), "+4.5");
        assert_eq!(signed(Value::from(())), "—");
        assert_eq!(num(Value::from("2026-03-09")), "2026-03-09");
        assert_eq!(ordinal(Value::from(10.0)), "10th");
        assert_eq!(ordinal(Value::from(2)), "2nd");
        assert_eq!(ordinal(Value::from(13)), "13th");
        assert_eq!(pad(Value::from("abc"), 5), "abc  ");
        assert_eq!(pad(Value::from("abcdef"), 5), "abcdef  ");
    }
}
