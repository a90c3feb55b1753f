//! Test PKI for mocks that speak HTTPS with mutual TLS: a CA made at start,
//! a server certificate for 127.0.0.1 and localhost, a client certificate
//! the CA signed, and a second client certificate from a CA the server does
//! not trust (for the refused-certificate tests); and the rustls server
//! config that requires a client certificate signed by the first CA.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer};

/// A certificate and its private key, in PEM.
#[derive(Clone, Debug)]
pub struct PemPair {
    pub certificate: String,
    pub key: String,
}

/// Everything a client of the mock needs, in PEM.
#[derive(Clone, Debug)]
pub struct TestPki {
    /// The CA that signed the server's certificate and the trusted client's.
    pub ca: String,
    /// A client certificate the server accepts.
    pub client: PemPair,
    /// A client certificate from another CA: the server refuses it.
    pub untrusted_client: PemPair,
    server: PemPair,
}

/// Where [`TestPki::write_to`] put the PEM files.
#[derive(Clone, Debug)]
pub struct PkiFiles {
    pub ca: PathBuf,
    pub client_certificate: PathBuf,
    pub client_key: PathBuf,
    pub untrusted_certificate: PathBuf,
    pub untrusted_key: PathBuf,
}

fn ca(name: &str) -> (rcgen::Certificate, KeyPair) {
    let key = KeyPair::generate().expect("CA key");
    let mut p = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
    (p.self_signed(&key).expect("self-signed CA"), key)
}

fn leaf(
    names: &[&str],
    common_name: &str,
    usage: ExtendedKeyUsagePurpose,
    issuer: &(rcgen::Certificate, KeyPair),
) -> PemPair {
    let key = KeyPair::generate().expect("leaf key");
    let mut p = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
        .expect("leaf params");
    p.distinguished_name.push(DnType::CommonName, common_name);
    p.extended_key_usages = vec![usage];
    let cert = p.signed_by(&key, &issuer.0, &issuer.1).expect("signed leaf");
    PemPair { certificate: cert.pem(), key: key.serialize_pem() }
}

impl TestPki {
    /// A fresh CA and certificates (ECDSA P-256; milliseconds to make).
    pub fn generate(client_name: &str) -> TestPki {
        let trusted = ca("Conveyor mock CA");
        let other = ca("Some other CA");
        TestPki {
            ca: trusted.0.pem(),
            server: leaf(
                &["127.0.0.1", "localhost"],
                "mock server",
                ExtendedKeyUsagePurpose::ServerAuth,
                &trusted,
            ),
            client: leaf(&[], client_name, ExtendedKeyUsagePurpose::ClientAuth, &trusted),
            untrusted_client: leaf(&[], client_name, ExtendedKeyUsagePurpose::ClientAuth, &other),
        }
    }

    /// Writes each PEM to its own file in `dir`.
    pub fn write_to(&self, dir: &Path) -> PkiFiles {
        let write = |name: &str, text: &str| {
            let p = dir.join(name);
            std::fs::write(&p, text).expect("write PEM");
            p
        };
        PkiFiles {
            ca: write("ca.pem", &self.ca),
            client_certificate: write("client.pem", &self.client.certificate),
            client_key: write("client.key", &self.client.key),
            untrusted_certificate: write("untrusted.pem", &self.untrusted_client.certificate),
            untrusted_key: write("untrusted.key", &self.untrusted_client.key),
        }
    }

    /// The server side: its certificate, and a client certificate signed
    /// by the CA required of every connection.
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        let der = |pem: &str| {
            use rustls::pki_types::pem::PemObject;
            CertificateDer::from_pem_slice(pem.as_bytes()).expect("PEM certificate")
        };
        let key = {
            use rustls::pki_types::pem::PemObject;
            PrivatePkcs8KeyDer::from_pem_slice(self.server.key.as_bytes()).expect("PEM key")
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.add(der(&self.ca)).expect("CA root");
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .build()
        .expect("client verifier");
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_client_cert_verifier(verifier)
            .with_single_cert(vec![der(&self.server.certificate)], key.into())
            .expect("server certificate");
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }
}
