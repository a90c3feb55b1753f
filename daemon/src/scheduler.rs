//! Cron scheduling: each source on its own schedule, never two runs of the
//! same source at once, and a graceful stop that lets the batch in flight
//! commit.

use std::future::Future;

use chrono::{DateTime, Utc};
use conveyor_config::Schedule;
use conveyor_plugin_api::CancelFlag;
use tokio::time::Instant;

/// Wall-clock time read through tokio's clock, so that tests with paused
/// time (`tokio::time::pause`) drive the schedule too.
#[derive(Clone, Copy)]
pub struct Clock {
    wall_at_start: DateTime<Utc>,
    instant_at_start: Instant,
}

impl Clock {
    pub fn new() -> Self {
        Clock {
            wall_at_start: Utc::now(),
            instant_at_start: Instant::now(),
        }
    }

    /// A clock that reads `at` now (for tests).
    #[cfg(test)]
    pub fn starting_at(at: DateTime<Utc>) -> Self {
        Clock {
            wall_at_start: at,
            instant_at_start: Instant::now(),
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        let elapsed =
            chrono::Duration::from_std(self.instant_at_start.elapsed()).unwrap_or_default();
        self.wall_at_start + elapsed
    }

    fn instant_for(&self, at: DateTime<Utc>) -> Instant {
        let ahead = (at - self.now()).to_std().unwrap_or_default();
        Instant::now() + ahead
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

/// The next firing strictly after `after`.
pub fn next_fire(schedule: &Schedule, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    schedule
        .cron
        .after(&after.with_timezone(&schedule.timezone))
        .next()
        .map(|t| t.with_timezone(&Utc))
}

/// Runs `job` at each firing of `schedule` until `cancel` is set. A run is
/// awaited before the next firing is computed, so runs never overlap;
/// firings missed while a run was still going are skipped, not queued.
/// `cancel` is looked at between runs only: a run in progress is the job's
/// to stop (the daemon retires a job on reload this way, letting its run
/// finish). `on_next` is told each firing waited for (the daemon publishes it as a
/// metric) and `job` the firing it runs for.
pub async fn run_on_schedule_with<F, Fut>(
    name: &str,
    schedule: &Schedule,
    clock: Clock,
    cancel: CancelFlag,
    on_next: impl Fn(DateTime<Utc>),
    mut job: F,
) where
    F: FnMut(DateTime<Utc>) -> Fut,
    Fut: Future<Output = ()>,
{
    loop {
        let Some(next) = next_fire(schedule, clock.now()) else {
            tracing::warn!(source = name, schedule = %schedule.expr, "schedule has no future firing");
            return;
        };
        tracing::debug!(source = name, next = %next, "next run");
        on_next(next);
        let wake = clock.instant_for(next);
        // Wake early on cancellation rather than sleeping out the interval.
        loop {
            if cancel.is_cancelled() {
                return;
            }
            let now = Instant::now();
            if now >= wake {
                break;
            }
            let step = (wake - now).min(std::time::Duration::from_millis(250));
            tokio::time::sleep(step).await;
        }
        if cancel.is_cancelled() {
            return;
        }
        job(next).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    fn every(expr: &str) -> Schedule {
        Schedule {
            expr: expr.into(),
            cron: conveyor_config::parse_cron(expr).unwrap(),
            timezone: chrono_tz::UTC,
        }
    }

    fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-01-05T09:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[tokio::test(start_paused = true)]
    async fn fires_on_each_tick() {
        let s = every("*/10 * * * * *");
        let count = Arc::new(AtomicUsize::new(0));
        let cancel = CancelFlag::default();
        let c = count.clone();
        let task = tokio::spawn({
            let cancel = cancel.clone();
            async move {
                run_on_schedule_with(
                    "t",
                    &s,
                    Clock::starting_at(t0()),
                    cancel,
                    |_| {},
                    |_| {
                        c.fetch_add(1, Ordering::SeqCst);
                        async {}
                    },
                )
                .await
            }
        });
        tokio::time::sleep(Duration::from_secs(65)).await;
        cancel.cancel();
        task.await.unwrap();
        // Firings at :10 :20 :30 :40 :50 and 1:00 after 09:00:00.
        assert_eq!(count.load(Ordering::SeqCst), 6);
    }

    #[tokio::test(start_paused = true)]
    async fn slow_runs_never_overlap_and_missed_ticks_are_skipped() {
        let s = every("*/10 * * * * *");
        let running = Arc::new(AtomicUsize::new(0));
        let max_seen = Arc::new(AtomicUsize::new(0));
        let runs = Arc::new(AtomicUsize::new(0));
        let cancel = CancelFlag::default();
        let (r, m, n) = (running.clone(), max_seen.clone(), runs.clone());
        let task = tokio::spawn({
            let cancel = cancel.clone();
            async move {
                run_on_schedule_with(
                    "t",
                    &s,
                    Clock::starting_at(t0()),
                    cancel,
                    |_| {},
                    move |_| {
                        let (r, m, n) = (r.clone(), m.clone(), n.clone());
                        async move {
                            let now = r.fetch_add(1, Ordering::SeqCst) + 1;
                            m.fetch_max(now, Ordering::SeqCst);
                            n.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_secs(25)).await;
                            r.fetch_sub(1, Ordering::SeqCst);
                        }
                    },
                )
                .await
            }
        });
        tokio::time::sleep(Duration::from_secs(105)).await;
        cancel.cancel();
        task.await.unwrap();
        assert_eq!(max_seen.load(Ordering::SeqCst), 1);
        // Runs start at 10, 40, 70, 100: each 25 s run swallows two ticks.
        assert_eq!(runs.load(Ordering::SeqCst), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn cancel_wakes_a_sleeping_schedule() {
        let s = every("0 0 * * * *"); // hourly
        let cancel = CancelFlag::default();
        let task = tokio::spawn({
            let cancel = cancel.clone();
            async move {
                run_on_schedule_with(
                    "t",
                    &s,
                    Clock::starting_at(t0()),
                    cancel,
                    |_| {},
                    |_| async {},
                )
                .await
            }
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        let before = Instant::now();
        cancel.cancel();
        task.await.unwrap();
        assert!(before.elapsed() <= Duration::from_millis(250));
    }

    #[test]
    fn schedule_respects_time_zone() {
        let mut s = every("0 0 9 * * *");
        s.timezone = chrono_tz::America::New_York;
        // 09:00 in New York in January is 14:00 UTC.
        assert_eq!(
            next_fire(&s, t0()).unwrap().to_rfc3339(),
            "2026-01-05T14:00:00+00:00"
        );
    }
}
