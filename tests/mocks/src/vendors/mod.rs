//! Faithful vendor API mocks for the vendor connectors' tests: each follows
//! `reference/vendor-apis.md` (paging, auth flow with token expiry and
//! refresh-token rotation, rate-limit headers, error bodies), and a handle
//! lets a test change data, expire tokens and queue faults while it runs.

pub mod adp;
pub mod amazon_connect;
pub mod genesys;
pub mod greenhouse;
pub mod gusto;
pub mod hubspot;
pub mod lever;
pub mod limit;
pub mod quickbooks;
pub mod salesforce;
pub mod xero;
pub mod zendesk_talk;

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::{to_bytes, Bytes};
use axum::extract::Request;
use axum::http::request::Parts;
use serde_json::Value;

use crate::wire::{self, RequestLog};

/// A misbehaviour served instead of the next data request (token requests
/// are never faulted). Each vendor renders it in its own shape.
#[derive(Clone, Debug)]
pub enum Fault {
    /// The vendor's rate-limit answer (429 with its headers) with this `Retry-After`.
    RateLimited { retry_after_secs: u64 },
    /// This status with this JSON body, verbatim.
    Error(u16, Value),
}

/// State every vendor mock keeps: requests seen, queued faults, the
/// access tokens in force and the refresh token currently valid.
#[derive(Default)]
pub struct Core {
    pub log: Vec<RequestLog>,
    faults: VecDeque<Fault>,
    access: HashSet<String>,
    /// The one refresh token that works (rotation revokes the old one).
    refresh: Option<String>,
    pub token_requests: usize,
    /// The documented limit the mock keeps to (each sets its own).
    pub(crate) limit: Option<limit::RollingLimit>,
    /// Data requests refused for the rate limit (any of the mock's limits;
    /// queued [`Fault::RateLimited`] answers are not counted).
    pub(crate) refused: u64,
}

impl Core {
    pub(crate) fn with_refresh(token: &str) -> Self {
        Core { refresh: Some(token.to_string()), ..Default::default() }
    }

    /// A core keeping to `requests` in any `per`.
    pub(crate) fn limited(mut self, requests: u32, per: std::time::Duration) -> Self {
        self.limit = Some(limit::RollingLimit::new(requests, per));
        self
    }

    /// Admits a data request against the documented limit (always, with
    /// `u32::MAX` left, when there is none), counting a refusal.
    pub(crate) fn admit(&mut self) -> limit::Admission {
        let Some(l) = self.limit.as_mut() else {
            return limit::Admission::Admitted {
                remaining: u32::MAX,
                resets_in: std::time::Duration::ZERO,
            };
        };
        let a = l.admit();
        if matches!(a, limit::Admission::Refused { .. }) {
            self.refused += 1;
        }
        a
    }

    pub(crate) fn next_fault(&mut self) -> Option<Fault> {
        self.faults.pop_front()
    }

    pub(crate) fn issue_access(&mut self, prefix: &str) -> String {
        let t = wire::unique_token(prefix);
        self.access.insert(t.clone());
        t
    }

    pub(crate) fn access_ok(&self, token: Option<&str>) -> bool {
        token.is_some_and(|t| self.access.contains(t))
    }

    /// Checks `presented` against the valid refresh token and rotates it:
    /// the new one is returned and the old one stops working.
    pub(crate) fn rotate_refresh(
        &mut self,
        presented: Option<&str>,
        prefix: &str,
    ) -> Option<String> {
        if presented.is_none() || self.refresh.as_deref() != presented {
            return None;
        }
        let next = wire::unique_token(prefix);
        self.refresh = Some(next.clone());
        Some(next)
    }
}

/// What every vendor mock's handle offers. Implementors only say where
/// their [`Core`] is.
pub trait MockHandle {
    fn with_core<R>(&self, f: impl FnOnce(&mut Core) -> R) -> R;

    /// Every request received, token calls included, in order.
    fn requests(&self) -> Vec<RequestLog> {
        self.with_core(|c| c.log.clone())
    }
    /// Revokes every access token (as if they expired): the next data call gets a 401.
    fn expire_tokens(&self) {
        self.with_core(|c| c.access.clear())
    }
    /// Queues faults for the next data requests, one each.
    fn push_faults(&self, faults: impl IntoIterator<Item = Fault>) {
        self.with_core(|c| c.faults.extend(faults))
    }
    fn token_requests(&self) -> usize {
        self.with_core(|c| c.token_requests)
    }
    /// Data requests refused for going over the vendor's rate limit.
    fn rate_limit_refusals(&self) -> u64 {
        self.with_core(|c| c.refused)
    }
    /// Keeps to `requests` in any `per` from now on (replacing the
    /// documented figure the mock started with).
    fn set_rate_limit(&self, requests: u32, per: std::time::Duration) {
        self.with_core(|c| c.limit = Some(limit::RollingLimit::new(requests, per)))
    }
    /// The refresh token that currently works.
    fn current_refresh_token(&self) -> Option<String> {
        self.with_core(|c| c.refresh.clone())
    }
}

/// A mutex that survives a panicking test thread.
pub(crate) fn lock<T>(m: &Arc<Mutex<T>>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Logs the request and reads its body.
pub(crate) async fn receive(core: impl FnOnce(RequestLog), req: Request) -> (Parts, Bytes) {
    core(RequestLog::of(&req));
    let (parts, body) = req.into_parts();
    (parts, to_bytes(body, 1 << 20).await.unwrap_or_default())
}

#[cfg(test)]
mod adp_tests;
#[cfg(test)]
mod amazon_connect_tests;
#[cfg(test)]
mod lever_tests;
#[cfg(test)]
mod salesforce_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod xero_tests;
