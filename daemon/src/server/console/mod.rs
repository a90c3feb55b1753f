//! The console: web pages the daemon serves on its HTTP listener under
//! `/console` — what runs (sources, with "sync now"), what fires (alerts,
//! with silences), what disagrees (reconciliations and their exceptions),
//! how teams score against the rules' thresholds, and the outbox (with
//! retry). Server-rendered HTML (minijinja, auto-escaped), charts drawn
//! here as inline SVG ([`chart`]), no JavaScript. Login with the endpoint's
//! token opens a session ([`session`]); pages read through the reader path
//! with a deadline ([`reader`]); actions call the same functions as the API
//! (`/v1/sync`, silences, outbox retry).

mod alerts;
pub mod chart;
mod outbox;
pub mod reader;
mod recons;
mod scorecards;
pub mod session;
mod sources;
mod view;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use chrono_tz::Tz;
use minijinja::context;

use super::auth::Gate;
use super::Live;
use crate::warehouse::Warehouse;
use session::{Session, Sessions};

/// What the console's handlers share.
#[derive(Clone)]
pub struct Console {
    wh: Arc<Warehouse>,
    live: Arc<Live>,
    gate: Gate,
    sessions: Arc<Sessions>,
    /// The session cookie is `Secure` when the listener speaks TLS.
    secure: bool,
    /// Where times are shown: `[server] timezone` (default UTC).
    tz: Tz,
    /// Sources whose "sync now" was asked for and has not finished.
    syncing: Arc<Mutex<BTreeSet<String>>>,
    /// The scorecards' figures, read again only when the data changed.
    scorecards: Arc<scorecards::Cache>,
}

/// The console's routes: the login page and the stylesheet are open (Host
/// checked); everything else needs a session, and its POSTs the session's
/// CSRF token.
pub fn router(wh: Arc<Warehouse>, live: Arc<Live>, gate: Gate) -> Router {
    let secure = live.config().server.tls.is_some();
    // Read once: like the listener, it changes with a restart, not a reload.
    let tz = live.config().server.timezone;
    let c = Console {
        wh,
        live,
        gate,
        sessions: Arc::new(Sessions::default()),
        secure,
        tz,
        syncing: Arc::new(Mutex::new(BTreeSet::new())),
        scorecards: Arc::new(scorecards::Cache::default()),
    };
    let pages = Router::new()
        .route("/console", get(home))
        .route("/console/", get(home))
        .route("/console/sources", get(sources::page))
        .route("/console/sources/sync", post(sources::sync_now))
        .route("/console/alerts", get(alerts::list))
        .route("/console/alert", get(alerts::page))
        .route("/console/silences", post(alerts::silence))
        .route("/console/silences/{id}/expire", post(alerts::expire))
        .route("/console/reconciliations", get(recons::list))
        .route("/console/reconciliations/{name}", get(recons::exceptions))
        .route(
            "/console/reconciliations/{name}/exceptions.csv",
            get(recons::csv),
        )
        .route("/console/scorecards", get(scorecards::page))
        .route("/console/outbox", get(outbox::page))
        .route("/console/outbox/retry", post(outbox::retry))
        .route("/console/logout", post(logout))
        .layer(axum::middleware::from_fn_with_state(
            c.clone(),
            session::require_session,
        ));
    let open = Router::new()
        .route("/console/login", get(login_page).post(login))
        .route("/console/static/console.css", get(css));
    pages
        .merge(open)
        .layer(axum::middleware::from_fn_with_state(
            c.clone(),
            session::require_host,
        ))
        .layer(axum::middleware::from_fn(session::security_headers))
        .with_state(c)
}

async fn home() -> Response {
    view::see_other("/console/alerts")
}

async fn css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        view::CSS,
    )
        .into_response()
}

#[derive(serde::Deserialize, Default)]
struct LoginQuery {
    next: Option<String>,
}

#[derive(serde::Deserialize)]
struct LoginForm {
    token: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    next: String,
}

/// Where to go after login: a console page, never another site.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with("/console") && !n.contains("//") && !n.contains('\\') => {
            n.to_string()
        }
        _ => "/console/alerts".to_string(),
    }
}

fn login_form(code: StatusCode, error: Option<&str>, next: &str, name: &str) -> Response {
    let mut r = view::render(
        "login.html",
        context! { error => error, next => next, name => name },
    );
    *r.status_mut() = code;
    r
}

async fn login_page(Query(q): Query<LoginQuery>) -> Response {
    login_form(StatusCode::OK, None, &safe_next(q.next.as_deref()), "")
}

/// Checks the token; on success opens a session and sets its cookie.
async fn login(State(c): State<Console>, headers: HeaderMap, Form(f): Form<LoginForm>) -> Response {
    let next = safe_next(Some(&f.next));
    let name = f.name.trim();
    // Another site cannot log a browser in (into a session of its choosing).
    if headers
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes() == b"cross-site")
    {
        return session::refuse(
            StatusCode::FORBIDDEN,
            "refused: this request came from another site\n",
        );
    }
    if c.sessions.throttled() {
        return login_form(
            StatusCode::TOO_MANY_REQUESTS,
            Some("Too many failed logins in the last minute; wait a minute and try again."),
            &next,
            name,
        );
    }
    if !c.gate.token_is(&f.token) {
        c.sessions.failed_login();
        tracing::warn!(
            user_agent = headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or(""),
            "console login refused: wrong token"
        );
        return login_form(
            StatusCode::UNAUTHORIZED,
            Some("That is not the token. Use server.token, or the daemon's token file."),
            &next,
            name,
        );
    }
    let author = if name.is_empty() { "console" } else { name };
    let id = c.sessions.open(author);
    tracing::info!(author, "console login");
    (
        StatusCode::SEE_OTHER,
        [
            (header::SET_COOKIE, session::set_cookie(&id, c.secure)),
            (header::LOCATION, next),
        ],
    )
        .into_response()
}

async fn logout(State(c): State<Console>, Extension(s): Extension<Session>) -> Response {
    c.sessions.close(&s);
    (
        StatusCode::SEE_OTHER,
        [
            (header::SET_COOKIE, session::clear_cookie(c.secure)),
            (header::LOCATION, "/console/login".to_string()),
        ],
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_login_goes_back_only_to_console_pages() {
        assert_eq!(safe_next(Some("/console/outbox")), "/console/outbox");
        assert_eq!(
            safe_next(Some("/console/alert?rule=a&entity=b")),
            "/console/alert?rule=a&entity=b"
        );
        for bad in [
            "https://evil.example/",
            "//evil.example",
            "/console//evil.example",
            "/v1/query",
            "/console\\@evil",
        ] {
            assert_eq!(safe_next(Some(bad)), "/console/alerts", "{bad}");
        }
        assert_eq!(safe_next(None), "/console/alerts");
    }
}
