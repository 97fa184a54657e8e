//! [`Backend`]: what a shared store must do atomically, in raw bytes. The protocol
//! ([`super::SharedStore`]) names codes by digest, seals what it writes and opens what it reads;
//! a backend only keeps bytes under those names. Redis is one ([`super::redis`]).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use super::CODE_LIFETIME;
use super::digest::{CodeDigest, StoreSecret};
use super::health::Health;

pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a backend call failed: shown in the one warning logged when the store goes down.
pub(crate) type BackendError = Box<dyn fmt::Display + Send + Sync>;

/// How many revocations one read of the log answers at most.
pub(crate) const REVOCATION_PAGE: usize = 10_000;

/// Entries of the revocation log: each sealed record, with its position.
pub(crate) type LogEntries = Vec<(Vec<u8>, u64)>;

/// A stored value, and how long the store keeps it yet (`None`: no expiry, or not known).
#[derive(Debug)]
pub(crate) struct RawValue {
    pub(crate) bytes: Vec<u8>,
    pub(crate) ttl: Option<Duration>,
}

/// The answer to a claim, as stored.
#[derive(Debug)]
pub(crate) enum RawClaim {
    /// The code's sealed result.
    Found(RawValue),
    /// The lock is this attempt's.
    Acquired,
    /// Another attempt holds the lock.
    Held,
}

/// What a holder writes when it is done, sealed.
#[derive(Debug)]
pub(crate) enum RawFinish<'a> {
    /// Written over anything, for `ttl`.
    Overwrite { value: &'a [u8], ttl: Duration },
    /// Written only where no result is stored yet, for `ttl`; the stored result is answered.
    IfAbsent { value: &'a [u8], ttl: Duration },
    /// Only the lock is released.
    Nothing,
}

/// The names of one budget's keys, without the store's prefix: the budget (GCRA's theoretical
/// arrival time and the last slot promised), the replicas seen lately, a copy of the arrival time
/// (so that the budget key lost alone does not forget the slots given), and, where refused callers
/// are promised a slot, the calling client's promises.
#[derive(Debug)]
pub(crate) struct BudgetKeys {
    pub(crate) budget: String,
    pub(crate) replicas: String,
    pub(crate) mirror: String,
    pub(crate) owed: Option<String>,
}

/// One ask of a shared budget, in microseconds of the store's clock.
#[derive(Debug)]
pub(crate) struct RawBudgetAsk<'a> {
    /// The spacing of calls (the rate's period, headroom included).
    pub(crate) period_us: u64,
    /// How far ahead a caller may be given a slot to wait for.
    pub(crate) horizon_us: u64,
    /// This replica's random id, recorded among the replicas seen lately.
    pub(crate) replica: &'a str,
    /// How long a replica counts as live after its last ask.
    pub(crate) live_us: u64,
    /// The id of the promise made if this ask is refused.
    pub(crate) promise: &'a str,
    /// How long after its slot a promise is still kept for its client.
    pub(crate) late_us: u64,
    /// While promised clients are owed slots, how far ahead a new caller may still be given one:
    /// the slots of clients that do not come back are used by others.
    pub(crate) fill_us: u64,
    /// How many promises one named client may hold at once (0: no cap, for the clients nobody
    /// can tell apart): past it, a refused caller is told its earliest promise, not given another.
    pub(crate) max_promises: u64,
    /// How far ahead the asking replica last saw the budget booked: a budget whose key was lost
    /// (deleted, evicted, a Redis restarted) starts from there rather than from now.
    pub(crate) booked_us: u64,
    /// Whether the budget's key must still be there (the asking replica saw a slot booked more
    /// recently than a key is kept): missing, it was lost while in use, and slots other replicas
    /// were given, up to the horizon ahead, are still to come.
    pub(crate) in_use: bool,
}

/// What a budget said, with how many replicas it saw lately and how far ahead (microseconds) it
/// is booked after this ask.
pub(crate) type RawBudgetAnswer = (RawBudget, u32, u64);

/// What a budget said.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RawBudget {
    /// Send after this many microseconds.
    Send(u64),
    /// Refused: come back after this many microseconds.
    Refused(u64),
    /// The budget's keys cannot be used (a key of another type under their name).
    Broken,
}

/// A store shared by replicas. Every method is one atomic step.
pub(crate) trait Backend: Send + Sync + 'static {
    /// The code's result if there is one; else take its lock for `token` (for `lock_ttl`).
    /// With `ignore_result`, take the lock whatever is stored (the stored value could not be
    /// opened).
    fn claim<'a>(
        &'a self,
        digest: &'a CodeDigest,
        token: &'a str,
        lock_ttl: Duration,
        ignore_result: bool,
    ) -> BoxFuture<'a, Result<RawClaim, BackendError>>;

    /// Writes the holder's result and releases its lock if it is still `token`'s. For
    /// [`RawFinish::IfAbsent`], answers what was stored already.
    fn finish<'a>(
        &'a self,
        digest: &'a CodeDigest,
        token: &'a str,
        finish: RawFinish<'a>,
    ) -> BoxFuture<'a, Result<Option<RawValue>, BackendError>>;

    /// Extends the lock if it is still `token`'s; whether it was.
    fn renew<'a>(
        &'a self,
        digest: &'a CodeDigest,
        token: &'a str,
        lock_ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, BackendError>>;

    /// The code's result, if any, without taking anything.
    fn peek<'a>(
        &'a self,
        digest: &'a CodeDigest,
    ) -> BoxFuture<'a, Result<Option<RawValue>, BackendError>>;

    /// Whether the store answers at all.
    fn ping(&self) -> BoxFuture<'_, Result<(), BackendError>>;

    /// Appends a sealed revocation to the log every replica reads (kept `log_ttl` after the last
    /// one); its position in the log.
    fn revoke<'a>(
        &'a self,
        record: &'a [u8],
        log_ttl: Duration,
    ) -> BoxFuture<'a, Result<u64, BackendError>>;

    /// The log's revocations after position `after`, in order, with their positions: at most
    /// [`REVOCATION_PAGE`] at a time.
    fn revocations_since(&self, after: u64) -> BoxFuture<'_, Result<LogEntries, BackendError>>;

    /// Takes one call from a budget shared by every replica (GCRA on the store's clock), records
    /// this replica as live, and answers with how many replicas were live lately.
    fn budget<'a>(
        &'a self,
        keys: &'a BudgetKeys,
        ask: &'a RawBudgetAsk<'a>,
    ) -> BoxFuture<'a, Result<RawBudgetAnswer, BackendError>>;

    /// Marks that the code started a session; whether this call was the first (for `ttl`).
    fn mark_session<'a>(
        &'a self,
        digest: &'a CodeDigest,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, BackendError>>;
}

/// What a backend brings to the protocol; made by [`crate::RedisStore`].
pub(crate) struct StoreParts {
    pub(crate) backend: Arc<dyn Backend>,
    pub(crate) secret: StoreSecret,
    pub(crate) health: Arc<Health>,
    pub(crate) settings: StoreSettings,
    /// What the log lines and `Debug` call the store (no credentials).
    pub(crate) describe: String,
}

impl StoreParts {
    pub(crate) fn lock_ttl(&self) -> Duration {
        self.settings.lock_ttl
    }

    pub(crate) fn describe(&self) -> &str {
        &self.describe
    }
}

/// The store's own timings.
#[derive(Clone, Copy, Debug)]
pub(crate) struct StoreSettings {
    pub(crate) timeout: Duration,
    pub(crate) lock_ttl: Duration,
    pub(crate) poll_interval: Duration,
}

/// How long what is written to the store lives.
#[derive(Clone, Copy, Debug)]
pub(crate) struct StoreTtls {
    /// An identity: the local identity TTL, capped at [`CODE_LIFETIME`].
    pub(crate) identity: Duration,
    /// A rejection: the local rejected-code TTL.
    pub(crate) rejected: Duration,
}

impl StoreTtls {
    /// The TTLs for a replica that accepts a code for `reuse_window` and remembers a rejection for
    /// `rejected`: the holder cannot know when DingTalk issued the code, and no identity is shared
    /// for longer than a replica accepts it.
    pub(crate) fn new(reuse_window: Duration, rejected: Duration) -> Self {
        Self {
            identity: reuse_window.min(CODE_LIFETIME),
            rejected,
        }
    }
}
