//! [`CachedIdentity`]: a code's user as the identity cache keeps it, with whether its code started
//! a session and when it expires (its own expiry, for moka and the hot slots alike).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::key::IdentityKey;
use crate::user::AuthenticatedDingTalkUser;

/// A cached user, and whether its code has started a session yet: a code starts at most one.
#[derive(Clone)]
pub(crate) struct CachedIdentity(Arc<Entry>);

struct Entry {
    user: AuthenticatedDingTalkUser,
    session_started: AtomicBool,
    /// Whether the app's resolver has run for this sign-in on this replica.
    resolved: AtomicBool,
    /// When it was cached here (ms since the epoch): a revocation since ends it.
    signed_in_at: u64,
    /// When moka (and the hot slots) drop it: the end of the code's reuse window, or of the
    /// store's copy it was read from, whichever comes first.
    expires_at: std::time::Instant,
}

impl CachedIdentity {
    /// Made as it goes into the cache, which keeps it for `lifetime`; its code was exchanged
    /// `age` ago (on another replica, for a copy read from the store).
    pub(super) fn new(user: AuthenticatedDingTalkUser, lifetime: Duration, age: Duration) -> Self {
        let now = std::time::Instant::now();
        let age = crate::session::millis(age);
        Self(Arc::new(Entry {
            user,
            session_started: AtomicBool::new(false),
            resolved: AtomicBool::new(false),
            signed_in_at: crate::session::now_millis().saturating_sub(age),
            expires_at: now.checked_add(lifetime).unwrap_or(now),
        }))
    }

    /// When it leaves the caches.
    pub(super) fn expires_at(&self) -> std::time::Instant {
        self.0.expires_at
    }

    /// When it was cached here (ms since the epoch).
    pub(crate) fn signed_in_at(&self) -> u64 {
        self.0.signed_in_at
    }

    pub(crate) fn user(&self) -> &AuthenticatedDingTalkUser {
        &self.0.user
    }

    /// Whether this replica has seen the code start a session already.
    pub(crate) fn session_started(&self) -> bool {
        self.0.session_started.load(Ordering::Acquire)
    }

    /// Claims the sign-in's run of the app's resolver on this replica: true for the first only.
    pub(crate) fn first_resolution(&self) -> bool {
        !self.0.resolved.swap(true, Ordering::AcqRel)
    }

    /// Claims the code's one session on this replica: true for the first caller only.
    pub(crate) fn start_session_locally(&self) -> bool {
        !self.0.session_started.swap(true, Ordering::AcqRel)
    }
}

/// moka keeps each identity until its own expiry: a copy read from the store late in the reuse
/// window expires with the original, not a whole window later.
pub(super) struct UntilItExpires;

impl moka::Expiry<IdentityKey, CachedIdentity> for UntilItExpires {
    fn expire_after_create(
        &self,
        _key: &IdentityKey,
        identity: &CachedIdentity,
        created_at: std::time::Instant,
    ) -> Option<Duration> {
        Some(identity.0.expires_at.saturating_duration_since(created_at))
    }
}
