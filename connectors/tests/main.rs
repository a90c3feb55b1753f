//! The connectors' one integration-test binary: each connector against its
//! mock server over loopback HTTP (the database source against real
//! PostgreSQL and MariaDB servers), the hardening cases, and the fuzz seed
//! corpora and regressions, one module per file under `suite/`, sharing
//! `support/`.

mod support;

mod suite {
    mod adp;
    mod amazon_connect;
    mod database;
    mod fuzz_corpus;
    mod fuzz_regressions;
    mod genesys;
    mod greenhouse;
    mod gusto;
    mod hardening;
    mod hubspot;
    mod lever;
    mod quickbooks;
    mod rest;
    mod salesforce;
    mod xero;
    mod zendesk_talk;
}
