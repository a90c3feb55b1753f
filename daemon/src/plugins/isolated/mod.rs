//! Process isolation for plugin sources (`isolation = "process"`): the
//! plugin runs in a child `conveyor plugin-host` process that speaks the
//! plugin contract to the daemon over a pipe — Arrow IPC for batches, JSON
//! for the open config, checkpoints, log lines and errors — so a segfault,
//! an `abort()` or a runaway allocation (the child's `memory_limit`) fails
//! that source's run instead of the daemon.
//!
//! `frame.rs` the framing, `messages.rs` what the frames carry, `child.rs`
//! the plugin host, `parent.rs` the daemon's [`IsolatedConnector`],
//! `exit.rs` how a child that died is described.

mod child;
mod exit;
mod frame;
mod messages;
mod parent;

pub use child::run as plugin_host;
pub use parent::{IsolatedConnector, CANCEL_GRACE};
