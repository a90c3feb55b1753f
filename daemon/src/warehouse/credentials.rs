//! Durable, sealed storage for credentials a connector must carry across
//! runs (a rotated OAuth refresh token).
//!
//! Values are encrypted (ChaCha20-Poly1305) with a key derived from the
//! source's configured client secret, which never enters the warehouse: the
//! file alone does not yield the token, and no token appears in it as text.

use std::sync::Mutex;

use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use conveyor_config::Secret;
use conveyor_plugin_api::{ConnectorError, CredentialStore, ErrorKind};
use duckdb::{params, Connection};
use sha2::{Digest, Sha256};

pub struct SealedCredentials {
    conn: Mutex<Connection>,
    cipher: ChaCha20Poly1305,
}

impl SealedCredentials {
    /// `key_material` is secret configuration the warehouse never holds.
    pub fn new(conn: Connection, key_material: &[Secret]) -> Self {
        let mut h = Sha256::new();
        h.update(b"conveyor credential seal v1");
        for s in key_material {
            h.update((s.expose().len() as u64).to_le_bytes());
            h.update(s.expose().as_bytes());
        }
        let key = Key::from(<[u8; 32]>::from(h.finalize()));
        SealedCredentials {
            conn: Mutex::new(conn),
            cipher: ChaCha20Poly1305::new(&key),
        }
    }

    fn seal(&self, plain: &str) -> Result<String, ConnectorError> {
        let nonce_bytes: [u8; 12] = rand::random();
        let nonce = Nonce::from(nonce_bytes);
        let ct = self
            .cipher
            .encrypt(&nonce, plain.as_bytes())
            .map_err(|_| ConnectorError::new(ErrorKind::Host, "cannot seal credential"))?;
        let mut out = nonce_bytes.to_vec();
        out.extend(ct);
        Ok(base64::engine::general_purpose::STANDARD.encode(out))
    }

    fn open(&self, sealed: &str) -> Option<String> {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(sealed)
            .ok()?;
        if raw.len() < 12 {
            return None;
        }
        let (n, ct) = raw.split_at(12);
        let nonce = Nonce::from(<[u8; 12]>::try_from(n).ok()?);
        let plain = self.cipher.decrypt(&nonce, ct).ok()?;
        String::from_utf8(plain).ok()
    }
}

fn host_error(e: duckdb::Error) -> ConnectorError {
    ConnectorError::new(ErrorKind::Host, format!("credential store: {e}"))
}

impl CredentialStore for SealedCredentials {
    fn load(&self, key: &str) -> Result<Option<String>, ConnectorError> {
        let conn = self.conn.lock().expect("credential connection");
        let mut st = conn
            .prepare("SELECT sealed FROM conveyor.credentials WHERE name = ?")
            .map_err(host_error)?;
        let mut rows = st.query(params![key]).map_err(host_error)?;
        let Some(row) = rows.next().map_err(host_error)? else {
            return Ok(None);
        };
        let sealed: String = row.get(0).map_err(host_error)?;
        match self.open(&sealed) {
            Some(v) => Ok(Some(v)),
            None => {
                // Sealed under another client secret: the configured refresh
                // token is the best remaining choice.
                tracing::warn!(credential = key, "stored credential cannot be unsealed with the current client secret; using the configured one");
                Ok(None)
            }
        }
    }

    fn save(&self, key: &str, value: &str) -> Result<(), ConnectorError> {
        let sealed = self.seal(value)?;
        let conn = self.conn.lock().expect("credential connection");
        conn.execute(
            "INSERT INTO conveyor.credentials (name, sealed, updated_at) VALUES (?, ?, make_timestamp(epoch_us(now())))
             ON CONFLICT (name) DO UPDATE SET sealed = excluded.sealed, updated_at = excluded.updated_at",
            params![key, sealed],
        )
        .map_err(host_error)?;
        Ok(())
    }
}
