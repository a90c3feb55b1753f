//! End-to-end tests: the real `conveyor` binary and library against mock
//! vendor APIs on 127.0.0.1, writing real DuckDB files.

mod support;

mod act_now;
mod cli;
mod crash;
mod daemon;
#[cfg(feature = "demo")]
mod demo;
mod outbox;
mod pgwire;
mod plugins;
mod recon;
mod rules;
mod ruletest;
mod secrets;
mod service;
mod sql_surface;
mod tidy;
mod warehouse;
