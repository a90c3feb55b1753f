//! `conveyor demo` (placeholder until the sandbox lands).

use std::path::Path;
use std::process::ExitCode;

pub async fn demo_command(_dir: &Path) -> anyhow::Result<ExitCode> {
    anyhow::bail!("demo not ready")
}
