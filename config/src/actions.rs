//! Rule actions (`[[rules.actions]]`: e-mail and webhook) and the `[smtp]`
//! section e-mails are delivered through — parsed with spans, templates
//! compiled here so a syntax error is a located config error.

use std::collections::BTreeSet;
use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;

use crate::model::Located;
use crate::secret::SecretRef;
use crate::validate::Checker;

/// Variables every action template may use besides the measure's columns
/// (README, "Template variables", says what each holds).
/// `transition` is `firing` or `resolved`; `repeat` is true for a reminder
/// of an alert still firing, `escalated` for one that went from warn to
/// critical since it was announced; `breaches` counts the breaching periods of an
/// `n_of_m` window (`window` its length); `peer_threshold` is the group's
/// percentile a `peer` rule compared with. The rest are the alert's facts:
/// the rule's own settings, the entity's `history` of periods, its peers,
/// how long it has fired, and the command that silences it.
pub const BUILTIN_VARIABLES: [&str; 35] = [
    "rule",
    "entity",
    "level",
    "value",
    "period",
    "transition",
    "repeat",
    "escalated",
    "breaches",
    "window",
    "peer_threshold",
    "title",
    "description",
    "owner",
    "labels",
    "who",
    "direction",
    "warn",
    "critical",
    "resolve",
    "threshold",
    "history",
    "peer_group",
    "peer_size",
    "peer_median",
    "peer_percentile",
    "peer_breaching",
    "firing_since",
    "firing_for",
    "absent",
    "silence_command",
    "next_step",
    "subject_tag",
    "now",
    "notified_level",
];

/// The first eleven of [`BUILTIN_VARIABLES`]: they hide a measure column
/// of the same name (the alert's other facts yield to one).
pub const CORE_VARIABLES: &[&str] = BUILTIN_VARIABLES.split_at(11).0;

/// `[smtp]` `max_attempts` when the config does not set it.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 8;

/// An e-mail sent when an alert starts firing (and on resolve when the rule
/// sets `notify_resolved`).
#[derive(Debug, Clone)]
pub struct EmailAction {
    /// Static recipients.
    pub to: Vec<String>,
    /// A measure column holding a recipient per row (e.g. the supervisor).
    pub to_column: Option<String>,
    /// `None`: the built-in subject (`[FIRING critical] title: who`).
    pub subject: Option<Template>,
    /// The text part; `None`: the built-in e-mail (and, without `html`,
    /// its HTML part too).
    pub body: Option<Template>,
    /// An HTML alternative, rendered with the data HTML-escaped.
    pub html: Option<Template>,
    pub at: Located,
}

/// A JSON POST per alert transition (e.g. enrol the agent in training),
/// signed with HMAC-SHA256 when a secret is set.
#[derive(Debug, Clone)]
pub struct WebhookAction {
    pub url: String,
    /// Key of the `X-Conveyor-Signature: sha256=<hex>` header; by reference
    /// only, resolved at delivery so it never reaches the warehouse.
    pub secret: Option<SecretRef>,
    /// A template producing the JSON body; `None`: the default object.
    pub body: Option<Template>,
    pub at: Located,
}

/// A template's source and the variables it reads (checked by
/// `conveyor check` against the measure's columns).
#[derive(Debug, Clone)]
pub struct Template {
    pub source: String,
    pub variables: BTreeSet<String>,
    pub at: Located,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    None,
    StartTls,
    Tls,
}

/// `[smtp]`: where e-mail actions are sent.
#[derive(Debug, Clone)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub username: Option<String>,
    pub password: Option<SecretRef>,
    pub from: String,
    /// Failed attempts after which a notification is dead-lettered.
    pub max_attempts: u32,
    /// Told (by e-mail) of every dead-lettered notification.
    pub operator: Option<String>,
    /// PEM certificate(s) of a private CA to trust for the server's
    /// certificate, besides the system's roots (a corporate relay).
    pub ca_file: Option<std::path::PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAction {
    #[serde(rename = "type")]
    kind: Spanned<String>,
    #[serde(default)]
    to: Vec<Spanned<String>>,
    to_column: Option<Spanned<String>>,
    subject: Option<Spanned<String>>,
    body: Option<Spanned<String>>,
    html: Option<Spanned<String>>,
    url: Option<Spanned<String>>,
    secret: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSmtp {
    host: Option<Spanned<String>>,
    port: Option<Spanned<i64>>,
    tls: Option<Spanned<String>>,
    username: Option<String>,
    password: Option<Spanned<String>>,
    from: Option<Spanned<String>>,
    max_attempts: Option<Spanned<i64>>,
    operator: Option<Spanned<String>>,
    ca_file: Option<Spanned<String>>,
}

impl Checker<'_> {
    pub(crate) fn actions(
        &mut self,
        key: &str,
        raws: Vec<Spanned<RawAction>>,
    ) -> (Vec<EmailAction>, Vec<WebhookAction>) {
        let mut out = Vec::new();
        let mut hooks = Vec::new();
        for (i, raw) in raws.into_iter().enumerate() {
            let key = format!("{key}.actions[{i}]");
            let span = raw.span();
            let raw = raw.into_inner();
            match raw.kind.get_ref().as_str() {
                "email" => {}
                "webhook" => {
                    hooks.extend(self.webhook(&key, span, raw));
                    continue;
                }
                other => {
                    self.error(
                        raw.kind.span(),
                        &format!("{key}.type"),
                        format!("unknown action type `{other}`"),
                    )
                    .hint("one of: \"email\", \"webhook\"");
                    continue;
                }
            }
            for (name, v) in [("url", &raw.url), ("secret", &raw.secret)] {
                if let Some(v) = v {
                    self.error(
                        v.span(),
                        &format!("{key}.{name}"),
                        format!("`{name}` belongs to a webhook action"),
                    );
                }
            }
            if raw.to.is_empty() && raw.to_column.is_none() {
                self.error(span.clone(), &key, "needs `to`, `to_column` or both")
                    .hint("to = [\"ops@example.com\"] or to_column = \"supervisor_email\" (a column of the measure)");
            }
            for t in &raw.to {
                if !t.get_ref().contains('@') || t.get_ref().chars().any(char::is_control) {
                    self.error(
                        t.span(),
                        &format!("{key}.to"),
                        format!("`{}` is not an e-mail address", t.get_ref()),
                    );
                }
            }
            // Without them, the built-in subject and e-mail.
            let optional = |c: &mut Self, name: &str, raw: Option<Spanned<String>>| match raw {
                None => Some(None),
                Some(t) => c.template(&key, name, Some(t), &span).map(Some),
            };
            let subject = optional(self, "subject", raw.subject);
            let body = optional(self, "body", raw.body);
            let html = optional(self, "html", raw.html);
            if let (Some(subject), Some(body), Some(html)) = (subject, body, html) {
                out.push(EmailAction {
                    to: raw.to.into_iter().map(Spanned::into_inner).collect(),
                    to_column: raw.to_column.map(Spanned::into_inner),
                    subject,
                    body,
                    html,
                    at: self.located(span, &key),
                });
            }
        }
        (out, hooks)
    }

    fn webhook(&mut self, key: &str, span: Range<usize>, raw: RawAction) -> Option<WebhookAction> {
        for (name, present) in [
            ("to", !raw.to.is_empty()),
            ("to_column", raw.to_column.is_some()),
            ("subject", raw.subject.is_some()),
            ("html", raw.html.is_some()),
        ] {
            if present {
                self.error(
                    span.clone(),
                    &format!("{key}.{name}"),
                    format!("`{name}` belongs to an e-mail action"),
                );
            }
        }
        let url = match &raw.url {
            None => {
                self.error(span.clone(), &format!("{key}.url"), "missing key `url`")
                    .hint("url = \"https://lms.example.com/hooks/enrol\"");
                None
            }
            Some(u) => match url::Url::parse(u.get_ref()) {
                Ok(p) if matches!(p.scheme(), "http" | "https") => Some(u.get_ref().clone()),
                _ => {
                    self.error(
                        u.span(),
                        &format!("{key}.url"),
                        format!("`{}` is not an http(s) URL", u.get_ref()),
                    );
                    None
                }
            },
        };
        let secret = match &raw.secret {
            None => Some(None),
            Some(s) => self.secret(s, &format!("{key}.secret")).map(Some),
        };
        let body = match raw.body {
            None => Some(None),
            Some(b) => self.template(key, "body", Some(b), &span).map(Some),
        };
        Some(WebhookAction {
            url: url?,
            secret: secret?,
            body: body?,
            at: self.located(span, key),
        })
    }

    pub(crate) fn template(
        &mut self,
        key: &str,
        name: &str,
        raw: Option<Spanned<String>>,
        entry: &Range<usize>,
    ) -> Option<Template> {
        let key = format!("{key}.{name}");
        let Some(raw) = raw else {
            self.error(entry.clone(), &key, format!("missing key `{name}`"))
                .hint("a template, e.g. \"{{ entity }} is {{ level }}: {{ value }}\"");
            return None;
        };
        let env = minijinja::Environment::new();
        match env.template_from_str(raw.get_ref()) {
            Ok(t) => {
                let variables = t.undeclared_variables(false).into_iter().collect();
                Some(Template {
                    source: raw.get_ref().clone(),
                    variables,
                    at: self.located(raw.span(), &key),
                })
            }
            Err(e) => {
                self.error(
                    raw.span(),
                    &key,
                    format!(
                        "template does not parse: {}",
                        e.detail().unwrap_or("syntax error")
                    ),
                );
                None
            }
        }
    }

    pub(crate) fn smtp(&mut self, raw: Option<Spanned<RawSmtp>>) -> Option<SmtpConfig> {
        let raw = raw?;
        let span = raw.span();
        let raw = raw.into_inner();
        let required = |c: &mut Self, v: Option<Spanned<String>>, name: &str, hint: &str| match v {
            Some(v) if !v.get_ref().trim().is_empty() => Some(v),
            _ => {
                c.error(
                    span.clone(),
                    &format!("smtp.{name}"),
                    format!("missing key `{name}`"),
                )
                .hint(hint);
                None
            }
        };
        let host = required(
            self,
            raw.host,
            "host",
            "the SMTP server, e.g. host = \"smtp.example.com\"",
        );
        let from = required(
            self,
            raw.from,
            "from",
            "the sender, e.g. from = \"Conveyor <ops@example.com>\"",
        );
        let tls = match raw.tls.as_ref().map(|t| t.get_ref().as_str()) {
            None | Some("starttls") => SmtpTls::StartTls,
            Some("tls") => SmtpTls::Tls,
            Some("none") => SmtpTls::None,
            Some(other) => {
                let at = raw.tls.as_ref().map(|t| t.span()).unwrap_or(span.clone());
                self.error(at, "smtp.tls", format!("unknown tls mode `{other}`"))
                    .hint("one of: \"none\", \"starttls\", \"tls\"");
                SmtpTls::StartTls
            }
        };
        let port = match &raw.port {
            None => Some(match tls {
                SmtpTls::Tls => 465,
                SmtpTls::StartTls => 587,
                SmtpTls::None => 25,
            }),
            Some(p) => match u16::try_from(*p.get_ref()) {
                Ok(p) if p > 0 => Some(p),
                _ => {
                    self.error(p.span(), "smtp.port", "must be a port number 1–65535");
                    None
                }
            },
        };
        let max_attempts = match &raw.max_attempts {
            None => Some(DEFAULT_MAX_ATTEMPTS),
            Some(n) if (1..=1000).contains(n.get_ref()) => Some(*n.get_ref() as u32),
            Some(n) => {
                self.error(
                    n.span(),
                    "smtp.max_attempts",
                    "must be a whole number 1–1000",
                );
                None
            }
        };
        let password = raw
            .password
            .as_ref()
            .and_then(|p| self.secret(p, "smtp.password"));
        if raw.password.is_some() && raw.username.is_none() {
            self.error(
                span.clone(),
                "smtp.username",
                "`password` is set without `username`",
            );
        }
        let operator = match &raw.operator {
            // One address: a list would only fail later, at delivery.
            Some(o)
                if !o.get_ref().contains('@')
                    || o.get_ref()
                        .chars()
                        .any(|c| c.is_control() || c.is_whitespace() || c == ',' || c == ';') =>
            {
                self.error(
                    o.span(),
                    "smtp.operator",
                    format!("`{}` is not an e-mail address", o.get_ref()),
                )
                .hint("who hears of notifications that could not be delivered");
                None
            }
            o => Some(o.as_ref().map(|o| o.get_ref().clone())),
        };
        let ca_file = match &raw.ca_file {
            None => Some(None),
            Some(_) if tls == SmtpTls::None => {
                let at = raw
                    .ca_file
                    .as_ref()
                    .map(|c| c.span())
                    .unwrap_or(span.clone());
                self.error(
                    at,
                    "smtp.ca_file",
                    "a CA file needs tls = \"starttls\" or \"tls\"",
                );
                None
            }
            Some(c) => {
                let path = crate::resolve_relative(self.file(), c.get_ref());
                match std::fs::read_to_string(&path) {
                    Ok(text) if text.contains("-----BEGIN CERTIFICATE-----") => Some(Some(path)),
                    Ok(_) => {
                        self.error(
                            c.span(),
                            "smtp.ca_file",
                            format!("{} holds no PEM certificate", path.display()),
                        );
                        None
                    }
                    Err(e) => {
                        self.error(
                            c.span(),
                            "smtp.ca_file",
                            format!("cannot read {}: {e}", path.display()),
                        );
                        None
                    }
                }
            }
        };
        Some(SmtpConfig {
            operator: operator?,
            ca_file: ca_file?,
            host: host?.into_inner(),
            port: port?,
            tls,
            username: raw.username,
            password: if raw.password.is_some() {
                Some(password?)
            } else {
                None
            },
            from: from?.into_inner(),
            max_attempts: max_attempts?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_the_core_variables_lead_the_builtin_ones_and_none_repeats() {
        assert_eq!(CORE_VARIABLES.last(), Some(&"peer_threshold"));
        let unique: BTreeSet<&str> = BUILTIN_VARIABLES.iter().copied().collect();
        assert_eq!(unique.len(), BUILTIN_VARIABLES.len());
    }
}
