//! Scrubbing a source's secrets out of what its plugin says: error messages
//! and log lines pass through here before they reach the host's log,
//! `conveyor.runs` or `conveyor status`.

/// The secret values handed to one instance.
#[derive(Debug, Default, Clone)]
pub struct Redact(Vec<String>);

impl Redact {
    pub fn new(secrets: impl IntoIterator<Item = String>) -> Redact {
        // Longest first, so a secret containing another is scrubbed whole.
        let mut v: Vec<String> = secrets.into_iter().filter(|s| !s.is_empty()).collect();
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
    fn every_secret_is_scrubbed_longest_first() {
        let r = Redact::new(["tok".to_string(), "tok-123".to_string(), String::new()]);
        assert_eq!(r.apply("bad token tok-123 (tok)"), "bad ***en *** (***)");
        assert_eq!(Redact::default().apply("as is"), "as is");
    }
}
