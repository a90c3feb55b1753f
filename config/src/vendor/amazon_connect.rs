//! The Amazon Connect source's own settings (`type = "amazon_connect"`):
//! the instance ARN (region and instance id come from it), the SigV4
//! credentials, the queue filter GetMetricDataV2 requires, and the
//! look-back re-read on each incremental sync.

use std::ops::Range;

use super::RawVendorSource;
use crate::model::AuthConfig;
use crate::raw::S;
use crate::validate::Checker;

/// The AWS service name requests to Amazon Connect are signed for.
pub const SIGNING_SERVICE: &str = "connect";

/// Days re-read behind the cursor unless `lookback_days` says otherwise:
/// Connect keeps revising the last days' metrics as contacts close.
pub const DEFAULT_LOOKBACK_DAYS: u32 = 3;

/// Queues one GetMetricDataV2 filter may name (the API's limit).
pub const MAX_QUEUES: usize = 100;

/// What an Amazon Connect source reads from, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmazonConnectSettings {
    /// `arn:aws:connect:<region>:<account>:instance/<id>`, as configured.
    pub instance_arn: String,
    /// The `<id>` of the ARN (SearchContacts takes the id, not the ARN).
    pub instance_id: String,
    /// The `<region>` of the ARN: the signing region and the endpoint's.
    pub region: String,
    /// Queue ids (or ARNs) for GetMetricDataV2's required `QUEUE` filter;
    /// empty only when `agent_metrics` is not read.
    pub queues: Vec<String>,
    /// Whole days re-read behind the saved cursor.
    pub lookback_days: u32,
}

/// The parts of an instance ARN.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct InstanceArn {
    pub partition: String,
    pub region: String,
    pub instance_id: String,
}

/// Parses `arn:<partition>:connect:<region>:<12-digit account>:instance/<uuid>`;
/// the error says which part is wrong.
pub(crate) fn parse_instance_arn(arn: &str) -> Result<InstanceArn, String> {
    let parts: Vec<&str> = arn.trim().splitn(6, ':').collect();
    let [prefix, partition, service, region, account, resource] = parts[..] else {
        return Err(format!("`{arn}` is not an ARN (six `:`-separated parts)"));
    };
    if prefix != "arn" || !partition.starts_with("aws") {
        return Err(format!(
            "`{arn}` is not an AWS ARN (it must start with `arn:aws`)"
        ));
    }
    if service != "connect" {
        return Err(format!(
            "`{arn}` is an ARN of service `{service}`, not of Amazon Connect (`connect`)"
        ));
    }
    let region_ok = !region.is_empty()
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !region_ok {
        return Err(format!("`{arn}` names no region (e.g. `us-east-1`)"));
    }
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "`{arn}`: the account `{account}` is not a 12-digit AWS account id"
        ));
    }
    let Some(id) = resource.strip_prefix("instance/") else {
        return Err(format!(
            "`{arn}` is not an instance ARN (its resource must be `instance/<id>`)"
        ));
    };
    if !super::is_uuid(id) {
        return Err(format!("`{arn}`: the instance id `{id}` is not a UUID"));
    }
    Ok(InstanceArn {
        partition: partition.to_string(),
        region: region.to_string(),
        instance_id: id.to_string(),
    })
}

/// The production endpoint of a region: `https://connect.<region>.amazonaws.com`
/// (`.com.cn` in the China partition).
pub(crate) fn default_base_url(arn: &InstanceArn) -> Option<url::Url> {
    let suffix = if arn.partition == "aws-cn" {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    };
    url::Url::parse(&format!("https://connect.{}.{suffix}", arn.region)).ok()
}

/// An access key id as AWS issues them: upper-case letters and digits
/// (`AKIA…` long-term, `ASIA…` temporary), 16 to 128 of them.
fn is_access_key_id(s: &str) -> bool {
    (16..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

impl Checker<'_> {
    /// The instance, queues and look-back of an Amazon Connect source, and
    /// its SigV4 credentials; every problem reported, `None` if any.
    pub(crate) fn amazon_connect(
        &mut self,
        key: &str,
        raw: &RawVendorSource,
        at: Range<usize>,
        streams: &[String],
    ) -> Option<(AmazonConnectSettings, AuthConfig, Option<url::Url>)> {
        let arn = match &raw.instance_arn {
            None => {
                self.error(
                    at.clone(),
                    &format!("{key}.instance_arn"),
                    "missing key `instance_arn` (required by type = \"amazon_connect\")",
                )
                .hint("the instance's ARN, arn:aws:connect:<region>:<account>:instance/<id> (Connect console → the instance → Overview)");
                None
            }
            Some(a) => match parse_instance_arn(a.get_ref()) {
                Ok(parsed) => Some((a.get_ref().trim().to_string(), parsed)),
                Err(e) => {
                    self.error(a.span(), &format!("{key}.instance_arn"), e)
                        .hint("arn:aws:connect:<region>:<account>:instance/<id>, e.g. arn:aws:connect:us-west-2:123456789012:instance/0c7b9e3a-4c6f-4a53-9c8e-3f1e2d4b5a6c");
                    None
                }
            },
        };
        let auth = self.sigv4_auth(key, raw, at.clone(), arn.as_ref().map(|(_, a)| a));
        let queues = self.queues(key, raw, at, streams);
        let lookback_days = match &raw.lookback_days {
            None => Some(DEFAULT_LOOKBACK_DAYS),
            Some(d) if (0..=30).contains(d.get_ref()) => Some(*d.get_ref() as u32),
            Some(d) => {
                self.error(
                    d.span(),
                    &format!("{key}.lookback_days"),
                    "must be between 0 and 30 days",
                )
                .hint("metrics settle within days; the API keeps 3 months of history");
                None
            }
        };
        let (arn_text, parsed) = arn?;
        let default_url = default_base_url(&parsed);
        Some((
            AmazonConnectSettings {
                instance_arn: arn_text,
                instance_id: parsed.instance_id,
                region: parsed.region,
                queues: queues?,
                lookback_days: lookback_days?,
            },
            auth?,
            default_url,
        ))
    }

    fn sigv4_auth(
        &mut self,
        key: &str,
        raw: &RawVendorSource,
        at: Range<usize>,
        arn: Option<&InstanceArn>,
    ) -> Option<AuthConfig> {
        let access_key_id = match &raw.access_key_id {
            None => {
                self.error(
                    at.clone(),
                    &format!("{key}.access_key_id"),
                    "missing key `access_key_id` (required by type = \"amazon_connect\")",
                )
                .hint("the IAM access key id (AKIA… or ASIA…); it is not secret, the secret access key is");
                None
            }
            Some(id) if is_access_key_id(id.get_ref().trim()) => {
                Some(id.get_ref().trim().to_string())
            }
            Some(id) => {
                self.error(
                    id.span(),
                    &format!("{key}.access_key_id"),
                    "is not an AWS access key id",
                )
                .hint("16 to 128 upper-case letters and digits, e.g. AKIAIOSFODNN7EXAMPLE; write the id itself here, and the secret access key as a reference");
                None
            }
        };
        let secret_access_key = match &raw.secret_access_key {
            None => {
                self.error(
                    at,
                    &format!("{key}.secret_access_key"),
                    "missing key `secret_access_key` (required by type = \"amazon_connect\")",
                )
                .hint("e.g. secret_access_key = \"env:AWS_SECRET_ACCESS_KEY\"");
                None
            }
            Some(s) => self.secret(s, &format!("{key}.secret_access_key")),
        };
        let session_token = match &raw.session_token {
            None => Some(None),
            Some(s) => self.secret(s, &format!("{key}.session_token")).map(Some),
        };
        Some(AuthConfig::AwsSigV4 {
            access_key_id: access_key_id?,
            secret_access_key: secret_access_key?,
            session_token: session_token?,
            region: arn?.region.clone(),
            service: SIGNING_SERVICE.to_string(),
        })
    }

    /// GetMetricDataV2 refuses a call without a filter: `queues` is
    /// required when `agent_metrics` is read.
    fn queues(
        &mut self,
        key: &str,
        raw: &RawVendorSource,
        at: Range<usize>,
        streams: &[String],
    ) -> Option<Vec<String>> {
        let needed = streams.iter().any(|s| s == "agent_metrics");
        const HINT: &str = "the queue ids agent metrics are read for, e.g. queues = [\"4e2b1c9d-7a3f-4e5b-8c6d-1a2b3c4d5e6f\"] (Connect console → Routing → Queues → the queue's ARN ends in /queue/<id>)";
        let Some(list) = &raw.queues else {
            if needed {
                self.error(
                    at,
                    &format!("{key}.queues"),
                    "missing key `queues` (type = \"amazon_connect\" reads agent_metrics only for given queues: the API refuses a query without a filter)",
                )
                .hint(HINT);
                return None;
            }
            return Some(Vec::new());
        };
        let mut ok = true;
        if list.get_ref().is_empty() && needed {
            self.error(
                list.span(),
                &format!("{key}.queues"),
                "must name at least one queue (the API refuses a metrics query without a filter)",
            )
            .hint(HINT);
            ok = false;
        }
        if list.get_ref().len() > MAX_QUEUES {
            self.error(
                list.span(),
                &format!("{key}.queues"),
                format!(
                    "names {} queues; one metrics filter takes at most {MAX_QUEUES}",
                    list.get_ref().len()
                ),
            );
            ok = false;
        }
        let mut queues = Vec::new();
        for q in list.get_ref() {
            let t = q.get_ref().trim();
            if t.is_empty() || t.contains(char::is_whitespace) {
                self.error(
                    q.span(),
                    &format!("{key}.queues"),
                    format!("`{}` is not a queue id", q.get_ref()),
                )
                .hint(HINT);
                ok = false;
            } else if !queues.iter().any(|k: &String| k == t) {
                queues.push(t.to_string());
            }
        }
        ok.then_some(queues)
    }
}

/// Keys only an Amazon Connect source takes.
pub(crate) fn own_keys(raw: &RawVendorSource) -> [(&'static str, Option<Range<usize>>); 6] {
    [
        ("instance_arn", raw.instance_arn.as_ref().map(S::span)),
        ("access_key_id", raw.access_key_id.as_ref().map(S::span)),
        (
            "secret_access_key",
            raw.secret_access_key.as_ref().map(S::span),
        ),
        ("session_token", raw.session_token.as_ref().map(S::span)),
        ("queues", raw.queues.as_ref().map(S::span)),
        ("lookback_days", raw.lookback_days.as_ref().map(S::span)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ConnectorConfig;
    use crate::Vendor;

    fn check(text: &str) -> Result<crate::Config, crate::ConfigErrors> {
        crate::parse(text, std::path::Path::new("/etc/conveyor/conveyor.toml"))
    }

    const SOURCE: &str = r#"[warehouse]
path = "wh.duckdb"

[sources.cc]
type = "amazon_connect"
instance_arn = "arn:aws:connect:us-west-2:123456789012:instance/0c7b9e3a-4c6f-4a53-9c8e-3f1e2d4b5a6c"
access_key_id = "AKIAIOSFODNN7EXAMPLE"
secret_access_key = "env:PATH"
queues = ["4e2b1c9d-7a3f-4e5b-8c6d-1a2b3c4d5e6f", "4e2b1c9d-7a3f-4e5b-8c6d-1a2b3c4d5e6f"]
"#;

    #[test]
    fn an_amazon_connect_source_signs_for_the_region_of_its_instance() {
        let c = check(SOURCE).unwrap();
        let ConnectorConfig::Vendor(v) = &c.source("cc").unwrap().connector else {
            panic!("a vendor source")
        };
        assert_eq!(v.vendor, Vendor::AmazonConnect);
        assert_eq!(v.streams, ["agent_metrics", "contacts"]);
        assert_eq!(
            v.base_url.as_str(),
            "https://connect.us-west-2.amazonaws.com/"
        );
        let s = v.amazon_connect.as_ref().unwrap();
        assert_eq!(s.region, "us-west-2");
        assert_eq!(s.instance_id, "0c7b9e3a-4c6f-4a53-9c8e-3f1e2d4b5a6c");
        assert_eq!(
            s.queues,
            ["4e2b1c9d-7a3f-4e5b-8c6d-1a2b3c4d5e6f"],
            "a repeat is dropped"
        );
        assert_eq!(s.lookback_days, DEFAULT_LOOKBACK_DAYS);
        assert!(
            matches!(&v.auth, AuthConfig::AwsSigV4 { access_key_id, region, service, session_token: None, .. }
                if access_key_id == "AKIAIOSFODNN7EXAMPLE" && region == "us-west-2" && service == "connect"),
            "{:?}",
            v.auth
        );
        // A mock's base_url, a session token and a look-back.
        let text = format!(
            "{SOURCE}base_url = \"http://127.0.0.1:9\"\nsession_token = \"env:PATH\"\nlookback_days = 7\n"
        );
        let c = check(&text).unwrap();
        let ConnectorConfig::Vendor(v) = &c.source("cc").unwrap().connector else {
            panic!("a vendor source")
        };
        assert_eq!(v.base_url.as_str(), "http://127.0.0.1:9/");
        assert_eq!(v.amazon_connect.as_ref().unwrap().lookback_days, 7);
        assert!(matches!(
            &v.auth,
            AuthConfig::AwsSigV4 {
                session_token: Some(_),
                ..
            }
        ));
        // Other vendors have none of it.
        assert!(check(
            &SOURCE
                .replace("amazon_connect", "genesys")
                .replace("instance_arn", "client_id")
        )
        .is_err());
    }

    #[test]
    fn amazon_connect_mistakes_have_locations() {
        let text = r#"[warehouse]
path = "wh.duckdb"

[sources.cc]
type = "amazon_connect"
instance_arn = "arn:aws:connect:us-west-2:123456789012:queue/0c7b9e3a-4c6f-4a53-9c8e-3f1e2d4b5a6c"
access_key_id = "env:AWS_ACCESS_KEY_ID"
secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
queues = []
lookback_days = 90
client_id = "x"
"#;
        let e = check(text).unwrap_err().to_string();
        for want in [
            "conveyor.toml:6:16: sources.cc.instance_arn: `arn:aws:connect:us-west-2:123456789012:queue/0c7b9e3a-4c6f-4a53-9c8e-3f1e2d4b5a6c` is not an instance ARN (its resource must be `instance/<id>`)",
            "conveyor.toml:7:17: sources.cc.access_key_id: is not an AWS access key id",
            "conveyor.toml:8:21: sources.cc.secret_access_key:",
            "conveyor.toml:9:10: sources.cc.queues: must name at least one queue",
            "conveyor.toml:10:17: sources.cc.lookback_days: must be between 0 and 30 days",
            "conveyor.toml:11:13: sources.cc.client_id: not used by type = \"amazon_connect\"",
        ] {
            assert!(e.contains(want), "missing {want:?} in:\n{e}");
        }
        // The inline secret is refused without being repeated.
        assert!(!e.contains("wJalrXUtnFEMI"), "{e}");
        // Nothing given: each required key named at the type.
        let e =
            check("[warehouse]\npath = \"wh.duckdb\"\n[sources.cc]\ntype = \"amazon_connect\"\n")
                .unwrap_err()
                .to_string();
        for want in [
            "instance_arn: missing key",
            "access_key_id: missing key",
            "secret_access_key: missing key",
            "queues: missing key",
        ] {
            assert!(e.contains(want), "missing {want:?} in:\n{e}");
        }
        // Without agent_metrics no queue is needed.
        let contacts_only = SOURCE
            .replace("queues = [\"4e2b1c9d-7a3f-4e5b-8c6d-1a2b3c4d5e6f\", \"4e2b1c9d-7a3f-4e5b-8c6d-1a2b3c4d5e6f\"]\n", "streams = [\"contacts\"]\n");
        assert!(check(&contacts_only).is_ok());
        // instance_arn and the rest belong to Amazon Connect alone.
        let e = check("[warehouse]\npath = \"wh.duckdb\"\n[sources.crm]\ntype = \"hubspot\"\nclient_id = \"c\"\nclient_secret = \"env:PATH\"\nrefresh_token = \"env:PATH\"\nqueues = [\"q\"]\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("sources.crm.queues: not used by type = \"hubspot\""),
            "{e}"
        );
    }

    const ARN: &str =
        "arn:aws:connect:us-west-2:123456789012:instance/0c7b9e3a-4c6f-4a53-9c8e-3f1e2d4b5a6c";

    #[test]
    fn an_instance_arn_gives_its_region_and_instance_id() {
        let a = parse_instance_arn(ARN).unwrap();
        assert_eq!(a.region, "us-west-2");
        assert_eq!(a.instance_id, "0c7b9e3a-4c6f-4a53-9c8e-3f1e2d4b5a6c");
        assert_eq!(
            default_base_url(&a).unwrap().as_str(),
            "https://connect.us-west-2.amazonaws.com/"
        );
        let cn = parse_instance_arn(
            &ARN.replace("arn:aws:", "arn:aws-cn:")
                .replace("us-west-2", "cn-north-1"),
        )
        .unwrap();
        assert_eq!(
            default_base_url(&cn).unwrap().as_str(),
            "https://connect.cn-north-1.amazonaws.com.cn/"
        );
    }

    #[test]
    fn a_wrong_arn_says_which_part_is_wrong() {
        for (arn, says) in [
            ("0c7b9e3a-4c6f-4a53-9c8e-3f1e2d4b5a6c", "is not an ARN"),
            (&ARN.replace(":connect:", ":s3:"), "of service `s3`"),
            (&ARN.replace("us-west-2", ""), "names no region"),
            (
                &ARN.replace("123456789012", "1234"),
                "not a 12-digit AWS account id",
            ),
            (&ARN.replace("instance/", "queue/"), "not an instance ARN"),
            (&ARN.replace("0c7b9e3a-", "x-"), "is not a UUID"),
        ] {
            let e = parse_instance_arn(arn).unwrap_err();
            assert!(e.contains(says), "{arn}: {e}");
        }
    }

    #[test]
    fn access_key_ids_have_their_shape() {
        assert!(is_access_key_id("AKIAIOSFODNN7EXAMPLE"));
        assert!(!is_access_key_id("akiaiosfodnn7example"));
        assert!(!is_access_key_id("env:AWS_ACCESS_KEY_ID"));
        assert!(!is_access_key_id("AKIA"));
    }
}
