//! The identity cache: users by code, so that each code is exchanged with DingTalk exactly once,
//! and codes DingTalk rejected, so that replaying one costs no call.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use moka::Equivalent;
use moka::future::Cache;
use moka::notification::RemovalCause;

use tokio::time::Instant;

mod identity;
mod ready_now;

pub(crate) use self::identity::CachedIdentity;
use self::identity::UntilItExpires;
pub(crate) use self::ready_now::ready_now;
use crate::error::{AuthError, AuthErrorKind};
use crate::hot_slots::HotSlots;
use crate::key::{IdentityKey, IdentityKeyRef};
use crate::metrics::CacheMetrics;
use crate::store::{CODE_LIFETIME, Shared, SharedStore};
use crate::user::AuthenticatedDingTalkUser;

/// Default number of identities kept.
pub const DEFAULT_CACHE_CAPACITY: u64 = 10_000;
/// Default time a code is accepted again after its exchange: its replay window.
pub const DEFAULT_CODE_REUSE_WINDOW: Duration = Duration::from_secs(30);
/// The longest replay window accepted: a code's whole life at DingTalk.
pub const MAX_CODE_REUSE_WINDOW: Duration = CODE_LIFETIME;
/// Former name of [`DEFAULT_CODE_REUSE_WINDOW`].
#[deprecated(since = "0.1.0", note = "use DEFAULT_CODE_REUSE_WINDOW")]
pub const DEFAULT_CACHE_TTL: Duration = DEFAULT_CODE_REUSE_WINDOW;
/// The caches' hasher: foldhash with a random seed per cache, several times faster than SipHash on
/// a code and as hard to aim collisions at without the seed.
type Hasher = foldhash::fast::RandomState;

/// How many codes hit lately are kept in front of moka: room for the most an app can have live at
/// once under DingTalk's limits (20 logins a second over the longest reuse window, 300 s: 6,000).
const HOT_SLOTS: usize = 8192;
/// Default number of rejected codes remembered.
pub const DEFAULT_REJECTED_CODE_CAPACITY: u64 = 10_000;
/// Default time a rejected code is remembered.
pub const DEFAULT_REJECTED_CODE_TTL: Duration = Duration::from_secs(60);

/// The sizes and lifetimes of the caches.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CacheLimits {
    pub(crate) capacity: u64,
    pub(crate) reuse_window: Duration,
    pub(crate) rejected_capacity: u64,
    pub(crate) rejected_ttl: Duration,
}

/// How full the caches of a layer are; see
/// [`DingTalkAuthLayer::cache_stats`](crate::DingTalkAuthLayer::cache_stats).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Users cached by code.
    pub identities: u64,
    /// Codes DingTalk rejected, remembered so that replays cost no call.
    pub rejected_codes: u64,
}

/// A cached identity in the hot slots, with its expiry beside it.
#[derive(Clone)]
struct HotIdentity {
    identity: CachedIdentity,
    expires_at: std::time::Instant,
}

/// A code DingTalk rejected, and whether the shared store confirmed that no other replica got
/// its user (always, without a store).
#[derive(Clone, Copy)]
struct Rejection {
    confirmed: bool,
}

/// What is known of a code without asking DingTalk.
pub(crate) enum Known {
    User(CachedIdentity),
    Rejected(AuthError),
}

/// Identities by auth code, with concurrent misses for one code coalesced into one exchange.
///
/// With a shared store (replicas), a local miss asks the store before DingTalk: see
/// [`crate::store`].
#[derive(Clone)]
pub(crate) struct IdentityCache {
    users: Cache<IdentityKey, CachedIdentity, Hasher>,
    /// The codes hit lately, in front of `users`: a hit here skips moka's hashing and read
    /// recording. Bounded and fixed in size; moka stays the cache of record.
    hot: Arc<HotSlots<IdentityKey, HotIdentity>>,
    rejected: Cache<IdentityKey, Rejection, Hasher>,
    store: Option<SharedStore>,
    /// The app the codes belong to: part of their names in the store.
    app_key: Arc<str>,
    reuse_window: Duration,
    /// Hits, misses and the number cached (feature `metrics`; else nothing).
    metrics: Arc<CacheMetrics>,
}

impl IdentityCache {
    pub(crate) fn new(limits: CacheLimits, app_key: &str, store: Option<SharedStore>) -> Self {
        let metrics = Arc::new(CacheMetrics::new());
        let evictions = metrics.clone();
        let users = Cache::builder()
            .name("dingtalk-identities")
            .max_capacity(limits.capacity)
            .expire_after(UntilItExpires);
        // Without the feature, moka keeps no removal notifications.
        let users = match metrics.counts() {
            true => users.eviction_listener(move |_, _, cause| {
                if cause != RemovalCause::Replaced {
                    evictions.evicted();
                }
            }),
            false => users,
        };
        Self {
            metrics,
            store,
            app_key: app_key.into(),
            reuse_window: limits.reuse_window,
            hot: Arc::new(HotSlots::new(HOT_SLOTS)),
            users: users.build_with_hasher(Hasher::default()),
            rejected: Cache::builder()
                .name("dingtalk-rejected-codes")
                .max_capacity(limits.rejected_capacity)
                .time_to_live(limits.rejected_ttl)
                .build_with_hasher(Hasher::default()),
        }
    }

    pub(crate) fn store(&self) -> Option<&SharedStore> {
        self.store.as_ref()
    }

    /// What is known of a code without asking DingTalk: its user, or that DingTalk rejected it.
    /// A rejection the store did not confirm is not known here: another replica's user may stand
    /// behind it, which the exchange path asks the store for.
    pub(crate) async fn get(&self, key: IdentityKeyRef<'_>) -> Option<Known> {
        let known = self.lookup(key).await;
        self.count(known.as_ref());
        known
    }

    /// A hit counts; a lookup that finds nothing does not: the exchange that follows is the miss.
    fn count(&self, known: Option<&Known>) {
        match known {
            Some(Known::User(_)) => self.metrics.hit(),
            Some(Known::Rejected(_)) => self.metrics.rejected(),
            None => {}
        }
    }

    /// [`get`](Self::get), not counted.
    async fn lookup(&self, key: IdentityKeyRef<'_>) -> Option<Known> {
        if let Some(identity) = self.users.get(&key).await {
            return Some(Known::User(identity));
        }
        let rejection = self.rejected.get(&key).await?;
        (rejection.confirmed || self.store.is_none())
            .then(|| Known::Rejected(AuthError::code_rejected()))
    }

    /// [`get`](Self::get) without waiting: `None` also when the lookup would have to wait.
    ///
    /// moka's lookups are async only to take its housekeeping lock now and then, and are almost
    /// always ready at once: polled once here, a cache hit needs no boxed future. A lookup that
    /// would wait is dropped (moka's operations are cancel-safe) and done again by `get`.
    pub(crate) fn get_now(&self, key: IdentityKeyRef<'_>) -> Option<Known> {
        let is_key = |held: &IdentityKey| key.equivalent(held);
        if let Some(hot) = self.hot.get(key, is_key) {
            if std::time::Instant::now() < hot.expires_at {
                self.metrics.hit();
                return Some(Known::User(hot.identity));
            }
            self.hot.remove(key, is_key);
        }
        let known = ready_now(self.lookup(key)).flatten();
        self.count(known.as_ref());
        if let Some(Known::User(identity)) = &known {
            let now = std::time::Instant::now();
            let expires_at = identity.expires_at();
            if now < expires_at {
                let make = || {
                    let hot = HotIdentity {
                        identity: identity.clone(),
                        expires_at,
                    };
                    (key.to_owned(), hot)
                };
                // The slot's own copy of the expiry: no cold entry is read to decide.
                self.hot.insert(key, make, |held| now < held.expires_at);
            }
        }
        known
    }

    /// The user of `key`, exchanging the code with `exchange` unless it is cached or being
    /// exchanged. The caller waits until `send_by` at most; so does the exchange to send its call.
    ///
    /// The exchange runs in a task of its own that also stores the result, and a call sent to
    /// DingTalk runs to its answer: a caller that goes away or times out does not abandon a call
    /// that may already have spent the code, and its retry finds the result. Errors are shared
    /// with the callers waiting at that moment; only DingTalk's rejections are remembered.
    pub(crate) async fn get_or_exchange<F, Fut>(
        &self,
        key: IdentityKey,
        send_by: Instant,
        exchange: F,
    ) -> Result<CachedIdentity, AuthError>
    where
        F: FnOnce(IdentityKey) -> Fut + Send + 'static,
        Fut: Future<Output = Result<AuthenticatedDingTalkUser, AuthError>> + Send + 'static,
    {
        let cache = self.clone();
        let exchange = tokio::spawn(async move {
            let init = cache.exchange_once(key.clone(), send_by, exchange);
            cache
                .users
                .try_get_with(key, init)
                .await
                .map_err(|shared| AuthError::clone(&shared))
        });
        match tokio::time::timeout_at(send_by, exchange).await {
            Ok(Ok(result)) => result,
            Ok(Err(join_error)) => {
                tracing::error!(error = %join_error, "the exchange task failed");
                Err(AuthError::new(
                    AuthErrorKind::Internal,
                    "the exchange with DingTalk failed unexpectedly",
                ))
            }
            Err(_elapsed) => {
                tracing::warn!(
                    "the exchange did not finish within the budget; a call already sent goes on \
                     and its result answers the retry"
                );
                Err(AuthError::new(
                    AuthErrorKind::UpstreamTimeout,
                    "DingTalk did not answer in time",
                ))
            }
        }
    }

    /// The one exchange of `key`, run inside the cache's coalescing: through the store when
    /// replicas share one, directly otherwise. Remembers DingTalk's rejections.
    async fn exchange_once<F, Fut>(
        &self,
        key: IdentityKey,
        send_by: Instant,
        exchange: F,
    ) -> Result<CachedIdentity, AuthError>
    where
        F: FnOnce(IdentityKey) -> Fut,
        Fut: Future<Output = Result<AuthenticatedDingTalkUser, AuthError>>,
    {
        if let Some(rejection) = self.rejected.get(&key).await {
            // A caller that missed the rejection by a hair must not spend a second call.
            self.metrics.rejected();
            let replayed = self.replayed_rejection(&key, rejection).await;
            if replayed.is_ok() {
                self.metrics.cached();
            }
            return replayed;
        }
        self.metrics.miss();
        let shared = match &self.store {
            Some(store) => {
                let exchanged = key.clone();
                let exchange = || exchange(exchanged);
                store.exchange(&self.app_key, &key, send_by, exchange).await
            }
            None => Shared {
                result: exchange(key.clone()).await,
                confirmed: true,
                ttl: None,
            },
        };
        if let Err(error) = &shared.result
            && error.kind() == AuthErrorKind::CodeRejected
        {
            // Remembered before the waiters wake, so that none of them calls again.
            let rejection = Rejection {
                confirmed: shared.confirmed,
            };
            self.rejected.insert(key, rejection).await;
        }
        let lifetime = self.lifetime(shared.ttl);
        if shared.result.is_ok() {
            self.metrics.cached();
        }
        shared.result.map(|user| {
            CachedIdentity::new(user, lifetime, self.reuse_window.saturating_sub(lifetime))
        })
    }

    /// How long a user is kept here: the reuse window, or what the store's copy has left of it.
    fn lifetime(&self, stored_ttl: Option<Duration>) -> Duration {
        stored_ttl.map_or(self.reuse_window, |ttl| ttl.min(self.reuse_window))
    }

    /// A code DingTalk rejected here, presented again. If the store did not confirm the rejection
    /// (it failed at the time), another replica's user may be there now: ask, without DingTalk.
    async fn replayed_rejection(
        &self,
        key: &IdentityKey,
        rejection: Rejection,
    ) -> Result<CachedIdentity, AuthError> {
        if let (false, Some(store)) = (rejection.confirmed, &self.store)
            && let Some((user, ttl)) = store.peek_user(&self.app_key, key).await
        {
            tracing::debug!("a rejected code's user was found in the store");
            self.rejected.invalidate(key).await;
            let lifetime = self.lifetime(ttl);
            let age = self.reuse_window.saturating_sub(lifetime);
            return Ok(CachedIdentity::new(user, lifetime, age));
        }
        Err(AuthError::code_rejected())
    }

    /// Whether this request may start the code's one session: the first on this replica, and
    /// with a store, the first across replicas.
    pub(crate) async fn start_session(&self, key: &IdentityKey, identity: &CachedIdentity) -> bool {
        if !identity.start_session_locally() {
            return false;
        }
        match &self.store {
            Some(store) => store.first_session(&self.app_key, key).await,
            None => true,
        }
    }

    /// How full the caches are (after pending evictions ran).
    pub(crate) async fn stats(&self) -> CacheStats {
        self.users.run_pending_tasks().await;
        self.rejected.run_pending_tasks().await;
        CacheStats {
            identities: self.users.entry_count(),
            rejected_codes: self.rejected.entry_count(),
        }
    }
}
