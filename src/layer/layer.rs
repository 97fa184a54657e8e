//! [`DingTalkAuthLayer`] and its builder.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Response};
use tower_layer::Layer;

use http::request::Parts;
use moka::future::Cache;

use super::authenticator::{
    Authenticator, ClientKeyFn, CorpCheck, DEFAULT_CORP_RECHECK, RejectionFn,
};
use super::service::DingTalkAuth;
use crate::cache::{
    CacheLimits, CacheStats, DEFAULT_CACHE_CAPACITY, DEFAULT_CODE_REUSE_WINDOW,
    DEFAULT_REJECTED_CODE_CAPACITY, DEFAULT_REJECTED_CODE_TTL, IdentityCache,
    MAX_CODE_REUSE_WINDOW,
};
use crate::client::{DingTalkClient, DingTalkClientBuilder, SuiteTicketStore};
use crate::corp::{AuthorizedCorps, CorpDirectory};
use crate::error::{AuthError, ConfigError};
use crate::extract::{CodeExtractor, CodeSource};
use crate::session::SessionConfig;
use crate::store::StoreParts;

/// The realm of `WWW-Authenticate` unless one is configured.
pub const DEFAULT_REALM: &str = "dingtalk";

/// A [`Layer`] that authenticates requests with DingTalk silent login.
///
/// Build it once with [`DingTalkAuthLayer::builder`]; clones share the client, the access token
/// and the identity cache.
///
/// ```
/// use tower_dingtalk_auth::DingTalkAuthLayer;
///
/// let layer = DingTalkAuthLayer::builder()
///     .internal_app("APP_KEY", "APP_SECRET")
///     .build()
///     .expect("valid configuration");
/// let service = tower::ServiceBuilder::new()
///     .layer(layer)
///     .service(tower::service_fn(|_req: http::Request<String>| async {
///         Ok::<_, std::convert::Infallible>(http::Response::new(String::from("hello")))
///     }));
/// # drop(service);
/// ```
#[derive(Clone, Debug)]
pub struct DingTalkAuthLayer {
    authenticator: Arc<Authenticator>,
}

impl DingTalkAuthLayer {
    /// Starts a layer's configuration.
    pub fn builder() -> DingTalkAuthLayerBuilder {
        DingTalkAuthLayerBuilder::default()
    }

    /// The DingTalk client the layer uses, for handlers that call DingTalk themselves.
    pub fn client(&self) -> &DingTalkClient {
        &self.authenticator.client
    }

    /// How many identities the layer has cached right now.
    pub async fn cached_identities(&self) -> u64 {
        self.cache_stats().await.identities
    }

    /// How full the layer's caches are right now.
    pub async fn cache_stats(&self) -> CacheStats {
        self.authenticator.cache.stats().await
    }

    /// The layer's session configuration, if it has one: for a sign-out route's
    /// [`sign_out_cookie`](SessionConfig::sign_out_cookie).
    pub fn session(&self) -> Option<&SessionConfig> {
        self.authenticator.session.as_deref()
    }
}

impl<S> Layer<S> for DingTalkAuthLayer {
    type Service = DingTalkAuth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        DingTalkAuth::new(inner, self.authenticator.clone())
    }
}

/// Configures a [`DingTalkAuthLayer`]; see [`DingTalkAuthLayer::builder`].
#[derive(Default)]
pub struct DingTalkAuthLayerBuilder {
    client: DingTalkClientBuilder,
    prebuilt_client: Option<DingTalkClient>,
    code_sources: Option<Vec<CodeSource>>,
    corp_id_sources: Option<Vec<CodeSource>>,
    corp_directory: Option<Arc<dyn CorpDirectory>>,
    optional: bool,
    code_reuse_window: Option<Duration>,
    cache_capacity: Option<u64>,
    rejected_code_ttl: Option<Duration>,
    rejected_code_capacity: Option<u64>,
    realm: Option<String>,
    on_rejection: Option<Arc<RejectionFn>>,
    session: Option<SessionConfig>,
    redirect: Option<String>,
    shared_store: Option<StoreParts>,
    client_key: Option<Arc<ClientKeyFn>>,
    clean_urls: Option<bool>,
    corp_recheck: Option<Duration>,
}

impl std::fmt::Debug for DingTalkAuthLayerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DingTalkAuthLayerBuilder")
            .field("client", &self.client)
            .field("prebuilt_client", &self.prebuilt_client)
            .field("code_sources", &self.code_sources)
            .field("corp_id_sources", &self.corp_id_sources)
            .field("optional", &self.optional)
            .field("code_reuse_window", &self.code_reuse_window)
            .field("cache_capacity", &self.cache_capacity)
            .field("rejected_code_ttl", &self.rejected_code_ttl)
            .field("rejected_code_capacity", &self.rejected_code_capacity)
            .field("realm", &self.realm)
            .field("session", &self.session)
            .field("redirect", &self.redirect)
            .field(
                "shared_store",
                &self.shared_store.as_ref().map(StoreParts::describe),
            )
            .field("client_key", &self.client_key.as_ref().map(|_| ".."))
            .field("clean_urls", &self.clean_urls)
            .field("corp_recheck", &self.corp_recheck)
            .finish_non_exhaustive()
    }
}

impl DingTalkAuthLayerBuilder {
    /// The credentials of an internal app (企业内部应用): its AppKey (Client ID) and AppSecret.
    pub fn internal_app(
        mut self,
        app_key: impl Into<String>,
        app_secret: impl Into<String>,
    ) -> Self {
        self.client = self.client.internal_app(app_key, app_secret);
        self
    }

    /// The credentials of a third-party enterprise app (第三方企业应用), installed by many corps:
    /// its SuiteKey and SuiteSecret.
    ///
    /// Each request then names the corp its code was issued in (see
    /// [`corp_id_sources`](Self::corp_id_sources)); a code without one gets 401
    /// `missing_corp_id`, a corp the [`corp_directory`](Self::corp_directory) (or
    /// [`authorized_corps`](Self::authorized_corps)) does not know gets 401 `corp_not_authorized`,
    /// both without any call to DingTalk. Identities are cached by corp and code together, and
    /// each corp has its own token.
    ///
    /// ```
    /// use tower_dingtalk_auth::DingTalkAuthLayer;
    ///
    /// let layer = DingTalkAuthLayer::builder()
    ///     .third_party_app("SUITE_KEY", "SUITE_SECRET")
    ///     .authorized_corps(["ding0123456789abcdef", "dingfedcba9876543210"])
    ///     .build()
    ///     .unwrap();
    /// # drop(layer);
    /// ```
    pub fn third_party_app(
        mut self,
        suite_key: impl Into<String>,
        suite_secret: impl Into<String>,
    ) -> Self {
        self.client = self.client.third_party_app(suite_key, suite_secret);
        self
    }

    /// Third-party apps: fetch corp tokens with the latest suite ticket from `store`
    /// (`POST /v1.0/oauth2/corpAccessToken`) instead of the unified endpoint.
    pub fn suite_ticket_store(mut self, store: impl SuiteTicketStore) -> Self {
        self.client = self.client.suite_ticket_store(store);
        self
    }

    /// Third-party apps: how many corps' tokens are kept. Default: 10,000.
    pub fn max_corps(mut self, max: u64) -> Self {
        self.client = self.client.max_corps(max);
        self
    }

    /// Third-party apps: where the corp id is read, in order, like the code.
    /// Default: header `X-DingTalk-Corp-Id`, then query parameter `corpId`.
    pub fn corp_id_sources(mut self, sources: impl IntoIterator<Item = CodeSource>) -> Self {
        self.corp_id_sources = Some(sources.into_iter().collect());
        self
    }

    /// Third-party apps: the corps that authorised the app, as a fixed list.
    pub fn authorized_corps<I, C>(self, corps: I) -> Self
    where
        I: IntoIterator<Item = C>,
        C: Into<Box<str>>,
    {
        self.corp_directory(AuthorizedCorps::new(corps))
    }

    /// Third-party apps: the corps that authorised the app, answered by the app (from its
    /// database, say). Asked before each exchange, not for cached identities.
    pub fn corp_directory(mut self, directory: impl CorpDirectory) -> Self {
        self.corp_directory = Some(Arc::new(directory));
        self
    }

    /// Points both DingTalk hosts at one base URL, for a fake DingTalk or a proxy.
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.client = self.client.base_url(url);
        self
    }

    /// The legacy host, which serves getuserinfo. Default: `https://oapi.dingtalk.com`.
    pub fn oapi_base_url(mut self, url: impl Into<String>) -> Self {
        self.client = self.client.oapi_base_url(url);
        self
    }

    /// The new host, which serves access tokens. Default: `https://api.dingtalk.com`.
    pub fn api_base_url(mut self, url: impl Into<String>) -> Self {
        self.client = self.client.api_base_url(url);
        self
    }

    /// Uses the caller's [`reqwest::Client`] for calls to DingTalk.
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.client = self.client.http_client(client);
        self
    }

    /// How long a request waits for its code's exchange, token fetch, queueing and retries
    /// included; past it the request gets 504 `upstream_timeout`. A call already sent to DingTalk
    /// is not cut short (DingTalk has spent the code): it runs to its answer, which is cached, so
    /// the client's retry gets the user with no second call. Default: 5 s.
    pub fn upstream_timeout(mut self, timeout: Duration) -> Self {
        self.client = self.client.timeout(timeout);
        self
    }

    /// How long a call already sent to getuserinfo may take to answer; see
    /// [`DingTalkClientBuilder::answer_timeout`]. Default: 30 s.
    pub fn answer_timeout(mut self, timeout: Duration) -> Self {
        self.client = self.client.answer_timeout(timeout);
        self
    }

    /// The organisation of an internal app, reported by
    /// [`AuthenticatedDingTalkUser::corp_id`](crate::AuthenticatedDingTalkUser::corp_id).
    pub fn corp_id(mut self, corp_id: impl Into<String>) -> Self {
        self.client = self.client.corp_id(corp_id);
        self
    }

    /// Uses a client built elsewhere (shared with handlers, say). It replaces the client settings
    /// of this builder: credentials, base URLs, HTTP client, timeout and corp id.
    pub fn client(mut self, client: DingTalkClient) -> Self {
        self.prebuilt_client = Some(client);
        self
    }

    /// Where the code is read, in order; the first source that holds one wins.
    /// Default: header `X-DingTalk-Code`, then query parameter `code`.
    pub fn code_sources(mut self, sources: impl IntoIterator<Item = CodeSource>) -> Self {
        self.code_sources = Some(sources.into_iter().collect());
        self
    }

    /// Lets requests without any code through, without a user. A code that is present but fails
    /// is still rejected.
    pub fn optional(mut self) -> Self {
        self.optional = true;
        self
    }

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
        since = "0.2.0",
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

    /// The most calls to DingTalk's getuserinfo per second, shared by every clone of the layer;
    /// new exchanges wait their turn (see [`queue_timeout`](Self::queue_timeout)) and cache hits
    /// never wait. Default: 20, DingTalk's limit per app.
    pub fn rate_limit(mut self, per_second: u32) -> Self {
        self.client = self.client.rate_limit(per_second);
        self
    }

    /// How long a new exchange may wait for its turn under the rate limit; past it the request
    /// gets 503 `rate_limited` with `Retry-After`. Default: 1 s.
    pub fn queue_timeout(mut self, timeout: Duration) -> Self {
        self.client = self.client.queue_timeout(timeout);
        self
    }

    /// The most exchanges in flight to DingTalk at once. Default: 64.
    pub fn max_in_flight(mut self, max: usize) -> Self {
        self.client = self.client.max_in_flight(max);
        self
    }

    /// The most new exchanges of one client waiting for their turn at once; past it the request
    /// gets 429 `too_many_attempts` with `Retry-After`, with no call to DingTalk. Waiting requests
    /// are served fairly between clients (see [`client_key`](Self::client_key)), so one client's
    /// flood of junk codes cannot keep others from logging in. Default: 8.
    pub fn max_pending_per_client(mut self, max: usize) -> Self {
        self.client = self.client.max_pending_per_client(max);
        self
    }

    /// Says who a request comes from, for the fair queue of new exchanges: requests of one client
    /// share one turn, and a client past its share gets 429. `None` puts the request with the
    /// others nobody can tell apart. Cache hits and sessions never queue.
    ///
    /// By default the client is the peer's IP address: axum's `ConnectInfo<SocketAddr>` (serve the
    /// app with `into_make_service_with_connect_info::<SocketAddr>()`), or a `SocketAddr` or
    /// `IpAddr` your hyper server put in the request's extensions. Behind a reverse proxy every
    /// request comes from the proxy: read the address the proxy vouches for instead, and only
    /// that one (the last `X-Forwarded-For` entry your own proxy appended; earlier entries are
    /// whatever the client claimed):
    ///
    /// ```
    /// use tower_dingtalk_auth::DingTalkAuthLayer;
    ///
    /// let layer = DingTalkAuthLayer::builder()
    ///     .internal_app("APP_KEY", "APP_SECRET")
    ///     .client_key(|parts| {
    ///         let forwarded = parts.headers.get("x-forwarded-for")?.to_str().ok()?;
    ///         Some(forwarded.rsplit(',').next()?.trim().to_owned())
    ///     })
    ///     .build()
    ///     .unwrap();
    /// # drop(layer);
    /// ```
    pub fn client_key<F>(mut self, key: F) -> Self
    where
        F: Fn(&Parts) -> Option<String> + Send + Sync + 'static,
    {
        self.client_key = Some(Arc::new(key));
        self
    }

    /// With sessions: whether a page navigation (`GET`, `Accept: text/html`) that logs in with the
    /// code in its query is answered `303 See Other` to the same URL without the code, with the
    /// session cookie, instead of running the handler. The code then leaves the address bar, the
    /// history and the `Referer` of the page's requests. Default: on with sessions.
    pub fn clean_url_after_login(mut self, clean: bool) -> Self {
        self.clean_urls = Some(clean);
        self
    }

    /// Third-party apps with sessions: how long a session's corp is trusted before the
    /// [`CorpDirectory`] is asked again, so that a corp removed from it loses its sessions within
    /// this time. Default: 2 minutes.
    pub fn corp_recheck_interval(mut self, interval: Duration) -> Self {
        self.corp_recheck = Some(interval);
        self
    }

    /// The realm in `WWW-Authenticate` challenges. Default: `dingtalk`.
    pub fn realm(mut self, realm: impl Into<String>) -> Self {
        self.realm = Some(realm.into());
        self
    }

    /// Builds every rejection with `render` instead of the default JSON response.
    ///
    /// ```
    /// use tower_dingtalk_auth::DingTalkAuthLayer;
    ///
    /// let layer = DingTalkAuthLayer::builder()
    ///     .internal_app("APP_KEY", "APP_SECRET")
    ///     .on_rejection(|error| {
    ///         http::Response::builder()
    ///             .status(error.status())
    ///             .body(format!("login failed: {}", error.kind()))
    ///             .unwrap()
    ///     })
    ///     .build()
    ///     .unwrap();
    /// # drop(layer);
    /// ```
    pub fn on_rejection<F, B>(mut self, render: F) -> Self
    where
        F: Fn(&AuthError) -> Response<B> + Send + Sync + 'static,
        B: Into<Bytes>,
    {
        self.on_rejection = Some(Arc::new(move |error| render(error).map(Into::into)));
        self
    }

    /// Keeps users signed in with an encrypted cookie after a code exchange; see [`SessionConfig`].
    ///
    /// Every response to a request authenticated by a code carries the session cookie (unless the
    /// handler set that cookie itself, to sign out). A later request with a valid cookie and no code
    /// is authenticated without calling DingTalk; a code, when present, wins over the cookie. A
    /// cookie that was tampered with, has expired, or was sealed with a key the layer does not hold
    /// counts as absent: 401 `missing_code` (or the redirect, or no user when optional).
    ///
    /// ```
    /// use tower_dingtalk_auth::{DingTalkAuthLayer, SessionConfig, SessionKey};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let key = SessionKey::from_bytes(b"at least 32 bytes of secret, from the vault")?;
    /// let layer = DingTalkAuthLayer::builder()
    ///     .internal_app("APP_KEY", "APP_SECRET")
    ///     .session(SessionConfig::new(key))
    ///     .build()?;
    /// # drop(layer);
    /// # Ok(()) }
    /// ```
    pub fn session(mut self, session: SessionConfig) -> Self {
        self.session = Some(session);
        self
    }

    /// Answers requests that have neither a code nor a valid session with `302 Found` to `url`
    /// (a login page that runs DingTalk's JSAPI and comes back with a code) instead of 401; for
    /// page routes. DingTalk is not called. A code that is present but fails is still a 401.
    /// Cannot be combined with [`optional`](Self::optional).
    ///
    /// ```
    /// use tower_dingtalk_auth::{DingTalkAuthLayer, SessionConfig, SessionKey};
    ///
    /// let pages = DingTalkAuthLayer::builder()
    ///     .internal_app("APP_KEY", "APP_SECRET")
    ///     .session(SessionConfig::new(SessionKey::generate()))
    ///     .redirect_when_missing("/login.html")
    ///     .build()
    ///     .unwrap();
    /// # drop(pages);
    /// ```
    pub fn redirect_when_missing(mut self, url: impl Into<String>) -> Self {
        self.redirect = Some(url.into());
        self
    }

    /// Shares identities, rejected codes and the right to exchange a code with the other replicas
    /// of the service through Redis, so that a code is exchanged once whichever replicas its
    /// requests reach; see [`RedisStore`](crate::RedisStore) for what is stored and what happens
    /// when Redis fails. Layers (replicas) share only what they share a store and a
    /// [key prefix](crate::RedisStoreBuilder::key_prefix) with. The build fails if the store's
    /// [lock TTL](crate::RedisStoreBuilder::lock_ttl) is not below the
    /// [upstream timeout](Self::upstream_timeout).
    ///
    /// ```no_run
    /// use tower_dingtalk_auth::{DingTalkAuthLayer, RedisStore};
    ///
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let store = RedisStore::builder(std::env::var("REDIS_URL")?)
    ///     .key_prefix("my-service:dingtalk:")
    ///     .connect()
    ///     .await?;
    /// let layer = DingTalkAuthLayer::builder()
    ///     .internal_app("APP_KEY", "APP_SECRET")
    ///     .shared_store(store)
    ///     .build()?;
    /// # drop(layer);
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "redis")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
    pub fn shared_store(mut self, store: crate::RedisStore) -> Self {
        self.shared_store = Some(store.parts());
        self
    }

    /// Checks the configuration and builds the layer.
    pub fn build(self) -> Result<DingTalkAuthLayer, ConfigError> {
        let client = match self.prebuilt_client {
            Some(client) => client,
            None => self.client.build()?,
        };
        let extractor = CodeExtractor::new(self.code_sources.unwrap_or_else(CodeSource::defaults));
        if extractor.is_empty() {
            return Err(ConfigError::NoCodeSource);
        }
        let corps = match (client.is_third_party(), self.corp_directory) {
            (false, _) => None,
            (true, None) => return Err(ConfigError::NoCorpDirectory),
            (true, Some(directory)) => {
                let sources = self
                    .corp_id_sources
                    .unwrap_or_else(CodeSource::corp_id_defaults);
                let extractor = CodeExtractor::corp_ids(sources);
                if extractor.is_empty() {
                    return Err(ConfigError::NoCodeSource);
                }
                let recheck = self.corp_recheck.unwrap_or(DEFAULT_CORP_RECHECK);
                if recheck.is_zero() {
                    return Err(ConfigError::ZeroLimit {
                        name: "corp_recheck_interval",
                    });
                }
                Some(CorpCheck {
                    extractor,
                    directory,
                    sessions: Cache::builder()
                        .name("dingtalk-session-corps")
                        .max_capacity(crate::client::DEFAULT_MAX_CORPS)
                        .time_to_live(recheck)
                        .build(),
                })
            }
        };
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
            && store.lock_ttl() >= client.timeout()
        {
            return Err(ConfigError::LockOutlivesBudget {
                lock_ttl: store.lock_ttl(),
                budget: client.timeout(),
            });
        }
        let realm = self.realm.unwrap_or_else(|| DEFAULT_REALM.to_owned());
        let realm_ok = !realm.is_empty()
            && realm
                .bytes()
                .all(|b| (b.is_ascii_graphic() || b == b' ') && b != b'"' && b != b'\\');
        if !realm_ok {
            return Err(ConfigError::InvalidRealm);
        }
        let session = match self.session {
            Some(session) => {
                session.validate()?;
                Some(Arc::new(session.bound_to(client.app_key())))
            }
            None => None,
        };
        let redirect = match self.redirect {
            Some(_) if self.optional => {
                return Err(ConfigError::ConflictingOptions {
                    first: "optional",
                    second: "redirect_when_missing",
                });
            }
            Some(url) if !url.is_empty() && url.bytes().all(|b| b.is_ascii_graphic()) => {
                Some(HeaderValue::try_from(url).map_err(|_| ConfigError::InvalidRedirectUrl)?)
            }
            Some(_) => return Err(ConfigError::InvalidRedirectUrl),
            None => None,
        };
        Ok(DingTalkAuthLayer {
            authenticator: Arc::new(Authenticator {
                cache: IdentityCache::new(cache, client.app_key(), self.shared_store),
                client,
                extractor,
                corps,
                optional: self.optional,
                realm: realm.into(),
                on_rejection: self.on_rejection,
                session,
                redirect,
                client_key: self.client_key,
                clean_urls: self.clean_urls.unwrap_or(true),
            }),
        })
    }
}
