//! Who may still be signed in: the users revoked (by the app, or found gone from the
//! organisation) and since when, and the users re-validated with DingTalk lately. Kept per
//! client, shared by every layer on it; with a shared store, across replicas (`sync.rs`).

#[cfg(feature = "redis")]
mod sync;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How much later than a revocation a session may have been signed in and still be refused:
/// the clocks of replicas disagree a little. A new login a second after it works.
pub(crate) const REVOCATION_SKEW_MS: u64 = 1_000;

/// How long a request waits for a replica that just started to read the store's revocations.
const READY_WAIT: Duration = Duration::from_secs(2);

/// Re-validation's interval unless configured.
pub const DEFAULT_REVALIDATE_AFTER: Duration = Duration::from_secs(10 * 60);

/// A revocation as replicas share it.
#[derive(Serialize, Deserialize)]
pub(crate) struct Revocation {
    /// The user's organisation, for third-party apps.
    pub(crate) corp: Option<String>,
    pub(crate) userid: String,
    /// When, in milliseconds since the Unix epoch: sessions signed in until then end.
    pub(crate) at: u64,
}

/// A user's organisation and userid, as the per-user caches key them.
pub(crate) type UserName = (Option<Box<str>>, Box<str>);

/// Whether a cache's key names `corp`'s `userid`: for hot slots, which compare whole keys.
pub(crate) fn is_user<'a>(
    corp: Option<&'a str>,
    userid: &'a str,
) -> impl Fn(&UserName) -> bool + 'a {
    move |(held_corp, held_userid)| held_corp.as_deref() == corp && **held_userid == *userid
}

/// Revoked users: userid → (corp, revoked at, ms since the epoch) of each organisation it was
/// revoked in.
type RevokedUsers = HashMap<Box<str>, Vec<(Option<Box<str>>, u64)>>;

/// A client's view of who may still be signed in.
pub(crate) struct Access {
    revoked: RwLock<RevokedUsers>,
    /// Whether anyone is revoked at all: the hot paths look no further when not.
    any_revoked: AtomicBool,
    /// Users re-validated lately, by (corp, userid): not asked again before the interval ends.
    pub(crate) validated: moka::future::Cache<UserName, ()>,
    /// How often a signed-in user is re-validated; `None`: never.
    pub(crate) interval: Option<Duration>,
    /// Whether the revocations kept in the store have been read once (always, without a store):
    /// until then a replica that just started checks every session the slow way.
    loaded: AtomicBool,
    /// Whether the store's revocations are being read (started on first use).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) syncing: AtomicBool,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access")
            .field("interval", &self.interval)
            .field("any_revoked", &self.any_revoked.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Access {
    pub(crate) fn new(interval: Option<Duration>, with_store: bool) -> Arc<Self> {
        Arc::new(Self {
            revoked: RwLock::new(HashMap::new()),
            any_revoked: AtomicBool::new(false),
            validated: moka::future::Cache::builder()
                .max_capacity(1_000_000)
                .time_to_live(interval.unwrap_or(DEFAULT_REVALIDATE_AFTER))
                .build(),
            interval,
            loaded: AtomicBool::new(!with_store),
            syncing: AtomicBool::new(false),
        })
    }

    /// Whether the revocations kept in the store have been read once.
    pub(crate) fn is_ready(&self) -> bool {
        self.loaded.load(Ordering::Acquire)
    }

    /// The store's revocations were read once (or could not be: the store did not answer, and
    /// sessions are served meanwhile).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn set_ready(&self) {
        self.loaded.store(true, Ordering::Release);
    }

    /// Waits, a little, for the store's revocations to be read once: a replica that just started
    /// must not serve a session revoked before it did.
    pub(crate) async fn ready(&self) {
        let give_up = tokio::time::Instant::now() + READY_WAIT;
        while !self.is_ready() && tokio::time::Instant::now() < give_up {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Records a revocation (from this replica, or read from the store).
    pub(crate) fn record(&self, revocation: &Revocation) {
        let mut revoked = self.revoked.write().unwrap_or_else(|p| p.into_inner());
        let corps = revoked
            .entry(revocation.userid.as_str().into())
            .or_default();
        let corp = revocation.corp.as_deref().map(Box::from);
        match corps.iter_mut().find(|(held, _)| *held == corp) {
            Some((_, at)) => *at = (*at).max(revocation.at),
            None => corps.push((corp, revocation.at)),
        }
        self.any_revoked.store(true, Ordering::Release);
    }

    /// Whether a session of `userid` (in `corp`) signed in at `signed_in_at` (ms since the epoch)
    /// has been revoked since. Without any revocation, one atomic load.
    pub(crate) fn is_revoked(&self, corp: Option<&str>, userid: &str, signed_in_at: u64) -> bool {
        if !self.any_revoked.load(Ordering::Acquire) {
            return false;
        }
        let revoked = self.revoked.read().unwrap_or_else(|p| p.into_inner());
        revoked.get(userid).is_some_and(|corps| {
            corps.iter().any(|(held, at)| {
                held.as_deref() == corp && signed_in_at <= at.saturating_add(REVOCATION_SKEW_MS)
            })
        })
    }
}

#[cfg(not(feature = "redis"))]
impl Access {
    /// Without a store backend there is no store to read.
    pub(crate) fn sync_with(self: &Arc<Self>, store: &crate::store::SharedStore, _app_key: &str) {
        match *store {}
    }
}
