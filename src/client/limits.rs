//! What keeps the client polite to DingTalk and fair to its callers: a local rate limit with a
//! bounded queue served fairly between clients, a cap on each client's waiters, a cap on calls in
//! flight, and a pause whenever DingTalk says it is throttling.

use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter, clock::Clock};
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::time::Instant;

use super::fair_queue::{CallerKey, FairQueue, Refused};
use crate::error::{AuthError, AuthErrorKind};
use crate::metrics::{LimitMetrics, Refusal};

/// DingTalk's limit per app and API: 20 calls a second.
pub const DEFAULT_RATE_LIMIT: u32 = 20;
/// How long a new exchange may wait for its turn under the rate limit.
pub const DEFAULT_QUEUE_TIMEOUT: Duration = Duration::from_secs(1);
/// How many calls to getuserinfo may be in flight at once.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 64;
/// How many new exchanges of one client may wait for their turn at once.
pub const DEFAULT_MAX_PENDING_PER_CLIENT: usize = 8;

/// Calls are spaced 5% wider than the configured rate, so that network jitter cannot push
/// `rate + 1` calls into one of DingTalk's one-second windows.
const JITTER_HEADROOM: f64 = 1.05;

pub(crate) struct UpstreamLimits {
    rate: DefaultDirectRateLimiter,
    /// Waiters take turns fairly between clients; the holder of the turn waits for the rate.
    queue: FairQueue,
    queue_timeout: Duration,
    in_flight: Semaphore,
    /// While DingTalk throttles us, nothing is sent before this instant.
    paused_until: Mutex<Option<Instant>>,
    /// Refusals and waits (feature `metrics`; else nothing).
    metrics: LimitMetrics,
}

impl UpstreamLimits {
    pub(crate) fn new(
        per_second: NonZeroU32,
        queue_timeout: Duration,
        max_in_flight: usize,
        max_pending_per_client: usize,
    ) -> Self {
        let period = Duration::from_secs(1).div_f64(f64::from(per_second.get()) / JITTER_HEADROOM);
        let quota = Quota::with_period(period).expect("a positive period");
        Self {
            rate: RateLimiter::direct(quota),
            queue: FairQueue::new(max_pending_per_client),
            queue_timeout,
            in_flight: Semaphore::new(max_in_flight),
            paused_until: Mutex::new(None),
            metrics: LimitMetrics::new(),
        }
    }

    /// Waits for the right to send one call for `caller`, or says why not: DingTalk asked us to
    /// pause, the caller's client has too many waiters already, or the wait would be longer than
    /// the queue allows.
    pub(crate) async fn admit(&self, caller: &CallerKey) -> Result<SemaphorePermit<'_>, AuthError> {
        let started = Instant::now();
        let admitted = self.wait_for_turn(caller, started).await;
        if let Err(error) = &admitted {
            self.metrics.refused(match error.kind() {
                AuthErrorKind::Throttled => Refusal::ThrottlePause,
                AuthErrorKind::TooManyAttempts => Refusal::PerClient,
                _ => Refusal::RateLimit,
            });
        }
        // Refused at once (a pause, a client past its share): no wait to record.
        if !matches!(&admitted, Err(error) if error.kind() != AuthErrorKind::Overloaded) {
            self.metrics.waited(started.elapsed());
        }
        admitted
    }

    async fn wait_for_turn(
        &self,
        caller: &CallerKey,
        started: Instant,
    ) -> Result<SemaphorePermit<'_>, AuthError> {
        self.check_pause()?;
        let give_up = started + self.queue_timeout;
        let turn = self
            .queue
            .turn(caller, give_up)
            .await
            .map_err(|refused| match refused {
                Refused::TooManyPending => {
                    tracing::debug!("a client past its share of new exchanges");
                    AuthError::too_many_attempts()
                }
                Refused::TimedOut => overloaded(),
            })?;
        loop {
            match self.rate.check() {
                Ok(()) => break,
                Err(not_until) => {
                    let wait = not_until.wait_time_from(self.rate.clock().now());
                    if Instant::now() + wait > give_up {
                        return Err(overloaded());
                    }
                    tokio::time::sleep(wait).await;
                }
            }
        }
        drop(turn);
        // A pause may have begun while we queued.
        self.check_pause()?;
        tokio::time::timeout_at(give_up, self.in_flight.acquire())
            .await
            .map_err(|_| overloaded())?
            .map_err(|_| overloaded())
    }

    fn check_pause(&self) -> Result<(), AuthError> {
        let paused_until = *self.paused_until.lock().unwrap_or_else(|p| p.into_inner());
        match paused_until {
            Some(until) if Instant::now() < until => Err(AuthError::throttled(
                until - Instant::now(),
                "DingTalk is throttling this app; try again shortly",
            )),
            _ => Ok(()),
        }
    }

    /// DingTalk said it is throttling: send nothing for `wait`.
    pub(crate) fn pause(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut paused_until = self.paused_until.lock().unwrap_or_else(|p| p.into_inner());
        if paused_until.is_none_or(|current| current < until) {
            *paused_until = Some(until);
        }
    }
}

fn overloaded() -> AuthError {
    AuthError::new(
        AuthErrorKind::Overloaded,
        "too many new logins at once; try again shortly",
    )
    .with_retry_after(Duration::from_secs(1))
}
