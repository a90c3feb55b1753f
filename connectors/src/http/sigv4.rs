//! AWS Signature Version 4 for the toolkit's requests, by smithy-rs's
//! `aws-sigv4` (the signer the AWS SDKs use): each attempt is signed
//! anew just before it is sent, so a retry carries a fresh `X-Amz-Date`.

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use conveyor_config::Secret;
use conveyor_plugin_api::{ConnectorError, ErrorKind};

/// Signs requests for one region and service with one credential.
pub struct SigV4Signer {
    access_key_id: String,
    secret_access_key: Secret,
    session_token: Option<Secret>,
    region: String,
    service: String,
}

impl SigV4Signer {
    pub fn new(
        access_key_id: String,
        secret_access_key: Secret,
        session_token: Option<Secret>,
        region: String,
        service: String,
    ) -> Self {
        SigV4Signer {
            access_key_id,
            secret_access_key,
            session_token,
            region,
            service,
        }
    }

    /// Adds `Authorization`, `X-Amz-Date` and, with a session token,
    /// `X-Amz-Security-Token` to `req`, signing its method, URL, headers
    /// and body as they are now.
    pub fn sign(&self, req: &mut reqwest::Request, at: SystemTime) -> Result<(), ConnectorError> {
        // Built per request: the Identity borrows nothing, and a credential
        // never outlives the signature it makes.
        let identity: Identity = Credentials::new(
            &self.access_key_id,
            self.secret_access_key.expose(),
            self.session_token.as_ref().map(|t| t.expose().to_string()),
            None,
            "conveyor-config",
        )
        .into();
        let params: aws_sigv4::http_request::SigningParams<'_> = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(&self.service)
            .time(at)
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| failure(format!("cannot set up the request signature: {e}")))?
            .into();
        let headers: Vec<(&str, &str)> = req
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?)))
            .collect();
        let body = req
            .body()
            .map(|b| b.as_bytes().unwrap_or_default())
            .unwrap_or_default();
        let signable = SignableRequest::new(
            req.method().as_str(),
            req.url().as_str(),
            headers.into_iter(),
            SignableBody::Bytes(body),
        )
        .map_err(|e| failure(format!("cannot sign {}: {e}", req.url().path())))?;
        let (instructions, _signature) = sign(signable, &params)
            .map_err(|e| failure(format!("cannot sign {}: {e}", req.url().path())))?
            .into_parts();
        let (headers, _query) = instructions.into_parts();
        for h in headers {
            let value = reqwest::header::HeaderValue::from_str(h.value())
                .map_err(|_| failure(format!("the signature header {} is not valid", h.name())))?;
            req.headers_mut().insert(h.name(), value);
        }
        Ok(())
    }
}

/// A signing failure is the configuration's (a credential that cannot go
/// in a header), never the server's; it names no secret.
fn failure(message: String) -> ConnectorError {
    ConnectorError::new(ErrorKind::Config, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AWS's published SigV4 test suite, `get-vanilla`: the same
    /// credentials, instant, region and service give the documented
    /// signature, so this crate signs as AWS verifies.
    #[test]
    fn the_published_get_vanilla_vector_signs_as_documented() {
        let signer = SigV4Signer::new(
            "AKIDEXAMPLE".into(),
            Secret::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into()),
            None,
            "us-east-1".into(),
            "service".into(),
        );
        let client = reqwest::Client::new();
        let mut req = client
            .get("https://example.amazonaws.com/")
            .build()
            .unwrap();
        let at = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_440_938_160);
        signer.sign(&mut req, at).unwrap();
        assert_eq!(req.headers()["x-amz-date"], "20150830T123600Z");
        assert_eq!(
            req.headers()["authorization"],
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date, \
             Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
        assert!(req.headers().get("x-amz-security-token").is_none());
    }

    #[test]
    fn a_session_token_is_sent_and_signed() {
        let signer = SigV4Signer::new(
            "ASIAEXAMPLEEXAMPLE12".into(),
            Secret::new("secret-key-example".into()),
            Some(Secret::new("session-token-example".into())),
            "eu-west-2".into(),
            "connect".into(),
        );
        let client = reqwest::Client::new();
        let mut req = client
            .post("https://connect.eu-west-2.amazonaws.com/metrics/data")
            .json(&serde_json::json!({"a": 1}))
            .build()
            .unwrap();
        signer.sign(&mut req, SystemTime::now()).unwrap();
        assert_eq!(
            req.headers()["x-amz-security-token"],
            "session-token-example"
        );
        let auth = req.headers()["authorization"].to_str().unwrap();
        assert!(
            auth.contains("/eu-west-2/connect/aws4_request")
                && auth.contains("x-amz-security-token")
                && !auth.contains("secret-key-example"),
            "{auth}"
        );
    }
}
