//! Rendering the console's pages: the templates (built into the binary,
//! HTML auto-escaped because their names end in `.html`), the context every
//! page shares, the error page, and how times, durations and numbers are
//! written. Times are stored as UTC; they are shown in the console's time
//! zone.

use std::sync::OnceLock;

use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use minijinja::{context, Environment, Value};

use super::session::Session;

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("templates/base.html")),
    ("login.html", include_str!("templates/login.html")),
    ("error.html", include_str!("templates/error.html")),
    ("sources.html", include_str!("templates/sources.html")),
    ("alerts.html", include_str!("templates/alerts.html")),
    ("alert.html", include_str!("templates/alert.html")),
    ("recons.html", include_str!("templates/recons.html")),
    ("recon.html", include_str!("templates/recon.html")),
    ("scorecards.html", include_str!("templates/scorecards.html")),
    ("outbox.html", include_str!("templates/outbox.html")),
];

/// The templates that are whole pages; the others go into `base.html`.
const STANDALONE: [&str; 2] = ["login.html", "error.html"];

pub const CSS: &str = include_str!("static/console.css");

fn env() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        // A typo in a template is an error, not an empty cell.
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        for (name, source) in TEMPLATES {
            env.add_template(name, source)
                .expect("the console's templates parse (checked by a test)");
        }
        env
    })
}

/// Renders template `name` with `ctx` as a page: standalone (the login),
/// or — for the pages behind it — into `base.html` as its `content`
/// (the build has minijinja without `extends`).
pub fn render(name: &str, ctx: Value) -> Response {
    let env = env();
    let html = env
        .get_template(name)
        .and_then(|t| t.render(&ctx))
        .and_then(|body| {
            if STANDALONE.contains(&name) {
                return Ok(body);
            }
            env.get_template("base.html").and_then(|t| {
                t.render(context! { content => Value::from_safe_string(body), ..ctx })
            })
        });
    match html {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(template = name, error = %format!("{e:#}"), "console page failed to render");
            error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "this page failed to render (logged)",
            )
        }
    }
}

/// The context every page behind the login shares: the session's CSRF
/// token and author, its one-time message, the menu entry lit, the time
/// zone.
pub fn page(s: &Session, active: &str, title: &str, tz: Tz) -> Value {
    context! {
        csrf => s.csrf,
        author => s.author,
        flash => s.flash,
        active => active,
        title => title,
        tz => tz_label(tz),
    }
}

/// Where the console's times are shown: the time zone's name.
pub fn tz_label(tz: Tz) -> String {
    tz.name().to_string()
}

/// A page that says what went wrong (escaped like any other value).
pub fn error_page(code: StatusCode, message: &str) -> Response {
    let html = env()
        .get_template("error.html")
        .and_then(|t| t.render(context! { message => message, code => code.as_u16() }))
        .unwrap_or_else(|_| "error".to_string());
    (
        code,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        html,
    )
        .into_response()
}

/// A handler's failure, shown as the error page.
pub struct Failure(pub StatusCode, pub String);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        error_page(self.0, &self.1)
    }
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Failure {
        let text = crate::query::clean_error(&format!("{e:#}"));
        tracing::warn!(error = %text, "console page failed");
        Failure(StatusCode::SERVICE_UNAVAILABLE, text)
    }
}

pub type PageResult = Result<Response, Failure>;

/// Redirects (303) to `to` after a form.
pub fn see_other(to: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, to.to_string())]).into_response()
}

/// Microseconds since the epoch (as the pages select them) as a UTC instant.
pub fn instant(us: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_micros(us)
}

/// `2026-11-02 06:00:00` in `tz`; empty for none.
pub fn time(us: Option<i64>, tz: Tz) -> String {
    us.and_then(instant)
        .map(|t| {
            tz.from_utc_datetime(&t.naive_utc())
                .format("%Y-%m-%d %H:%M:%S")
                .to_string()
        })
        .unwrap_or_default()
}

/// `11-02 06:00` in `tz`: a chart's axis label.
pub fn short_time(us: Option<i64>, tz: Tz) -> String {
    us.and_then(instant)
        .map(|t| {
            tz.from_utc_datetime(&t.naive_utc())
                .format("%m-%d %H:%M")
                .to_string()
        })
        .unwrap_or_default()
}

/// `3.2 s`, `4 min 10 s`, `2 h 5 min`.
pub fn duration(secs: f64) -> String {
    if !secs.is_finite() || secs < 0.0 {
        return String::new();
    }
    if secs < 60.0 {
        return format!("{secs:.1} s");
    }
    let s = secs.round() as u64;
    if s < 3600 {
        format!("{} min {} s", s / 60, s % 60)
    } else if s < 86_400 {
        format!("{} h {} min", s / 3600, (s % 3600) / 60)
    } else {
        format!("{} d {} h", s / 86_400, (s % 86_400) / 3600)
    }
}

/// A measured value: at most two decimals, no trailing zeros.
pub fn number(v: Option<f64>) -> String {
    match v {
        None => String::new(),
        Some(v) if v.fract() == 0.0 && v.abs() < 1e15 => format!("{v:.0}"),
        Some(v) => {
            let t = format!("{v:.2}");
            t.trim_end_matches('0').trim_end_matches('.').to_string()
        }
    }
}

/// An SVG chart, inserted as markup (the chart module escapes its text).
pub fn svg(markup: String) -> Value {
    Value::from_safe_string(markup)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_templates_parse_and_escape_data() {
        for (name, _) in TEMPLATES {
            env().get_template(name).unwrap();
        }
        let r = env()
            .get_template("error.html")
            .unwrap()
            .render(context! { message => "<script>alert(1)</script>", code => 500 })
            .unwrap();
        assert!(
            r.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"),
            "{r}"
        );
        assert!(!r.contains("<script>"));
    }

    #[test]
    fn console_times_show_in_the_time_zone() {
        // 2026-11-02 06:00:00 UTC.
        let us = 1_793_599_200_000_000;
        assert_eq!(time(Some(us), chrono_tz::UTC), "2026-11-02 06:00:00");
        assert_eq!(
            time(Some(us), chrono_tz::Europe::Paris),
            "2026-11-02 07:00:00"
        );
        assert_eq!(short_time(Some(us), chrono_tz::UTC), "11-02 06:00");
        assert_eq!(time(None, chrono_tz::UTC), "");
    }

    #[test]
    fn console_numbers_and_durations_read_well() {
        assert_eq!(number(Some(3.0)), "3");
        assert_eq!(number(Some(3.456)), "3.46");
        assert_eq!(number(Some(3.10)), "3.1");
        assert_eq!(number(None), "");
        assert_eq!(duration(2.34), "2.3 s");
        assert_eq!(duration(250.0), "4 min 10 s");
        assert_eq!(duration(7500.0), "2 h 5 min");
    }
}
