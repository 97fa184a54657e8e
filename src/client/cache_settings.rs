//! The identity cache's settings on [`DingTalkClientBuilder`]: how long a code is accepted again,
//! how many identities and rejections are kept, and the store replicas share.

use std::time::Duration;

use super::builder::DingTalkClientBuilder;
use crate::cache::{
    CacheLimits, DEFAULT_CACHE_CAPACITY, DEFAULT_CODE_REUSE_WINDOW, DEFAULT_REJECTED_CODE_CAPACITY,
    DEFAULT_REJECTED_CODE_TTL, MAX_CODE_REUSE_WINDOW,
};
use crate::config_error::ConfigError;

impl DingTalkClientBuilder {
    /// How long a code is accepted again after its exchange: its **replay window**. Within it, a
    /// request with the same code gets the cached user without a call to DingTalk; after it, the
    /// code is exchanged again (and DingTalk refuses it: 401 `code_rejected`). Anyone who sees the
    /// code (a log, a `Referer`, a shoulder) can use it within the window, so keep it short; raise
    /// it, up to a code's 5-minute life, only for front ends that deliberately send one code with
    /// several calls. Rejected codes are remembered separately
    /// ([`rejected_code_ttl`](Self::rejected_code_ttl)). Default: 30 s.
    pub fn code_reuse_window(mut self, window: Duration) -> Self {
        self.code_reuse_window = Some(window);
        self
    }

    /// Former name of [`code_reuse_window`](Self::code_reuse_window).
    #[deprecated(
        since = "0.1.0",
        note = "use code_reuse_window: the identity cache's TTL is the code's replay window"
    )]
    pub fn cache_ttl(self, ttl: Duration) -> Self {
        self.code_reuse_window(ttl)
    }

    /// How many identities are cached at most. Default: 10,000.
    pub fn cache_capacity(mut self, capacity: u64) -> Self {
        self.cache_capacity = Some(capacity);
        self
    }

    /// How long a code that DingTalk rejected is remembered, so that replaying it costs no call.
    /// Default: 60 s.
    pub fn rejected_code_ttl(mut self, ttl: Duration) -> Self {
        self.rejected_code_ttl = Some(ttl);
        self
    }

    /// How many rejected codes are remembered at most. Default: 10,000.
    pub fn rejected_code_capacity(mut self, capacity: u64) -> Self {
        self.rejected_code_capacity = Some(capacity);
        self
    }

    /// Shares identities, rejected codes and the right to exchange a code with the other replicas
    /// of the service through Redis, so that a code is exchanged once whichever replicas its
    /// requests reach; see [`RedisStore`](crate::RedisStore) for what is stored and what happens
    /// when Redis fails. The build fails if the store's
    /// [lock TTL](crate::RedisStoreBuilder::lock_ttl) is not below the
    /// [upstream timeout](Self::upstream_timeout).
    ///
    /// ```no_run
    /// use tower_dingtalk_auth::{DingTalkAuthLayer, DingTalkClient, RedisStore};
    ///
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let store = RedisStore::builder(std::env::var("REDIS_URL")?)
    ///     .secret(std::env::var("DINGTALK_STORE_SECRET")?)
    ///     .key_prefix("my-service:dingtalk:")
    ///     .connect()
    ///     .await?;
    /// let client = DingTalkClient::builder()
    ///     .internal_app("APP_KEY", "APP_SECRET")
    ///     .shared_store(store)
    ///     .build()?;
    /// let layer = DingTalkAuthLayer::builder().client(client).build()?;
    /// # drop(layer);
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "redis")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
    pub fn shared_store(mut self, store: crate::store::redis::RedisStore) -> Self {
        self.shared_store = Some(store.parts());
        self
    }

    /// The cache's limits, checked; `timeout` is the request budget a store's lock must stay under.
    pub(super) fn cache_limits(&self, timeout: Duration) -> Result<CacheLimits, ConfigError> {
        let cache = CacheLimits {
            capacity: self.cache_capacity.unwrap_or(DEFAULT_CACHE_CAPACITY),
            reuse_window: self.code_reuse_window.unwrap_or(DEFAULT_CODE_REUSE_WINDOW),
            rejected_capacity: self
                .rejected_code_capacity
                .unwrap_or(DEFAULT_REJECTED_CODE_CAPACITY),
            rejected_ttl: self.rejected_code_ttl.unwrap_or(DEFAULT_REJECTED_CODE_TTL),
        };
        for (name, zero) in [
            ("cache_capacity", cache.capacity == 0),
            ("code_reuse_window", cache.reuse_window.is_zero()),
            ("rejected_code_capacity", cache.rejected_capacity == 0),
            ("rejected_code_ttl", cache.rejected_ttl.is_zero()),
        ] {
            if zero {
                return Err(ConfigError::ZeroLimit { name });
            }
        }
        if cache.reuse_window > MAX_CODE_REUSE_WINDOW {
            return Err(ConfigError::ReuseWindowTooLong {
                window: cache.reuse_window,
            });
        }
        if let Some(store) = &self.shared_store
            && store.lock_ttl() >= timeout
        {
            return Err(ConfigError::LockOutlivesBudget {
                lock_ttl: store.lock_ttl(),
                budget: timeout,
            });
        }
        Ok(cache)
    }
}
