//! The shared HTTP toolkit: one client with auth, retries with backoff,
//! per-host rate limits and secret-free errors, used by every HTTP connector.

pub mod auth;
pub mod body_pager;
pub mod budget;
pub mod client;
pub mod page_guard;
pub mod ratelimit;
pub mod redact;
pub mod sigv4;
pub mod stats;
pub mod tls;

pub use auth::{AuthProvider, TokenBody};
pub use client::{HttpClient, HttpResponse};
pub use page_guard::{PageGuard, PageScope};
pub use redact::Redactor;
pub use tls::ClientTls;
