//! ADP Workforce Now: the workers of one client (`workers`, the primary
//! work assignment flattened) and their work assignments
//! (`work_assignments`, one row each), read in full every sync.
//!
//! The reference (§3b) is sparse; what it does not say is marked [?].
//!
//! - Mutual TLS: every call — the token request and each API call — is
//!   made with the client certificate ADP issued (`client_certificate`,
//!   `client_key`); a handshake that refuses it fails at once, not retried,
//!   as "ADP refused the client certificate …" saying why (none presented,
//!   unknown authority, expired …), never quoting the key.
//! - Auth: `POST https://accounts.adp.com/auth/oauth/v2/token`, form body
//!   `grant_type=client_credentials&client_id=…&client_secret=…`; the token
//!   lasts `expires_in` (about 3600 s) and is fetched again a minute before
//!   it ends, or once when the API answers 401.
//! - `GET /hr/v2/workers?$top=100&$skip=n` → `{"workers":[…],"meta":{…}}`.
//!   The end is the answer `204 No Content` (an empty `workers` list ends
//!   it too). A short page is *not* taken for the end: the 204 is the signal
//!   ADP documents, and its cap on `$top` is not [?]; `$skip` moves by the
//!   records received, so a capped page skips nothing.
//! - `Accept: application/json;masked=false`, or `person.birthDate` comes
//!   masked. A birth date that still arrives masked (`"0000-04-12"` [?]:
//!   the credentials may lack the permission) leaves `birth_date` NULL and
//!   its text in `other`, with one warning per read.
//! - Fields: `associateOID` (the key), `workerID.idValue`,
//!   `person.legalName{givenName,familyName1,formattedName}`,
//!   `person.birthDate`, `workerDates{originalHireDate,terminationDate}`,
//!   `workerStatus.statusCode.codeValue`, and per assignment `itemID`,
//!   `primaryIndicator`, `hireDate`, `jobTitle`,
//!   `assignmentStatus.statusCode.codeValue` (`A`/`T`),
//!   `homeOrganizationalUnits[{nameCode,typeCode}]`, `reportsTo[{associateOID}]`,
//!   `baseRemuneration`. Guessed [?]: the department is the home unit whose
//!   `typeCode.codeValue` is `Department` (its `nameCode.shortName`); an
//!   assignment's `terminationDate`; `baseRemuneration.annualRateAmount` /
//!   `hourlyRateAmount` `{amountValue, currencyCode}` as the pay rate; that
//!   the worker status reads `Active`/`Terminated`. Fields not projected stay
//!   in `other` (JSON).
//! - Full refresh: no modified-since filter exists, so each sync reads every
//!   worker again and the warehouse merges by key (as Gusto's employees).
//!   A key the last complete read listed and this one does not becomes a
//!   tombstone row (`deleted = true`, see `adp/roster.rs`), as QuickBooks'
//!   deletions are, so a removed worker does not linger as current. Before
//!   that, each such worker is asked for by its OID
//!   (`GET /hr/v2/workers/{aoid}`, reference: a per-worker endpoint [?]):
//!   `$skip` paging shifts when the list changes during a read, so a worker
//!   can slip between two pages; one ADP still has is emitted, and only a
//!   404 makes a tombstone.
//! - Errors: `{"response":{"responseCode","applicationCode":{"code",
//!   "typeCode":"error","message"}}}` [?] is quoted by its message; 403 and
//!   404 on the workers endpoint are `Unavailable`; a 429 is retried after
//!   its `Retry-After` by the toolkit (ADP publishes no limits [?]).

mod errors;
mod project;
mod roster;

use std::sync::Arc;

use conveyor_config::{PaginationConfig, VendorSourceConfig};
use conveyor_plugin_api::{
    CancelFlag, ConnectorError, CredentialStore, ErrorKind, Json, RecordSink,
};
use serde_json::{Map, Value};

use super::read::{Emitter, Pages};
use super::table::{Col, Table, MONEY};
use super::{endpoint, Base, ClientSpec};
use crate::http::client::HttpRequest;
use crate::http::TokenBody;
use crate::rest::pager::Pager;
use reqwest::StatusCode;
use roster::Roster;

/// ADP's page size "in practice" (the reference).
const PAGE_SIZE: u64 = 100;
/// Without it ADP masks birth dates.
const ACCEPT: &str = "application/json;masked=false";
/// Hourly rates may carry more than cents [?].
const RATE: Col = Col::Decimal(18, 4);

pub const TABLES: &[Table] = &[
    Table {
        name: "workers",
        primary_key: &["associate_oid"],
        cursor: None,
        columns: &[
            ("associate_oid", Col::Str),
            ("worker_id", Col::Str),
            ("given_name", Col::Str),
            ("family_name", Col::Str),
            ("formatted_name", Col::Str),
            ("birth_date", Col::Date),
            ("original_hire_date", Col::Date),
            ("termination_date", Col::Date),
            // The worker's status code (`Active`, `Terminated` [?]).
            ("status", Col::Str),
            // The primary work assignment (else the first), flattened.
            ("primary_assignment_id", Col::Str),
            ("job_title", Col::Str),
            // `A` (active) or `T` (terminated).
            ("assignment_status", Col::Str),
            ("hire_date", Col::Date),
            ("department", Col::Str),
            ("department_code", Col::Str),
            // The manager's associate OID.
            ("reports_to", Col::Str),
            // The base pay rate [?].
            ("annual_rate", MONEY),
            ("hourly_rate", RATE),
            ("rate_currency", Col::Str),
            // No longer listed by ADP (a tombstone: the key alone).
            ("deleted", Col::Bool),
            ("other", Col::Json),
        ],
    },
    Table {
        name: "work_assignments",
        primary_key: &["associate_oid", "item_id"],
        cursor: None,
        columns: &[
            ("associate_oid", Col::Str),
            ("item_id", Col::Str),
            ("primary_indicator", Col::Bool),
            ("job_title", Col::Str),
            // `A` (active) or `T` (terminated).
            ("status", Col::Str),
            ("hire_date", Col::Date),
            // The assignment's own end [?].
            ("termination_date", Col::Date),
            ("department", Col::Str),
            ("department_code", Col::Str),
            ("reports_to", Col::Str),
            ("annual_rate", MONEY),
            ("hourly_rate", RATE),
            ("rate_currency", Col::Str),
            ("deleted", Col::Bool),
            ("other", Col::Json),
        ],
    },
];

/// The tables as a closed set, so each `match` over them is exhaustive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Workers,
    WorkAssignments,
}

impl Kind {
    fn of(table: &str) -> Result<Kind, ConnectorError> {
        match table {
            "workers" => Ok(Kind::Workers),
            "work_assignments" => Ok(Kind::WorkAssignments),
            other => Err(ConnectorError::new(
                ErrorKind::Config,
                format!("adp has no table `{other}`"),
            )),
        }
    }

    /// The rows one worker record makes in this table.
    fn rows(self, worker: Value) -> Vec<Map<String, Value>> {
        match self {
            Kind::Workers => vec![project::worker(worker)],
            Kind::WorkAssignments => project::assignments(&worker),
        }
    }
}

pub struct Adp {
    base: Base,
}

impl Adp {
    pub fn new(
        source: &str,
        cfg: VendorSourceConfig,
        credentials: Arc<dyn CredentialStore>,
    ) -> Result<Self, ConnectorError> {
        let spec = ClientSpec {
            headers: vec![("Accept".into(), ACCEPT.into())],
            token_fields: Vec::new(),
            token_body: TokenBody::FormWithCredentials,
            error_message: errors::error_message,
            error_reader: None,
        };
        Ok(Adp {
            base: Base::new(source, cfg, credentials, spec, TABLES)?,
        })
    }

    fn pager(&self) -> Result<Pager, ConnectorError> {
        let paging = PaginationConfig::OffsetLimit {
            offset_param: "$skip".into(),
            limit_param: "$top".into(),
            limit: PAGE_SIZE,
            start_offset: 0,
        };
        let url = endpoint(&self.base.cfg.base_url, "hr/v2/workers")?;
        Ok(Pager::new(paging, url, Vec::new(), Vec::new()).until_empty_page())
    }
}

impl Adp {
    /// `GET /hr/v2/workers/{aoid}`: the worker, or `None` when ADP no
    /// longer has it (404, or a 204 [?]).
    async fn worker(&self, aoid: &str) -> Result<Option<Value>, ConnectorError> {
        let mut url = endpoint(&self.base.cfg.base_url, "hr/v2/workers")?;
        url.path_segments_mut()
            .map_err(|_| ConnectorError::new(ErrorKind::Config, "base_url cannot take a path"))?
            .push(aoid);
        let req = HttpRequest::get(url);
        let client = &self.base.client;
        let resp = client.send_passing(&req, &[StatusCode::NOT_FOUND]).await?;
        if matches!(resp.status, StatusCode::NOT_FOUND | StatusCode::NO_CONTENT) {
            return Ok(None);
        }
        let body: Value = serde_json::from_slice(&resp.body).map_err(|e| {
            ConnectorError::new(
                ErrorKind::Data,
                format!(
                    "GET {}: response is not valid JSON ({e}); body starts: {}",
                    client.redactor().url(&req.url),
                    client.redactor().snippet(&resp.body)
                ),
            )
        })?;
        Ok(match body["workers"].get(0) {
            Some(w) if w.is_object() => Some(w.clone()),
            _ => None,
        })
    }
}

super::connector_over_base!(Adp);

impl Adp {
    async fn read_stream(
        &self,
        stream: &str,
        state: Option<Json>,
        sink: &mut dyn RecordSink,
        cancel: &CancelFlag,
    ) -> Result<(), ConnectorError> {
        let t = self.base.table(stream)?;
        let kind = Kind::of(t.name)?;
        // A full refresh: every batch is followed by the state the read
        // started from, so an interrupted read starts over.
        let resume = state
            .clone()
            .unwrap_or_else(|| serde_json::json!({ "cursor": null }));
        let mut out = Emitter::new(sink, t, resume);
        let mut roster = Roster::default();
        let mut masked = 0usize;
        let mut pages = Pages::new(&self.base, t.name, self.pager()?, "workers").no_content_ends();
        while let Some(page) = pages.next(cancel).await? {
            let mut rows = Vec::new();
            for w in page.records {
                if !w["person"]["birthDate"].is_null()
                    && !project::is_plain_date(&w["person"]["birthDate"])
                {
                    masked += 1;
                }
                rows.extend(kind.rows(w));
            }
            for r in &rows {
                roster.see(r, t.primary_key);
            }
            out.emit(&rows).await?;
        }
        if cancel.is_cancelled() {
            return Ok(());
        }
        if masked > 0 && kind == Kind::Workers {
            tracing::warn!(source = %self.base.source, workers = masked, "ADP sent masked birth dates despite `Accept: {ACCEPT}`; birth_date is NULL for them (the credentials may lack the permission to read them unmasked)");
        }
        // A worker that moved across a page boundary while the read went on
        // (someone hired or removed ahead of it shifts every `$skip`) is
        // missing from the listing without being gone: each one the last
        // read listed is asked for by its OID before it is called gone.
        let mut recovered = Vec::new();
        for oid in roster.missing_workers(state.as_ref()) {
            if let Some(w) = self.worker(&oid).await? {
                recovered.extend(kind.rows(w));
            }
        }
        for r in &recovered {
            roster.see(r, t.primary_key);
        }
        out.emit(&recovered).await?;
        let next = match roster.tombstones(state.as_ref(), t.primary_key) {
            Some(gone) => {
                out.emit(&gone).await?;
                roster.state()
            }
            None => {
                tracing::warn!(source = %self.base.source, stream = t.name, "ADP listed nothing where the last sync listed some; nothing is marked deleted until it lists again");
                Roster::keep(state.as_ref())
            }
        };
        out.finish(next, cancel).await
    }
}
