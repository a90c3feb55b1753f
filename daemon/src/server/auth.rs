//! Who may use the HTTP endpoint: a bearer token on every request (from
//! `server.token`, or a random one the daemon writes to a 0600 token file
//! that the local CLI reads), and a Host header naming this server, so a web
//! page cannot reach the endpoint by DNS rebinding. Loopback is not a
//! credential.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use conveyor_config::{Secret, ServerConfig};

/// What the middleware checks requests against.
#[derive(Clone)]
pub struct Gate {
    token: Secret,
    hosts: Vec<String>,
}

impl Gate {
    pub fn new(token: Secret, server: &ServerConfig) -> Gate {
        let port = server.listen.port();
        let mut hosts: Vec<String> = ["localhost", "127.0.0.1", "[::1]"]
            .iter()
            .map(|h| h.to_string())
            .collect();
        hosts.push(match server.listen.ip() {
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
            ip => ip.to_string(),
        });
        hosts.extend(server.allowed_hosts.iter().cloned());
        // With and without the port, as clients send either.
        let with_port: Vec<String> = hosts.iter().map(|h| format!("{h}:{port}")).collect();
        hosts.extend(with_port);
        Gate { token, hosts }
    }

    pub(crate) fn host_allowed(&self, host: Option<&str>) -> bool {
        host.is_some_and(|h| self.hosts.iter().any(|a| a.eq_ignore_ascii_case(h)))
    }

    /// Whether `given` is the token (the console's login form).
    pub(crate) fn token_is(&self, given: &str) -> bool {
        constant_time_eq(given.trim().as_bytes(), self.token.expose().as_bytes())
    }

    fn token_matches(&self, header: Option<&str>) -> bool {
        // The scheme is case-insensitive (RFC 7235).
        let Some(given) = header
            .and_then(|h| h.split_once(' '))
            .and_then(|(scheme, token)| scheme.eq_ignore_ascii_case("bearer").then_some(token))
        else {
            return false;
        };
        constant_time_eq(given.trim().as_bytes(), self.token.expose().as_bytes())
    }
}

/// Compares without stopping at the first difference, so the time taken
/// says nothing about how much of a guess was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Refuses a request with the wrong Host (403) or without the token (401)
/// before any handler sees it.
pub async fn require_token(State(gate): State<Gate>, req: Request, next: Next) -> Response {
    let (host_ok, token_ok) = {
        let text = |h: header::HeaderName| req.headers().get(h).and_then(|v| v.to_str().ok());
        (
            gate.host_allowed(text(header::HOST)),
            gate.token_matches(text(header::AUTHORIZATION)),
        )
    };
    if !host_ok {
        return refuse(
            StatusCode::FORBIDDEN,
            "this Host is not served here (add it to server.allowed_hosts)",
        );
    }
    if !token_ok {
        let mut r = refuse(
            StatusCode::UNAUTHORIZED,
            "a bearer token is required (server.token, or the daemon's token file)",
        );
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
        return r;
    }
    next.run(req).await
}

fn refuse(code: StatusCode, message: &str) -> Response {
    (
        code,
        axum::Json(super::ErrorBody {
            error: message.to_string(),
        }),
    )
        .into_response()
}

/// The token the daemon serves with: `server.token` when set, else a new
/// random one written to `server.token_file` (0600).
pub fn daemon_token(server: &ServerConfig) -> Result<Secret> {
    if let Some(r) = &server.token {
        return r
            .resolve()
            .map_err(|e| anyhow::anyhow!("server.token: {e}"));
    }
    let bytes: [u8; 32] = rand::random();
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    write_private(&server.token_file, &token)?;
    Ok(Secret::new(token))
}

/// The token a local client presents: `server.token`, else the token file.
/// `None` when there is no token file (no daemon has run here).
pub fn client_token(server: &ServerConfig) -> Result<Option<Secret>> {
    if let Some(r) = &server.token {
        return r
            .resolve()
            .map(Some)
            .map_err(|e| anyhow::anyhow!("server.token: {e}"));
    }
    match std::fs::read_to_string(&server.token_file) {
        Ok(t) => Ok(Some(Secret::new(t.trim().to_string()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(anyhow::anyhow!(
            "cannot read the daemon's token file {}: {e} (the endpoint admits whoever can read it)",
            server.token_file.display()
        )),
    }
}

/// Writes `text` to `path`, readable by its owner only: into a new file
/// created exclusively with mode 0600 beside it (so no symlink is followed
/// and no handle opened on an older, wider file ever sees the token), then
/// renamed over `path`.
fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let what = || format!("cannot write the token file {}", path.display());
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{:016x}.new", rand::random::<u64>()));
    let fresh = path.with_file_name(name);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&fresh)
        .with_context(what)?;
    let written = f
        .write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .and_then(|()| std::fs::rename(&fresh, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&fresh);
    }
    written.with_context(what)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(dir: &Path) -> ServerConfig {
        let c = conveyor_config::parse_offline(
            "[warehouse]\npath = \"w.duckdb\"\n",
            &dir.join("conveyor.toml"),
        )
        .unwrap();
        c.server
    }

    #[test]
    fn server_token_file_is_private_and_read_back_by_the_client() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let s = server(dir.path());
        assert!(client_token(&s).unwrap().is_none(), "no daemon yet");
        std::fs::write(&s.token_file, "old").unwrap();
        std::fs::set_permissions(&s.token_file, std::fs::Permissions::from_mode(0o644)).unwrap();
        // A handle opened on the old, readable file must not see the token.
        let mut old_handle = std::fs::File::open(&s.token_file).unwrap();
        let t = daemon_token(&s).unwrap();
        assert!(t.expose().len() >= 40);
        let mode = std::fs::metadata(&s.token_file)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(client_token(&s).unwrap().unwrap().expose(), t.expose());
        let mut seen = String::new();
        std::io::Read::read_to_string(&mut old_handle, &mut seen).unwrap();
        assert_eq!(seen, "old");
        // A symlink planted at the path is replaced, not followed.
        let target = dir.path().join("elsewhere");
        std::fs::remove_file(&s.token_file).unwrap();
        std::os::unix::fs::symlink(&target, &s.token_file).unwrap();
        daemon_token(&s).unwrap();
        assert!(!target.exists(), "the token went through the symlink");
    }

    #[test]
    fn server_gate_checks_host_and_token() {
        let dir = tempfile::tempdir().unwrap();
        let g = Gate::new(Secret::new("s3cret".into()), &server(dir.path()));
        assert!(g.host_allowed(Some("127.0.0.1:7878")));
        assert!(g.host_allowed(Some("localhost")));
        assert!(!g.host_allowed(Some("evil.example:7878")));
        assert!(!g.host_allowed(None));
        assert!(g.token_matches(Some("Bearer s3cret")));
        assert!(g.token_matches(Some("bearer s3cret")));
        assert!(!g.token_matches(Some("Bearer s3cres")));
        assert!(!g.token_matches(Some("s3cret")));
        assert!(!g.token_matches(None));
    }
}
