//! [`SharedStore`]: the claim / hold / wait protocol over a [`Backend`]; see [`super`].

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use super::Shared;
use super::backend::{Backend, RawClaim, RawFinish, StoreParts, StoreSettings, StoreTtls};
use super::budget_health::BudgetHealth;
use super::digest::{CodeDigest, StoreSecret};
use super::health::Health;
use super::outcome::Outcome;
use crate::error::{AuthError, AuthErrorKind};
use crate::key::IdentityKey;
use crate::log_gate::LogGate;
use crate::user::AuthenticatedDingTalkUser;

/// How often a holder whose finish failed tries again, and how many times.
const FINISH_RETRY: Duration = Duration::from_millis(100);
const FINISH_ATTEMPTS: u32 = 10;

/// A store shared by replicas. Cloning is cheap; clones share the connection and its health.
#[derive(Clone)]
pub(crate) struct SharedStore {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    pub(super) backend: Arc<dyn Backend>,
    pub(super) secret: StoreSecret,
    pub(super) health: Arc<Health>,
    pub(super) settings: StoreSettings,
    ttls: StoreTtls,
    pub(super) describe: String,
    /// Values that do not open are logged once a minute.
    pub(super) unopened_log: LogGate,
    /// Whether the shared DingTalk budget works (see `budget.rs`).
    pub(super) budget_health: BudgetHealth,
}

impl fmt::Debug for SharedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedStore")
            .field("store", &self.inner.describe)
            .field("settings", &self.inner.settings)
            .field("ttls", &self.inner.ttls)
            .field("health", &self.inner.health)
            .finish_non_exhaustive()
    }
}

impl SharedStore {
    pub(crate) fn new(parts: StoreParts, reuse_window: Duration, rejected: Duration) -> Self {
        let ttls = StoreTtls::new(reuse_window, rejected);
        Self {
            inner: Arc::new(Inner {
                backend: parts.backend,
                secret: parts.secret,
                health: parts.health,
                settings: parts.settings,
                ttls,
                describe: parts.describe,
                unopened_log: LogGate::new(Duration::from_secs(60)),
                budget_health: BudgetHealth::new(),
            }),
        }
    }

    /// The user of `key` (a code of the app `app_key`): from the store, from the replica
    /// exchanging it, or from `exchange` run by this replica under the code's lock. Falls back to
    /// `exchange` alone whenever the store is down, slow or failing. Nothing is waited for past
    /// `send_by`.
    pub(crate) async fn exchange<F, Fut>(
        &self,
        app_key: &str,
        key: &IdentityKey,
        send_by: Instant,
        exchange: F,
    ) -> Shared
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<AuthenticatedDingTalkUser, AuthError>>,
    {
        let digest = &self.inner.secret.digest(app_key, key);
        let token = lock_token();
        let mut waited = false;
        let mut ignore_result = false;
        loop {
            let claim = self
                .call_if_up(
                    "claim",
                    self.inner.backend.claim(
                        digest,
                        &token,
                        self.inner.settings.lock_ttl,
                        ignore_result,
                    ),
                )
                .await;
            match claim {
                Some(RawClaim::Found(found)) => match self.open_live(digest, found) {
                    Some((outcome, ttl)) => {
                        tracing::debug!(waited, "identity shared through the store");
                        return Shared {
                            result: outcome.into_result(),
                            confirmed: true,
                            ttl,
                        };
                    }
                    // A value that does not open, or whose window is over, is a miss for this
                    // key: claim past it.
                    None => ignore_result = true,
                },
                Some(RawClaim::Acquired) => {
                    tracing::debug!(waited, "this replica exchanges the code");
                    return self.exchange_holding(digest, &token, exchange).await;
                }
                Some(RawClaim::Held) => {
                    waited = true;
                    let poll = self.inner.settings.poll_interval;
                    if Instant::now() + poll >= send_by {
                        tracing::warn!(
                            "another replica held this code's exchange for the whole budget"
                        );
                        return Shared {
                            result: Err(AuthError::new(
                                AuthErrorKind::UpstreamTimeout,
                                "another replica is exchanging this code and did not finish in time",
                            )),
                            confirmed: false,
                            ttl: None,
                        };
                    }
                    tokio::time::sleep(poll).await;
                }
                None => {
                    tracing::debug!("store unavailable: exchanging directly");
                    let result = exchange().await;
                    if let Ok(user) = &result {
                        let outcome = Outcome::user_for(user.clone(), self.inner.ttls.identity);
                        self.write_back(digest.clone(), token, outcome);
                    }
                    return Shared {
                        result,
                        confirmed: false,
                        ttl: None,
                    };
                }
            }
        }
    }

    /// The exchange of the lock's holder: renew the lock while DingTalk answers, then write the
    /// result and release, whatever the store's health says.
    async fn exchange_holding<F, Fut>(
        &self,
        digest: &CodeDigest,
        token: &str,
        exchange: F,
    ) -> Shared
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<AuthenticatedDingTalkUser, AuthError>>,
    {
        let heartbeat = {
            let (store, digest, token) = (self.clone(), digest.clone(), token.to_owned());
            AbortOnDrop(tokio::spawn(async move {
                let lock_ttl = store.inner.settings.lock_ttl;
                loop {
                    tokio::time::sleep(lock_ttl / 3).await;
                    let renew = store.inner.backend.renew(&digest, &token, lock_ttl);
                    if store.call_always("renew", renew).await == Some(false) {
                        tracing::debug!("the code's lock was lost while exchanging");
                        return;
                    }
                }
            }))
        };
        let result = exchange().await;
        drop(heartbeat);
        let finish = match &result {
            Ok(user) => Finish::User(Outcome::user_for(user.clone(), self.inner.ttls.identity)),
            Err(error) if error.kind() == AuthErrorKind::CodeRejected => Finish::Rejected,
            Err(_) => Finish::Nothing,
        };
        let Some(existing) = self.finish(digest, token, &finish).await else {
            // The store did not take the result: keep trying in the background, and let the caller
            // know a rejection is unconfirmed (another replica's user may stand behind it).
            self.finish_later(digest.clone(), token.to_owned(), finish);
            return Shared {
                result,
                confirmed: false,
                ttl: None,
            };
        };
        if let (Finish::Rejected, Some((Outcome::User { user, .. }, ttl))) = (&finish, existing) {
            // Another replica spent the code successfully (the store blinked while it held the
            // lock, say): its user wins over DingTalk's "already used".
            tracing::debug!("the code was spent by another replica, whose user is shared");
            return Shared {
                result: Ok(user),
                confirmed: true,
                ttl,
            };
        }
        Shared {
            result,
            confirmed: true,
            ttl: None,
        }
    }

    /// Writes what the holder learnt and releases its lock; for a rejection, what the store held
    /// already and how long it keeps it yet (a value that does not open counts as nothing). `None`
    /// when the store failed.
    async fn finish(
        &self,
        digest: &CodeDigest,
        token: &str,
        finish: &Finish,
    ) -> Option<Option<(Outcome, Option<Duration>)>> {
        let ttls = self.inner.ttls;
        let sealed;
        let raw = match finish {
            Finish::User(outcome) => {
                sealed = self.seal(digest, outcome);
                RawFinish::Overwrite {
                    value: &sealed,
                    ttl: ttls.identity,
                }
            }
            Finish::Rejected => {
                sealed = self.seal(digest, &Outcome::Rejected);
                RawFinish::IfAbsent {
                    value: &sealed,
                    ttl: ttls.rejected,
                }
            }
            Finish::Nothing => RawFinish::Nothing,
        };
        let existing = self
            .call_always("finish", self.inner.backend.finish(digest, token, raw))
            .await?;
        Some(existing.and_then(|found| self.open_live(digest, found)))
    }

    /// Retries a holder's finish in the background until the store takes it.
    fn finish_later(&self, digest: CodeDigest, token: String, finish: Finish) {
        let store = self.clone();
        tokio::spawn(async move {
            for _ in 0..FINISH_ATTEMPTS {
                tokio::time::sleep(FINISH_RETRY).await;
                if store.finish(&digest, &token, &finish).await.is_some() {
                    return;
                }
            }
        });
    }

    /// Shares a user exchanged while the store seemed down, in the background and once: a claim
    /// that timed out may still have taken the code's lock, and replicas waiting on it then get
    /// this user instead of spending the code again once the lock expires.
    /// The user's window is sealed in when it is exchanged, so that a write Redis runs late (a
    /// stalled connection) cannot make it outlive that window.
    fn write_back(&self, digest: CodeDigest, token: String, user: Outcome) {
        let store = self.clone();
        tokio::spawn(async move {
            store.finish(&digest, &token, &Finish::User(user)).await;
        });
    }

    /// The stored user of `key` and how long the store keeps it yet, if the store answers and
    /// holds one that opens.
    pub(crate) async fn peek_user(
        &self,
        app_key: &str,
        key: &IdentityKey,
    ) -> Option<(AuthenticatedDingTalkUser, Option<Duration>)> {
        let digest = &self.inner.secret.digest(app_key, key);
        let found = self
            .call_if_up("peek", self.inner.backend.peek(digest))
            .await??;
        match self.open_live(digest, found)? {
            (Outcome::User { user, .. }, ttl) => Some((user, ttl)),
            (Outcome::Rejected, _) => None,
        }
    }

    /// Whether the store answers a `PING` within its timeout, whatever its health flag says.
    pub(crate) async fn ping(&self) -> bool {
        self.call_always("ping", self.inner.backend.ping())
            .await
            .is_some()
    }
}

/// What a holder writes when it is done.
#[derive(Debug)]
enum Finish {
    /// The user, with its window: written over anything.
    User(Outcome),
    /// A rejection: written only where no result is stored yet.
    Rejected,
    /// Nothing: an upstream failure, which the next attempt retries.
    Nothing,
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

/// Stops the lock's renewals when the exchange is over, or if it is ever dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
