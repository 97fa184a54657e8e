//! [`RedisStore`]: the shared store on Redis (feature `redis`).

use std::fmt;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{RedisError, Script, Value};

use super::backend::{Backend, BackendError, BoxFuture, RawClaim, RawFinish};
use super::digest::{CodeDigest, StoreSecret};
use super::health::Health;
use super::{StoreParts, StoreSettings};

/// Returns the code's result if the store holds one (unless told to ignore it), else takes the
/// code's lock. KEYS: result, lock. ARGV: this attempt's token, the lock TTL in ms, `1` to ignore
/// the result. Answers the result (a string), 1 (lock taken) or 0 (lock held by another attempt).
static CLAIM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"if ARGV[3] ~= '1' then
  local found = redis.call('GET', KEYS[1])
  if found then return found end
end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return 0",
    )
});

/// Writes the holder's result and releases its lock if it is still the holder's.
/// KEYS: result, lock. ARGV: token, mode (`overwrite`, `if_absent` or `none`), value, TTL in ms.
/// With `if_absent` the value is written only where no result is stored, and the stored result
/// is answered.
static FINISH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"local existing = false
if ARGV[2] == 'overwrite' then
  redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4])
elseif ARGV[2] == 'if_absent' then
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
/// | `<prefix>id:<digest>` | `<mac>.{"user":{...}}` or `<mac>."rejected"` | the identity TTL capped at 300 s (a code's life); the rejected-code TTL |
/// | `<prefix>lock:<digest>` | the holding attempt's random token | the [lock TTL](RedisStoreBuilder::lock_ttl), renewed by a live holder |
/// | `<prefix>session:<digest>` | `1`: the code has started its one session | the identity TTL |
///
/// where `<digest>` is the hex HMAC-SHA256, under the [secret](RedisStoreBuilder::secret) every
/// replica shares, of the app key, the corp id and the code, and `<mac>` authenticates the value
/// under the same secret and the digest. Redis never holds a usable code, whoever reads it cannot
/// find a code's entry, and whoever writes to it cannot forge a user: a value that does not
/// authenticate counts as absent (and is logged once a minute).
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
/// let secret = std::env::var("DINGTALK_STORE_SECRET")?; // 32 bytes or more, the same on every replica
/// let store = RedisStore::connect("redis://127.0.0.1:6379", secret).await?;
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
    /// Where Redis is, without credentials: for `Debug` and the logs.
    address: String,
    key_prefix: String,
    secret: StoreSecret,
    settings: StoreSettings,
    health: Arc<Health>,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &self.inner;
        f.debug_struct("RedisStore")
            .field("address", &inner.address)
            .field("key_prefix", &inner.key_prefix)
            .field("secret", &"<redacted>")
            .field("timeout", &inner.settings.timeout)
            .field("lock_ttl", &inner.settings.lock_ttl)
            .field("poll_interval", &inner.settings.poll_interval)
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
    /// The fewest bytes of [secret](RedisStoreBuilder::secret) accepted.
    pub const MIN_SECRET_LEN: usize = StoreSecret::MIN_LEN;

    /// Connects to Redis at `url` (`redis://[:password@]host[:port][/db]`, `rediss://` needs a TLS
    /// feature of the `redis` crate, `unix:///path`) with the default settings and the replicas'
    /// shared `secret` (see [`RedisStoreBuilder::secret`]); fails if Redis does not answer a
    /// `PING` within the connect timeout. See [`builder`](Self::builder) for the settings.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let secret = std::env::var("DINGTALK_STORE_SECRET")?;
    /// let store = tower_dingtalk_auth::RedisStore::connect("redis://127.0.0.1:6379", secret).await?;
    /// # drop(store);
    /// # Ok(()) }
    /// ```
    pub async fn connect(
        url: impl Into<String>,
        secret: impl AsRef<[u8]>,
    ) -> Result<Self, RedisStoreError> {
        Self::builder(url).secret(secret).connect().await
    }

    /// Starts the configuration of a store on Redis at `url`. A
    /// [`secret`](RedisStoreBuilder::secret) is required.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use tower_dingtalk_auth::RedisStore;
    ///
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let store = RedisStore::builder("redis://10.0.0.5:6379/2")
    ///     .secret(std::env::var("DINGTALK_STORE_SECRET")?)
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
            secret: None,
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
        self.inner.settings.timeout
    }

    /// How long a code's lock lives unless its holder renews it.
    pub fn lock_ttl(&self) -> Duration {
        self.inner.settings.lock_ttl
    }

    /// How often a replica waiting for another's exchange looks for its result.
    pub fn poll_interval(&self) -> Duration {
        self.inner.settings.poll_interval
    }

    /// Whether Redis answered the last call: `false` from a failure until a probe succeeds.
    pub fn is_available(&self) -> bool {
        self.inner.health.is_up()
    }

    /// What the layer's shared store is made of.
    pub(crate) fn parts(&self) -> StoreParts {
        StoreParts {
            backend: self.inner.clone(),
            secret: self.inner.secret.clone(),
            health: self.inner.health.clone(),
            settings: self.inner.settings,
            describe: format!("redis at {}", self.inner.address),
        }
    }
}

impl Inner {
    fn key(&self, kind: &str, digest: &CodeDigest) -> String {
        format!("{}{kind}:{}", self.key_prefix, digest.as_str())
    }

    fn connection(&self) -> ConnectionManager {
        self.connection.clone()
    }
}

impl Backend for Inner {
    fn claim<'a>(
        &'a self,
        digest: &'a CodeDigest,
        token: &'a str,
        lock_ttl: Duration,
        ignore_result: bool,
    ) -> BoxFuture<'a, Result<RawClaim, BackendError>> {
        Box::pin(async move {
            let answer: Value = CLAIM
                .key(self.key("id", digest))
                .key(self.key("lock", digest))
                .arg(token)
                .arg(millis(lock_ttl))
                .arg(if ignore_result { "1" } else { "0" })
                .invoke_async(&mut self.connection())
                .await
                .map_err(boxed)?;
            match answer {
                Value::Int(1) => Ok(RawClaim::Acquired),
                Value::Int(0) => Ok(RawClaim::Held),
                Value::BulkString(bytes) => Ok(RawClaim::Found(bytes)),
                other => Err(unexpected(&other)),
            }
        })
    }

    fn finish<'a>(
        &'a self,
        digest: &'a CodeDigest,
        token: &'a str,
        finish: RawFinish<'a>,
    ) -> BoxFuture<'a, Result<Option<Vec<u8>>, BackendError>> {
        Box::pin(async move {
            let (mode, value, ttl): (_, &[u8], _) = match finish {
                RawFinish::Overwrite { value, ttl } => ("overwrite", value, ttl),
                RawFinish::IfAbsent { value, ttl } => ("if_absent", value, ttl),
                RawFinish::Nothing => ("none", b"", Duration::ZERO),
            };
            FINISH
                .key(self.key("id", digest))
                .key(self.key("lock", digest))
                .arg(token)
                .arg(mode)
                .arg(value)
                .arg(millis(ttl))
                .invoke_async(&mut self.connection())
                .await
                .map_err(boxed)
        })
    }

    fn renew<'a>(
        &'a self,
        digest: &'a CodeDigest,
        token: &'a str,
        lock_ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, BackendError>> {
        Box::pin(async move {
            let renewed: i64 = RENEW
                .key(self.key("lock", digest))
                .arg(token)
                .arg(millis(lock_ttl))
                .invoke_async(&mut self.connection())
                .await
                .map_err(boxed)?;
            Ok(renewed == 1)
        })
    }

    fn peek<'a>(
        &'a self,
        digest: &'a CodeDigest,
    ) -> BoxFuture<'a, Result<Option<Vec<u8>>, BackendError>> {
        Box::pin(async move {
            redis::cmd("GET")
                .arg(self.key("id", digest))
                .query_async(&mut self.connection())
                .await
                .map_err(boxed)
        })
    }

    fn mark_session<'a>(
        &'a self,
        digest: &'a CodeDigest,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, BackendError>> {
        Box::pin(async move {
            let set: Option<String> = redis::cmd("SET")
                .arg(self.key("session", digest))
                .arg("1")
                .arg("NX")
                .arg("PX")
                .arg(millis(ttl))
                .query_async(&mut self.connection())
                .await
                .map_err(boxed)?;
            Ok(set.is_some())
        })
    }
}

/// Redis takes whole milliseconds, and at least one.
fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

fn boxed(error: RedisError) -> BackendError {
    Box::new(error)
}

fn unexpected(value: &Value) -> BackendError {
    let what = match value {
        Value::Nil => "nil",
        Value::Okay | Value::SimpleString(_) => "a status",
        Value::Array(_) => "an array",
        _ => "another type",
    };
    Box::new(format!(
        "the claim script answered something unexpected: {what}"
    ))
}

/// Configures a [`RedisStore`]; see [`RedisStore::builder`].
#[derive(Clone)]
pub struct RedisStoreBuilder {
    url: String,
    secret: Option<Vec<u8>>,
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
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
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
    /// The secret every replica shares, at least [`RedisStore::MIN_SECRET_LEN`] (32) bytes;
    /// required. Codes are named in Redis by an HMAC-SHA256 under it, and every value is
    /// authenticated with it, so whoever can write to Redis can neither find a code's entry nor
    /// put a user of their choosing there. Keep it with your other secrets; changing it makes
    /// what is in Redis unreadable (a miss, not an error).
    pub fn secret(mut self, secret: impl AsRef<[u8]>) -> Self {
        self.secret = Some(secret.as_ref().to_vec());
        self
    }

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
    /// A live holder renews its lock every third of this for as long as its exchange runs, even
    /// while Redis seems down to other requests, so the TTL only decides how long a holder that
    /// died (crash, lost network) blocks the code: other replicas take over when it expires. It
    /// must be shorter than the request budget
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
        let mut connection = store.inner.connection();
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
        let secret = match self.secret.as_deref() {
            None => return Err(ErrorKind::MissingSecret.into()),
            Some(bytes) => {
                StoreSecret::new(bytes).ok_or(ErrorKind::SecretTooShort { len: bytes.len() })?
            }
        };
        for (name, zero) in [
            ("timeout", self.timeout.is_zero()),
            ("connect_timeout", self.connect_timeout.is_zero()),
            ("lock_ttl", self.lock_ttl.is_zero()),
            ("poll_interval", self.poll_interval.is_zero()),
            ("retry_after", self.retry_after.is_zero()),
        ] {
            if zero {
                return Err(ErrorKind::ZeroSetting(name).into());
            }
        }
        // The parse error is left out: it may quote the URL, password included.
        let client = redis::Client::open(self.url.as_str()).map_err(|_| ErrorKind::InvalidUrl)?;
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
                secret,
                settings: StoreSettings {
                    timeout: self.timeout,
                    lock_ttl: self.lock_ttl,
                    poll_interval: self.poll_interval,
                },
                health: Arc::new(Health::new("redis", self.retry_after)),
            }),
        })
    }
}

/// A [`RedisStore`] could not be built: a malformed URL, a missing or short secret, a zero
/// setting, or Redis not answering. Neither its message nor `Debug` holds the URL's password or
/// the secret.
#[derive(Debug)]
pub struct RedisStoreError {
    kind: ErrorKind,
    source: Option<RedisError>,
}

#[derive(Debug)]
enum ErrorKind {
    InvalidUrl,
    MissingSecret,
    SecretTooShort { len: usize },
    ZeroSetting(&'static str),
    Unreachable(String),
}

impl From<ErrorKind> for RedisStoreError {
    fn from(kind: ErrorKind) -> Self {
        Self { kind, source: None }
    }
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
            ErrorKind::MissingSecret => f.write_str(
                "the Redis store needs the replicas' shared secret: RedisStoreBuilder::secret",
            ),
            ErrorKind::SecretTooShort { len } => write!(
                f,
                "the Redis store's secret needs at least {} bytes, this one has {len}",
                StoreSecret::MIN_LEN
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
