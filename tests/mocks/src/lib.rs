//! Mock vendor HTTP APIs on 127.0.0.1: fixtures for connector tests and the sandbox behind `conveyor demo`.
//!
//! - [`server`]: start any axum router on an ephemeral loopback port (HTTP or HTTPS); stops on drop.
//! - [`tls`]: a test CA, server and client certificates for mocks behind mutual TLS.
//! - [`rest`]: one configurable, generic paginated JSON API (pagination styles, auth, faults).
//! - [`sandbox`]: one cast rendered into four [`vendors`] mocks (Greenhouse, QuickBooks, Gusto, Genesys Cloud) for `conveyor demo`.
//! - [`vendors`]: one faithful mock per vendor connector, with a handle for faults, token expiry and data changes.

pub mod databases;
pub mod rest;
pub mod sandbox;
pub mod server;
pub mod smtp;
pub mod tls;
pub mod vendors;
mod wire;

pub use wire::RequestLog;
