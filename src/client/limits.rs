//! What keeps the client polite to DingTalk and fair to its callers: a rate limit (local, or with
//! a shared store one budget for every replica, see `shared_budget.rs`) with a bounded queue
//! served fairly between clients, a cap on each client's waiters, a cap on calls in flight, and a
//! pause whenever DingTalk says it is throttling.

use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::DefaultDirectRateLimiter;
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::time::Instant;

use super::fair_queue::{CallerKey, FairQueue, Refused};
use super::rate::{self, overloaded};
#[cfg(feature = "redis")]
use super::shared_budget::{Api, SharedBudget};
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

pub(crate) struct UpstreamLimits {
    /// The rate of this replica alone (no shared store).
    rate: Arc<DefaultDirectRateLimiter>,
    /// With a shared store: the budget of every replica, and this replica's share of it.
    #[cfg(feature = "redis")]
    shared: Option<SharedBudget>,
    /// Waiters take turns fairly between clients; the holder of the turn waits for the rate (or
    /// takes its slot from the shared budget).
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
        Self {
            rate: Arc::new(rate::limiter(rate::period(per_second, 1))),
            #[cfg(feature = "redis")]
            shared: None,
            queue: FairQueue::new(max_pending_per_client),
            queue_timeout,
            in_flight: Semaphore::new(max_in_flight),
            paused_until: Mutex::new(None),
            metrics: LimitMetrics::new(),
        }
    }

    /// The limits with one budget for every replica sharing `budget`'s store.
    #[cfg(feature = "redis")]
    pub(crate) fn shared(mut self, budget: SharedBudget) -> Self {
        self.shared = Some(budget);
        self
    }

    /// Waits for the right to send one call for `caller`, or says why not: DingTalk asked us to
    /// pause, the caller's client has too many waiters already, the wait would be longer than
    /// the queue allows, or (shared budget) the budget is spent until the slot promised.
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
                Refused::TimedOut => overloaded(Duration::from_secs(1)),
            })?;
        match self.shared_slot(caller).await? {
            // The slot is this call's: the next waiter may take its own while this one waits.
            Some(wait) => {
                drop(turn);
                tokio::time::sleep(wait).await;
            }
            None => {
                self.until_booked(give_up).await?;
                rate::wait_for(&self.local_rate(), give_up).await?;
                drop(turn);
            }
        }
        // A pause may have begun while we queued.
        self.check_pause()?;
        tokio::time::timeout_at(give_up.max(Instant::now()), self.in_flight.acquire())
            .await
            .map_err(|_| overloaded(Duration::from_secs(1)))?
            .map_err(|_| overloaded(Duration::from_secs(1)))
    }

    /// The slot the shared budget gives `caller`, or `None` to go by the local rate.
    #[cfg(feature = "redis")]
    async fn shared_slot(&self, caller: &CallerKey) -> Result<Option<Duration>, AuthError> {
        match &self.shared {
            Some(shared) => shared.userinfo(caller, self.queue_timeout).await,
            None => Ok(None),
        }
    }

    #[cfg(not(feature = "redis"))]
    async fn shared_slot(&self, _caller: &CallerKey) -> Result<Option<Duration>, AuthError> {
        Ok(None)
    }

    /// With a shared budget gone quiet: the slots this replica saw booked come first.
    #[cfg(feature = "redis")]
    async fn until_booked(&self, give_up: Instant) -> Result<(), AuthError> {
        match &self.shared {
            Some(shared) => shared.until_booked(Api::UserInfo, give_up).await,
            None => Ok(()),
        }
    }

    #[cfg(not(feature = "redis"))]
    async fn until_booked(&self, _give_up: Instant) -> Result<(), AuthError> {
        Ok(())
    }

    /// The local rate: this replica's own, or its share of the shared budget.
    fn local_rate(&self) -> Arc<DefaultDirectRateLimiter> {
        #[cfg(feature = "redis")]
        if let Some(shared) = &self.shared {
            return shared.local_share(Api::UserInfo);
        }
        self.rate.clone()
    }

    /// Waits for the right to call the token endpoint: with a shared store, a slot of its own
    /// budget (shared by the replicas); without, at once (a failing endpoint is asked at most once
    /// a second, and tokens are fetched once per app or corp).
    pub(crate) async fn token_turn(&self) -> Result<(), AuthError> {
        #[cfg(feature = "redis")]
        if let Some(shared) = &self.shared {
            return shared.token(self.queue_timeout).await;
        }
        Ok(())
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
