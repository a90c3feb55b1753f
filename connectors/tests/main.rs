//! The connectors' one integration-test binary: each connector against its
//! mock server over loopback HTTP, the hardening cases, and the fuzz seed
//! corpora and regressions, one module per file under `suite/`, sharing
//! `support/`.

mod support;

mod suite {
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
    mod zendesk_talk;
}
