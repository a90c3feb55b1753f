//! Greenhouse Harvest v3: jobs, candidates, applications and offers.
//!
//! - Auth: client credentials at `auth.greenhouse.io/token` with HTTP Basic
//!   and `sub=<user id>`; the token's expiry comes as `expires_at`.
//! - Lists are bare JSON arrays. The first request carries the filter and
//!   `per_page`; after that the `Link: <…?cursor=…>; rel="next"` URL is
//!   followed exactly, because `cursor` must be the only query parameter
//!   (anything else is a 422). No `Link` header means the last page.
//! - Incremental: `updated_at=gte|<cursor>` (inclusive, so the records at
//!   the cursor come again; unchanged ones are not emitted twice, see
//!   `read::Boundary`).
//! - A 403 (missing scope such as `harvest:offers:list`, or a non-admin
//!   user) fails the stream as unavailable, saying to leave it out.
//! - Errors: `{"message":"Validation error","errors":[{"message","field"}]}`.

use std::sync::Arc;

use conveyor_config::{PaginationConfig, VendorSourceConfig};
use conveyor_plugin_api::{CancelFlag, ConnectorError, CredentialStore, Json, RecordSink};
use serde_json::Value;

use super::read::{iso_millis, object, saved_instant, Boundary, Emitter, Pages};
use super::table::{Col, Table};
use super::{endpoint, oauth_error, Base, ClientSpec};
use crate::http::TokenBody;
use crate::rest::pager::Pager;

/// The largest page Harvest serves.
const PER_PAGE: u32 = 500;

pub const TABLES: &[Table] = &[
    Table {
        name: "jobs",
        primary_key: &["id"],
        cursor: Some("updated_at"),
        columns: &[
            ("id", Col::Int),
            ("name", Col::Str),
            ("requisition_id", Col::Str),
            ("status", Col::Str),
            ("opened_at", Col::Instant),
            ("closed_at", Col::Instant),
            ("departments", Col::Json),
            ("offices", Col::Json),
            ("openings", Col::Json),
            ("created_at", Col::Instant),
            ("updated_at", Col::Instant),
        ],
    },
    Table {
        name: "candidates",
        primary_key: &["id"],
        cursor: Some("updated_at"),
        columns: &[
            ("id", Col::Int),
            ("first_name", Col::Str),
            ("last_name", Col::Str),
            // The first listed address, for joins across systems.
            ("primary_email", Col::Str),
            ("company", Col::Str),
            ("title", Col::Str),
            ("email_addresses", Col::Json),
            ("tags", Col::Json),
            ("private", Col::Bool),
            ("last_activity_at", Col::Instant),
            ("created_at", Col::Instant),
            ("updated_at", Col::Instant),
        ],
    },
    Table {
        name: "applications",
        primary_key: &["id"],
        cursor: Some("updated_at"),
        columns: &[
            ("id", Col::Int),
            ("candidate_id", Col::Int),
            ("job_id", Col::Int),
            ("job_post_id", Col::Int),
            ("prospect", Col::Bool),
            ("status", Col::Str),
            ("stage_id", Col::Int),
            ("stage_name", Col::Str),
            ("source_id", Col::Int),
            ("recruiter_id", Col::Int),
            ("rejected_at", Col::Instant),
            ("rejection_reason_id", Col::Int),
            ("last_activity_at", Col::Instant),
            ("created_at", Col::Instant),
            ("updated_at", Col::Instant),
            ("custom_fields", Col::Json),
        ],
    },
    Table {
        name: "offers",
        primary_key: &["id"],
        cursor: Some("updated_at"),
        columns: &[
            ("id", Col::Int),
            ("application_id", Col::Int),
            ("candidate_id", Col::Int),
            ("job_id", Col::Int),
            ("opening_id", Col::Int),
            ("version", Col::Int),
            ("status", Col::Str),
            ("sent_on", Col::Date),
            ("starts_on", Col::Date),
            ("resolved_at", Col::Instant),
            ("created_at", Col::Instant),
            ("updated_at", Col::Instant),
            // Placement fee and the like: the model's placements read it.
            ("custom_fields", Col::Json),
        ],
    },
];

pub struct Greenhouse {
    base: Base,
}

impl Greenhouse {
    pub fn new(
        source: &str,
        cfg: VendorSourceConfig,
        credentials: Arc<dyn CredentialStore>,
    ) -> Result<Self, ConnectorError> {
        let user = cfg.account.clone().unwrap_or_default();
        let spec = ClientSpec {
            headers: vec![("Accept".into(), "application/json".into())],
            token_fields: vec![("sub".into(), user)],
            token_body: TokenBody::FormWithBasic,
            error_message,
            error_reader: None,
        };
        Ok(Greenhouse {
            base: Base::new(source, cfg, credentials, spec, TABLES)?,
        })
    }
}

super::connector_over_base!(Greenhouse);

impl Greenhouse {
    async fn read_stream(
        &self,
        stream: &str,
        state: Option<Json>,
        sink: &mut dyn RecordSink,
        cancel: &CancelFlag,
    ) -> Result<(), ConnectorError> {
        let t = self.base.table(stream)?;
        let since = saved_instant(state.as_ref(), self.base.cfg.start_date);
        let filter: Vec<(String, String)> = since
            .iter()
            .map(|s| ("updated_at".to_string(), format!("gte|{}", iso_millis(*s))))
            .collect();
        // Link-header paging sends the filter on the first request only and
        // then follows the cursor link untouched.
        let pager = Pager::new(
            PaginationConfig::LinkHeader,
            endpoint(&self.base.cfg.base_url, t.name)?,
            vec![("per_page".into(), PER_PAGE.to_string())],
            filter,
        );
        let mut pages = Pages::new(&self.base, t.name, pager, "");
        let resume = match &state {
            Some(s) if !s["cursor"].is_null() => s.clone(),
            _ => serde_json::json!({ "cursor": since.map(iso_millis) }),
        };
        let mut out = Emitter::new(sink, t, resume);
        let mut boundary = Boundary::resume(state.as_ref(), since);
        while let Some(page) = pages.next(cancel).await? {
            let mut rows = Vec::with_capacity(page.records.len());
            for r in page.records {
                let mut row = object(r, t.name)?;
                if t.name == "candidates" {
                    let first = row
                        .get("email_addresses")
                        .and_then(|e| e.get(0))
                        .and_then(|e| e.get("value"))
                        .cloned();
                    row.insert("primary_email".into(), first.unwrap_or(Value::Null));
                }
                if boundary.fresh(&row, row.get("updated_at")) {
                    rows.push(row);
                }
            }
            out.emit(&rows).await?;
        }
        out.finish(boundary.state(), cancel).await
    }
}

/// Harvest's error body: a message plus per-field errors.
fn error_message(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let Some(message) = v.get("message").and_then(Value::as_str) else {
        return oauth_error(&v);
    };
    let details: Vec<String> = v
        .get("errors")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let m = e.get("message").and_then(Value::as_str)?;
            Some(match e.get("field").and_then(Value::as_str) {
                Some(f) => format!("{f}: {m}"),
                None => m.to_string(),
            })
        })
        .collect();
    Some(if details.is_empty() {
        message.to_string()
    } else {
        format!("{message} ({})", details.join("; "))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_errors_quote_the_field_messages() {
        let body = br#"{"message":"Validation error","errors":[{"message":"Must be one of: candidate, prospect","field":"type"}]}"#;
        assert_eq!(
            error_message(body).unwrap(),
            "Validation error (type: Must be one of: candidate, prospect)"
        );
        assert_eq!(
            error_message(br#"{"error":"invalid_client"}"#).unwrap(),
            "invalid_client"
        );
        assert!(error_message(b"<html>").is_none());
    }
}
