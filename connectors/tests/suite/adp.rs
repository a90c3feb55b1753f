//! The ADP connector against its mock over real HTTPS on 127.0.0.1 with
//! mutual TLS: a full read across `$top`/`$skip` pages ending at the 204,
//! exact values and unmasked birth dates, a second sync that sees a
//! termination, a hire and a removal (tombstoned), an expired token
//! refreshed once, a 429 waited out, a 403 as `Unavailable`, an empty
//! page as the end, a birth date masked anyway kept out of the DATE
//! column with a warning, and a missing,
//! untrusted or refused credential as a clear error that holds no secret in
//! any form.

use crate::support;

use std::sync::Arc;
use std::time::Instant;

use arrow_array::cast::AsArray;
use arrow_array::types::Date32Type;
use arrow_schema::DataType;
use base64::Engine;
use conveyor_mocks::server::MockServer;
use conveyor_mocks::tls::PkiFiles;
use conveyor_mocks::vendors::adp::{
    aoid, envelope_body, worker, AdpHandle, AdpMock, AdpMockConfig, TOKEN_PATH, WORKERS_PATH,
};
use conveyor_mocks::vendors::{Fault, MockHandle};
use conveyor_plugin_api::{Connector, ErrorKind, MemoryCredentials};
use serde_json::json;
use support::{bools, build, capture_logs, distinct, read, read_with_hook, secret_file, source};

struct Setup {
    dir: tempfile::TempDir,
    body: String,
    server: MockServer,
    mock: AdpHandle,
    cfg: AdpMockConfig,
    files: PkiFiles,
}

async fn start(cfg: AdpMockConfig, workers: Vec<serde_json::Value>) -> Setup {
    let (server, mock) = AdpMock::start_with(cfg.clone(), workers).await;
    let dir = tempfile::tempdir().unwrap();
    let files = mock.pki().write_to(dir.path());
    let body = format!(
        "type = \"adp\"\nbase_url = \"{}\"\nclient_id = \"{}\"\nclient_secret = \"{}\"\nclient_certificate = \"{}\"\nclient_key = \"file:{}\"\nca_certificate = \"{}\"\nbackoff_base_ms = 10\n",
        server.base_url(),
        cfg.client_id,
        secret_file(dir.path(), "cs", &cfg.client_secret),
        files.client_certificate.display(),
        files.client_key.display(),
        files.ca.display(),
    );
    Setup {
        dir,
        body,
        server,
        mock,
        cfg,
        files,
    }
}

impl Setup {
    fn connector(&self) -> Box<dyn Connector> {
        build(
            &source("hr", &self.body),
            Arc::new(MemoryCredentials::default()),
        )
    }

    /// The workers calls (token calls left out), in order.
    fn data_requests(&self) -> Vec<conveyor_mocks::RequestLog> {
        self.mock
            .requests()
            .into_iter()
            .filter(|r| r.path.starts_with(WORKERS_PATH))
            .collect()
    }

    /// Every form the client secret and the private key could leak in.
    fn secret_forms(&self) -> Vec<String> {
        let b64 = |t: &str| base64::engine::general_purpose::STANDARD.encode(t);
        let form = |t: &str| url::form_urlencoded::byte_serialize(t.as_bytes()).collect::<String>();
        let secret = &self.cfg.client_secret;
        let key = &self.mock.pki().client.key;
        let body: Vec<&str> = key
            .lines()
            .filter(|l| !l.starts_with("-----") && !l.is_empty())
            .collect();
        let mut forms = vec![
            secret.clone(),
            form(secret),
            b64(secret),
            b64(&format!("{}:{secret}", self.cfg.client_id)),
            key.clone(),
            form(key),
            body.concat(),
        ];
        forms.extend(body.iter().map(|l| l.to_string()));
        forms
    }
}

/// Four workers with hand-set values, then the invented ones up to `n`.
fn roster(n: usize) -> Vec<serde_json::Value> {
    let mut ada = worker(1);
    ada["person"]["birthDate"] = json!("1985-04-12");
    ada["person"]["legalName"] =
        json!({"givenName": "Ada", "familyName1": "Lovelace", "formattedName": "Lovelace, Ada"});
    ada["workAssignments"][0]["baseRemuneration"] =
        json!({"annualRateAmount": {"amountValue": "52000.50", "currencyCode": "USD"}});
    let mut rest: Vec<serde_json::Value> = (2..=n).map(worker).collect();
    rest.insert(0, ada);
    rest
}

fn param(r: &conveyor_mocks::RequestLog, name: &str) -> Option<String> {
    r.query_pairs()
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

fn dates(sink: &support::Sink, name: &str) -> Vec<Option<String>> {
    sink.batches
        .iter()
        .flat_map(|b| {
            let c = b.column(b.schema().index_of(name).unwrap()).clone();
            c.as_primitive::<Date32Type>()
                .iter()
                .map(|d| {
                    d.map(|d| {
                        (chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()
                            + chrono::Duration::days(d.into()))
                        .to_string()
                    })
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The value of `column` in the row whose `associate_oid` is `oid`.
fn cell(sink: &support::Sink, oid: &str, column: &str) -> Option<String> {
    let oids = sink.strings("associate_oid");
    let at = oids
        .iter()
        .position(|o| o.as_deref() == Some(oid))
        .expect("row");
    sink.strings(column)[at].clone()
}

#[tokio::test]
async fn adp_reads_every_worker_across_pages_to_the_204_with_exact_values() {
    let s = start(AdpMockConfig::default(), roster(250)).await;
    let c = s.connector();
    let (r, w) = read(c.as_ref(), "workers", None).await;
    r.unwrap();
    let (oids, repeated) = distinct(&w.strings("associate_oid"));
    assert!(!repeated && oids.len() == 250 && w.rows() == 250);
    // $skip by the records received; the page after the last full one is
    // the 204 that ends it (a short page would have ended it too early).
    let skips: Vec<Option<String>> = s
        .data_requests()
        .iter()
        .map(|r| param(r, "$skip"))
        .collect();
    assert_eq!(
        skips,
        ["0", "100", "200", "250"].map(|s| Some(s.to_string()))
    );
    assert!(s
        .data_requests()
        .iter()
        .all(|r| param(r, "$top").as_deref() == Some("100")
            && r.header("accept") == Some("application/json;masked=false")));

    let ada = aoid(1);
    assert_eq!(
        cell(&w, &ada, "formatted_name").as_deref(),
        Some("Lovelace, Ada")
    );
    assert_eq!(cell(&w, &ada, "worker_id").as_deref(), Some("E0001"));
    assert_eq!(
        cell(&w, &ada, "department").as_deref(),
        Some("Contact Center")
    );
    assert_eq!(cell(&w, &ada, "assignment_status").as_deref(), Some("A"));
    assert_eq!(cell(&w, &ada, "status").as_deref(), Some("Active"));
    assert_eq!(w.data_type("birth_date"), DataType::Date32);
    assert_eq!(w.data_type("annual_rate"), DataType::Decimal128(18, 2));
    let at = w
        .strings("associate_oid")
        .iter()
        .position(|o| o.as_deref() == Some(ada.as_str()))
        .unwrap();
    assert_eq!(
        dates(&w, "birth_date")[at].as_deref(),
        Some("1985-04-12"),
        "not masked"
    );
    assert_eq!(w.decimals("annual_rate")[at].as_deref(), Some("52000.50"));
    assert_eq!(
        dates(&w, "original_hire_date")[at].as_deref(),
        Some("2011-02-02")
    );
    // Worker 10 is terminated; 12 reports to Ada and earns 31500.00.
    let ten = aoid(10);
    assert_eq!(cell(&w, &ten, "status").as_deref(), Some("Terminated"));
    assert_eq!(cell(&w, &ten, "assignment_status").as_deref(), Some("T"));
    let at10 = w
        .strings("associate_oid")
        .iter()
        .position(|o| o.as_deref() == Some(ten.as_str()))
        .unwrap();
    assert_eq!(
        dates(&w, "termination_date")[at10].as_deref(),
        Some("2025-12-31")
    );
    let at12 = w
        .strings("associate_oid")
        .iter()
        .position(|o| o.as_deref() == Some(aoid(12).as_str()))
        .unwrap();
    assert_eq!(w.strings("reports_to")[at12], Some(ada.clone()));
    assert_eq!(w.decimals("annual_rate")[at12].as_deref(), Some("31500.00"));
    assert!(bools(&w, "deleted").iter().all(|d| *d == Some(false)));
    // The full refresh's state lists who was read.
    let state = w.checkpoints.last().unwrap();
    assert_eq!(state["listed"].as_array().unwrap().len(), 250);

    // One row per assignment: 250 primaries and 35 ended second ones.
    let (r, wa) = read(c.as_ref(), "work_assignments", None).await;
    r.unwrap();
    assert_eq!(wa.rows(), 285);
    let keys: Vec<Option<String>> = wa
        .strings("associate_oid")
        .into_iter()
        .zip(wa.strings("item_id"))
        .map(|(o, i)| Some(format!("{}/{}", o?, i?)))
        .collect();
    let (keys, repeated) = distinct(&keys);
    assert!(!repeated && keys.len() == 285);
    let second = wa
        .strings("item_id")
        .iter()
        .position(|i| i.as_deref() == Some("00007B"))
        .unwrap();
    assert_eq!(wa.strings("status")[second].as_deref(), Some("T"));
    assert_eq!(bools(&wa, "primary_indicator")[second], Some(false));
    assert_eq!(
        dates(&wa, "termination_date")[second].as_deref(),
        Some("2013-05-01")
    );
}

#[tokio::test]
async fn adp_a_second_sync_sees_a_termination_a_hire_and_a_removal() {
    let s = start(AdpMockConfig::default(), roster(120)).await;
    let c = s.connector();
    let (r, first) = read(c.as_ref(), "workers", None).await;
    r.unwrap();
    let (r, first_wa) = read(c.as_ref(), "work_assignments", None).await;
    r.unwrap();
    s.mock.update(&aoid(3), |w| {
        w["workerStatus"]["statusCode"]["codeValue"] = json!("Terminated");
        w["workerDates"]["terminationDate"] = json!("2026-11-30");
        w["workAssignments"][0]["assignmentStatus"]["statusCode"]["codeValue"] = json!("T");
    });
    let mut new = worker(500);
    new["person"]["legalName"]["formattedName"] = json!("Hopper, Grace");
    s.mock.hire(new);
    s.mock.remove(&aoid(5));

    let (r, second) = read(c.as_ref(), "workers", first.checkpoints.last().cloned()).await;
    r.unwrap();
    assert_eq!(second.rows(), 121, "120 listed and one tombstone");
    assert_eq!(
        cell(&second, &aoid(3), "status").as_deref(),
        Some("Terminated")
    );
    assert_eq!(
        cell(&second, &aoid(3), "assignment_status").as_deref(),
        Some("T")
    );
    assert_eq!(
        cell(&second, &aoid(500), "formatted_name").as_deref(),
        Some("Hopper, Grace")
    );
    // The removed worker: a tombstone, its key and `deleted` alone.
    let oids = second.strings("associate_oid");
    let gone = oids
        .iter()
        .position(|o| o.as_deref() == Some(aoid(5).as_str()))
        .unwrap();
    assert_eq!(bools(&second, "deleted")[gone], Some(true));
    assert_eq!(second.strings("formatted_name")[gone], None);
    assert_eq!(
        bools(&second, "deleted")
            .iter()
            .filter(|d| **d == Some(true))
            .count(),
        1
    );
    let listed = second.checkpoints.last().unwrap()["listed"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(listed.len(), 120);
    assert!(!listed.contains(&json!([aoid(5)])) && listed.contains(&json!([aoid(500)])));
    // A third sync does not tombstone it again.
    let (r, third) = read(c.as_ref(), "workers", second.checkpoints.last().cloned()).await;
    r.unwrap();
    assert_eq!(third.rows(), 120);

    // Its assignment is tombstoned in work_assignments too.
    let (r, wa) = read(
        c.as_ref(),
        "work_assignments",
        first_wa.checkpoints.last().cloned(),
    )
    .await;
    r.unwrap();
    let deleted: Vec<String> = wa
        .strings("item_id")
        .into_iter()
        .zip(bools(&wa, "deleted"))
        .filter(|(_, d)| *d == Some(true))
        .filter_map(|(i, _)| i)
        .collect();
    assert_eq!(deleted, ["00005A"]);
}

#[tokio::test]
async fn adp_an_expired_token_is_refreshed_once() {
    let s = start(AdpMockConfig::default(), roster(250)).await;
    let c = s.connector();
    let mock = s.mock.clone();
    let (r, w) = read_with_hook(c.as_ref(), "workers", None, move |n| {
        if n == 1 {
            mock.expire_tokens();
        }
    })
    .await;
    r.unwrap();
    assert_eq!(w.rows(), 250);
    assert_eq!(s.mock.token_requests(), 2);
    // The token call went over the same mutual TLS, as a form with the
    // client's id and secret in its body.
    let token_calls: Vec<_> = s
        .mock
        .requests()
        .into_iter()
        .filter(|r| r.path == TOKEN_PATH)
        .collect();
    assert_eq!(token_calls.len(), 2);
    assert!(token_calls[0]
        .header("content-type")
        .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded")));
    // The page refused with the expired token was asked again.
    let skips: Vec<Option<String>> = s
        .data_requests()
        .iter()
        .map(|r| param(r, "$skip"))
        .collect();
    assert_eq!(
        skips,
        ["0", "100", "100", "200", "250"].map(|s| Some(s.to_string()))
    );
}

#[tokio::test]
async fn adp_a_429_is_waited_out_and_a_403_is_unavailable_in_adps_words() {
    let s = start(AdpMockConfig::default(), roster(30)).await;
    let c = s.connector();
    s.mock.push_faults([Fault::RateLimited {
        retry_after_secs: 1,
    }]);
    let started = Instant::now();
    let (r, w) = read(c.as_ref(), "workers", None).await;
    r.unwrap();
    assert!(started.elapsed() >= std::time::Duration::from_secs(1));
    assert_eq!(w.rows(), 30);
    let skips: Vec<Option<String>> = s
        .data_requests()
        .iter()
        .map(|r| param(r, "$skip"))
        .collect();
    assert_eq!(
        skips,
        ["0", "0", "30"].map(|s| Some(s.to_string())),
        "the refused page again"
    );

    let forbidden = envelope_body(403, "Access to the resource is forbidden");
    s.mock.push_faults([Fault::Error(403, forbidden)]);
    let (r, _) = read(c.as_ref(), "work_assignments", None).await;
    let e = r.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unavailable);
    assert!(
        e.message
            .contains("Access to the resource is forbidden (ADP code 403, response 403)")
            && e.message.contains("set streams = [\"workers\"]"),
        "{e}"
    );
}

#[tokio::test]
async fn adp_an_untrusted_or_missing_client_certificate_is_a_clear_error_without_secrets() {
    let s = start(AdpMockConfig::default(), roster(3)).await;
    // A certificate from a CA ADP does not trust.
    let untrusted = s
        .body
        .replace(
            &s.files.client_certificate.display().to_string(),
            &s.files.untrusted_certificate.display().to_string(),
        )
        .replace(
            &s.files.client_key.display().to_string(),
            &s.files.untrusted_key.display().to_string(),
        );
    let c = build(
        &source("hr", &untrusted),
        Arc::new(MemoryCredentials::default()),
    );
    let (r, sink) = read(c.as_ref(), "workers", None).await;
    let e = r.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Auth);
    assert!(
        e.message
            .starts_with("ADP refused the client certificate (POST ")
            && e.message.contains(TOKEN_PATH)
            && e.message.contains("UnknownCA")
            && e.message.contains("client_certificate and client_key"),
        "{e}"
    );
    assert_eq!(sink.rows(), 0);
    assert_eq!(s.server.refused_handshakes(), 1, "not retried");
    assert!(s.mock.requests().is_empty());
    for f in s.secret_forms() {
        assert!(!e.message.contains(&f), "{f:?} in {e}");
    }

    // No certificate at all (the config requires one; the toolkit is asked
    // directly, as a source that forgot it would be).
    let mut cfg = support::vendor_config(&source("hr", &s.body));
    cfg.tls.identity = None;
    let c = conveyor_connectors::vendors::adp::Adp::new(
        "hr",
        cfg,
        Arc::new(MemoryCredentials::default()),
    )
    .unwrap();
    let (r, _) = read(&c, "workers", None).await;
    let e = r.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Auth);
    assert!(
        e.message.starts_with("ADP refused the client certificate")
            && e.message.contains("none was presented"),
        "{e}"
    );
    assert_eq!(s.server.refused_handshakes(), 2);
    for f in s.secret_forms() {
        assert!(!e.message.contains(&f), "{f:?} in {e}");
    }
}

#[tokio::test]
async fn adp_a_wrong_secret_is_a_clear_error_even_when_the_server_quotes_it() {
    let cfg = AdpMockConfig {
        echo_refused_credentials: true,
        ..Default::default()
    };
    let s = start(cfg, roster(3)).await;
    let wrong = "wr0ng+secret/=&%";
    std::fs::write(s.dir.path().join("cs"), wrong).unwrap();
    let (r, _) = read(s.connector().as_ref(), "workers", None).await;
    let e = r.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Auth);
    assert!(
        e.message.contains("token request")
            && e.message.contains("HTTP 401")
            && e.message.contains("invalid_client")
            && e.message.contains("refused"),
        "the echo was quoted, scrubbed: {e}"
    );
    let b64 = |t: &str| base64::engine::general_purpose::STANDARD.encode(t);
    let forms = [
        wrong.to_string(),
        url::form_urlencoded::byte_serialize(wrong.as_bytes()).collect::<String>(),
        b64(wrong),
        b64(&format!("{}:{wrong}", s.cfg.client_id)),
    ];
    for f in forms.iter().chain(s.secret_forms().iter()) {
        assert!(!e.message.contains(f.as_str()), "{f:?} in {e}");
    }
}

#[tokio::test]
async fn adp_an_empty_workers_list_ends_the_paging_like_the_204() {
    let s = start(AdpMockConfig::default(), roster(150)).await;
    // After the first page, the second comes back as a 200 with no workers.
    let mock = s.mock.clone();
    let (r, w) = read_with_hook(s.connector().as_ref(), "workers", None, move |n| {
        if n == 1 {
            mock.push_faults([Fault::Error(200, json!({"workers": [], "meta": {}}))]);
        }
    })
    .await;
    r.unwrap();
    assert_eq!(w.rows(), 100, "the read ended at the empty page");
    let skips: Vec<Option<String>> = s
        .data_requests()
        .iter()
        .map(|r| param(r, "$skip"))
        .collect();
    assert_eq!(
        skips,
        ["0", "100"].map(|s| Some(s.to_string())),
        "no request after the empty page"
    );
}

#[tokio::test]
async fn adp_a_birth_date_masked_anyway_is_null_kept_in_other_and_warned_about() {
    let mut workers = roster(3);
    workers[1]["person"]["birthDate"] = json!("0000-07-04");
    let s = start(AdpMockConfig::default(), workers).await;
    let logs = capture_logs();
    let (r, w) = read(s.connector().as_ref(), "workers", None).await;
    r.unwrap();
    let at = w
        .strings("associate_oid")
        .iter()
        .position(|o| o.as_deref() == Some(aoid(2).as_str()))
        .unwrap();
    assert_eq!(dates(&w, "birth_date")[at], None);
    let other: serde_json::Value =
        serde_json::from_str(w.strings("other")[at].as_deref().unwrap()).unwrap();
    assert_eq!(
        other["person"]["birthDate"], "0000-07-04",
        "kept, not dropped"
    );
    assert_eq!(dates(&w, "birth_date")[0].as_deref(), Some("1985-04-12"));
    let warned = logs.warnings_with("masked birth dates");
    assert_eq!(warned.len(), 1, "{:?}", logs.warnings());
    assert!(warned[0].contains("workers=1"), "{warned:?}");
}

#[tokio::test]
async fn adp_a_worker_shifted_past_a_page_boundary_mid_read_is_asked_for_not_tombstoned() {
    let s = start(AdpMockConfig::default(), roster(250)).await;
    let c = s.connector();
    let (r, first) = read(c.as_ref(), "workers", None).await;
    r.unwrap();
    // A worker on the first page leaves once that page is read: every
    // later `$skip` shifts by one, so worker 101 slips between pages.
    let mock = s.mock.clone();
    let (r, second) = read_with_hook(
        c.as_ref(),
        "workers",
        first.checkpoints.last().cloned(),
        move |n| {
            if n == 1 {
                mock.remove(&aoid(5));
            }
        },
    )
    .await;
    r.unwrap();
    let one_by_one: Vec<String> = s
        .data_requests()
        .into_iter()
        .filter(|r| r.path.starts_with(&format!("{WORKERS_PATH}/")))
        .map(|r| r.path)
        .collect();
    assert_eq!(one_by_one, [format!("{WORKERS_PATH}/{}", aoid(101))]);
    let oids = second.strings("associate_oid");
    assert!(oids.contains(&Some(aoid(101))), "recovered, not lost");
    assert!(
        bools(&second, "deleted").iter().all(|d| *d == Some(false)),
        "no false tombstone"
    );
    // Worker 5 was read before it left; the next sync finds it gone.
    let (r, third) = read(c.as_ref(), "workers", second.checkpoints.last().cloned()).await;
    r.unwrap();
    let gone: Vec<Option<String>> = third
        .strings("associate_oid")
        .into_iter()
        .zip(bools(&third, "deleted"))
        .filter(|(_, d)| *d == Some(true))
        .map(|(o, _)| o)
        .collect();
    assert_eq!(gone, [Some(aoid(5))]);
}
