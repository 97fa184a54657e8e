//! The identity cache: users by code, so that each code is exchanged with DingTalk exactly once,
//! and codes DingTalk rejected, so that replaying one costs no call.

use std::fmt;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use moka::Equivalent;
use moka::future::Cache;

use crate::client::DingTalkClient;
use crate::error::{AuthError, AuthErrorKind};
use crate::store::{CODE_LIFETIME, SharedStore, StoreTtls};
use crate::user::AuthenticatedDingTalkUser;

/// Default number of identities kept.
pub const DEFAULT_CACHE_CAPACITY: u64 = 10_000;
/// Default time an identity is kept: a code's whole life, after which DingTalk would refuse it anyway.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(300);
/// Default number of rejected codes remembered.
pub const DEFAULT_REJECTED_CODE_CAPACITY: u64 = 10_000;
/// Default time a rejected code is remembered.
pub const DEFAULT_REJECTED_CODE_TTL: Duration = Duration::from_secs(60);

/// The sizes and lifetimes of the caches.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CacheLimits {
    pub(crate) capacity: u64,
    pub(crate) ttl: Duration,
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

/// What an identity is cached under: the organisation the code was issued in (third-party apps)
/// and the code. Its `Debug` never shows the code.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct IdentityKey {
    corp_id: Option<Arc<str>>,
    code: String,
}

// Hashed as its borrowed form, so that a lookup needs no owned key.
impl Hash for IdentityKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_ref().hash(state);
    }
}

/// An [`IdentityKey`] borrowed from the request: what a cache hit is looked up with.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct IdentityKeyRef<'a> {
    pub(crate) corp_id: Option<&'a str>,
    pub(crate) code: &'a str,
}

impl Equivalent<IdentityKey> for IdentityKeyRef<'_> {
    fn equivalent(&self, key: &IdentityKey) -> bool {
        *self == key.as_ref()
    }
}

impl IdentityKeyRef<'_> {
    pub(crate) fn to_owned(self) -> IdentityKey {
        IdentityKey::new(self.corp_id.map(Arc::from), self.code.to_owned())
    }
}

impl IdentityKey {
    pub(crate) fn new(corp_id: Option<Arc<str>>, code: String) -> Self {
        Self { corp_id, code }
    }

    pub(crate) fn corp_id(&self) -> Option<&str> {
        self.corp_id.as_deref()
    }

    pub(crate) fn code(&self) -> &str {
        &self.code
    }

    pub(crate) fn as_ref(&self) -> IdentityKeyRef<'_> {
        IdentityKeyRef {
            corp_id: self.corp_id.as_deref(),
            code: &self.code,
        }
    }
}

impl fmt::Debug for IdentityKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentityKey")
            .field("corp_id", &self.corp_id)
            .field("code", &"<redacted>")
            .finish()
    }
}

/// Identities by auth code, with concurrent misses for one code coalesced into one exchange.
///
/// With a shared store (replicas), a local miss asks the store before DingTalk: see
/// [`crate::store`].
#[derive(Clone)]
pub(crate) struct IdentityCache {
    users: Cache<IdentityKey, AuthenticatedDingTalkUser>,
    rejected: Cache<IdentityKey, ()>,
    store: Option<SharedStore>,
    store_ttls: StoreTtls,
}

impl IdentityCache {
    pub(crate) fn new(limits: CacheLimits, store: Option<SharedStore>) -> Self {
        Self {
            store,
            // The holder cannot know when DingTalk issued the code: a code lives 5 minutes, so what
            // is left of its life is at most that, and no identity is shared for longer than it
            // stays in a local cache either.
            store_ttls: StoreTtls {
                identity: limits.ttl.min(CODE_LIFETIME),
                rejected: limits.rejected_ttl,
            },
            users: Cache::builder()
                .name("dingtalk-identities")
                .max_capacity(limits.capacity)
                .time_to_live(limits.ttl)
                .build(),
            rejected: Cache::builder()
                .name("dingtalk-rejected-codes")
                .max_capacity(limits.rejected_capacity)
                .time_to_live(limits.rejected_ttl)
                .build(),
        }
    }

    /// What is known of a code without asking DingTalk: its user, or that DingTalk rejected it.
    pub(crate) async fn get(
        &self,
        key: IdentityKeyRef<'_>,
    ) -> Option<Result<AuthenticatedDingTalkUser, AuthError>> {
        if let Some(user) = self.users.get(&key).await {
            return Some(Ok(user));
        }
        self.rejected
            .contains_key(&key)
            .then(|| Err(AuthError::code_rejected()))
    }

    /// [`get`](Self::get) without waiting: `None` also when the lookup would have to wait.
    ///
    /// moka's lookups are async only to take its housekeeping lock now and then, and are almost
    /// always ready at once: polled once here, a cache hit needs no boxed future. A lookup that
    /// would wait is dropped (moka's operations are cancel-safe) and done again by `get`.
    pub(crate) fn get_now(
        &self,
        key: IdentityKeyRef<'_>,
    ) -> Option<Result<AuthenticatedDingTalkUser, AuthError>> {
        let lookup = pin!(self.get(key));
        match lookup.poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(known) => known,
            Poll::Pending => None,
        }
    }

    /// The user of `code`, exchanging it with DingTalk unless it is cached or being exchanged.
    ///
    /// The exchange runs in a task of its own that also stores the result: a caller that goes away
    /// mid-exchange does not abandon a call that may already have spent the code. Errors are shared
    /// with the callers waiting at that moment and are not cached.
    pub(crate) async fn get_or_exchange(
        &self,
        key: IdentityKey,
        client: &DingTalkClient,
    ) -> Result<AuthenticatedDingTalkUser, AuthError> {
        let users = self.users.clone();
        let rejected = self.rejected.clone();
        let (store, store_ttls) = (self.store.clone(), self.store_ttls);
        let client = client.clone();
        let exchange = tokio::spawn(async move {
            let exchanged = key.clone();
            let exchange = async move {
                // A caller that missed the rejection by a hair must not spend a second call.
                if rejected.contains_key(&exchanged) {
                    return Err(AuthError::code_rejected());
                }
                let result = match &store {
                    // Other replicas may hold the code's user, or be exchanging it right now.
                    Some(store) => store.exchange(&exchanged, &client, store_ttls).await,
                    None => {
                        client
                            .user_info_in(exchanged.corp_id(), exchanged.code())
                            .await
                    }
                };
                if let Err(error) = &result
                    && error.kind() == AuthErrorKind::CodeRejected
                {
                    // Remembered before the waiters wake, so that none of them calls again.
                    rejected.insert(exchanged, ()).await;
                }
                result
            };
            users
                .try_get_with(key, exchange)
                .await
                .map_err(|shared| AuthError::clone(&shared))
        });
        exchange.await.unwrap_or_else(|join_error| {
            tracing::error!(error = %join_error, "the exchange task failed");
            Err(AuthError::new(
                AuthErrorKind::Internal,
                "the exchange with DingTalk failed unexpectedly",
            ))
        })
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
