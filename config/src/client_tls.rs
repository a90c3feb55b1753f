//! The TLS material a source's HTTP client presents or trusts beyond the
//! system's roots: a client certificate and key for mutual TLS (ADP's), and
//! an extra CA for a private or test server. Checked where the other files
//! a config names are: at `check`/load time, when secrets are resolved.
//!
//! Only vendor sources take it today; the type is general so the REST
//! source can take the same keys later.

use std::ops::Range;
use std::path::PathBuf;

use toml::Spanned;

use crate::secret::SecretRef;
use crate::validate::Checker;

/// A client certificate and its private key, presented in every TLS
/// handshake (token endpoint and API alike).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    /// PEM file with the certificate (and any intermediates after it).
    pub certificate: PathBuf,
    /// The PEM private key, by reference: it is as secret as a password.
    pub key: SecretRef,
}

/// TLS settings of a source's HTTP client; the default changes nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientTlsConfig {
    pub identity: Option<ClientIdentity>,
    /// PEM certificates of a CA to trust besides the system's roots.
    pub ca_certificate: Option<PathBuf>,
}

/// What a PEM file must hold.
#[derive(Clone, Copy)]
enum Pem {
    Certificate,
    PrivateKey,
}

impl Pem {
    fn found_in(self, text: &str) -> bool {
        match self {
            Pem::Certificate => text.contains("-----BEGIN CERTIFICATE-----"),
            // PKCS#8 (`PRIVATE KEY`), PKCS#1 (`RSA PRIVATE KEY`), SEC1 (`EC PRIVATE KEY`).
            Pem::PrivateKey => text.contains("PRIVATE KEY-----"),
        }
    }

    fn missing(self) -> &'static str {
        match self {
            Pem::Certificate => "holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            Pem::PrivateKey => "holds no PEM private key (-----BEGIN PRIVATE KEY-----)",
        }
    }
}

impl Checker<'_> {
    /// A client identity from `client_certificate` and `client_key`; both
    /// are required (said at `at`, the source's `type`, when missing).
    pub(crate) fn client_identity(
        &mut self,
        key: &str,
        at: Range<usize>,
        certificate: Option<&Spanned<String>>,
        private_key: Option<&Spanned<String>>,
        kind: &str,
    ) -> Option<ClientIdentity> {
        let missing = |c: &mut Self, field: &str, hint: &str| {
            c.error(
                at.clone(),
                &format!("{key}.{field}"),
                format!("missing key `{field}` (required by type = \"{kind}\")"),
            )
            .hint(hint.to_string());
        };
        let certificate = match certificate {
            Some(c) => self.pem_file(c, &format!("{key}.client_certificate"), Pem::Certificate),
            None => {
                missing(
                    self,
                    "client_certificate",
                    "the PEM file of the client certificate the vendor issued for mutual TLS, e.g. client_certificate = \"/etc/conveyor/adp.pem\"",
                );
                None
            }
        };
        let private_key = match private_key {
            Some(k) => self.private_key(k, &format!("{key}.client_key")),
            None => {
                missing(
                    self,
                    "client_key",
                    "the certificate's private key, by reference, e.g. client_key = \"file:/etc/conveyor/adp.key\"",
                );
                None
            }
        };
        Some(ClientIdentity {
            certificate: certificate?,
            key: private_key?,
        })
    }

    /// An extra CA to trust (`ca_certificate`), if set.
    pub(crate) fn ca_certificate(
        &mut self,
        key: &str,
        file: Option<&Spanned<String>>,
    ) -> Option<Option<PathBuf>> {
        match file {
            None => Some(None),
            Some(f) => self
                .pem_file(f, &format!("{key}.ca_certificate"), Pem::Certificate)
                .map(Some),
        }
    }

    /// A PEM file's path, resolved against the config's folder; read and
    /// checked for `what` when secrets are resolved (offline, only named).
    fn pem_file(&mut self, f: &Spanned<String>, key: &str, what: Pem) -> Option<PathBuf> {
        let path = crate::resolve_relative(self.file, f.get_ref());
        if !self.resolve_secrets {
            return Some(path);
        }
        match std::fs::read_to_string(&path) {
            Ok(text) if what.found_in(&text) => Some(path),
            Ok(_) => {
                self.error(
                    f.span(),
                    key,
                    format!("{} {}", path.display(), what.missing()),
                );
                None
            }
            Err(e) => {
                self.error(
                    f.span(),
                    key,
                    format!("cannot read {}: {e}", path.display()),
                )
                .hint("check the path and that conveyor may read it");
                None
            }
        }
    }

    /// The private key's reference; resolved, it must be a PEM key. The
    /// error never quotes what the reference held.
    fn private_key(&mut self, k: &Spanned<String>, key: &str) -> Option<SecretRef> {
        let r = self.secret(k, key)?;
        if self.resolve_secrets {
            let holds_key = r
                .resolve()
                .is_ok_and(|s| Pem::PrivateKey.found_in(s.expose()));
            if !holds_key {
                self.error(
                    k.span(),
                    key,
                    format!("{r:?} {}", Pem::PrivateKey.missing()),
                )
                .hint(
                    "the key that belongs to client_certificate, in PEM (PKCS#8, PKCS#1 or SEC1)",
                );
                return None;
            }
        }
        Some(r)
    }
}
