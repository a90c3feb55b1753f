//! `[health]`: the daemon's built-in pipeline-health alerts — a source
//! failing several runs in a row, or going without a successful run for too
//! long — e-mailed to `[smtp] operator` through the outbox.

use serde::Deserialize;
use toml::Spanned;

use crate::validate::Checker;

/// Failed runs in a row after which a source's operator alert fires, when
/// the config does not say.
pub const DEFAULT_FAILED_RUNS: u32 = 3;

/// The validated `[health]` section (defaults when it is absent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthConfig {
    /// `enabled = false` turns every pipeline-health alert off.
    pub enabled: bool,
    /// A source whose runs fail this many times in a row fires
    /// `conveyor.source_failing`; 0 turns that alert off.
    pub failed_runs: u32,
    /// A source without a successful run for this long fires
    /// `conveyor.source_stale`; `None` (the default) turns it off.
    pub stale_after_secs: Option<u64>,
    /// Whether the operator is e-mailed again when an alert resolves.
    pub notify_resolved: bool,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            enabled: true,
            failed_runs: DEFAULT_FAILED_RUNS,
            stale_after_secs: None,
            notify_resolved: true,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHealth {
    enabled: Option<bool>,
    failed_runs: Option<Spanned<i64>>,
    stale_after: Option<Spanned<String>>,
    notify_resolved: Option<bool>,
}

impl Checker<'_> {
    /// Validates `[health]`; `operator` is `[smtp] operator`, the recipient.
    /// Also returns a warning when the section asks for alerts nobody would
    /// receive.
    pub(crate) fn health(
        &mut self,
        raw: Option<Spanned<RawHealth>>,
        operator: Option<&str>,
    ) -> (HealthConfig, Option<String>) {
        let mut health = HealthConfig::default();
        let Some(raw) = raw else {
            return (health, None);
        };
        let raw = raw.into_inner();
        if let Some(enabled) = raw.enabled {
            health.enabled = enabled;
        }
        if let Some(n) = raw.notify_resolved {
            health.notify_resolved = n;
        }
        if let Some(n) = &raw.failed_runs {
            match u32::try_from(*n.get_ref()) {
                Ok(v) if v <= 1000 => health.failed_runs = v,
                _ => {
                    self.error(
                        n.span(),
                        "health.failed_runs",
                        format!("`{}` is not a number of runs from 0 to 1000", n.get_ref()),
                    )
                    .hint("e.g. 3 (0 turns the failing-source alert off)");
                }
            }
        }
        if let Some(d) = &raw.stale_after {
            match humantime::parse_duration(d.get_ref()) {
                Ok(v) if v.as_secs() >= 60 => health.stale_after_secs = Some(v.as_secs()),
                Ok(_) => {
                    self.error(
                        d.span(),
                        "health.stale_after",
                        "must be at least one minute",
                    )
                    .hint("e.g. \"26h\" for a nightly sync");
                }
                Err(e) => {
                    self.error(
                        d.span(),
                        "health.stale_after",
                        format!("`{}` is not a duration: {e}", d.get_ref()),
                    )
                    .hint("e.g. \"26h\", \"90m\", \"8d\"");
                }
            }
        }
        let alerting = health.failed_runs > 0 || health.stale_after_secs.is_some();
        let warning = (health.enabled && alerting && operator.is_none()).then(|| {
            "[health] alerts have nobody to tell: set `operator` in [smtp] (they are still \
             listed by `conveyor alerts`)"
                .to_string()
        });
        (health, warning)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    fn parse(extra: &str) -> Result<crate::Config, crate::ConfigErrors> {
        let text = format!("[warehouse]\npath = \"w.duckdb\"\n{extra}");
        crate::parse_offline(&text, Path::new("c.toml"))
    }

    #[test]
    fn health_defaults_when_absent() {
        let c = parse("").unwrap();
        assert_eq!(c.health, crate::HealthConfig::default());
        assert_eq!(c.health.failed_runs, 3);
        assert!(c.health.enabled && c.health.notify_resolved);
        assert_eq!(c.health.stale_after_secs, None);
    }

    #[test]
    fn health_section_is_validated_with_locations() {
        let c =
            parse("[health]\nfailed_runs = 5\nstale_after = \"26h\"\nnotify_resolved = false\n")
                .unwrap();
        assert_eq!(c.health.failed_runs, 5);
        assert_eq!(c.health.stale_after_secs, Some(26 * 3600));
        assert!(!c.health.notify_resolved);
        assert!(
            c.warnings.iter().any(|w| w.contains("operator")),
            "{:?}",
            c.warnings
        );

        let e = parse("[health]\nfailed_runs = -1\nstale_after = \"soon\"\nbogus = 1\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("c.toml:6:1: health: unknown field `bogus`"),
            "{e}"
        );
        let e = parse("[health]\nfailed_runs = -1\nstale_after = \"soon\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("c.toml:4:15: health.failed_runs"), "{e}");
        assert!(e.contains("c.toml:5:15: health.stale_after"), "{e}");
    }
}
