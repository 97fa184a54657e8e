//! [`RedisStoreBuilder`]: a Redis store's settings, checked, and its connection.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::connection::{ConnectError, Connection, Plan, Target, Timeouts};
use super::error::ErrorKind;
use super::tls::TlsSettings;
use super::{Inner, RedisStore, RedisStoreError};
use crate::store::StoreSettings;
use crate::store::digest::StoreSecret;
use crate::store::health::Health;

/// Configures a [`RedisStore`]; see [`RedisStore::builder`].
#[derive(Clone)]
pub struct RedisStoreBuilder {
    target: Target,
    tls: TlsSettings,
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
        // The URLs may hold a password, the TLS settings a private key.
        let (url, cluster) = match &self.target {
            Target::Single(_) => ("<redacted>", false),
            Target::Cluster(_) => ("<redacted nodes>", true),
        };
        f.debug_struct("RedisStoreBuilder")
            .field("url", &url)
            .field("cluster", &cluster)
            .field("tls", &"<redacted>")
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
    pub(super) fn new(target: Target) -> Self {
        Self {
            target,
            tls: TlsSettings::default(),
            secret: None,
            key_prefix: RedisStore::DEFAULT_KEY_PREFIX.to_owned(),
            timeout: RedisStore::DEFAULT_TIMEOUT,
            connect_timeout: RedisStore::DEFAULT_CONNECT_TIMEOUT,
            lock_ttl: RedisStore::DEFAULT_LOCK_TTL,
            poll_interval: RedisStore::DEFAULT_POLL_INTERVAL,
            retry_after: RedisStore::DEFAULT_RETRY_AFTER,
        }
    }

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
    /// ([`upstream_timeout`](crate::DingTalkClientBuilder::upstream_timeout), 5 s), or waiters
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

    /// Trusts only the CA certificates in `pem` (one or more `-----BEGIN CERTIFICATE-----`
    /// blocks) for Redis's certificate, instead of the platform's roots: for a `rediss://` URL
    /// (or cluster nodes) whose certificate your own CA signed. The certificate must verify and
    /// name the URL's host; one that does not is refused, at [`connect`](Self::connect) as when
    /// reconnecting, and there is no setting to accept it anyway. Building fails if the URL is
    /// `redis://` (a CA for a plaintext connection is a mistake, not a choice) or `pem` holds no
    /// certificate. Feature `rustls`.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let store = tower_dingtalk_auth::RedisStore::builder("rediss://redis.internal:6380")
    ///     .secret(std::env::var("DINGTALK_STORE_SECRET")?)
    ///     .tls_root_certificate(std::fs::read("/etc/redis/ca.pem")?)
    ///     .connect()
    ///     .await?;
    /// # drop(store);
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "rustls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "rustls")))]
    pub fn tls_root_certificate(mut self, pem: impl AsRef<[u8]>) -> Self {
        self.tls.root = Some(pem.as_ref().to_vec());
        self
    }

    /// Presents this client certificate (PEM, with its chain) and its private key (PEM) to Redis,
    /// for servers that require clients to authenticate by certificate (`tls-auth-clients yes`).
    /// Only for `rediss://`, like [`tls_root_certificate`](Self::tls_root_certificate); the key
    /// never appears in `Debug` or an error. Feature `rustls`.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let store = tower_dingtalk_auth::RedisStore::builder("rediss://redis.internal:6380")
    ///     .secret(std::env::var("DINGTALK_STORE_SECRET")?)
    ///     .tls_root_certificate(std::fs::read("/etc/redis/ca.pem")?)
    ///     .tls_client_certificate(
    ///         std::fs::read("/etc/dingtalk-auth/client.pem")?,
    ///         std::fs::read("/etc/dingtalk-auth/client.key")?,
    ///     )
    ///     .connect()
    ///     .await?;
    /// # drop(store);
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "rustls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "rustls")))]
    pub fn tls_client_certificate(
        mut self,
        certificate_pem: impl AsRef<[u8]>,
        key_pem: impl AsRef<[u8]>,
    ) -> Self {
        self.tls.client = Some((certificate_pem.as_ref().to_vec(), key_pem.as_ref().to_vec()));
        self
    }

    /// Connects, and checks that Redis answers within the connect timeout: one server a `PING`
    /// (and, if it is a node of a cluster with several masters, fails saying to use
    /// [`RedisStore::cluster_builder`]); a cluster's seed nodes with their map of slots. Over TLS, a certificate that does not
    /// verify fails here, with the TLS error in the message.
    pub async fn connect(self) -> Result<RedisStore, RedisStoreError> {
        let (plan, timeouts, secret) = self.plan()?;
        let (address, tls) = (plan.address.clone(), plan.tls);
        match plan.connect(timeouts).await {
            Ok(connection) => Ok(self.into_store(connection, address, secret)),
            Err(ConnectError::Unreachable(source)) => Err(RedisStoreError {
                kind: ErrorKind::Unreachable { address, tls },
                source,
            }),
            Err(ConnectError::ClusterNode) => Err(ErrorKind::ClusterNode { address }.into()),
        }
    }

    /// Builds the store without contacting Redis, for services that must start while Redis is
    /// down: it connects on first use, and until then requests are served as while Redis is down.
    /// Call it within a Tokio runtime.
    pub fn connect_lazy(self) -> Result<RedisStore, RedisStoreError> {
        let (plan, timeouts, secret) = self.plan()?;
        let (address, tls) = (plan.address.clone(), plan.tls);
        match plan.lazy(timeouts) {
            Ok(connection) => Ok(self.into_store(connection, address, secret)),
            Err(error) => Err(RedisStoreError {
                kind: ErrorKind::Unreachable { address, tls },
                source: Some(error),
            }),
        }
    }

    /// Checks the settings and the URLs, without contacting Redis.
    fn plan(&self) -> Result<(Plan, Timeouts, StoreSecret), ErrorKind> {
        let secret = match self.secret.as_deref() {
            None => return Err(ErrorKind::MissingSecret),
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
                return Err(ErrorKind::ZeroSetting(name));
            }
        }
        let timeouts = Timeouts {
            connect: self.connect_timeout,
            response: self.timeout,
        };
        Ok((self.target.plan(&self.tls)?, timeouts, secret))
    }

    fn into_store(
        self,
        connection: Connection,
        address: String,
        secret: StoreSecret,
    ) -> RedisStore {
        RedisStore {
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
        }
    }
}
