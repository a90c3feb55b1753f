//! End-to-end tests: the real `conveyor` binary and library against mock
//! vendor APIs on 127.0.0.1, writing real DuckDB files.

mod support;

mod act_now;
mod cli;
mod cluster;
mod cluster_alerts;
#[cfg(feature = "demo")]
mod console;
mod crash;
mod daemon;
mod database;
#[cfg(feature = "demo")]
mod demo;
mod hardening_paging;
mod in_process;
mod outbox;
mod pgwire;
mod plugin_isolation;
mod plugins;
mod publish;
mod recon;
mod reports;
mod rules;
mod ruletest;
mod secrets;
mod service;
mod sql_surface;
mod tidy;
mod warehouse;
