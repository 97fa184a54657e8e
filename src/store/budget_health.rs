//! Whether the shared DingTalk budget works, for the store that asks it: a failing budget costs
//! one warning and one ask a second, not one per login.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// While a budget fails, how often it is asked again.
const BUDGET_RETRY: Duration = Duration::from_secs(1);

/// Whether the budget works: one warning when it stops, one note when it works again, and while
/// it fails, one ask per [`BUDGET_RETRY`].
pub(crate) struct BudgetHealth {
    failing: AtomicBool,
    /// While failing: when the next ask may go, in milliseconds since `epoch`.
    next_ask: AtomicU64,
    epoch: Instant,
}

impl BudgetHealth {
    pub(crate) fn new() -> Self {
        Self {
            failing: AtomicBool::new(false),
            next_ask: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    pub(super) fn may_ask(&self) -> bool {
        if !self.failing.load(Ordering::Acquire) {
            return true;
        }
        let (now, next) = (self.now(), self.next_ask.load(Ordering::Acquire));
        now >= next
            && self
                .next_ask
                .compare_exchange(
                    next,
                    now + millis(BUDGET_RETRY),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_ok()
    }

    pub(super) fn worked(&self) {
        if self.failing.swap(false, Ordering::AcqRel) {
            tracing::info!("the shared DingTalk budget answers again: replicas share it again");
        }
    }

    pub(super) fn failed(&self, store: &str, why: &dyn std::fmt::Display) {
        self.next_ask
            .store(self.now() + millis(BUDGET_RETRY), Ordering::Release);
        if !self.failing.swap(true, Ordering::AcqRel) {
            tracing::warn!(
                store,
                error = %why,
                "the shared DingTalk budget failed: each replica sends at its share of the rate \
                 (the rate divided by the replicas seen lately) until it answers again"
            );
        } else {
            tracing::debug!(error = %why, "the shared DingTalk budget failed again");
        }
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
