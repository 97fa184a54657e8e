//! [`Health`]: whether the shared store answers, shared by every request: one warning when it
//! stops, one note when it is back, and while it is down, no request waits for it but one probe
//! per retry interval.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::metrics::StoreMetrics;

/// `state` counts transitions: even while up, odd while down. A call remembers the state it began
/// in, so that calls sent before an outage and answered during it neither end it nor report it
/// twice.
pub(crate) struct Health {
    state: AtomicU64,
    /// While down: when the next probe may go, in milliseconds since `epoch`.
    next_probe: AtomicU64,
    epoch: Instant,
    retry_after: Duration,
    /// What the log lines call the store.
    name: &'static str,
    /// Outages, and whether it answers now (feature `metrics`; else nothing).
    metrics: StoreMetrics,
}

impl Health {
    pub(crate) fn new(name: &'static str, retry_after: Duration) -> Self {
        Self {
            state: AtomicU64::new(0),
            next_probe: AtomicU64::new(0),
            epoch: Instant::now(),
            retry_after,
            name,
            metrics: StoreMetrics::new(),
        }
    }

    pub(crate) fn is_up(&self) -> bool {
        self.state.load(Ordering::Acquire).is_multiple_of(2)
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn retry_millis(&self) -> u64 {
        u64::try_from(self.retry_after.as_millis()).unwrap_or(u64::MAX)
    }

    /// The state a call begins in, whatever it is: for the calls of a lock's holder, which must
    /// reach the store even while it is thought down.
    pub(crate) fn current(&self) -> u64 {
        self.state.load(Ordering::Acquire)
    }

    /// Whether a call may go now, and if so the state it begins in: always while up; while down,
    /// one probe per retry interval.
    pub(crate) fn try_begin(&self) -> Option<u64> {
        let state = self.state.load(Ordering::Acquire);
        if state.is_multiple_of(2) {
            return Some(state);
        }
        let (now, next) = (self.now(), self.next_probe.load(Ordering::Acquire));
        (now >= next
            && self
                .next_probe
                .compare_exchange(
                    next,
                    now.saturating_add(self.retry_millis()),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_ok())
        .then_some(state)
    }

    pub(crate) fn succeeded(&self, began: u64) {
        // Only a call sent while down ends the outage.
        if !began.is_multiple_of(2)
            && self
                .state
                .compare_exchange(began, began + 1, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            self.metrics.came_back();
            tracing::info!(
                store = self.name,
                "the shared store answers again: replicas share identities and exchanges again"
            );
        }
    }

    pub(crate) fn failed(&self, began: u64, operation: &'static str, error: &dyn fmt::Display) {
        self.next_probe.store(
            self.now().saturating_add(self.retry_millis()),
            Ordering::Release,
        );
        if began.is_multiple_of(2)
            && self
                .state
                .compare_exchange(began, began + 1, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            self.metrics.went_down();
            tracing::warn!(
                store = self.name,
                operation,
                error = %error,
                retry_after_ms = self.retry_millis(),
                "the shared store is unreachable or too slow: serving from the local cache and \
                 exchanging codes directly until it answers again"
            );
        } else {
            tracing::debug!(store = self.name, operation, error = %error, "shared store call failed");
        }
    }
}

impl fmt::Debug for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Health")
            .field("up", &self.is_up())
            .field("retry_after", &self.retry_after)
            .finish()
    }
}
