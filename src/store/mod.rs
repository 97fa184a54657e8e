//! The shared store: what replicas of one service share so that a code is exchanged once across
//! all of them, whichever replica its requests reach.
//!
//! The identity cache ([`crate::cache`]) calls [`SharedStore::exchange`] on a local miss, inside its
//! exchange task. The protocol, for one code:
//!
//! 1. **Claim**, atomically: if the store holds the code's result (a user, or DingTalk's rejection)
//!    return it; else take the code's lock (`SET NX PX`, the lock TTL) for this attempt.
//! 2. **Holder**: exchange with DingTalk while renewing the lock every third of its TTL, then write
//!    the user (for the identity TTL, at most a code's 5 minutes) or the rejection (for the
//!    rejected-code TTL, and only where no user is stored: a replica that lost a race to a
//!    successful exchange gets that user instead of DingTalk's 40078), and release the lock (only
//!    if it is still this attempt's). Upstream failures write nothing: the next attempt exchanges
//!    again, as without a store.
//! 3. **Waiter**: claim again every poll interval until the result appears, or the lock is gone and
//!    this replica takes it (its holder died: nothing renews its lock, which expires), or the
//!    request's budget ([`DingTalkClient::timeout`]) runs out: 504 `upstream_timeout`.
//!
//! Every call to the store has a short timeout. A call that fails or times out marks the store down
//! ([`Health`]): requests skip it (local cache, direct exchanges) until a single probe after the
//! retry interval finds it answering again; one warning when it goes down, one note when it is back.
//! A user exchanged directly is still written back once, in the background: a claim that timed out
//! may have taken the code's lock all the same, and replicas waiting on that lock then get the user
//! instead of spending the code again when it expires.

// Without a backend (feature `redis` off) a store cannot be built, and most of this is unused.
#![cfg_attr(
    not(feature = "redis"),
    allow(dead_code, unused_imports, unused_variables)
)]

#[cfg(feature = "redis")]
pub(crate) mod redis;

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::cache::IdentityKey;
use crate::client::DingTalkClient;
use crate::error::{AuthError, AuthErrorKind};
use crate::user::AuthenticatedDingTalkUser;

/// A code's whole life at DingTalk: no identity is shared for longer, whatever the local TTL.
pub(crate) const CODE_LIFETIME: Duration = Duration::from_secs(300);

/// A store shared by replicas. Cloning is cheap; clones share the connection and its health.
#[derive(Clone)]
pub(crate) enum SharedStore {
    /// Redis, through a connection manager.
    #[cfg(feature = "redis")]
    Redis(redis::RedisStore),
}

impl fmt::Debug for SharedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            #[cfg(feature = "redis")]
            Self::Redis(ref store) => fmt::Debug::fmt(store, f),
        }
    }
}

/// How long what is written to the store lives.
#[derive(Clone, Copy, Debug)]
pub(crate) struct StoreTtls {
    /// An identity: the local identity TTL, capped at [`CODE_LIFETIME`].
    pub(crate) identity: Duration,
    /// A rejection: the local rejected-code TTL.
    pub(crate) rejected: Duration,
}

/// What the store knows of a code, as written in it (JSON).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Outcome {
    /// The code's user.
    User(AuthenticatedDingTalkUser),
    /// DingTalk rejected the code (spent, expired, never issued).
    Rejected,
}

impl Outcome {
    pub(crate) fn encode(&self) -> String {
        serde_json::to_string(self).expect("an outcome serializes")
    }

    pub(crate) fn decode(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice(bytes).ok()
    }

    fn into_result(self) -> Result<AuthenticatedDingTalkUser, AuthError> {
        match self {
            Self::User(user) => Ok(user),
            Self::Rejected => Err(AuthError::code_rejected()),
        }
    }
}

/// The answer to a claim.
#[derive(Debug)]
pub(crate) enum Claim {
    /// The code's result, written by whichever replica exchanged it.
    Found(Outcome),
    /// The lock is this attempt's: exchange, then finish.
    Acquired,
    /// Another attempt holds the lock.
    Held,
}

/// What a holder writes when it is done.
#[derive(Debug)]
pub(crate) enum Finish<'a> {
    /// The user: written over anything.
    User(&'a AuthenticatedDingTalkUser),
    /// A rejection: written only where no result is stored yet.
    Rejected,
    /// Nothing: an upstream failure, which the next attempt retries.
    Nothing,
}

/// The name of a code in the store: a SHA-256 of the app, the corp and the code, in hex, so that
/// the store never holds a usable code.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct CodeDigest(String);

impl CodeDigest {
    /// The digest of `key` for the app `app_key`. The app is part of it so that two apps sharing
    /// one Redis and one prefix never read each other's identities.
    #[cfg(feature = "redis")]
    pub(crate) fn new(app_key: &str, key: &IdentityKey) -> Self {
        use sha2::{Digest, Sha256};
        let mut hash = Sha256::new();
        hash.update(b"tower-dingtalk-auth/v1\0");
        hash.update(app_key.as_bytes());
        hash.update(b"\0");
        match key.corp_id() {
            Some(corp_id) => {
                hash.update(b"corp\0");
                hash.update(corp_id.as_bytes());
            }
            None => hash.update(b"own\0"),
        }
        hash.update(b"\0");
        hash.update(key.code().as_bytes());
        let digest = hash.finalize();
        let mut hex = String::with_capacity(digest.len() * 2);
        for byte in digest {
            use fmt::Write;
            let _ = write!(hex, "{byte:02x}");
        }
        Self(hex)
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for CodeDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The digest is not the code, but a short prefix tells entries apart in logs well enough.
        write!(f, "CodeDigest({}..)", &self.0[..self.0.len().min(12)])
    }
}

/// A unique name for one attempt at holding a code's lock: only its owner renews or releases it.
fn lock_token() -> String {
    use std::hash::{BuildHasher, Hasher};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    // RandomState is seeded per process (and varies per instance): random enough to tell replicas
    // apart; the counter tells this process's attempts apart.
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    let random = hasher.finish();
    format!(
        "{random:016x}-{:x}-{:x}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

impl SharedStore {
    /// The user of `key`: from the store, from the replica exchanging it, or from this replica's
    /// own exchange under the code's lock. Falls back to a direct exchange whenever the store is
    /// down, slow or failing.
    pub(crate) async fn exchange(
        &self,
        key: &IdentityKey,
        client: &DingTalkClient,
        ttls: StoreTtls,
    ) -> Result<AuthenticatedDingTalkUser, AuthError> {
        let digest = self.digest(client.app_key(), key);
        let deadline = Instant::now() + client.timeout();
        let token = lock_token();
        let mut waited = false;
        loop {
            match self.claim(&digest, &token).await {
                Some(Claim::Found(outcome)) => {
                    tracing::debug!(waited, "identity shared through the store");
                    return outcome.into_result();
                }
                Some(Claim::Acquired) => {
                    tracing::debug!(waited, "this replica exchanges the code");
                    return self
                        .exchange_holding(&digest, &token, key, client, ttls)
                        .await;
                }
                Some(Claim::Held) => {
                    waited = true;
                    let poll = self.poll_interval();
                    if Instant::now() + poll >= deadline {
                        tracing::warn!(
                            budget_ms = client.timeout().as_millis() as u64,
                            "another replica held this code's exchange for the whole budget"
                        );
                        return Err(AuthError::new(
                            AuthErrorKind::UpstreamTimeout,
                            "another replica is exchanging this code and did not finish in time",
                        ));
                    }
                    tokio::time::sleep(poll).await;
                }
                None => {
                    tracing::debug!("store unavailable: exchanging directly");
                    let result = client.user_info_in(key.corp_id(), key.code()).await;
                    if let Ok(user) = &result {
                        self.write_back(digest, token, user.clone(), ttls);
                    }
                    return result;
                }
            }
        }
    }

    /// The exchange of the lock's holder: renew the lock while DingTalk answers, then write the
    /// result and release.
    async fn exchange_holding(
        &self,
        digest: &CodeDigest,
        token: &str,
        key: &IdentityKey,
        client: &DingTalkClient,
        ttls: StoreTtls,
    ) -> Result<AuthenticatedDingTalkUser, AuthError> {
        let heartbeat = {
            let (store, digest, token) = (self.clone(), digest.clone(), token.to_owned());
            AbortOnDrop(tokio::spawn(async move {
                let every = store.lock_ttl() / 3;
                loop {
                    tokio::time::sleep(every).await;
                    if store.renew(&digest, &token).await == Some(false) {
                        tracing::debug!("the code's lock was lost while exchanging");
                        return;
                    }
                }
            }))
        };
        let result = client.user_info_in(key.corp_id(), key.code()).await;
        drop(heartbeat);
        match &result {
            Ok(user) => {
                self.finish(digest, token, Finish::User(user), ttls).await;
            }
            Err(error) if error.kind() == AuthErrorKind::CodeRejected => {
                // Another replica may have spent the code successfully (the store was down while it
                // held the lock, say): its user wins over DingTalk's "already used".
                if let Some(Some(Outcome::User(user))) =
                    self.finish(digest, token, Finish::Rejected, ttls).await
                {
                    tracing::debug!("the code was spent by another replica, whose user is shared");
                    return Ok(user);
                }
            }
            Err(_) => {
                self.finish(digest, token, Finish::Nothing, ttls).await;
            }
        }
        result
    }

    /// Shares a user exchanged while the store seemed down, in the background and once, whatever
    /// the store's health says: a claim that timed out may still have taken the code's lock, and
    /// replicas waiting on it then get this user instead of spending the code again once the lock
    /// expires. Nothing is logged or counted: the outage is already reported.
    fn write_back(
        &self,
        digest: CodeDigest,
        token: String,
        user: AuthenticatedDingTalkUser,
        ttls: StoreTtls,
    ) {
        let store = self.clone();
        tokio::spawn(async move {
            let finish = store.finish_unguarded(&digest, &token, Finish::User(&user), ttls);
            let _ = tokio::time::timeout(store.timeout(), finish).await;
        });
    }

    fn digest(&self, app_key: &str, key: &IdentityKey) -> CodeDigest {
        match *self {
            #[cfg(feature = "redis")]
            Self::Redis(_) => CodeDigest::new(app_key, key),
        }
    }

    fn health(&self) -> &Health {
        match *self {
            #[cfg(feature = "redis")]
            Self::Redis(ref store) => store.health(),
        }
    }

    fn timeout(&self) -> Duration {
        match *self {
            #[cfg(feature = "redis")]
            Self::Redis(ref store) => store.timeout(),
        }
    }

    fn poll_interval(&self) -> Duration {
        match *self {
            #[cfg(feature = "redis")]
            Self::Redis(ref store) => store.poll_interval(),
        }
    }

    pub(crate) fn lock_ttl(&self) -> Duration {
        match *self {
            #[cfg(feature = "redis")]
            Self::Redis(ref store) => store.lock_ttl(),
        }
    }

    /// The result of the code, or its lock; `None` when the store is down or failed.
    async fn claim(&self, digest: &CodeDigest, token: &str) -> Option<Claim> {
        match *self {
            #[cfg(feature = "redis")]
            Self::Redis(ref store) => self.guarded("claim", store.claim(digest, token)).await,
        }
    }

    /// Writes what the holder learnt and releases its lock. For a rejection, what the store held
    /// already, if anything. `None` when the store is down or failed.
    async fn finish(
        &self,
        digest: &CodeDigest,
        token: &str,
        finish: Finish<'_>,
        ttls: StoreTtls,
    ) -> Option<Option<Outcome>> {
        match *self {
            #[cfg(feature = "redis")]
            Self::Redis(ref store) => {
                self.guarded("finish", store.finish(digest, token, finish, ttls))
                    .await
            }
        }
    }

    /// [`finish`](Self::finish) past the health check and without touching it.
    async fn finish_unguarded(
        &self,
        digest: &CodeDigest,
        token: &str,
        finish: Finish<'_>,
        ttls: StoreTtls,
    ) {
        match *self {
            #[cfg(feature = "redis")]
            Self::Redis(ref store) => {
                let _ = store.finish(digest, token, finish, ttls).await;
            }
        }
    }

    /// Extends the lock if it is still this attempt's; whether it was.
    async fn renew(&self, digest: &CodeDigest, token: &str) -> Option<bool> {
        match *self {
            #[cfg(feature = "redis")]
            Self::Redis(ref store) => self.guarded("renew", store.renew(digest, token)).await,
        }
    }

    /// Runs one call to the store within its timeout, unless the store is known to be down; keeps
    /// the store's health up to date.
    async fn guarded<T, E: fmt::Display>(
        &self,
        operation: &'static str,
        call: impl Future<Output = Result<T, E>>,
    ) -> Option<T> {
        let health = self.health();
        let generation = health.try_begin()?;
        let answer = tokio::time::timeout(self.timeout(), call).await;
        match answer {
            Ok(Ok(value)) => {
                health.succeeded(generation);
                Some(value)
            }
            Ok(Err(error)) => {
                health.failed(generation, operation, &error);
                None
            }
            Err(_elapsed) => {
                let why = format!("no answer within {} ms", self.timeout().as_millis());
                health.failed(generation, operation, &why);
                None
            }
        }
    }
}

/// Stops the lock's renewals when the exchange is over, or if it is ever dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Whether the store answers, shared by every request: one warning when it stops, one note when it
/// is back, and while it is down, no request waits for it but one probe per retry interval.
///
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
}

impl Health {
    pub(crate) fn new(name: &'static str, retry_after: Duration) -> Self {
        Self {
            state: AtomicU64::new(0),
            next_probe: AtomicU64::new(0),
            epoch: Instant::now(),
            retry_after,
            name,
        }
    }

    pub(crate) fn is_up(&self) -> bool {
        self.state.load(Ordering::Acquire) % 2 == 0
    }

    fn now(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Whether a call may go now, and if so the state it begins in: always while up; while down,
    /// one probe per retry interval.
    fn try_begin(&self) -> Option<u64> {
        let state = self.state.load(Ordering::Acquire);
        if state % 2 == 0 {
            return Some(state);
        }
        let (now, next) = (self.now(), self.next_probe.load(Ordering::Acquire));
        let retry = self.retry_after.as_millis() as u64;
        (now >= next
            && self
                .next_probe
                .compare_exchange(next, now + retry, Ordering::AcqRel, Ordering::Acquire)
                .is_ok())
        .then_some(state)
    }

    fn succeeded(&self, began: u64) {
        // Only a probe sent while down ends the outage.
        if began % 2 == 1
            && self
                .state
                .compare_exchange(began, began + 1, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            tracing::info!(
                store = self.name,
                "the shared store answers again: replicas share identities and exchanges again"
            );
        }
    }

    fn failed(&self, began: u64, operation: &'static str, error: &dyn fmt::Display) {
        let retry = self.retry_after.as_millis() as u64;
        self.next_probe.store(self.now() + retry, Ordering::Release);
        if began % 2 == 0
            && self
                .state
                .compare_exchange(began, began + 1, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            tracing::warn!(
                store = self.name,
                operation,
                error = %error,
                retry_after_ms = retry,
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
