//! Invariant 4: a known token never appears in stdout, stderr, logs or the
//! warehouse file — nor do the refresh tokens the server rotates.

use conveyor_mocks::rest::{Auth, RestMockConfig};

use crate::support::{text, Fixture};

#[tokio::test(flavor = "multi_thread")]
async fn tokens_never_leave_the_process() {
    const CLIENT_SECRET: &str = "cs-KNOWN-SECRET-7e1f";
    const REFRESH: &str = "rt-KNOWN-REFRESH-91ab";
    let f = Fixture::new(RestMockConfig {
        auth: Auth::OAuthRefreshToken {
            client_id: "cid".into(),
            client_secret: CLIENT_SECRET.into(),
            initial_refresh_token: REFRESH.into(),
            rotate: true,
            token_ttl_secs: 3600,
        },
        ..Default::default()
    })
    .await;
    let auth = format!(
        "auth = {{ type = \"oauth2_refresh_token\", token_url = \"{}\", client_id = \"cid\", client_secret = \"env:E2E_CLIENT_SECRET\", refresh_token = \"env:E2E_REFRESH\" }}",
        f.server.url("/oauth/token")
    );
    f.write_config(&auth, "");
    let env = [
        ("E2E_CLIENT_SECRET", CLIENT_SECRET),
        ("E2E_REFRESH", REFRESH),
        ("RUST_LOG", "trace"),
    ];
    let mut outputs = Vec::new();
    for args in [
        &["sync"][..],
        &["sync"],
        &["status"],
        &["check"],
        &["--log-format", "json", "sync"],
    ] {
        let out = f.conveyor_env(args, &env).await;
        assert!(out.status.success(), "{args:?}: {:?}", text(&out));
        outputs.push(out);
    }
    // A failure path too: the server refuses the secret.
    f.write_config(&auth.replace("env:E2E_CLIENT_SECRET", "env:E2E_WRONG"), "");
    let out = f
        .conveyor_env(
            &["sync"],
            &[
                ("E2E_WRONG", "cs-WRONG-but-secret-55"),
                ("E2E_REFRESH", REFRESH),
                ("RUST_LOG", "trace"),
            ],
        )
        .await;
    assert_eq!(out.status.code(), Some(1));
    outputs.push(out);

    let mut secrets = vec![
        CLIENT_SECRET.to_string(),
        REFRESH.to_string(),
        "cs-WRONG-but-secret-55".to_string(),
    ];
    secrets.extend(f.mock.issued_refresh_tokens());
    assert!(secrets.len() >= 4, "the server rotated tokens: {secrets:?}");
    let warehouse = std::fs::read(f.warehouse()).unwrap();
    let wal = std::fs::read(f.path("wh.duckdb.wal")).unwrap_or_default();
    for s in &secrets {
        for o in &outputs {
            let (stdout, stderr) = text(o);
            assert!(
                !stdout.contains(s.as_str()) && !stderr.contains(s.as_str()),
                "{s} leaked in output"
            );
        }
        for bytes in [&warehouse, &wal] {
            assert!(
                !bytes.windows(s.len()).any(|w| w == s.as_bytes()),
                "{s} found in the warehouse file"
            );
        }
    }
    // The rotated token was stored (sealed) and is what the server expects now.
    assert_eq!(f.scalar("SELECT count(*) FROM conveyor.credentials"), "1");
}
