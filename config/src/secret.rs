//! Secret references (`env:NAME`, `file:PATH`) and a value type that never prints itself.

use std::fmt;
use std::path::PathBuf;

/// Where a secret comes from, as written in the config.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretRef {
    Env(String),
    File(PathBuf),
}

impl SecretRef {
    /// Parses `env:NAME` or `file:PATH`. A value written inline is refused:
    /// the config file is read by people and tools (backups, version
    /// control, `conveyor check` output) that must never see a secret. The
    /// error does not repeat the value.
    pub fn parse(raw: &str, resolve: impl Fn(&str) -> PathBuf) -> Result<SecretRef, String> {
        if let Some(name) = raw.strip_prefix("env:") {
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("invalid environment variable name in `env:{name}`"));
            }
            Ok(SecretRef::Env(name.to_string()))
        } else if let Some(p) = raw.strip_prefix("file:") {
            if p.is_empty() {
                return Err("`file:` needs a path".into());
            }
            Ok(SecretRef::File(resolve(p)))
        } else {
            Err("a secret must be a reference, \"env:NAME\" or \"file:PATH\", not a value written inline".into())
        }
    }

    /// Reads the secret's current value.
    pub fn resolve(&self) -> Result<Secret, String> {
        match self {
            SecretRef::Env(name) => match std::env::var(name) {
                Ok(v) if !v.is_empty() => Ok(Secret::new(v)),
                Ok(_) => Err(format!("environment variable {name} is empty")),
                Err(_) => Err(format!("environment variable {name} is not set")),
            },
            SecretRef::File(p) => std::fs::read_to_string(p)
                .map(|v| Secret::new(v.trim_end_matches(['\n', '\r']).to_string()))
                .map_err(|e| format!("cannot read secret file {}: {e}", p.display())),
        }
    }
}

impl fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Env(n) => write!(f, "env:{n}"),
            SecretRef::File(p) => write!(f, "file:{}", p.display()),
        }
    }
}

/// A secret value. `Debug` and `Display` print `***`, so it cannot leak
/// through a log line, an error message or a panic by accident; reading it
/// takes an explicit [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Secret(value)
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_formats_its_value() {
        let s = Secret::new("hunter2".into());
        assert_eq!(format!("{s} {s:?}"), "*** ***");
    }

    #[test]
    fn parses_references() {
        let id = |p: &str| PathBuf::from(p);
        assert_eq!(
            SecretRef::parse("env:API_KEY", id).unwrap(),
            SecretRef::Env("API_KEY".into())
        );
        assert_eq!(
            SecretRef::parse("file:/run/k", id).unwrap(),
            SecretRef::File("/run/k".into())
        );
        assert!(SecretRef::parse("env:bad-name", id).is_err());
        let inline = SecretRef::parse("plain-hunter2", id).unwrap_err();
        assert!(inline.contains("must be a reference"), "{inline}");
        assert!(!inline.contains("hunter2"), "{inline}");
    }

    #[test]
    fn missing_env_is_a_clear_error() {
        let r = SecretRef::Env("CONVEYOR_TEST_SURELY_UNSET_VAR".into());
        assert!(r
            .resolve()
            .unwrap_err()
            .contains("CONVEYOR_TEST_SURELY_UNSET_VAR is not set"));
    }
}
