//! Progress of long syncs: live bars on a terminal, nothing otherwise (the
//! log lines say what happened).

use std::time::Instant;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::sync::RunStatus;

/// Hands out one progress line per stream being synced.
#[derive(Clone)]
pub struct Progress {
    multi: Option<MultiProgress>,
}

impl Progress {
    /// Live bars when stderr is a terminal.
    pub fn for_terminal() -> Self {
        use std::io::IsTerminal;
        if std::io::stderr().is_terminal() {
            Progress {
                multi: Some(MultiProgress::with_draw_target(ProgressDrawTarget::stderr())),
            }
        } else {
            Progress::hidden()
        }
    }

    pub fn hidden() -> Self {
        Progress { multi: None }
    }

    pub fn stream(&self, source: &str, stream: &str) -> StreamProgress {
        let bar = self.multi.as_ref().map(|m| {
            let b = m.add(ProgressBar::new_spinner());
            b.set_style(
                ProgressStyle::with_template("{spinner} {prefix:.bold} {msg}")
                    .expect("valid template"),
            );
            b.set_prefix(format!("{source}.{stream}"));
            b.enable_steady_tick(std::time::Duration::from_millis(120));
            b
        });
        StreamProgress {
            bar,
            started: Instant::now(),
        }
    }
}

pub struct StreamProgress {
    bar: Option<ProgressBar>,
    started: Instant,
}

impl StreamProgress {
    pub fn update(&self, pages: u64, rows: u64) {
        if let Some(b) = &self.bar {
            let secs = self.started.elapsed().as_secs_f64().max(1e-3);
            b.set_message(format!(
                "{pages} pages, {rows} rows, {:.0} rows/s",
                rows as f64 / secs
            ));
        }
    }

    pub fn finish(&self, status: RunStatus, rows: u64, error: Option<&str>) {
        if let Some(b) = &self.bar {
            let secs = self.started.elapsed().as_secs_f64();
            match error {
                Some(e) => b.abandon_with_message(format!("FAILED after {rows} rows: {e}")),
                None => b.finish_with_message(format!(
                    "{} — {rows} rows in {secs:.1}s",
                    status.as_str()
                )),
            }
        }
    }
}
