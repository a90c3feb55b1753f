//! Keeps secrets out of URLs, error messages and logs — in every encoding
//! a server may echo them back in.
//!
//! A secret rarely comes back the way it was configured: an API that
//! quotes the request in an error body shows the `Authorization: Basic …`
//! header (base64 of `user:secret`), a query string shows it
//! percent-encoded, a form body with `+` for spaces, a JSON body with
//! escapes. So the redactor keeps, for every secret, each form it can take
//! on the wire (see [`forms`]), and scrubs them all.

use std::sync::{Arc, RwLock};

use conveyor_plugin_api::secret_forms::{base64_forms, forms, url_forms};
use url::Url;

use super::client::snippet;

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

/// Values shorter than this are not treated as secrets: they would blank
/// out ordinary text, and they are not realistic secrets anyway.
const MIN_SECRET_LEN: usize = 4;

/// Knows every secret value a connector holds (configured secrets, the
/// credential pairs it encodes, and tokens it obtained) and scrubs them,
/// in every form, from any text before it leaves the connector.
#[derive(Clone, Default)]
pub struct Redactor {
    /// Every form of every secret, longest first, so that a form that
    /// contains another (padded base64 and its unpadded prefix) goes whole.
    forms: Arc<RwLock<Vec<String>>>,
    extra_params: Arc<RwLock<Vec<String>>>,
}

impl Redactor {
    /// Registers a secret: the value itself and each of its encoded forms.
    pub fn add_secret(&self, value: &str) {
        if value.len() < MIN_SECRET_LEN {
            return;
        }
        self.add_forms(forms(value));
    }

    /// Registers a `user:secret` pair the connector sends base64-encoded
    /// (an HTTP Basic header, OAuth client authentication): every base64
    /// alphabet with and without padding, and those as they look inside a
    /// URL or form. The secret alone must be registered too (the pair's
    /// raw text contains it).
    pub fn add_credential_pair(&self, user: &str, secret: &str) {
        if secret.len() < MIN_SECRET_LEN {
            return;
        }
        let pair = format!("{user}:{secret}");
        let mut all = vec![pair.clone()];
        for b64 in base64_forms(pair.as_bytes()) {
            all.extend(url_forms(&b64));
            all.push(b64);
        }
        self.add_forms(all);
    }

    /// Registers a secret sent as the user of an HTTP Basic pair with an
    /// empty password (`key:`, Lever's API key): the base64 forms of
    /// `key:`, as [`Redactor::add_credential_pair`] does for a password.
    pub fn add_secret_user(&self, user: &str) {
        if user.len() < MIN_SECRET_LEN {
            return;
        }
        self.add_secret(user);
        let pair = format!("{user}:");
        let mut all = vec![pair.clone()];
        for b64 in base64_forms(pair.as_bytes()) {
            all.extend(url_forms(&b64));
            all.push(b64);
        }
        self.add_forms(all);
    }

    fn add_forms(&self, new: Vec<String>) {
        let mut forms = self.forms.write().expect("redactor lock");
        for f in new {
            if f.len() >= MIN_SECRET_LEN && !forms.contains(&f) {
                forms.push(f);
            }
        }
        forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
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
        for s in self.forms.read().expect("redactor lock").iter() {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), "***");
            }
        }
        out
    }

    /// The start of a response body for an error message, scrubbed. The
    /// whole body is scrubbed before it is cut and its whitespace folded,
    /// so a secret straddling the cut or holding spaces cannot survive in
    /// part.
    pub fn snippet(&self, body: &[u8]) -> String {
        snippet(self.scrub(&String::from_utf8_lossy(body)).as_bytes())
    }

    /// `e` with every secret scrubbed from its message: the last line of
    /// defence as an error leaves the connector.
    pub fn error(
        &self,
        e: conveyor_plugin_api::ConnectorError,
    ) -> conveyor_plugin_api::ConnectorError {
        conveyor_plugin_api::ConnectorError::new(e.kind, self.scrub(&e.message))
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
                    // A value holding a secret once decoded goes whole: the
                    // re-encoded value would carry it encoded twice.
                    let hide = SENSITIVE_PARAMS.contains(&lk.as_str())
                        || extra.contains(&lk)
                        || self.scrub(&v) != v;
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
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    use base64::Engine;
    use conveyor_plugin_api::secret_forms::{lower_hex_escapes, percent_encode};

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

    /// A secret with every awkward character: space, `+`, `/`, `=`, `%`,
    /// quotes, `&`, `:` and non-ASCII.
    const NASTY: &str = "p@ss w/rd+=%&\"'<é>:!*";

    #[test]
    fn every_encoded_form_of_a_secret_is_scrubbed() {
        let r = Redactor::default();
        r.add_secret(NASTY);
        let json = serde_json::to_string(NASTY).unwrap();
        let echoed = [
            NASTY.to_string(),
            url::form_urlencoded::byte_serialize(NASTY.as_bytes()).collect(),
            percent_encode(NASTY, |_| false),
            lower_hex_escapes(&percent_encode(NASTY, |_| false)),
            json[1..json.len() - 1].to_string(),
            STANDARD.encode(NASTY),
            URL_SAFE_NO_PAD.encode(NASTY),
        ];
        for form in &echoed {
            let text = format!("error: you sent {form} which is wrong");
            assert_eq!(
                r.scrub(&text),
                "error: you sent *** which is wrong",
                "{form}"
            );
        }
        // In a URL the url crate re-encodes: still hidden, even encoded
        // once more inside a query value.
        let u = Url::parse_with_params("https://api.test/a", &[("q", NASTY)]).unwrap();
        assert_eq!(r.url(&u), "https://api.test/a?q=***");
        let once: String = url::form_urlencoded::byte_serialize(NASTY.as_bytes()).collect();
        let u =
            Url::parse_with_params("https://api.test/a", &[("echo", format!("x{once}y"))]).unwrap();
        assert_eq!(r.url(&u), "https://api.test/a?echo=***");
    }

    #[test]
    fn a_basic_pair_is_scrubbed_in_every_base64_alphabet() {
        let r = Redactor::default();
        // `??>` encodes to `Pz8+` in standard base64 and `Pz8-` URL-safe.
        let (user, secret) = ("me@example.com/token", "??>x");
        r.add_secret(secret);
        r.add_credential_pair(user, secret);
        let pair = format!("{user}:{secret}");
        for engine in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
            let b64 = engine.encode(&pair);
            let header = format!("got Authorization: Basic {b64}, refused");
            assert_eq!(r.scrub(&header), "got Authorization: Basic ***, refused");
            let in_url: String = url::form_urlencoded::byte_serialize(b64.as_bytes()).collect();
            assert!(!r.scrub(&in_url).contains("Pz8"), "{in_url}");
        }
        assert!(STANDARD.encode(&pair) != URL_SAFE.encode(&pair));
    }

    #[test]
    fn a_key_sent_as_the_basic_user_is_scrubbed_with_its_empty_password() {
        let r = Redactor::default();
        let key = "lever-key-??>7";
        r.add_secret_user(key);
        for engine in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
            let b64 = engine.encode(format!("{key}:"));
            let header = format!("got Authorization: Basic {b64}, refused");
            assert_eq!(r.scrub(&header), "got Authorization: Basic ***, refused");
        }
        assert_eq!(r.scrub(&format!("key {key} refused")), "key *** refused");
    }

    #[test]
    fn snippets_are_scrubbed_before_they_are_cut() {
        let r = Redactor::default();
        let secret = "a-secret  with-two-spaces";
        r.add_secret(secret);
        // The secret straddles the snippet's cut; whitespace folding would
        // also turn its two spaces into one.
        let body = format!("{}{secret}", "x".repeat(290));
        let shown = r.snippet(body.as_bytes());
        assert!(!shown.contains("a-secret"), "{shown}");
        let shown = r.snippet(format!("{{\"echo\": \"{secret}\"}}").as_bytes());
        assert_eq!(shown, "{\"echo\": \"***\"}");
    }

    #[test]
    fn short_values_are_not_secrets() {
        let r = Redactor::default();
        r.add_secret("abc");
        r.add_credential_pair("u", "abc");
        assert_eq!(r.scrub("abc u:abc"), "abc u:abc");
    }
}
