//! The Amazon Connect mock's own AWS Signature Version 4 check, written
//! from AWS's documented algorithm (not the client's signer, so a signing
//! bug cannot hide behind the same code): the canonical request, the
//! string to sign, the derived signing key, and the checks AWS makes
//! before it compares — credential scope, `X-Amz-Date`, clock skew, the
//! payload hash and the session token.

use axum::http::HeaderMap;
use chrono::{DateTime, NaiveDateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

/// One credential the mock knows.
#[derive(Clone, Debug)]
pub struct Credential {
    pub access_key_id: String,
    pub secret_access_key: String,
    /// A temporary credential's token, which must come as `X-Amz-Security-Token`.
    pub session_token: Option<String>,
}

/// What a request is signed over, as it arrived.
pub struct Received<'a> {
    pub method: &'a str,
    /// The path as sent (still percent-encoded).
    pub path: &'a str,
    /// The query string as sent, without `?`.
    pub query: &'a str,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

/// Why a request's signature was refused; each maps to AWS's error type.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No `Authorization` header at all (`MissingAuthenticationTokenException`).
    Missing,
    /// An access key id (or session token) the server does not know
    /// (`UnrecognizedClientException`).
    Unrecognized,
    /// A malformed header (`IncompleteSignatureException`), with AWS's words.
    Incomplete(String),
    /// A signature that does not verify (`InvalidSignatureException`).
    Invalid(String),
}

impl Refusal {
    pub fn error_type(&self) -> &'static str {
        match self {
            Refusal::Missing => "MissingAuthenticationTokenException",
            Refusal::Unrecognized => "UnrecognizedClientException",
            Refusal::Incomplete(_) => "IncompleteSignatureException",
            Refusal::Invalid(_) => "InvalidSignatureException",
        }
    }

    pub fn message(&self) -> String {
        match self {
            Refusal::Missing => "Missing Authentication Token".into(),
            Refusal::Unrecognized => {
                "The security token included in the request is invalid.".into()
            }
            Refusal::Incomplete(m) | Refusal::Invalid(m) => m.clone(),
        }
    }
}

/// What the server checks a signature against.
pub struct Verifier<'a> {
    pub credentials: &'a [Credential],
    pub region: &'a str,
    pub service: &'a str,
    pub now: DateTime<Utc>,
    /// How far `X-Amz-Date` may be from `now` (AWS: 5 minutes).
    pub max_skew_secs: i64,
}

const ALGORITHM: &str = "AWS4-HMAC-SHA256";
const MISMATCH: &str = "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.";

/// The parts of `Authorization: AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…`.
struct Authorization<'h> {
    access_key_id: &'h str,
    date: &'h str,
    region: &'h str,
    service: &'h str,
    signed_headers: Vec<&'h str>,
    signature: &'h str,
}

fn parse_authorization(value: &str) -> Result<Authorization<'_>, Refusal> {
    let rest = value
        .strip_prefix(ALGORITHM)
        .filter(|r| r.starts_with(' '))
        .ok_or_else(|| Refusal::Incomplete(format!("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header and the {ALGORITHM} algorithm. Authorization={value}")))?;
    let field = |name: &str| {
        rest.split(',').map(str::trim).find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
    };
    let incomplete = |what: &str| {
        Refusal::Incomplete(format!(
            "Authorization header requires '{what}' parameter. Authorization={ALGORITHM} …"
        ))
    };
    let credential = field("Credential").ok_or_else(|| incomplete("Credential"))?;
    let signed = field("SignedHeaders").ok_or_else(|| incomplete("SignedHeaders"))?;
    let signature = field("Signature").ok_or_else(|| incomplete("Signature"))?;
    let scope: Vec<&str> = credential.split('/').collect();
    let [access_key_id, date, region, service, terminator] = scope[..] else {
        return Err(Refusal::Incomplete(format!(
            "Credential should have 5 slash-separated parts, not {}.",
            scope.len()
        )));
    };
    if terminator != "aws4_request" {
        return Err(Refusal::Invalid(format!(
            "Credential should be scoped with a valid terminator: 'aws4_request', not '{terminator}'."
        )));
    }
    Ok(Authorization {
        access_key_id,
        date,
        region,
        service,
        signed_headers: signed.split(';').collect(),
        signature,
    })
}

impl Verifier<'_> {
    /// The access key id of a request whose signature verifies.
    pub fn verify(&self, req: &Received<'_>) -> Result<String, Refusal> {
        let header = |name: &str| req.headers.get(name).and_then(|v| v.to_str().ok());
        let auth = parse_authorization(header("authorization").ok_or(Refusal::Missing)?)?;
        let cred = self
            .credentials
            .iter()
            .find(|c| c.access_key_id == auth.access_key_id)
            .ok_or(Refusal::Unrecognized)?;
        let amz_date = header("x-amz-date").ok_or_else(|| {
            Refusal::Incomplete("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.".into())
        })?;
        let signed_at = NaiveDateTime::parse_from_str(amz_date, "%Y%m%dT%H%M%SZ")
            .map_err(|_| {
                Refusal::Incomplete(format!(
                    "Date must be in ISO-8601 'basic format'. Got '{amz_date}'."
                ))
            })?
            .and_utc();
        if auth.date != &amz_date[..8] {
            return Err(Refusal::Invalid(format!(
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{}', from '{amz_date}'.",
                auth.date,
                &amz_date[..8]
            )));
        }
        if auth.region != self.region {
            return Err(Refusal::Invalid(format!(
                "Credential should be scoped to a valid region, not '{}'.",
                auth.region
            )));
        }
        if auth.service != self.service {
            return Err(Refusal::Invalid(format!(
                "Credential should be scoped to correct service: '{}'.",
                self.service
            )));
        }
        let skew = (self.now - signed_at).num_seconds();
        let fmt = |t: DateTime<Utc>| t.format("%Y%m%dT%H%M%SZ").to_string();
        if skew > self.max_skew_secs {
            let limit = self.now - chrono::Duration::seconds(self.max_skew_secs);
            return Err(Refusal::Invalid(format!(
                "Signature expired: {amz_date} is now earlier than {} ({} - 5 min.)",
                fmt(limit),
                fmt(self.now)
            )));
        }
        if -skew > self.max_skew_secs {
            let limit = self.now + chrono::Duration::seconds(self.max_skew_secs);
            return Err(Refusal::Invalid(format!(
                "Signature not yet current: {amz_date} is still later than {} ({} + 5 min.)",
                fmt(limit),
                fmt(self.now)
            )));
        }
        for required in ["host", "x-amz-date"] {
            if !auth.signed_headers.contains(&required) {
                return Err(Refusal::Invalid(format!(
                    "'{required}' must be a 'SignedHeader' in the AWS Authorization."
                )));
            }
        }
        if let Some(expected) = &cred.session_token {
            if header("x-amz-security-token") != Some(expected.as_str()) {
                return Err(Refusal::Unrecognized);
            }
        }
        let body_hash = hex::encode(Sha256::digest(req.body));
        let payload_hash =
            match header("x-amz-content-sha256") {
                Some(h) if h != body_hash => return Err(Refusal::Invalid(
                    "The provided 'x-amz-content-sha256' header does not match what was computed."
                        .into(),
                )),
                _ => body_hash,
            };
        let canonical = canonical_request(req, &auth.signed_headers, &payload_hash)
            .ok_or_else(|| Refusal::Invalid(MISMATCH.into()))?;
        let scope = format!("{}/{}/{}/aws4_request", auth.date, auth.region, auth.service);
        let to_sign = string_to_sign(amz_date, &scope, &canonical);
        let key = signing_key(&cred.secret_access_key, auth.date, auth.region, auth.service);
        let expected = hex::encode(hmac(&key, to_sign.as_bytes()));
        // Compared in full either way; a mock need not be constant-time.
        if expected != auth.signature {
            return Err(Refusal::Invalid(MISMATCH.into()));
        }
        Ok(cred.access_key_id.clone())
    }
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any size");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// `kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request")`.
pub fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> Vec<u8> {
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    hmac(&k_service, b"aws4_request")
}

/// `AWS4-HMAC-SHA256 \n date \n scope \n hex(SHA256(canonical request))`.
pub fn string_to_sign(amz_date: &str, scope: &str, canonical: &str) -> String {
    format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    )
}

/// RFC 3986 percent-encoding of everything but the unreserved characters,
/// as SigV4 requires (`%` itself included, so an encoded path is encoded
/// twice, as every service but S3 expects).
fn uri_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The path with `.` and `..` segments resolved and each segment encoded.
fn canonical_uri(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for s in path.split('/').skip(1) {
        match s {
            "." => {}
            ".." => {
                segments.pop();
            }
            other => segments.push(other),
        }
    }
    let encoded: Vec<String> = segments.iter().map(|s| uri_encode(s)).collect();
    format!("/{}", encoded.join("/"))
}

/// Parameters decoded, encoded strictly, sorted by name then value.
fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (uri_encode(&k), uri_encode(&v)))
        .collect();
    pairs.sort();
    pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&")
}

/// The canonical request over `signed` headers; `None` when one of them
/// was not sent or the list is not lower-case and sorted.
pub fn canonical_request(
    req: &Received<'_>,
    signed: &[&str],
    payload_hash: &str,
) -> Option<String> {
    let mut sorted = signed.to_vec();
    sorted.sort_unstable();
    if sorted != signed || signed.iter().any(|h| h.bytes().any(|b| b.is_ascii_uppercase())) {
        return None;
    }
    let mut headers = String::new();
    for name in signed {
        let values: Vec<String> = req
            .headers
            .get_all(*name)
            .iter()
            .map(|v| {
                String::from_utf8_lossy(v.as_bytes())
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        if values.is_empty() {
            return None;
        }
        headers.push_str(&format!("{name}:{}\n", values.join(",")));
    }
    Some(format!(
        "{}\n{}\n{}\n{headers}\n{}\n{payload_hash}",
        req.method,
        canonical_uri(req.path),
        canonical_query(req.query),
        signed.join(";"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

    fn example() -> Vec<Credential> {
        vec![Credential {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: SECRET.into(),
            session_token: None,
        }]
    }

    /// AWS's documented example of deriving a signing key (IAM, 20120215).
    #[test]
    fn the_signing_key_matches_the_documented_derivation() {
        assert_eq!(
            hex::encode(signing_key(SECRET, "20120215", "us-east-1", "iam")),
            "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"
        );
    }

    /// AWS's SigV4 test suite, `get-vanilla`: `GET /` to
    /// example.amazonaws.com at 20150830T123600Z, region us-east-1,
    /// service `service`, which verifies with its published signature and
    /// fails with any other.
    #[test]
    fn the_published_get_vanilla_request_verifies() {
        let credentials = example();
        let at =
            NaiveDateTime::parse_from_str("20150830T123600Z", "%Y%m%dT%H%M%SZ").unwrap().and_utc();
        let verifier = Verifier {
            credentials: &credentials,
            region: "us-east-1",
            service: "service",
            now: at,
            max_skew_secs: 300,
        };
        let signature = "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31";
        let mut headers = HeaderMap::new();
        headers.insert("host", "example.amazonaws.com".parse().unwrap());
        headers.insert("x-amz-date", "20150830T123600Z".parse().unwrap());
        let auth = |sig: &str| {
            format!("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature={sig}")
        };
        headers.insert("authorization", auth(signature).parse().unwrap());
        let req = Received { method: "GET", path: "/", query: "", headers: &headers, body: b"" };
        let canonical =
            canonical_request(&req, &["host", "x-amz-date"], &hex::encode(Sha256::digest(b"")))
                .unwrap();
        assert_eq!(
            canonical,
            "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(verifier.verify(&req), Ok("AKIDEXAMPLE".to_string()));

        let mut tampered = headers.clone();
        tampered.insert("authorization", auth(&signature.replace('5', "6")).parse().unwrap());
        let req = Received { headers: &tampered, ..req };
        assert!(
            matches!(verifier.verify(&req), Err(Refusal::Invalid(m)) if m.starts_with("The request signature we calculated"))
        );

        // Ten minutes later the same request has expired.
        let late = Verifier { now: at + chrono::Duration::minutes(10), ..verifier };
        let req = Received { headers: &headers, ..req };
        assert!(
            matches!(late.verify(&req), Err(Refusal::Invalid(m)) if m.starts_with("Signature expired: 20150830T123600Z"))
        );
        // Another region, an unknown key.
        let elsewhere = Verifier { region: "eu-west-1", now: at, ..late };
        assert!(
            matches!(elsewhere.verify(&req), Err(Refusal::Invalid(m)) if m.contains("valid region"))
        );
        let nobody: Vec<Credential> = Vec::new();
        let unknown = Verifier { credentials: &nobody, region: "us-east-1", ..elsewhere };
        assert_eq!(unknown.verify(&req), Err(Refusal::Unrecognized));
    }

    #[test]
    fn paths_and_queries_take_their_canonical_form() {
        assert_eq!(canonical_uri("/a/./b/../c%20d"), "/a/c%2520d");
        assert_eq!(canonical_query("b=2&a=x y&a=1"), "a=1&a=x%20y&b=2");
    }
}
