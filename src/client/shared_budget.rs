//! DingTalk's budget shared by replicas (feature `redis`, with a shared store): DingTalk allows
//! 20 calls a second per app and API, not per replica, so with a store every call to getuserinfo
//! and to the token endpoint first takes its slot from one budget in the store
//! (`store/budget.rs`: GCRA on the store's clock, one atomic script).
//!
//! **Honest `Retry-After`.** Under demand above the budget, a caller that cannot be given a slot
//! within the queue timeout is refused with 503, and the store promises its client the slot after
//! the last one promised: `Retry-After` is the time to that slot. Until that slot has come, new
//! callers are refused too and queue behind it, so refused clients are served in the order they
//! were refused, each when it comes back as told (with a fresh code), and their returns are spread
//! one slot apart rather than all in the next second. A client is the
//! [client key](crate::DingTalkAuthLayerBuilder::client_key_from)'s; callers nobody can tell
//! apart share one list of promises.
//!
//! **Fallback share.** While the store cannot say (down, slow past its timeout, or its keys
//! unusable), each replica sends at its share: the rate divided by the replicas that asked the
//! budget in the last few seconds, as the store last counted them (each ask records the replica's
//! random id). A replica that never reached the store counts itself alone.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::DefaultDirectRateLimiter;
use tokio::time::Instant;

use super::fair_queue::CallerKey;
use super::rate::{self, overloaded};
use crate::error::AuthError;
use crate::store::{Budget, BudgetAsk, PROMISE_KEPT, SharedStore};

/// The APIs whose budgets are shared.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Api {
    UserInfo,
    Token,
}

impl Api {
    fn name(self) -> &'static str {
        match self {
            Self::UserInfo => "getuserinfo",
            Self::Token => "token",
        }
    }
}

pub(crate) struct SharedBudget {
    store: SharedStore,
    app_key: Arc<str>,
    per_second: NonZeroU32,
    /// This replica's random id among the live replicas.
    replica: String,
    promises: AtomicU64,
    /// How many replicas the store last counted (1 until it answers).
    replicas: AtomicU32,
    /// How many promises one named client may hold at once: its share of waiters.
    max_promises: u32,
    userinfo: ApiState,
    token: ApiState,
    /// When this replica last went by its share: other replicas may still do so for a while.
    last_local: Booked,
}

/// What a replica knows of one API's budget.
struct ApiState {
    /// How far the budget was booked when it last answered this replica: where a budget whose
    /// key was lost starts again, and before which the fallback share sends nothing (the calls
    /// given those slots are still on their way).
    booked: Booked,
    /// Whether the budget answered the last ask: the first that it cannot marks the slots other
    /// replicas may hold as booked.
    answered: AtomicBool,
    share: LocalShare,
}

impl ApiState {
    fn new(per_second: NonZeroU32) -> Self {
        Self {
            booked: Booked::default(),
            answered: AtomicBool::new(false),
            share: LocalShare::new(per_second),
        }
    }
}

impl SharedBudget {
    pub(crate) fn new(
        store: SharedStore,
        app_key: &str,
        per_second: NonZeroU32,
        max_promises: usize,
    ) -> Self {
        let mut random = [0u8; 8];
        // Without randomness, the process id and the time still tell replicas apart.
        if getrandom::fill(&mut random).is_err() {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |since| since.as_nanos());
            random = (u64::from(std::process::id()) ^ nanos as u64).to_be_bytes();
        }
        Self {
            store,
            app_key: app_key.into(),
            per_second,
            replica: random.iter().map(|byte| format!("{byte:02x}")).collect(),
            promises: AtomicU64::new(0),
            replicas: AtomicU32::new(1),
            max_promises: u32::try_from(max_promises).unwrap_or(u32::MAX),
            userinfo: ApiState::new(per_second),
            token: ApiState::new(per_second),
            last_local: Booked::default(),
        }
    }

    /// The slot of a call to getuserinfo for `caller`: `Some(wait)` from the shared budget, or
    /// `None` when the store cannot say and the caller goes by [`Self::local_share`]. Refused
    /// (503 with an honest `Retry-After`) when no slot is free within `horizon`.
    pub(crate) async fn userinfo(
        &self,
        caller: &CallerKey,
        horizon: Duration,
    ) -> Result<Option<Duration>, AuthError> {
        match self.ask(Api::UserInfo, Some(caller.name()), horizon).await {
            // Just back from its share: the slot, then the share too (see `recovering`).
            Budget::Send { .. } if self.recovering() => Ok(None),
            Budget::Send { wait, .. } => Ok(Some(wait)),
            Budget::Refused { retry_after, .. } => {
                tracing::debug!(
                    retry_after_ms = retry_after.as_millis() as u64,
                    "the shared budget is spent: a slot is promised to the client"
                );
                Err(overloaded(retry_after))
            }
            Budget::Local { .. } => Ok(None),
        }
    }

    /// Waits for a slot of the token endpoint, at most `horizon`.
    pub(crate) async fn token(&self, horizon: Duration) -> Result<(), AuthError> {
        let give_up = Instant::now() + horizon;
        match self.ask(Api::Token, None, horizon).await {
            Budget::Send { wait, .. } => {
                tokio::time::sleep(wait).await;
                if self.recovering() {
                    return rate::wait_for(&self.local_share(Api::Token), give_up).await;
                }
                Ok(())
            }
            Budget::Refused { retry_after, .. } => Err(overloaded(retry_after)),
            Budget::Local { .. } => {
                self.until_booked(Api::Token, give_up).await?;
                rate::wait_for(&self.local_share(Api::Token), give_up).await
            }
        }
    }

    /// Waits, before a call at the fallback share, for the slots this replica saw booked: the
    /// calls given them may not have been sent yet. Refused if that is past `give_up`.
    pub(crate) async fn until_booked(&self, api: Api, give_up: Instant) -> Result<(), AuthError> {
        let booked = self.booked(api).until();
        if booked > give_up {
            return Err(overloaded(booked - Instant::now()));
        }
        tokio::time::sleep_until(booked).await;
        Ok(())
    }

    /// Whether this replica went by its share lately. The other replicas lost the budget when it
    /// did and find it again each at its own retry, up to [`RECOVERY`] later; until then they may
    /// still send at their shares, so this one sends no faster than its share either.
    fn recovering(&self) -> bool {
        self.last_local
            .seen()
            .is_some_and(|local| local.elapsed() < RECOVERY)
    }

    fn state(&self, api: Api) -> &ApiState {
        match api {
            Api::UserInfo => &self.userinfo,
            Api::Token => &self.token,
        }
    }

    fn booked(&self, api: Api) -> &Booked {
        &self.state(api).booked
    }

    /// This replica's share of `api`'s rate, for while the store cannot say.
    pub(crate) fn local_share(&self, api: Api) -> Arc<DefaultDirectRateLimiter> {
        let replicas = self.replicas.load(Ordering::Relaxed);
        self.state(api).share.at(replicas)
    }

    async fn ask(&self, api: Api, client: Option<Option<&str>>, horizon: Duration) -> Budget {
        let promise = format!(
            "{}-{:x}",
            self.replica,
            self.promises.fetch_add(1, Ordering::Relaxed)
        );
        let booked = self.booked(api);
        // Clients nobody can tell apart share one list of promises: no cap there.
        let named = matches!(client, Some(Some(_)));
        let ask = BudgetAsk {
            api: api.name(),
            period: rate::period(self.per_second, 1),
            horizon,
            replica: &self.replica,
            client,
            promise: &promise,
            max_promises: if named { self.max_promises } else { 0 },
            booked: booked.until().saturating_duration_since(Instant::now()),
            // Its key is kept `PROMISE_KEPT` past its last slot (a little less, for the clocks).
            // A replica that went by its share since has `booked` past the slots given before.
            in_use: self.state(api).answered.load(Ordering::Relaxed)
                && booked.seen().is_some_and(|slot| {
                    slot + PROMISE_KEPT.saturating_sub(Duration::from_millis(500)) > Instant::now()
                }),
        };
        let answer = self.store.budget(&self.app_key, &ask).await;
        let answered = &self.state(api).answered;
        match answer {
            Budget::Send { ahead, .. } | Budget::Refused { ahead, .. } => {
                answered.store(true, Ordering::Relaxed);
                booked.saw(Instant::now() + ahead);
            }
            Budget::Local { .. } => {
                let now = Instant::now();
                self.last_local.saw(now);
                // The budget just stopped answering. The calls given its slots (as far ahead as
                // it was booked when it last answered) go first, and DingTalk counts the last
                // second of them: this replica's share starts one of its own spacings past them,
                // so that no second holds both the budget's calls and the shares' first ones.
                if answered.swap(false, Ordering::Relaxed) {
                    let replicas = self.replicas.load(Ordering::Relaxed);
                    let spacing = rate::period(self.per_second, replicas).mul_f64(SHARE_MARGIN);
                    booked.saw(booked.until().max(now) + spacing);
                }
            }
        }
        let replicas = match answer {
            Budget::Send { replicas, .. }
            | Budget::Refused { replicas, .. }
            | Budget::Local {
                replicas: Some(replicas),
            } => Some(replicas),
            Budget::Local { replicas: None } => None,
        };
        if let Some(replicas) = replicas {
            // Just back from the share, a Redis that restarted empty counts only the replicas
            // back so far: the others still send at their shares, so the count may not drop.
            if self.recovering() {
                self.replicas.fetch_max(replicas.max(1), Ordering::Relaxed);
            } else {
                self.replicas.store(replicas.max(1), Ordering::Relaxed);
            }
        }
        answer
    }
}

/// The latest slot a budget was seen booked to, by this replica.
#[derive(Default)]
struct Booked(Mutex<Option<Instant>>);

impl Booked {
    fn seen(&self) -> Option<Instant> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn until(&self) -> Instant {
        self.seen().unwrap_or_else(Instant::now)
    }

    fn saw(&self, slot: Instant) {
        let mut booked = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if booked.is_none_or(|current| current < slot) {
            *booked = Some(slot);
        }
    }
}

/// How long after a replica last went by its share the others may still do so: the store's retry
/// and the budget's (a second each).
const RECOVERY: Duration = Duration::from_secs(2);

/// Replicas sending at their shares are not in step: each may see one call more than its share
/// fall into one of DingTalk's one-second windows when its calls are delayed unevenly on their
/// way, and four replicas each one over is 20% over. Shares are spaced this much wider than the
/// rate's (already 5% wide) spacing: 4 replicas of a rate of 20 send 3.8 a second each.
const SHARE_MARGIN: f64 = 1.25;

/// A local limiter at this replica's share, rebuilt when the number of replicas changes.
struct LocalShare {
    per_second: NonZeroU32,
    current: Mutex<(u32, Arc<DefaultDirectRateLimiter>)>,
}

impl LocalShare {
    fn new(per_second: NonZeroU32) -> Self {
        let limiter = rate::limiter(rate::period(per_second, 1));
        Self {
            per_second,
            current: Mutex::new((1, Arc::new(limiter))),
        }
    }

    fn at(&self, replicas: u32) -> Arc<DefaultDirectRateLimiter> {
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if current.0 != replicas {
            let mut period = rate::period(self.per_second, replicas);
            if replicas > 1 {
                period = period.mul_f64(SHARE_MARGIN);
            }
            let limiter = rate::limiter(period);
            *current = (replicas, Arc::new(limiter));
        }
        current.1.clone()
    }
}

impl std::fmt::Debug for SharedBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedBudget")
            .field("per_second", &self.per_second)
            .field("replicas", &self.replicas.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}
