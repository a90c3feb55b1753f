//! Keeps secrets out of URLs, error messages and logs.

use std::sync::{Arc, RwLock};

use url::Url;

/// Query parameters whose values are always hidden, whatever the config says.
const SENSITIVE_PARAMS: &[&str] = &[
    "api_key",
    "apikey",
    "key",
    "token",
    "access_token",
    "refresh_token",
    "client_secret",
    "password",
    "secret",
    "signature",
    "sig",
    "auth",
];

/// Knows every secret value a connector holds (configured secrets and tokens
/// it obtained) and scrubs them from any text before it leaves the connector.
#[derive(Clone, Default)]
pub struct Redactor {
    secrets: Arc<RwLock<Vec<String>>>,
    extra_params: Arc<RwLock<Vec<String>>>,
}

impl Redactor {
    pub fn add_secret(&self, value: &str) {
        // Very short values would blank out ordinary text; they are not
        // realistic secrets anyway.
        if value.len() >= 4 {
            let mut s = self.secrets.write().expect("redactor lock");
            if !s.iter().any(|v| v == value) {
                s.push(value.to_string());
            }
        }
    }

    /// Marks a query parameter (e.g. the configured API-key parameter) as secret.
    pub fn add_param(&self, name: &str) {
        self.extra_params
            .write()
            .expect("redactor lock")
            .push(name.to_ascii_lowercase());
    }

    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in self.secrets.read().expect("redactor lock").iter() {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), "***");
            }
        }
        out
    }

    /// The URL without user info and with secret query values hidden.
    pub fn url(&self, url: &Url) -> String {
        let mut u = url.clone();
        let _ = u.set_username("");
        let _ = u.set_password(None);
        let extra = self.extra_params.read().expect("redactor lock");
        if u.query().is_some() {
            let pairs: Vec<(String, String)> = u
                .query_pairs()
                .map(|(k, v)| {
                    let lk = k.to_ascii_lowercase();
                    let hide = SENSITIVE_PARAMS.contains(&lk.as_str()) || extra.contains(&lk);
                    (
                        k.into_owned(),
                        if hide {
                            "***".to_string()
                        } else {
                            v.into_owned()
                        },
                    )
                })
                .collect();
            u.query_pairs_mut().clear().extend_pairs(pairs);
        }
        self.scrub(u.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hides_secrets_in_urls_and_text() {
        let r = Redactor::default();
        r.add_secret("s3cr3t-token");
        r.add_param("x_custom");
        let u =
            Url::parse("https://user:pw@api.test/a?page=2&api_key=zzz&x_custom=q&q=s3cr3t-token")
                .unwrap();
        let shown = r.url(&u);
        assert_eq!(
            shown,
            "https://api.test/a?page=2&api_key=***&x_custom=***&q=***"
        );
        assert_eq!(r.scrub("bad token s3cr3t-token here"), "bad token *** here");
    }
}
