//! The Outbox page: notifications by channel — queued, delivered, dead
//! letters — and "retry", which re-queues through `outbox::retry` (as
//! `conveyor outbox retry` and `/v1/outbox/retry` do) and starts a delivery
//! pass at once.

use anyhow::Result;
use axum::extract::State;
use axum::response::Response;
use axum::{Extension, Form};
use duckdb::Connection;
use minijinja::context;
use serde::Serialize;

use super::reader::{read, rows};
use super::session::Session;
use super::view::{self, PageResult};
use super::Console;
use crate::outbox::retry::{retry as requeue, Selection};

/// Rows listed per table.
const LISTED: i64 = 100;

#[derive(Serialize)]
struct ChannelView {
    channel: String,
    queued: i64,
    delivered: i64,
    dead: i64,
}

#[derive(Serialize)]
struct RowView {
    id: i64,
    rule: String,
    channel: String,
    recipient: String,
    subject: String,
    created: String,
    attempts: i64,
    next_attempt: String,
    delivered: String,
    dead: String,
    last_error: Option<String>,
}

struct Data {
    channels: Vec<ChannelView>,
    queued: Vec<RowView>,
    dead: Vec<RowView>,
    delivered: Vec<RowView>,
}

fn listed(conn: &Connection, filter: &str, order: &str, tz: chrono_tz::Tz) -> Result<Vec<RowView>> {
    rows(
        conn,
        &format!(
            "SELECT id, rule, channel, recipient, subject, epoch_us(created_at), attempts,
                    epoch_us(next_attempt_at), epoch_us(delivered_at), epoch_us(dead_at), last_error
             FROM conveyor.outbox WHERE {filter} ORDER BY {order} LIMIT {LISTED}"
        ),
        &[],
        |r| {
            Ok(RowView {
                id: r.get(0)?,
                rule: r.get(1)?,
                channel: r.get(2)?,
                recipient: r.get(3)?,
                subject: r.get(4)?,
                created: view::time(r.get(5)?, tz),
                attempts: r.get(6)?,
                next_attempt: view::time(r.get(7)?, tz),
                delivered: view::time(r.get(8)?, tz),
                dead: view::time(r.get(9)?, tz),
                last_error: r.get(10)?,
            })
        },
    )
}

fn load(conn: &Connection, tz: chrono_tz::Tz) -> Result<Data> {
    let channels = rows(
        conn,
        "SELECT channel,
                count(*) FILTER (WHERE delivered_at IS NULL AND dead_at IS NULL),
                count(*) FILTER (WHERE delivered_at IS NOT NULL),
                count(*) FILTER (WHERE dead_at IS NOT NULL)
         FROM conveyor.outbox GROUP BY channel ORDER BY channel",
        &[],
        |r| {
            Ok(ChannelView {
                channel: r.get(0)?,
                queued: r.get(1)?,
                delivered: r.get(2)?,
                dead: r.get(3)?,
            })
        },
    )?;
    Ok(Data {
        channels,
        queued: listed(
            conn,
            "delivered_at IS NULL AND dead_at IS NULL",
            "next_attempt_at, id",
            tz,
        )?,
        dead: listed(conn, "dead_at IS NOT NULL", "dead_at DESC, id DESC", tz)?,
        delivered: listed(
            conn,
            "delivered_at IS NOT NULL",
            "delivered_at DESC, id DESC",
            tz,
        )?,
    })
}

pub async fn page(State(c): State<Console>, Extension(s): Extension<Session>) -> PageResult {
    let tz = c.tz;
    let d = read(c.wh.clone(), move |conn| load(conn, tz)).await?;
    Ok(view::render(
        "outbox.html",
        context! {
            channels => d.channels,
            queued => d.queued,
            dead => d.dead,
            delivered => d.delivered,
            listed => LISTED,
            ..view::page(&s, "outbox", "Outbox", tz)
        },
    ))
}

#[derive(serde::Deserialize)]
pub struct RetryForm {
    /// `dead`: every dead letter; `all`: everything undelivered; else one id.
    which: String,
}

/// Re-queues, then delivers in the background (as `/v1/outbox/retry`).
pub async fn retry(
    State(c): State<Console>,
    Extension(s): Extension<Session>,
    Form(f): Form<RetryForm>,
) -> Response {
    let selection = match f.which.as_str() {
        "dead" => Some(Selection::Dead),
        "all" => Some(Selection::All),
        id => id.parse::<i64>().ok().map(|id| Selection::Ids(vec![id])),
    };
    let message = match selection {
        None => format!("Nothing to retry: {:?} is not an outbox id.", f.which),
        Some(sel) => {
            let wh = c.wh.clone();
            let now = chrono::Utc::now().naive_utc();
            let done = tokio::task::spawn_blocking(move || -> Result<usize> {
                Ok(requeue(&wh.connection()?, &sel, now)?)
            })
            .await;
            match done {
                Ok(Ok(0)) => {
                    "Nothing was re-queued (delivered notifications are never sent again)."
                        .to_string()
                }
                Ok(Ok(n)) => {
                    tracing::info!(n, author = %s.author, "console: outbox retry");
                    let (wh, config) = (c.wh.clone(), c.live.config());
                    tokio::task::spawn_blocking(move || {
                        if let Ok(conn) = wh.connection() {
                            crate::outbox::deliver_logged(&conn, &config);
                        }
                    });
                    format!("{n} notification(s) re-queued; a delivery pass has started.")
                }
                Ok(Err(e)) => format!("Retry failed: {e:#}."),
                Err(e) => format!("Retry failed: {e}."),
            }
        }
    };
    c.sessions.flash(&s, message);
    view::see_other("/console/outbox")
}
