//! [`RedisStore`]: the shared store on Redis (feature `redis`).

use std::fmt;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{RedisError, Script, Value};

use super::{Claim, CodeDigest, Finish, Health, Outcome, StoreTtls};

/// Returns the code's result if the store holds one, else takes the code's lock.
/// KEYS: result, lock. ARGV: this attempt's token, the lock TTL in ms.
/// Answers the result (a string), 1 (lock taken) or 0 (lock held by another attempt).
static CLAIM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"local found = redis.call('GET', KEYS[1])
if found then return found end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return 0",
    )
});

/// Writes the holder's result and releases its lock if it is still the holder's.
/// KEYS: result, lock. ARGV: token, mode (`user`, `rejected` or `none`), value, TTL in ms.
/// A rejection is written only where no result is stored; then the stored result is answered.
static FINISH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"local existing = false
if ARGV[2] == 'user' then
  redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4])
elseif ARGV[2] == 'rejected' then
  existing = redis.call('GET', KEYS[1])
  if not existing then redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4]) end
end
if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
return existing",
    )
});

/// Extends the lock if it is still the holder's. KEYS: lock. ARGV: token, lock TTL in ms.
static RENEW: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0",
    )
});

/// Replicas of one service share identities, rejected codes and the right to exchange a code
/// through Redis, so that a code is exchanged with DingTalk once whichever replicas its requests
/// reach. Pass it to [`DingTalkAuthLayerBuilder::shared_store`](crate::DingTalkAuthLayerBuilder::shared_store).
///
/// On a local cache miss the layer asks Redis. A stored identity is used (and cached locally); a
/// stored rejection is a 401 `code_rejected` (and remembered locally). Otherwise one replica takes
/// the code's lock (`SET NX PX`) and exchanges while the others poll for its result, within the
/// request's budget ([`upstream_timeout`](crate::DingTalkAuthLayerBuilder::upstream_timeout)).
///
/// In Redis, under the [key prefix](RedisStoreBuilder::key_prefix) (default `dingtalk-auth:`):
///
/// | key | value | TTL |
/// | --- | --- | --- |
/// | `<prefix>id:<digest>` | `{"user":{...}}` or `"rejected"` (JSON) | the identity TTL capped at 300 s (a code's life); the rejected-code TTL |
/// | `<prefix>lock:<digest>` | the holding attempt's random token | the [lock TTL](RedisStoreBuilder::lock_ttl), renewed by a live holder |
///
/// where `<digest>` is the hex SHA-256 of the app key, the corp id and the code: Redis never holds
/// a usable code.
///
/// Redis down or slow costs little: each call has a [timeout](RedisStoreBuilder::timeout) (50 ms);
/// the first failure marks Redis down for the [retry interval](RedisStoreBuilder::retry_after)
/// (1 s), during which requests skip it (the local cache serves what it holds, new codes are
/// exchanged directly), then one request probes it. One warning is logged when it goes down, one
/// note when it answers again; the connection is re-established by itself.
///
/// ```no_run
/// use tower_dingtalk_auth::{DingTalkAuthLayer, RedisStore};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let store = RedisStore::connect("redis://127.0.0.1:6379").await?;
/// let layer = DingTalkAuthLayer::builder()
///     .internal_app("APP_KEY", "APP_SECRET")
///     .shared_store(store)
///     .build()?;
/// # drop(layer);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

struct Inner {
    connection: ConnectionManager,
    /// Where Redis is, without credentials: for `Debug`.
    address: String,
    key_prefix: String,
    timeout: Duration,
    lock_ttl: Duration,
    poll_interval: Duration,
    health: Health,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &self.inner;
        f.debug_struct("RedisStore")
            .field("address", &inner.address)
            .field("key_prefix", &inner.key_prefix)
            .field("timeout", &inner.timeout)
            .field("lock_ttl", &inner.lock_ttl)
            .field("poll_interval", &inner.poll_interval)
            .field("health", &inner.health)
            .finish()
    }
}

impl RedisStore {
    /// The prefix of every key unless one is configured.
    pub const DEFAULT_KEY_PREFIX: &'static str = "dingtalk-auth:";
    /// How long one call to Redis may take unless configured.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(50);
    /// How long establishing the connection may take unless configured.
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
    /// A code's lock TTL unless configured.
    pub const DEFAULT_LOCK_TTL: Duration = Duration::from_secs(2);
    /// How often a replica waiting for another's exchange looks for its result unless configured.
    pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(20);
    /// How long Redis is left alone after a failure unless configured.
    pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);

    /// Connects to Redis at `url` (`redis://[:password@]host[:port][/db]`, `rediss://` needs a TLS
    /// feature of the `redis` crate, `unix:///path`) with the default settings; fails if it does
    /// not answer a `PING` within the connect timeout. See [`builder`](Self::builder) for the
    /// settings.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), tower_dingtalk_auth::RedisStoreError> {
    /// let store = tower_dingtalk_auth::RedisStore::connect("redis://127.0.0.1:6379").await?;
    /// # drop(store);
    /// # Ok(()) }
    /// ```
    pub async fn connect(url: impl Into<String>) -> Result<Self, RedisStoreError> {
        Self::builder(url).connect().await
    }

    /// Starts the configuration of a store on Redis at `url`.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use tower_dingtalk_auth::RedisStore;
    ///
    /// # async fn run() -> Result<(), tower_dingtalk_auth::RedisStoreError> {
    /// let store = RedisStore::builder("redis://10.0.0.5:6379/2")
    ///     .key_prefix("billing:dingtalk:")
    ///     .timeout(Duration::from_millis(20))
    ///     .lock_ttl(Duration::from_secs(1))
    ///     .connect()
    ///     .await?;
    /// # drop(store);
    /// # Ok(()) }
    /// ```
    pub fn builder(url: impl Into<String>) -> RedisStoreBuilder {
        RedisStoreBuilder {
            url: url.into(),
            key_prefix: Self::DEFAULT_KEY_PREFIX.to_owned(),
            timeout: Self::DEFAULT_TIMEOUT,
            connect_timeout: Self::DEFAULT_CONNECT_TIMEOUT,
            lock_ttl: Self::DEFAULT_LOCK_TTL,
            poll_interval: Self::DEFAULT_POLL_INTERVAL,
            retry_after: Self::DEFAULT_RETRY_AFTER,
        }
    }

    /// The prefix of every key this store writes.
    pub fn key_prefix(&self) -> &str {
        &self.inner.key_prefix
    }

    /// How long one call to Redis may take.
    pub fn timeout(&self) -> Duration {
        self.inner.timeout
    }

    /// How long a code's lock lives unless its holder renews it.
    pub fn lock_ttl(&self) -> Duration {
        self.inner.lock_ttl
    }

    /// How often a replica waiting for another's exchange looks for its result.
    pub fn poll_interval(&self) -> Duration {
        self.inner.poll_interval
    }

    /// Whether Redis answered the last call: `false` from a failure until a probe succeeds.
    pub fn is_available(&self) -> bool {
        self.inner.health.is_up()
    }

    pub(crate) fn health(&self) -> &Health {
        &self.inner.health
    }

    fn keys(&self, digest: &CodeDigest) -> (String, String) {
        let (prefix, digest) = (&self.inner.key_prefix, digest.as_str());
        (
            format!("{prefix}id:{digest}"),
            format!("{prefix}lock:{digest}"),
        )
    }

    pub(crate) async fn claim(
        &self,
        digest: &CodeDigest,
        token: &str,
    ) -> Result<Claim, RedisError> {
        let (result, lock) = self.keys(digest);
        let mut connection = self.inner.connection.clone();
        let answer: Value = CLAIM
            .key(result)
            .key(lock)
            .arg(token)
            .arg(millis(self.inner.lock_ttl))
            .invoke_async(&mut connection)
            .await?;
        match answer {
            Value::Int(1) => Ok(Claim::Acquired),
            Value::Int(0) => Ok(Claim::Held),
            Value::BulkString(bytes) => Ok(Claim::Found(decode(&bytes)?)),
            other => Err(unexpected(&other)),
        }
    }

    pub(crate) async fn finish(
        &self,
        digest: &CodeDigest,
        token: &str,
        finish: Finish<'_>,
        ttls: StoreTtls,
    ) -> Result<Option<Outcome>, RedisError> {
        let (result, lock) = self.keys(digest);
        let (mode, value, ttl) = match finish {
            Finish::User(user) => ("user", Outcome::User(user.clone()).encode(), ttls.identity),
            Finish::Rejected => ("rejected", Outcome::Rejected.encode(), ttls.rejected),
            Finish::Nothing => ("none", String::new(), Duration::ZERO),
        };
        let mut connection = self.inner.connection.clone();
        let existing: Option<Vec<u8>> = FINISH
            .key(result)
            .key(lock)
            .arg(token)
            .arg(mode)
            .arg(value)
            .arg(millis(ttl))
            .invoke_async(&mut connection)
            .await?;
        existing.map(|bytes| decode(&bytes)).transpose()
    }

    pub(crate) async fn renew(&self, digest: &CodeDigest, token: &str) -> Result<bool, RedisError> {
        let (_, lock) = self.keys(digest);
        let mut connection = self.inner.connection.clone();
        let renewed: i64 = RENEW
            .key(lock)
            .arg(token)
            .arg(millis(self.inner.lock_ttl))
            .invoke_async(&mut connection)
            .await?;
        Ok(renewed == 1)
    }
}

/// Redis takes whole milliseconds, and at least one.
fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

fn decode(bytes: &[u8]) -> Result<Outcome, RedisError> {
    Outcome::decode(bytes).ok_or_else(|| {
        RedisError::from((
            redis::ErrorKind::UnexpectedReturnType,
            "a stored result that is not an identity nor a rejection",
        ))
    })
}

fn unexpected(value: &Value) -> RedisError {
    let what = match value {
        Value::Nil => "nil",
        Value::Okay | Value::SimpleString(_) => "a status",
        Value::Array(_) => "an array",
        _ => "another type",
    };
    RedisError::from((
        redis::ErrorKind::UnexpectedReturnType,
        "the claim script answered something unexpected",
        what.to_owned(),
    ))
}

/// Configures a [`RedisStore`]; see [`RedisStore::builder`].
#[derive(Clone)]
pub struct RedisStoreBuilder {
    url: String,
    key_prefix: String,
    timeout: Duration,
    connect_timeout: Duration,
    lock_ttl: Duration,
    poll_interval: Duration,
    retry_after: Duration,
}

impl fmt::Debug for RedisStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may hold a password.
        f.debug_struct("RedisStoreBuilder")
            .field("url", &"<redacted>")
            .field("key_prefix", &self.key_prefix)
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("lock_ttl", &self.lock_ttl)
            .field("poll_interval", &self.poll_interval)
            .field("retry_after", &self.retry_after)
            .finish()
    }
}

impl RedisStoreBuilder {
    /// The prefix of every key, to keep services (or test runs) sharing one Redis apart.
    /// Default: `dingtalk-auth:`.
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// How long one call to Redis may take; past it Redis counts as down (see
    /// [`retry_after`](Self::retry_after)). Default: 50 ms.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long establishing a connection may take, at start and when reconnecting. Default: 1 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long a code's lock lives unless its holder renews it. Default: 2 s.
    ///
    /// A live holder renews its lock every third of this for as long as its exchange runs, so the
    /// TTL only decides how long a holder that died (crash, lost network) blocks the code: other
    /// replicas take over when it expires. It must be shorter than the request budget
    /// ([`upstream_timeout`](crate::DingTalkAuthLayerBuilder::upstream_timeout), 5 s), or waiters
    /// give up (504) before a dead holder's lock expires; the layer refuses to build otherwise.
    /// Keep it well above the Redis [`timeout`](Self::timeout), so that renewals arrive in time.
    pub fn lock_ttl(mut self, ttl: Duration) -> Self {
        self.lock_ttl = ttl;
        self
    }

    /// How often a replica waiting for another's exchange looks for its result. Default: 20 ms.
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// How long Redis is left alone after a failed or slow call: requests skip it meanwhile, then
    /// one of them probes it. Default: 1 s.
    pub fn retry_after(mut self, wait: Duration) -> Self {
        self.retry_after = wait;
        self
    }

    /// Connects, and checks that Redis answers a `PING` within the connect timeout.
    pub async fn connect(self) -> Result<RedisStore, RedisStoreError> {
        let connect_timeout = self.connect_timeout;
        let store = self.connect_lazy()?;
        let mut connection = store.inner.connection.clone();
        let ping = redis::cmd("PING");
        let ping = ping.query_async::<String>(&mut connection);
        match tokio::time::timeout(connect_timeout, ping).await {
            Ok(Ok(_)) => Ok(store),
            Ok(Err(error)) => Err(RedisStoreError::unreachable(&store, Some(error))),
            Err(_elapsed) => Err(RedisStoreError::unreachable(&store, None)),
        }
    }

    /// Builds the store without contacting Redis, for services that must start while Redis is
    /// down: it connects on first use, and until then requests are served as while Redis is down.
    /// Call it within a Tokio runtime.
    pub fn connect_lazy(self) -> Result<RedisStore, RedisStoreError> {
        for (name, zero) in [
            ("timeout", self.timeout.is_zero()),
            ("connect_timeout", self.connect_timeout.is_zero()),
            ("lock_ttl", self.lock_ttl.is_zero()),
            ("poll_interval", self.poll_interval.is_zero()),
            ("retry_after", self.retry_after.is_zero()),
        ] {
            if zero {
                return Err(RedisStoreError {
                    kind: ErrorKind::ZeroSetting(name),
                    source: None,
                });
            }
        }
        // The parse error is left out: it may quote the URL, password included.
        let client = redis::Client::open(self.url.as_str()).map_err(|_| RedisStoreError {
            kind: ErrorKind::InvalidUrl,
            source: None,
        })?;
        let address = client.get_connection_info().addr().to_string();
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(Some(self.timeout))
            // Our own calls give up at the timeout; reconnecting is tried again on the next call.
            .set_number_of_retries(0);
        let connection =
            ConnectionManager::new_lazy_with_config(client, config).map_err(|error| {
                RedisStoreError {
                    kind: ErrorKind::Unreachable(address.clone()),
                    source: Some(error),
                }
            })?;
        Ok(RedisStore {
            inner: Arc::new(Inner {
                connection,
                address,
                key_prefix: self.key_prefix,
                timeout: self.timeout,
                lock_ttl: self.lock_ttl,
                poll_interval: self.poll_interval,
                health: Health::new("redis", self.retry_after),
            }),
        })
    }
}

/// A [`RedisStore`] could not be built: a malformed URL, a zero setting, or Redis not answering.
/// Neither its message nor `Debug` holds the URL's password.
#[derive(Debug)]
pub struct RedisStoreError {
    kind: ErrorKind,
    source: Option<RedisError>,
}

#[derive(Debug)]
enum ErrorKind {
    InvalidUrl,
    ZeroSetting(&'static str),
    Unreachable(String),
}

impl RedisStoreError {
    fn unreachable(store: &RedisStore, source: Option<RedisError>) -> Self {
        Self {
            kind: ErrorKind::Unreachable(store.inner.address.clone()),
            source,
        }
    }

    /// Whether Redis did not answer (as opposed to a configuration mistake).
    pub fn is_unreachable(&self) -> bool {
        matches!(self.kind, ErrorKind::Unreachable(_))
    }
}

impl fmt::Display for RedisStoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ErrorKind::InvalidUrl => f.write_str(
                "the Redis URL is not valid: redis://[:password@]host[:port][/db] or unix:///path",
            ),
            ErrorKind::ZeroSetting(name) => {
                write!(f, "the Redis store's `{name}` must be above zero")
            }
            ErrorKind::Unreachable(address) => match &self.source {
                Some(error) => write!(f, "Redis at {address} does not answer: {error}"),
                None => write!(
                    f,
                    "Redis at {address} does not answer within the connect timeout"
                ),
            },
        }
    }
}

impl std::error::Error for RedisStoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_ref().map(|error| error as _)
    }
}
