//! What data can and cannot do to an e-mail: a value with CR/LF and a
//! header adds no header, and data in an HTML part is escaped (received by
//! a real SMTP server, aiosmtpd).

use super::tests::{config, fixture, t0, Smtp};
use super::*;

#[test]
fn outbox_data_adds_no_header_and_is_escaped_in_the_html_part() {
    let f = fixture();
    f.conn
        .execute_batch(
            "UPDATE m SET agent_name = 'Ann\r\nBcc: x@evil.example' WHERE agent = 'a1';
             UPDATE m SET agent_name = '<script>alert(1)</script> & Co' WHERE agent = 'a2';",
        )
        .unwrap();
    let smtp = Smtp::start(&f.dir.path().join("mail"), &[]);
    let config = config(
        smtp.port,
        r#"to = ["sup@example.com"]
subject = "CSAT below target: {{ agent_name }}"
body = "{{ agent_name }} scored {{ value }}"
html = "<p>{{ agent_name }} scored <b>{{ value }}</b></p>""#,
    );
    crate::rules::evaluate_at(&f.conn, &config.rules[0], t0()).unwrap();
    let r = deliver_due(&f.conn, config.smtp.as_ref().unwrap(), t0()).unwrap();
    assert_eq!(r.delivered, 1);
    let messages = smtp.messages();
    assert_eq!(messages.len(), 1, "one e-mail, to the one recipient");
    let eml = &messages[0];
    let (headers, body) = eml.split_once("\r\n\r\n").unwrap();
    // The header block has exactly the headers we wrote; the agent name's
    // CR/LF did not start a `Bcc:` line.
    assert!(
        !headers
            .lines()
            .any(|l| l.to_ascii_lowercase().starts_with("bcc")),
        "{headers}"
    );
    assert!(headers.contains("To: sup@example.com"), "{headers}");
    // A template of one's own gets the alert's headers too.
    assert!(headers.contains("X-Conveyor-Rule: csat_low"), "{headers}");
    assert!(headers.contains("X-Conveyor-State: firing"), "{headers}");
    assert!(
        headers.contains("multipart/alternative"),
        "text and HTML parts: {headers}"
    );
    let (text, html) = body.split_once("Content-Type: text/html").unwrap();
    // HTML part: markup from the template, data escaped.
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt; &amp; Co scored <b>3.5</b>"),
        "{html}"
    );
    assert!(!html.contains("<script>"), "{html}");
    // The text part keeps the data as it is (it is not HTML).
    assert!(
        text.contains("<script>alert(1)</script> & Co scored 3.5"),
        "{text}"
    );
}

#[test]
fn outbox_a_lost_digest_lists_its_dead_letters_again() {
    let f = fixture();
    let mut config = config(
        super::tests::closed_port(),
        r#"to = ["ops@example.com"]
subject = "{{ entity }}"
body = "{{ value }}""#,
    );
    let smtp = config.smtp.as_mut().unwrap();
    smtp.operator = Some("oncall@example.com".into());
    smtp.max_attempts = 1;
    let smtp = config.smtp.clone().unwrap();
    crate::rules::evaluate_at(&f.conn, &config.rules[0], t0()).unwrap();
    // SMTP is down: the alert e-mail dies, then the digest about it too.
    assert_eq!(deliver_due(&f.conn, &smtp, t0()).unwrap().dead, 1);
    assert_eq!(report_dead_letters(&f.conn, &smtp, t0()).unwrap(), 1);
    assert_eq!(
        report_dead_letters(&f.conn, &smtp, t0()).unwrap(),
        0,
        "reported"
    );
    assert_eq!(deliver_due(&f.conn, &smtp, t0()).unwrap().dead, 1);
    // The next pass lists it again in a new digest (never the dead digest).
    assert_eq!(report_dead_letters(&f.conn, &smtp, t0()).unwrap(), 1);
    let digests: Vec<(String, String)> = f
        .conn
        .prepare("SELECT key, subject FROM conveyor.outbox WHERE rule = ? ORDER BY id")
        .unwrap()
        .query_map([OPERATOR_RULE], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(digests.len(), 2);
    assert_ne!(digests[0].0, digests[1].0);
    assert!(digests
        .iter()
        .all(|(_, s)| s == "Conveyor: 1 notification(s) could not be delivered"));
}

mod golden;
pub(crate) mod mime;
