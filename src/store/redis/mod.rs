//! [`RedisStore`]: the shared store on Redis (feature `redis`): the handle users build
//! ([`RedisStoreBuilder`]), the connection to one server or a cluster (`connection.rs`), over TLS
//! or not (`tls.rs`), the protocol's steps as Lua scripts (`backend.rs`), and what can go wrong
//! building it (`error.rs`).

mod backend;
mod budget;
mod builder;
mod connection;
mod error;
mod single;
mod tls;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

pub use self::builder::RedisStoreBuilder;
use self::connection::{Connection, Target};
pub use self::error::RedisStoreError;
use super::digest::StoreSecret;
use super::health::Health;
use super::{StoreParts, StoreSettings};

/// Replicas of one service share identities, rejected codes and the right to exchange a code
/// through Redis, so that a code is exchanged with DingTalk once whichever replicas its requests
/// reach. Pass it to [`DingTalkClientBuilder::shared_store`](crate::DingTalkClientBuilder::shared_store).
///
/// On a local cache miss the layer asks Redis. A stored identity is used (and cached locally); a
/// stored rejection is a 401 `code_rejected` (and remembered locally). Otherwise one replica takes
/// the code's lock (`SET NX PX`) and exchanges while the others poll for its result, within the
/// request's budget ([`upstream_timeout`](crate::DingTalkClientBuilder::upstream_timeout)).
///
/// In Redis, under the [key prefix](RedisStoreBuilder::key_prefix) (default `dingtalk-auth:`):
///
/// | key | value | TTL |
/// | --- | --- | --- |
/// | `<prefix>id:{<digest>}` | `<mac>.{"user":{...}}` or `<mac>."rejected"` | the identity TTL capped at 300 s (a code's life); the rejected-code TTL |
/// | `<prefix>lock:{<digest>}` | the holding attempt's random token | the [lock TTL](RedisStoreBuilder::lock_ttl), renewed by a live holder |
/// | `<prefix>session:{<digest>}` | `1`: the code has started its one session | 300 s, a code's life |
/// | `<prefix>revocations`, `<prefix>revocations:position` (a cluster: `<prefix>{revocations}`, `<prefix>{revocations}:position`) | the revocation log (a sorted set of sealed records) and its counter | 31 days after the last revocation |
/// | `<prefix>budget:{<app>}:<name>` | DingTalk's budget for one app and API: GCRA's next slot, the last slot promised | 10 s past the last slot |
/// | `<prefix>budget-booked:{<app>}:<name>` | a copy of the budget's next slot, for when the budget key alone is lost | 10 s past the last slot |
/// | `<prefix>budget-replicas:{<app>}` | the replicas that asked the budget lately, by random id | 5 s |
/// | `<prefix>budget-owed:{<app>}:<name>` | slots promised to one client refused with 503 | 10 s past its last slot |
///
/// where `<digest>` is the hex HMAC-SHA256, under the [secret](RedisStoreBuilder::secret) every
/// replica shares, of the app key, the corp id and the code (for re-validation marks and
/// profiles, of the user), and `<mac>` authenticates the value under the same secret and the
/// digest. The braces make the digest the key's hash tag, so that on a
/// [Redis Cluster](Self::cluster_builder) one code's keys share a slot and each step of the
/// protocol is one script on one node (a prefix with a `{...}` of its own puts every key in that
/// prefix's slot: correct, on one node). Until 0.1.x these keys had no braces: during a rolling
/// upgrade, old and new replicas miss each other's entries for a code's life (5 minutes), so a
/// code sent to both kinds may be exchanged twice; nothing else changes. The revocation log
/// keeps its names on one server, so no revocation is lost in an upgrade. Redis never holds a usable code, whoever reads it cannot
/// find a code's entry, and whoever writes to it cannot forge a user: a value that does not
/// authenticate counts as absent (and is logged once a minute).
///
/// The budget's `<app>` and `<name>`s are HMACs too, of the app key (one app's budget keys share a
/// cluster slot) and the API (and the client's key): see
/// [the replicas guide](crate::guide::replicas) for the one DingTalk budget all replicas share.
///
/// Over TLS (`rediss://`, feature `rustls`, the default), Redis's certificate is verified
/// against the platform's roots or the CA given to
/// [`tls_root_certificate`](RedisStoreBuilder::tls_root_certificate), and must name the URL's
/// host. One that does not is refused: [`connect`](RedisStoreBuilder::connect) fails with the TLS
/// error in its message, and if a later reconnection meets such a certificate (the server's
/// certificate was replaced), the store goes down like any unreachable Redis (one warning, for
/// the failure that ended the connection; each probe's TLS error at debug level) until a
/// certificate that verifies is back, and the replicas serve alone meanwhile. Nothing turns verification
/// off (a URL's `#insecure` is refused), and a `rediss://` store never speaks plaintext.
///
/// Redis down or slow costs little: each call has a [timeout](RedisStoreBuilder::timeout) (50 ms);
/// the first failure marks Redis down for the [retry interval](RedisStoreBuilder::retry_after)
/// (1 s), during which requests skip it (the local cache serves what it holds, new codes are
/// exchanged directly), then one request probes it. One warning is logged when it goes down, one
/// note when it answers again; the connection is re-established by itself.
///
/// ```no_run
/// use tower_dingtalk_auth::{DingTalkAuthLayer, DingTalkClient, RedisStore};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let secret = std::env::var("DINGTALK_STORE_SECRET")?; // 32 bytes or more, the same on every replica
/// let store = RedisStore::connect("redis://127.0.0.1:6379", secret).await?;
/// let client = DingTalkClient::builder()
///     .internal_app("APP_KEY", "APP_SECRET")
///     .shared_store(store)
///     .build()?;
/// let layer = DingTalkAuthLayer::builder().client(client).build()?;
/// # drop(layer);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

struct Inner {
    connection: Connection,
    /// Where Redis is, without credentials: for `Debug` and the logs.
    address: String,
    key_prefix: String,
    secret: StoreSecret,
    settings: StoreSettings,
    health: Arc<Health>,
}

impl Inner {
    fn connection(&self) -> Connection {
        self.connection.clone()
    }
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

    /// Connects to Redis at `url` (`redis://[:password@]host[:port][/db]`, `unix:///path`, or
    /// `rediss://[:password@]host[:port][/db]` for TLS, which needs feature `rustls`) with the
    /// default settings and the replicas' shared `secret` (see [`RedisStoreBuilder::secret`]);
    /// fails if Redis does not answer a `PING` within the connect timeout. See
    /// [`builder`](Self::builder) for the settings, [`cluster_builder`](Self::cluster_builder) for
    /// a Redis Cluster.
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
        RedisStoreBuilder::new(Target::Single(url.into()))
    }

    /// Starts the configuration of a store on a Redis Cluster, given the URLs of some of its
    /// nodes (`redis://host:port`, or all `rediss://` for TLS; one is enough, more survive one
    /// being down at start): the others are found through them, and the map of slots follows
    /// failovers and resharding (`MOVED`, `ASK`). A [`secret`](RedisStoreBuilder::secret) is
    /// required; every other setting is the same as for one server.
    ///
    /// Every step of the protocol touches the keys of one code, which share a hash slot (the
    /// code's digest is their hash tag, see the table above), so each step stays one atomic
    /// script on one node. While a master is lost, calls for its slots fail within the
    /// [timeout](RedisStoreBuilder::timeout) and the store counts as down: replicas serve from
    /// their local caches and exchange new codes directly, as during any outage; once a replica
    /// is promoted (`cluster-node-timeout` later), the slots are served again and so is sharing.
    /// [`DingTalkClient::readiness`](crate::DingTalkClient::readiness) `PING`s every master, so
    /// its `store` is `false` until then.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let store = tower_dingtalk_auth::RedisStore::cluster_builder([
    ///     "redis://10.0.0.11:6379",
    ///     "redis://10.0.0.12:6379",
    ///     "redis://10.0.0.13:6379",
    /// ])
    /// .secret(std::env::var("DINGTALK_STORE_SECRET")?)
    /// .connect()
    /// .await?;
    /// # drop(store);
    /// # Ok(()) }
    /// ```
    pub fn cluster_builder<I>(nodes: I) -> RedisStoreBuilder
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        RedisStoreBuilder::new(Target::Cluster(nodes.into_iter().map(Into::into).collect()))
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
