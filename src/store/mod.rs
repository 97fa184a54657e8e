//! The shared store: what replicas of one service share so that a code is exchanged once across
//! all of them, whichever replica its requests reach.
//!
//! The identity cache ([`crate::cache`]) calls `SharedStore::exchange` on a local miss, inside its
//! exchange task, with the exchange itself as a closure. The protocol, for one code:
//!
//! 1. **Claim**, atomically: if the store holds the code's result (a user, or DingTalk's rejection)
//!    return it; else take the code's lock for this attempt.
//! 2. **Holder**: exchange while renewing the lock every third of its TTL, then write the user (for
//!    the identity TTL, at most a code's 5 minutes) or the rejection (only where no user is stored:
//!    a replica that lost a race to a successful exchange gets that user instead of DingTalk's
//!    40078), and release the lock. Upstream failures write nothing. The holder's calls go out
//!    whatever the store's health says (a slow answer elsewhere must not make it abandon its lock),
//!    and a finish that fails is retried in the background.
//! 3. **Waiter**: claim again every poll interval until the result appears, or the lock is gone and
//!    this replica takes it (its holder died), or the request's budget runs out: 504. A waiter that
//!    takes over goes on with what is left of the same budget.
//!
//! Every call has a short timeout. Outside a holder's calls, a failure marks the store down
//! (`health.rs`): requests skip it (local cache, direct exchanges) until a single probe after the
//! retry interval finds it answering again. A user exchanged directly is still written back once,
//! in the background. Names and values are keyed with the replicas' shared secret
//! (`digest.rs`); a value that does not open is a miss for that key, logged once a minute.
//!
//! Without a backend (feature `redis` off) no store can be built, and `disabled.rs` stands in: a
//! type with no values, so that the identity cache's store paths compile to nothing.

#[cfg(feature = "redis")]
mod backend;
#[cfg(feature = "redis")]
mod budget;
#[cfg(feature = "redis")]
mod budget_health;
#[cfg(feature = "redis")]
mod calls;
#[cfg(feature = "redis")]
mod digest;
#[cfg(not(feature = "redis"))]
mod disabled;
#[cfg(feature = "redis")]
mod health;
#[cfg(feature = "redis")]
mod outcome;
#[cfg(feature = "redis")]
mod protocol;
#[cfg(feature = "redis")]
pub(crate) mod redis;
#[cfg(feature = "redis")]
mod session_mark;
#[cfg(feature = "redis")]
mod users;

use std::time::Duration;

#[cfg(feature = "redis")]
pub(crate) use self::backend::{REVOCATION_PAGE, StoreParts, StoreSettings};
#[cfg(feature = "redis")]
pub(crate) use self::budget::{Budget, BudgetAsk, PROMISE_KEPT};
#[cfg(not(feature = "redis"))]
pub(crate) use self::disabled::{SharedStore, StoreParts};
#[cfg(feature = "redis")]
pub(crate) use self::protocol::SharedStore;
use crate::error::AuthError;
use crate::user::AuthenticatedDingTalkUser;

/// A code's whole life at DingTalk: no identity is shared for longer, whatever the local TTL.
pub(crate) const CODE_LIFETIME: Duration = Duration::from_secs(300);

/// The result of an exchange through the store, and whether the store confirmed a rejection (no
/// other replica's user stands behind it).
pub(crate) struct Shared {
    pub(crate) result: Result<AuthenticatedDingTalkUser, AuthError>,
    pub(crate) confirmed: bool,
    /// For a user read from the store: how long the store keeps it yet. A replica's copy must
    /// not outlive the original, so that the reuse window is one window across replicas.
    pub(crate) ttl: Option<Duration>,
}
