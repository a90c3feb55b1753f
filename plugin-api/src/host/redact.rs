//! Scrubbing a source's secrets out of what its plugin says: error messages
//! and log lines pass through here before they reach the host's log,
//! `conveyor.runs` or `conveyor status`.

/// The secret values handed to one instance.
#[derive(Debug, Default, Clone)]
pub struct Redact(Vec<String>);

impl Redact {
    pub fn new(secrets: impl IntoIterator<Item = String>) -> Redact {
        // Every form a secret may be echoed in (a plugin's HTTP library
        // quoting an `Authorization: Basic` header or a percent-encoded
        // query); longest first, so a secret containing another is
        // scrubbed whole. Very short values would blank out ordinary text.
        let mut v: Vec<String> = secrets
            .into_iter()
            .filter(|s| s.len() >= 4)
            .flat_map(|s| crate::secret_forms::forms(&s))
            .collect();
        v.sort();
        v.dedup();
        v.sort_by_key(|s| std::cmp::Reverse(s.len()));
        Redact(v)
    }

    /// `text` with every secret replaced by `***`.
    pub fn apply(&self, text: &str) -> String {
        self.0
            .iter()
            .fold(text.to_string(), |t, s| t.replace(s.as_str(), "***"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_secret_is_scrubbed_longest_first_in_every_form() {
        let r = Redact::new(["tok1".to_string(), "tok1/23".to_string(), String::new()]);
        assert_eq!(r.apply("bad tok1/23 (tok1)"), "bad *** (***)");
        // Percent-encoded and base64, as an HTTP library would echo them.
        assert_eq!(
            r.apply("url ?k=tok1%2F23 b64 dG9rMS8yMw=="),
            "url ?k=*** b64 ***"
        );
        // Too short to be a secret: left alone rather than blanking text.
        assert_eq!(Redact::new(["ab".to_string()]).apply("tab"), "tab");
        assert_eq!(Redact::default().apply("as is"), "as is");
    }
}
