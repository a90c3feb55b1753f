//! Client-side TLS for the shared HTTP client: a client certificate for
//! mutual TLS and extra CAs to trust, loaded from the config's files, and
//! the words for a handshake whose certificate the server refused.
//!
//! The identity is used for every request the client sends, the OAuth
//! token call included (both sit behind mutual TLS at ADP). The private
//! key is registered with the [`Redactor`], in each PEM line and in whole,
//! so no error can quote it.

use conveyor_config::ClientTlsConfig;
use conveyor_plugin_api::{ConnectorError, ErrorKind};
use rustls::AlertDescription;

use super::redact::Redactor;

/// What the shared client presents and trusts beyond the defaults.
pub struct ClientTls {
    pub(crate) identity: Option<reqwest::Identity>,
    pub(crate) roots: Vec<reqwest::Certificate>,
    /// Who refuses a certificate, in errors ("ADP").
    pub(crate) peer: String,
}

impl Default for ClientTls {
    fn default() -> Self {
        ClientTls {
            identity: None,
            roots: Vec::new(),
            peer: "the server".into(),
        }
    }
}

impl ClientTls {
    /// Reads the configured files; `peer` names the vendor in errors. The
    /// key is registered with `redactor` before anything could quote it.
    pub fn load(
        cfg: &ClientTlsConfig,
        peer: &str,
        redactor: &Redactor,
    ) -> Result<ClientTls, ConnectorError> {
        let config_error = |m: String| ConnectorError::new(ErrorKind::Config, m);
        let identity = match &cfg.identity {
            None => None,
            Some(id) => {
                let key = id.key.resolve().map_err(config_error)?;
                register_key(redactor, key.expose());
                let certificate = std::fs::read(&id.certificate).map_err(|e| {
                    config_error(format!(
                        "cannot read the client certificate {}: {e}",
                        id.certificate.display()
                    ))
                })?;
                // reqwest (rustls) takes the key and the chain in one PEM.
                let mut pem = key.expose().as_bytes().to_vec();
                pem.push(b'\n');
                pem.extend_from_slice(&certificate);
                let identity = reqwest::Identity::from_pem(&pem).map_err(|e| {
                    config_error(format!(
                        "the client certificate {} and its key {:?} do not make a TLS identity: {}",
                        id.certificate.display(),
                        id.key,
                        redactor.scrub(&e.to_string())
                    ))
                })?;
                Some(identity)
            }
        };
        let roots = match &cfg.ca_certificate {
            None => Vec::new(),
            Some(path) => {
                let pem = std::fs::read(path).map_err(|e| {
                    config_error(format!(
                        "cannot read the CA certificate {}: {e}",
                        path.display()
                    ))
                })?;
                reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                    config_error(format!(
                        "{} holds no usable PEM certificate: {e}",
                        path.display()
                    ))
                })?
            }
        };
        Ok(ClientTls {
            identity,
            roots,
            peer: peer.to_string(),
        })
    }

    /// Adds the identity and roots to a client being built.
    pub(crate) fn apply(&self, mut b: reqwest::ClientBuilder) -> reqwest::ClientBuilder {
        if let Some(id) = &self.identity {
            b = b.identity(id.clone());
        }
        for root in &self.roots {
            b = b.add_root_certificate(root.clone());
        }
        b
    }
}

/// The key in every form an error could carry it: whole, and each base64
/// line of its body (a parser's error may quote one line).
fn register_key(redactor: &Redactor, pem: &str) {
    redactor.add_secret(pem);
    for line in pem.lines().map(str::trim) {
        if !line.is_empty() && !line.starts_with("-----") {
            redactor.add_secret(line);
        }
    }
}

/// Why the server refused this client's certificate, when `e` is a TLS
/// alert saying so; `None` for every other failure (which stays retryable).
pub(crate) fn refused_certificate(e: &reqwest::Error) -> Option<&'static str> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        let alert = s.downcast_ref::<rustls::Error>().or_else(|| {
            s.downcast_ref::<std::io::Error>()?
                .get_ref()?
                .downcast_ref::<rustls::Error>()
        });
        if let Some(rustls::Error::AlertReceived(a)) = alert {
            return describe(*a);
        }
        source = s.source();
    }
    None
}

fn describe(a: AlertDescription) -> Option<&'static str> {
    Some(match a {
        AlertDescription::CertificateRequired => {
            "it requires a client certificate and none was presented"
        }
        AlertDescription::UnknownCA => {
            "the certificate is not signed by an authority it trusts (UnknownCA)"
        }
        AlertDescription::BadCertificate => "the certificate is not acceptable (BadCertificate)",
        AlertDescription::CertificateExpired => "the certificate has expired (CertificateExpired)",
        AlertDescription::CertificateRevoked => {
            "the certificate has been revoked (CertificateRevoked)"
        }
        AlertDescription::CertificateUnknown => {
            "the certificate was not accepted (CertificateUnknown)"
        }
        AlertDescription::UnsupportedCertificate => {
            "the certificate's type is not supported (UnsupportedCertificate)"
        }
        AlertDescription::AccessDenied => "the certificate is valid but not allowed (AccessDenied)",
        // The client's proof of the key did not verify: a key that does
        // not belong to the certificate.
        AlertDescription::DecryptError => "the key does not match the certificate (DecryptError)",
        _ => return None,
    })
}

/// The error for a refused certificate: what, by whom, and what to check.
pub(crate) fn refusal_error(peer: &str, what: &str, shown_url: &str, why: &str) -> ConnectorError {
    ConnectorError::new(
        ErrorKind::Auth,
        format!(
            "{peer} refused the client certificate ({what} {shown_url}): {why}. Check \
             client_certificate and client_key: the certificate must be the one the vendor \
             issued for this client and still valid, and the key its own; not retried"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_alerts_are_described_and_others_are_not() {
        assert!(describe(AlertDescription::CertificateRequired)
            .unwrap()
            .contains("none was presented"));
        assert!(describe(AlertDescription::UnknownCA)
            .unwrap()
            .contains("UnknownCA"));
        assert_eq!(describe(AlertDescription::ProtocolVersion), None);
        assert_eq!(describe(AlertDescription::InternalError), None);
    }

    #[test]
    fn every_line_of_the_key_is_a_secret() {
        let r = Redactor::default();
        let pem = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49\nAgEGCCqGSM49AwEHBG0w\n-----END PRIVATE KEY-----";
        register_key(&r, pem);
        let scrubbed = r.scrub("asn.1 error near AgEGCCqGSM49AwEHBG0w in MIGHAgEAMBMGByqGSM49");
        assert!(!scrubbed.contains("AgEGCCqGSM49AwEHBG0w"), "{scrubbed}");
        assert!(!scrubbed.contains("MIGHAgEAMBMGByqGSM49"), "{scrubbed}");
        assert!(
            r.scrub("BEGIN PRIVATE KEY").contains("BEGIN PRIVATE KEY"),
            "markers are not secrets"
        );
    }
}
