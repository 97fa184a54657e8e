//! What the client's calls to DingTalk record: exchanges, token fetches, DingTalk's errcodes, the
//! local limits' refusals and waits; and the shared store's health.

use std::time::Duration;

use super::handles::{Counter, Fuse, Gauge, Histogram, Kind};
use super::{
    DINGTALK_ERRORS, EXCHANGE_SECONDS, EXCHANGES, EXCHANGES_IN_FLIGHT, RATE_LIMIT_WAIT_SECONDS,
    REFUSALS, TOKEN_FETCH_SECONDS, TOKEN_FETCHES,
};
#[cfg(feature = "redis")]
use super::{STORE_AVAILABLE, STORE_OUTAGES};
use crate::error::AuthErrorKind;

/// The `result` labels of exchanges and token fetches, by [`result_index`].
const RESULTS: [&str; 9] = [
    "ok",
    "rejected",
    "upstream_error",
    "timeout",
    "throttled",
    "rate_limited",
    "too_many_attempts",
    "misconfigured",
    "other",
];

fn result_index(result: Result<(), AuthErrorKind>) -> usize {
    match result {
        Ok(()) => 0,
        Err(AuthErrorKind::CodeRejected) => 1,
        Err(AuthErrorKind::Upstream) => 2,
        Err(AuthErrorKind::UpstreamTimeout) => 3,
        Err(AuthErrorKind::Throttled) => 4,
        Err(AuthErrorKind::Overloaded) => 5,
        Err(AuthErrorKind::TooManyAttempts) => 6,
        Err(AuthErrorKind::Misconfigured) => 7,
        Err(_) => 8,
    }
}

/// DingTalk's errcodes counted by name; any other is `other`. 90001 to 90017 share one.
const ERRCODES: [(&str, &str); 18] = [
    ("-1", "system_busy"),
    ("22", "unknown_api"),
    ("88", "auth_error"),
    ("33001", "invalid_corp"),
    ("40001", "invalid_credential"),
    ("40014", "invalid_access_token"),
    ("40035", "invalid_parameter"),
    ("40078", "invalid_code"),
    ("41001", "missing_access_token"),
    ("42001", "access_token_expired"),
    ("42008", "code_expired"),
    ("43004", "invalid_content_type"),
    ("60011", "no_permission"),
    ("60020", "ip_not_whitelisted"),
    ("60121", "not_a_member"),
    ("90002", "global_rate_limit"),
    ("90018", "app_rate_limit"),
    ("90001-90017", "throttled"),
];

fn errcode_index(errcode: i64) -> Option<usize> {
    Some(match errcode {
        -1 => 0,
        22 => 1,
        88 => 2,
        33001 => 3,
        40001 => 4,
        40014 => 5,
        40035 => 6,
        40078 => 7,
        41001 => 8,
        42001 => 9,
        42008 => 10,
        43004 => 11,
        60011 => 12,
        60020 => 13,
        60121 => 14,
        90002 => 15,
        90018 => 16,
        90001..=90017 => 17,
        _ => return None,
    })
}

/// A client's exchanges, token fetches and DingTalk's errcodes.
pub(crate) struct ClientMetrics {
    exchanges: [Counter; RESULTS.len()],
    exchange_seconds: Histogram,
    in_flight: Gauge,
    token_fetches: [Counter; RESULTS.len()],
    token_fetch_seconds: Histogram,
    errcodes: [Counter; ERRCODES.len()],
    other_errcode: Counter,
}

impl ClientMetrics {
    pub(crate) fn new() -> Self {
        let fuse = Fuse::new();
        for (name, kind, help) in [
            (
                EXCHANGES,
                Kind::Counter,
                "Exchanges of a code with DingTalk (one per code, shared by concurrent requests), \
                 by result.",
            ),
            (
                EXCHANGE_SECONDS,
                Kind::Seconds,
                "How long an exchange took: token, queue, retries and DingTalk's answer.",
            ),
            (EXCHANGES_IN_FLIGHT, Kind::Gauge, "Exchanges under way now."),
            (
                TOKEN_FETCHES,
                Kind::Counter,
                "Calls to DingTalk's access token endpoints, by result.",
            ),
            (
                TOKEN_FETCH_SECONDS,
                Kind::Seconds,
                "How long a call to an access token endpoint took.",
            ),
            (
                DINGTALK_ERRORS,
                Kind::Counter,
                "Errcodes DingTalk answered with, by code and name (unknown ones: other).",
            ),
        ] {
            fuse.describe(name, kind, help);
        }
        Self {
            exchanges: RESULTS.map(|result| fuse.counter(EXCHANGES, &[("result", result)])),
            exchange_seconds: fuse.histogram(EXCHANGE_SECONDS),
            in_flight: fuse.gauge(EXCHANGES_IN_FLIGHT),
            token_fetches: RESULTS.map(|result| fuse.counter(TOKEN_FETCHES, &[("result", result)])),
            token_fetch_seconds: fuse.histogram(TOKEN_FETCH_SECONDS),
            errcodes: ERRCODES.map(|(errcode, name)| {
                fuse.counter(DINGTALK_ERRORS, &[("errcode", errcode), ("name", name)])
            }),
            other_errcode: fuse
                .counter(DINGTALK_ERRORS, &[("errcode", "other"), ("name", "other")]),
        }
    }

    /// An exchange begins: in flight until the guard drops.
    pub(crate) fn exchange_started(&self) -> InFlight<'_> {
        self.in_flight.increment();
        InFlight(&self.in_flight)
    }

    pub(crate) fn exchanged(&self, result: Result<(), AuthErrorKind>, took: Duration) {
        self.exchanges[result_index(result)].increment();
        self.exchange_seconds.record(took);
    }

    pub(crate) fn token_fetched(&self, result: Result<(), AuthErrorKind>, took: Duration) {
        self.token_fetches[result_index(result)].increment();
        self.token_fetch_seconds.record(took);
    }

    /// DingTalk answered `errcode` (not 0).
    pub(crate) fn dingtalk_error(&self, errcode: i64) {
        match errcode_index(errcode) {
            Some(index) => self.errcodes[index].increment(),
            None => self.other_errcode.increment(),
        }
    }
}

/// An exchange in flight, counted until dropped.
pub(crate) struct InFlight<'a>(&'a Gauge);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.decrement();
    }
}

/// Why the local limits refused a call before it was sent.
#[derive(Clone, Copy)]
pub(crate) enum Refusal {
    /// DingTalk said it throttles: nothing is sent until the pause ends.
    ThrottlePause = 0,
    /// No turn under the local rate limit (or the in-flight cap) within the queue timeout.
    RateLimit = 1,
    /// The client that sent the request has as many new exchanges waiting as it may.
    PerClient = 2,
}

/// The client's local limits: refusals, and the time a call queued for its turn.
pub(crate) struct LimitMetrics {
    refusals: [Counter; 3],
    wait: Histogram,
}

impl LimitMetrics {
    pub(crate) fn new() -> Self {
        let fuse = Fuse::new();
        fuse.describe(
            REFUSALS,
            Kind::Counter,
            "Calls to DingTalk refused before they were sent, by reason: throttle_pause \
             (DingTalk throttles), rate_limit (no turn within the queue timeout), per_client (a \
             client past its share of waiting exchanges).",
        );
        fuse.describe(
            RATE_LIMIT_WAIT_SECONDS,
            Kind::Seconds,
            "How long a call queued for its turn under the local rate limit.",
        );
        Self {
            refusals: ["throttle_pause", "rate_limit", "per_client"]
                .map(|reason| fuse.counter(REFUSALS, &[("reason", reason)])),
            wait: fuse.histogram(RATE_LIMIT_WAIT_SECONDS),
        }
    }

    pub(crate) fn refused(&self, reason: Refusal) {
        self.refusals[reason as usize].increment();
    }

    pub(crate) fn waited(&self, wait: Duration) {
        self.wait.record(wait);
    }
}

/// The shared store's health: outages, and whether it answers now.
#[cfg(feature = "redis")]
pub(crate) struct StoreMetrics {
    outages: Counter,
    available: Gauge,
}

#[cfg(feature = "redis")]
impl StoreMetrics {
    /// A store, taken to answer until a call says otherwise.
    pub(crate) fn new() -> Self {
        let fuse = Fuse::new();
        fuse.describe(
            STORE_OUTAGES,
            Kind::Counter,
            "Times the shared store (Redis) stopped answering.",
        );
        fuse.describe(
            STORE_AVAILABLE,
            Kind::Gauge,
            "Whether the shared store answers: 1, or 0 while replicas serve alone.",
        );
        let metrics = Self {
            outages: fuse.counter(STORE_OUTAGES, &[]),
            available: fuse.gauge(STORE_AVAILABLE),
        };
        metrics.available.set(1.0);
        metrics
    }

    pub(crate) fn went_down(&self) {
        self.outages.increment();
        self.available.set(0.0);
    }

    pub(crate) fn came_back(&self) {
        self.available.set(1.0);
    }
}
