//! [`RedisStoreBuilder`]: a Redis store's settings, checked, and its connection.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::error::ErrorKind;
use super::{Inner, RedisStore, RedisStoreError};
use crate::store::StoreSettings;
use crate::store::digest::StoreSecret;
use crate::store::health::Health;

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
    pub(super) fn new(url: String) -> Self {
        Self {
            url,
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
        if self
            .url
            .get(..9)
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("rediss://"))
        {
            return Err(ErrorKind::TlsUnsupported.into());
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
