//! The crate's metrics (feature `metrics`), on the `::metrics` facade: every recording goes
//! through here, and without the feature every type here is empty and every method does nothing.
//!
//! Handles are resolved once, when a client, a layer or a store is built, against the recorder
//! installed then (the thread's local one, else the global one): a request only bumps a held
//! handle, with no hashing and no allocation. Labels are fixed sets of static names, never a
//! user, a code, a token, a corp or a session. A recorder that panics is contained: the first
//! panic stops the recording of the client, layer or store it hit, logged once; logins go on. A
//! slow recorder slows every request it records.

mod handles;
mod upstream;

use self::handles::{Counter, Fuse, Gauge, Kind};
#[cfg(feature = "redis")]
pub(crate) use self::upstream::StoreMetrics;
pub(crate) use self::upstream::{ClientMetrics, LimitMetrics, Refusal};
use crate::error::AuthErrorKind;

pub(crate) const REQUESTS: &str = "dingtalk_auth_requests_total";
pub(crate) const EXCHANGES: &str = "dingtalk_auth_exchanges_total";
pub(crate) const IDENTITY_CACHE: &str = "dingtalk_auth_identity_cache_total";
pub(crate) const TOKEN_FETCHES: &str = "dingtalk_auth_token_fetches_total";
pub(crate) const DINGTALK_ERRORS: &str = "dingtalk_auth_dingtalk_errors_total";
pub(crate) const REFUSALS: &str = "dingtalk_auth_refusals_total";
#[cfg(feature = "redis")]
pub(crate) const STORE_OUTAGES: &str = "dingtalk_auth_store_outages_total";
pub(crate) const EXCHANGE_SECONDS: &str = "dingtalk_auth_exchange_seconds";
pub(crate) const TOKEN_FETCH_SECONDS: &str = "dingtalk_auth_token_fetch_seconds";
pub(crate) const RATE_LIMIT_WAIT_SECONDS: &str = "dingtalk_auth_rate_limit_wait_seconds";
pub(crate) const CACHED_IDENTITIES: &str = "dingtalk_auth_cached_identities";
pub(crate) const EXCHANGES_IN_FLIGHT: &str = "dingtalk_auth_exchanges_in_flight";
#[cfg(feature = "redis")]
pub(crate) const STORE_AVAILABLE: &str = "dingtalk_auth_store_available";

/// How the layer answered a request: admitted (how), passed on without a user, or refused (why).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// A code's user, cached or exchanged.
    Code,
    SessionCookie,
    BearerToken,
    /// DingTalk's web login came back and started a session.
    WebLogin,
    /// The token login endpoint issued a bearer token for a code.
    TokenLogin,
    /// The token login endpoint refreshed a bearer token.
    TokenRefresh,
    /// An optional layer passed a request without code or session on.
    PassedThrough,
    /// Refused (or sent to the login page) for this reason.
    Rejected(AuthErrorKind),
}

/// The `outcome` labels of the requests admitted or passed on, by [`admitted_index`].
const ADMITTED: [&str; 7] = [
    "code",
    "session_cookie",
    "bearer_token",
    "web_login",
    "token_login",
    "token_refresh",
    "passed_through",
];

fn admitted_index(outcome: Outcome) -> Option<usize> {
    Some(match outcome {
        Outcome::Code => 0,
        Outcome::SessionCookie => 1,
        Outcome::BearerToken => 2,
        Outcome::WebLogin => 3,
        Outcome::TokenLogin => 4,
        Outcome::TokenRefresh => 5,
        Outcome::PassedThrough => 6,
        Outcome::Rejected(_) => return None,
    })
}

/// A layer's count of requests by outcome.
#[derive(Clone)]
pub(crate) struct RequestMetrics {
    admitted: [Counter; ADMITTED.len()],
    rejected: [Counter; AuthErrorKind::ALL.len()],
}

impl RequestMetrics {
    pub(crate) fn new() -> Self {
        let fuse = Fuse::new();
        fuse.describe(
            REQUESTS,
            Kind::Counter,
            "Requests the layer answered, by outcome: how the user was found, passed_through, \
             or the rejection's name (as in the JSON body's `error`).",
        );
        Self {
            admitted: ADMITTED.map(|outcome| fuse.counter(REQUESTS, &[("outcome", outcome)])),
            rejected: AuthErrorKind::ALL
                .map(|kind| fuse.counter(REQUESTS, &[("outcome", kind.as_str())])),
        }
    }

    /// One request's outcome: one increment on a held handle.
    #[inline]
    pub(crate) fn count(&self, outcome: Outcome) {
        let counter = match (outcome, admitted_index(outcome)) {
            (_, Some(index)) => self.admitted.get(index),
            (Outcome::Rejected(kind), None) => self.rejected.get(kind.index()),
            _ => None,
        };
        if let Some(counter) = counter {
            counter.increment();
        }
    }
}

/// The identity cache's lookups and its size.
#[derive(Clone)]
pub(crate) struct CacheMetrics {
    hit: Counter,
    miss: Counter,
    rejected: Counter,
    cached: Gauge,
}

impl CacheMetrics {
    pub(crate) fn new() -> Self {
        let fuse = Fuse::new();
        fuse.describe(
            IDENTITY_CACHE,
            Kind::Counter,
            "Lookups of codes in the identity cache: hit (the user, no call), miss (an exchange), \
             rejected (a code DingTalk rejected, replayed: no call).",
        );
        fuse.describe(
            CACHED_IDENTITIES,
            Kind::Gauge,
            "Users cached by code (expired ones leave at the cache's next housekeeping).",
        );
        let result = |result| fuse.counter(IDENTITY_CACHE, &[("result", result)]);
        Self {
            hit: result("hit"),
            miss: result("miss"),
            rejected: result("rejected"),
            cached: fuse.gauge(CACHED_IDENTITIES),
        }
    }

    #[inline]
    pub(crate) fn hit(&self) {
        self.hit.increment();
    }

    pub(crate) fn miss(&self) {
        self.miss.increment();
    }

    pub(crate) fn rejected(&self) {
        self.rejected.increment();
    }

    pub(crate) fn cached(&self) {
        self.cached.increment();
    }

    /// Whether anything is recorded: `false` without the feature.
    pub(crate) fn counts(&self) -> bool {
        cfg!(feature = "metrics")
    }

    pub(crate) fn evicted(&self) {
        self.cached.decrement();
    }
}
