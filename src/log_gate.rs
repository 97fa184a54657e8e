//! [`LogGate`]: a log line at most once a period, so that a flood of one failure (junk corp ids,
//! forged values in Redis) cannot flood the logs. What the gate holds back goes to `debug`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub(crate) struct LogGate {
    epoch: Instant,
    period: Duration,
    /// Milliseconds since `epoch` before which nothing more is let through; 0 before the first.
    next: AtomicU64,
}

impl LogGate {
    pub(crate) fn new(period: Duration) -> Self {
        Self {
            epoch: Instant::now(),
            period,
            next: AtomicU64::new(0),
        }
    }

    /// A gate that lets one line through, ever.
    pub(crate) fn once() -> Self {
        Self::new(Duration::MAX)
    }

    /// Whether a line may be logged now; if so, the next one waits a period.
    pub(crate) fn allow(&self) -> bool {
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        let next = self.next.load(Ordering::Acquire);
        let period = u64::try_from(self.period.as_millis()).unwrap_or(u64::MAX);
        now >= next
            && self
                .next
                .compare_exchange(
                    next,
                    now.saturating_add(period).max(1),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_ok()
    }
}

impl std::fmt::Debug for LogGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogGate")
            .field("period", &self.period)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_a_period() {
        let gate = LogGate::new(Duration::from_secs(60));
        assert!(gate.allow());
        assert!(!gate.allow());
        assert!(!gate.allow());
    }
}
