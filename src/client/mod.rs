//! [`DingTalkClient`]: the DingTalk HTTP client the layer uses, public so that handlers can call it too.

mod limits;
mod suite;
mod token;
mod userinfo;
mod wire;

use std::fmt;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;
use tracing::Instrument;

use crate::error::{AuthError, AuthErrorKind, ConfigError};
use crate::extract;
use crate::user::AuthenticatedDingTalkUser;

use self::limits::UpstreamLimits;
pub use self::limits::{DEFAULT_MAX_IN_FLIGHT, DEFAULT_QUEUE_TIMEOUT, DEFAULT_RATE_LIMIT};
use self::suite::CorpTokens;
pub use self::suite::{DEFAULT_MAX_CORPS, MemorySuiteTicketStore, SuiteTicketStore};
use self::token::{AccessToken, FetchedToken, TokenCache};
use self::userinfo::{CallFailure, upstream_error};
use self::wire::{AccessTokenRequest, CorpAccessTokenRequest, CorpTokenRequest, UserInfoRequest};

/// DingTalk's legacy host, which serves getuserinfo.
pub const DEFAULT_OAPI_BASE_URL: &str = "https://oapi.dingtalk.com";
/// DingTalk's new host, which serves access tokens.
pub const DEFAULT_API_BASE_URL: &str = "https://api.dingtalk.com";
/// The default time budget of one exchange: token fetch, retries and waiting included.
pub const DEFAULT_UPSTREAM_TIMEOUT: Duration = Duration::from_secs(5);

/// How many more times a "system busy" (-1) answer is retried, and the first pause.
const BUSY_RETRIES: u32 = 2;
const BUSY_BACKOFF: Duration = Duration::from_millis(100);

/// Exchanges DingTalk auth codes for users, with the app's access token fetched and cached.
///
/// The layer builds one; [`DingTalkAuthLayer::client`](crate::DingTalkAuthLayer::client) hands it
/// out, or build your own and share it. Cloning is cheap and clones share the token.
///
/// ```no_run
/// use tower_dingtalk_auth::DingTalkClient;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let client = DingTalkClient::builder()
///     .internal_app("APP_KEY", "APP_SECRET")
///     .http_client(reqwest::Client::new())
///     .build()?;
/// let user = client.user_info("the-code-from-the-front-end").await?;
/// println!("{} ({})", user.name(), user.userid());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct DingTalkClient {
    inner: Arc<ClientInner>,
}

struct ClientInner {
    http: reqwest::Client,
    getuserinfo_url: Url,
    api_base_url: Url,
    app: App,
    corp_id: Option<String>,
    timeout: Duration,
    limits: UpstreamLimits,
}

/// Whose credentials the client holds, and the tokens they give.
enum App {
    /// An internal app: one token for its own organisation.
    Internal {
        app_key: String,
        app_secret: String,
        token: TokenCache,
    },
    /// A third-party app: one token per corp that installed it.
    ThirdParty {
        suite_key: String,
        suite_secret: String,
        tickets: Option<Arc<dyn SuiteTicketStore>>,
        tokens: CorpTokens,
    },
}

impl App {
    fn key(&self) -> &str {
        match self {
            Self::Internal { app_key, .. } => app_key,
            Self::ThirdParty { suite_key, .. } => suite_key,
        }
    }
}

impl fmt::Debug for DingTalkClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let third_party = matches!(self.inner.app, App::ThirdParty { .. });
        f.debug_struct("DingTalkClient")
            .field("getuserinfo_url", &self.inner.getuserinfo_url.as_str())
            .field("api_base_url", &self.inner.api_base_url.as_str())
            .field("key", &self.inner.app.key())
            .field("secret", &"<redacted>")
            .field("third_party", &third_party)
            .field("corp_id", &self.inner.corp_id)
            .field("timeout", &self.inner.timeout)
            .finish()
    }
}

impl DingTalkClient {
    /// Starts a client.
    pub fn builder() -> DingTalkClientBuilder {
        DingTalkClientBuilder::default()
    }

    /// The app key (or, for a third-party app, the suite key) this client uses.
    pub fn app_key(&self) -> &str {
        self.inner.app.key()
    }

    /// Whether the client serves a third-party app, whose codes need a corp id.
    pub fn is_third_party(&self) -> bool {
        matches!(self.inner.app, App::ThirdParty { .. })
    }

    /// The time budget of one exchange.
    pub fn timeout(&self) -> Duration {
        self.inner.timeout
    }

    /// Exchanges a one-time auth code for the user it was issued to.
    ///
    /// A code is spent by its first exchange: call this once per code (the layer caches the result
    /// and coalesces concurrent calls). The whole exchange, token fetch and retries included, takes
    /// at most [`timeout`](Self::timeout); past it the error is
    /// [`UpstreamTimeout`](AuthErrorKind::UpstreamTimeout). A malformed code is refused without any
    /// call to DingTalk.
    ///
    /// For a third-party app use [`user_info_for_corp`](Self::user_info_for_corp): without a corp
    /// id this answers [`MissingCorpId`](AuthErrorKind::MissingCorpId).
    pub async fn user_info(&self, code: &str) -> Result<AuthenticatedDingTalkUser, AuthError> {
        self.user_info_in(None, code).await
    }

    /// Exchanges a code issued in `corp_id` with that corp's token (third-party apps). Check that
    /// the corp authorised your app before calling this with a corp id from a request. For an
    /// internal app the corp id picks nothing: its own token is used.
    pub async fn user_info_for_corp(
        &self,
        corp_id: &str,
        code: &str,
    ) -> Result<AuthenticatedDingTalkUser, AuthError> {
        extract::validate_corp_id(corp_id)?;
        self.user_info_in(Some(corp_id), code).await
    }

    /// The exchange of a code issued in `corp_id` (third-party apps) or in the app's own
    /// organisation (`None`).
    pub(crate) async fn user_info_in(
        &self,
        corp_id: Option<&str>,
        code: &str,
    ) -> Result<AuthenticatedDingTalkUser, AuthError> {
        extract::validate(code)?;
        let corp_id = match &self.inner.app {
            App::Internal { .. } => None,
            App::ThirdParty { .. } => Some(corp_id.ok_or_else(AuthError::missing_corp_id)?),
        };
        let span = tracing::debug_span!(
            "dingtalk_exchange",
            app_key = %self.inner.app.key(),
            corp_id = corp_id.unwrap_or_default()
        );
        let exchange = tokio::time::timeout(self.inner.timeout, self.exchange(corp_id, code));
        match exchange.instrument(span).await {
            Ok(result) => result,
            Err(_elapsed) => {
                tracing::warn!(
                    timeout_ms = self.inner.timeout.as_millis() as u64,
                    "DingTalk did not answer within the exchange's time budget"
                );
                Err(AuthError::new(
                    AuthErrorKind::UpstreamTimeout,
                    "DingTalk did not answer in time",
                ))
            }
        }
    }

    /// `corp_id` is `Some` exactly for third-party apps.
    async fn exchange(
        &self,
        corp_id: Option<&str>,
        code: &str,
    ) -> Result<AuthenticatedDingTalkUser, AuthError> {
        let mut token_refreshed = false;
        let mut busy_retries = 0;
        loop {
            let tokens = self.token_cache(corp_id).await?;
            let token = tokens.get(|| self.fetch_access_token(corp_id)).await?;
            let in_flight = self.inner.limits.admit().await?;
            let outcome = self.call_getuserinfo(&token, corp_id, code).await;
            drop(in_flight);
            match outcome {
                Ok(user) => return Ok(user),
                Err(CallFailure::TokenRejected(errcode)) if !token_refreshed => {
                    tracing::info!(
                        errcode,
                        "DingTalk refused the access token; fetching a new one"
                    );
                    tokens.invalidate(&token);
                    token_refreshed = true;
                }
                Err(CallFailure::TokenRejected(errcode)) => {
                    tracing::error!(
                        errcode,
                        "DingTalk refused a freshly fetched access token; check that the app key \
                         and secret belong to the organisation the codes come from"
                    );
                    return Err(AuthError::new(
                        AuthErrorKind::Misconfigured,
                        "DingTalk refused the app's access token",
                    )
                    .with_errcode(errcode));
                }
                Err(CallFailure::Busy) if busy_retries < BUSY_RETRIES => {
                    tokio::time::sleep(BUSY_BACKOFF * 2u32.pow(busy_retries)).await;
                    busy_retries += 1;
                }
                Err(CallFailure::Busy) => {
                    return Err(AuthError::new(AuthErrorKind::Upstream, "DingTalk is busy")
                        .with_errcode(-1));
                }
                Err(CallFailure::Final(error)) => {
                    if let (AuthErrorKind::Throttled, Some(wait)) =
                        (error.kind(), error.retry_after())
                    {
                        self.inner.limits.pause(wait);
                    }
                    return Err(error);
                }
            }
        }
    }

    /// The token cache of the app, or of the corp for a third-party app.
    async fn token_cache(&self, corp_id: Option<&str>) -> Result<TokenRef<'_>, AuthError> {
        match (&self.inner.app, corp_id) {
            (App::Internal { token, .. }, _) => Ok(TokenRef::App(token)),
            (App::ThirdParty { tokens, .. }, Some(corp_id)) => {
                Ok(TokenRef::Corp(tokens.for_corp(corp_id).await))
            }
            (App::ThirdParty { .. }, None) => Err(AuthError::missing_corp_id()),
        }
    }

    async fn fetch_access_token(&self, corp_id: Option<&str>) -> Result<FetchedToken, AuthError> {
        let inner = &self.inner;
        let api = |path: &str| join(&inner.api_base_url, path, "api_base_url");
        let request = match (&inner.app, corp_id) {
            (
                App::Internal {
                    app_key,
                    app_secret,
                    ..
                },
                _,
            ) => inner
                .http
                .post(api("v1.0/oauth2/accessToken").map_err(misconfigured_url)?)
                .json(&AccessTokenRequest {
                    app_key,
                    app_secret,
                }),
            (
                App::ThirdParty {
                    suite_key,
                    suite_secret,
                    tickets: None,
                    ..
                },
                Some(corp_id),
            ) => inner
                .http
                .post(api(&format!("v1.0/oauth2/{corp_id}/token")).map_err(misconfigured_url)?)
                .json(&CorpTokenRequest {
                    client_id: suite_key,
                    client_secret: suite_secret,
                    grant_type: "client_credentials",
                }),
            (
                App::ThirdParty {
                    suite_key,
                    suite_secret,
                    tickets: Some(tickets),
                    ..
                },
                Some(corp_id),
            ) => {
                let Some(ticket) = tickets.latest_ticket().await else {
                    tracing::error!(
                        "no suite ticket yet: DingTalk pushes one to the app's callback about \
                         every 5 hours; pass it to the SuiteTicketStore"
                    );
                    return Err(AuthError::new(
                        AuthErrorKind::Misconfigured,
                        "the app has no suite ticket yet",
                    ));
                };
                inner
                    .http
                    .post(api("v1.0/oauth2/corpAccessToken").map_err(misconfigured_url)?)
                    .json(&CorpAccessTokenRequest {
                        suite_key,
                        suite_secret,
                        auth_corp_id: corp_id,
                        suite_ticket: &ticket,
                    })
            }
            (App::ThirdParty { .. }, None) => return Err(AuthError::missing_corp_id()),
        };
        let response = request
            .send()
            .await
            .map_err(|error| transport_error("access token", error))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|error| transport_error("access token", error))?;
        let whose = match corp_id {
            Some(corp_id) => format!("suite key {:?} in corp {corp_id:?}", inner.app.key()),
            None => format!("app key {:?}", inner.app.key()),
        };
        token::read_access_token(status, &bytes, &whose)
    }

    async fn call_getuserinfo(
        &self,
        token: &AccessToken,
        corp_id: Option<&str>,
        code: &str,
    ) -> Result<AuthenticatedDingTalkUser, CallFailure> {
        let inner = &self.inner;
        let mut url = inner.getuserinfo_url.clone();
        url.query_pairs_mut()
            .append_pair("access_token", token.secret());
        let response = inner
            .http
            .post(url)
            .json(&UserInfoRequest { code })
            .send()
            .await
            .map_err(|error| CallFailure::Final(transport_error("getuserinfo", error)))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|error| CallFailure::Final(transport_error("getuserinfo", error)))?;
        // The user's organisation: the corp of a third-party exchange, or the configured one.
        let corp_id = corp_id.or(self.inner.corp_id.as_deref());
        userinfo::read(status, &bytes, corp_id)
    }
}

/// A token cache borrowed from the client (internal apps) or shared from the corp caches.
enum TokenRef<'a> {
    App(&'a TokenCache),
    Corp(Arc<TokenCache>),
}

impl std::ops::Deref for TokenRef<'_> {
    type Target = TokenCache;

    fn deref(&self) -> &TokenCache {
        match self {
            Self::App(cache) => cache,
            Self::Corp(cache) => cache,
        }
    }
}

/// A base URL that parsed at build time but cannot take a path is a bug, not DingTalk's fault.
fn misconfigured_url(_: ConfigError) -> AuthError {
    AuthError::new(
        AuthErrorKind::Internal,
        "the DingTalk base URL cannot be joined",
    )
}

/// Maps a reqwest failure without its URL, which holds the access token.
fn transport_error(endpoint: &'static str, error: reqwest::Error) -> AuthError {
    let error = error.without_url();
    if error.is_timeout() {
        tracing::warn!(endpoint, "DingTalk did not answer in time");
        AuthError::new(
            AuthErrorKind::UpstreamTimeout,
            "DingTalk did not answer in time",
        )
    } else {
        tracing::warn!(endpoint, error = %error, "DingTalk could not be reached");
        upstream_error("DingTalk could not be reached")
    }
}

/// Builds a [`DingTalkClient`]; see [`DingTalkClient::builder`].
#[derive(Default)]
pub struct DingTalkClientBuilder {
    http: Option<reqwest::Client>,
    oapi_base_url: Option<String>,
    api_base_url: Option<String>,
    credentials: Option<Credentials>,
    tickets: Option<Arc<dyn SuiteTicketStore>>,
    max_corps: Option<u64>,
    corp_id: Option<String>,
    timeout: Option<Duration>,
    rate_limit: Option<u32>,
    queue_timeout: Option<Duration>,
    max_in_flight: Option<usize>,
}

impl fmt::Debug for DingTalkClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DingTalkClientBuilder")
            .field("oapi_base_url", &self.oapi_base_url)
            .field("api_base_url", &self.api_base_url)
            .field("key", &self.credentials.as_ref().map(Credentials::key))
            .field("corp_id", &self.corp_id)
            .field("timeout", &self.timeout)
            .field("rate_limit", &self.rate_limit)
            .field("queue_timeout", &self.queue_timeout)
            .field("max_in_flight", &self.max_in_flight)
            .finish_non_exhaustive()
    }
}

impl DingTalkClientBuilder {
    /// The credentials of an internal app (企业内部应用): its AppKey (Client ID) and AppSecret.
    pub fn internal_app(
        mut self,
        app_key: impl Into<String>,
        app_secret: impl Into<String>,
    ) -> Self {
        self.credentials = Some(Credentials::Internal(app_key.into(), app_secret.into()));
        self
    }

    /// The credentials of a third-party enterprise app (第三方企业应用): its SuiteKey and
    /// SuiteSecret. Each code is exchanged with the token of the corp it was issued in (see
    /// [`DingTalkClient::user_info_for_corp`]); tokens come from the unified
    /// `POST /v1.0/oauth2/{corpId}/token` unless a [`suite_ticket_store`](Self::suite_ticket_store)
    /// is given.
    pub fn third_party_app(
        mut self,
        suite_key: impl Into<String>,
        suite_secret: impl Into<String>,
    ) -> Self {
        self.credentials = Some(Credentials::ThirdParty(
            suite_key.into(),
            suite_secret.into(),
        ));
        self
    }

    /// Fetches corp tokens with `POST /v1.0/oauth2/corpAccessToken` and the latest suite ticket
    /// from `store`, instead of the unified endpoint. Third-party apps only.
    pub fn suite_ticket_store(mut self, store: impl SuiteTicketStore) -> Self {
        self.tickets = Some(Arc::new(store));
        self
    }

    /// How many corps' tokens a third-party app keeps. Default: 10,000.
    pub fn max_corps(mut self, max: u64) -> Self {
        self.max_corps = Some(max);
        self
    }

    /// Points both DingTalk hosts at one base URL, for a fake DingTalk or a proxy.
    pub fn base_url(self, url: impl Into<String>) -> Self {
        let url = url.into();
        self.oapi_base_url(url.clone()).api_base_url(url)
    }

    /// The legacy host, which serves getuserinfo. Default: [`DEFAULT_OAPI_BASE_URL`].
    pub fn oapi_base_url(mut self, url: impl Into<String>) -> Self {
        self.oapi_base_url = Some(url.into());
        self
    }

    /// The new host, which serves access tokens. Default: [`DEFAULT_API_BASE_URL`].
    pub fn api_base_url(mut self, url: impl Into<String>) -> Self {
        self.api_base_url = Some(url.into());
        self
    }

    /// Uses the caller's HTTP client (its pool, proxy and TLS settings). The exchange's time
    /// budget still applies on top of the client's own timeouts.
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http = Some(client);
        self
    }

    /// The organisation of an internal app, reported by [`AuthenticatedDingTalkUser::corp_id`].
    pub fn corp_id(mut self, corp_id: impl Into<String>) -> Self {
        self.corp_id = Some(corp_id.into());
        self
    }

    /// The time budget of one exchange, token fetch and retries included. Default: 5 s.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The most calls to getuserinfo per second, shared by every clone of the client. DingTalk
    /// allows 20 per app and throttles beyond. Default: 20.
    pub fn rate_limit(mut self, per_second: u32) -> Self {
        self.rate_limit = Some(per_second);
        self
    }

    /// How long a new exchange may wait for its turn under the rate limit (and the in-flight cap);
    /// past it the request gets 503 `rate_limited`. Default: 1 s.
    pub fn queue_timeout(mut self, timeout: Duration) -> Self {
        self.queue_timeout = Some(timeout);
        self
    }

    /// The most calls to getuserinfo in flight at once. Default: 64.
    pub fn max_in_flight(mut self, max: usize) -> Self {
        self.max_in_flight = Some(max);
        self
    }

    /// Builds the client.
    pub fn build(self) -> Result<DingTalkClient, ConfigError> {
        let credentials = self.credentials.ok_or(ConfigError::MissingCredentials)?;
        let app = match credentials {
            Credentials::Internal(key, secret) | Credentials::ThirdParty(key, secret)
                if key.is_empty() || secret.is_empty() =>
            {
                return Err(ConfigError::EmptyCredentials);
            }
            Credentials::Internal(app_key, app_secret) => {
                if self.tickets.is_some() {
                    return Err(ConfigError::SuiteTicketsNeedThirdParty);
                }
                App::Internal {
                    app_key,
                    app_secret,
                    token: TokenCache::new(),
                }
            }
            Credentials::ThirdParty(suite_key, suite_secret) => {
                let max_corps = self.max_corps.unwrap_or(DEFAULT_MAX_CORPS);
                if max_corps == 0 {
                    return Err(ConfigError::ZeroLimit { name: "max_corps" });
                }
                App::ThirdParty {
                    suite_key,
                    suite_secret,
                    tickets: self.tickets,
                    tokens: CorpTokens::new(max_corps),
                }
            }
        };
        let timeout = self.timeout.unwrap_or(DEFAULT_UPSTREAM_TIMEOUT);
        if timeout.is_zero() {
            return Err(ConfigError::ZeroLimit { name: "timeout" });
        }
        let rate_limit = NonZeroU32::new(self.rate_limit.unwrap_or(DEFAULT_RATE_LIMIT))
            .ok_or(ConfigError::ZeroLimit { name: "rate_limit" })?;
        let max_in_flight = self.max_in_flight.unwrap_or(DEFAULT_MAX_IN_FLIGHT);
        if max_in_flight == 0 {
            return Err(ConfigError::ZeroLimit {
                name: "max_in_flight",
            });
        }
        let limits = UpstreamLimits::new(
            rate_limit,
            self.queue_timeout.unwrap_or(DEFAULT_QUEUE_TIMEOUT),
            max_in_flight,
        );
        let oapi = base_url(self.oapi_base_url, DEFAULT_OAPI_BASE_URL, "oapi_base_url")?;
        let api = base_url(self.api_base_url, DEFAULT_API_BASE_URL, "api_base_url")?;
        let getuserinfo_url = join(&oapi, "topapi/v2/user/getuserinfo", "oapi_base_url")?;
        let http = match self.http {
            Some(http) => http,
            None => reqwest::Client::builder()
                .timeout(timeout)
                .connect_timeout(timeout)
                .build()
                .map_err(ConfigError::HttpClient)?,
        };
        Ok(DingTalkClient {
            inner: Arc::new(ClientInner {
                http,
                getuserinfo_url,
                api_base_url: api,
                app,
                corp_id: self.corp_id,
                timeout,
                limits,
            }),
        })
    }
}

/// Which kind of app, with its key and secret.
enum Credentials {
    Internal(String, String),
    ThirdParty(String, String),
}

impl Credentials {
    fn key(&self) -> &str {
        match self {
            Self::Internal(key, _) | Self::ThirdParty(key, _) => key,
        }
    }
}

fn base_url(
    configured: Option<String>,
    default: &str,
    name: &'static str,
) -> Result<Url, ConfigError> {
    let raw = configured.as_deref().unwrap_or(default);
    // A trailing slash makes `join` append rather than replace the last path segment.
    let with_slash = if raw.ends_with('/') {
        raw.to_owned()
    } else {
        format!("{raw}/")
    };
    let url = Url::parse(&with_slash).map_err(|_| ConfigError::InvalidBaseUrl { name })?;
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
        return Err(ConfigError::InvalidBaseUrl { name });
    }
    Ok(url)
}

fn join(base: &Url, path: &str, name: &'static str) -> Result<Url, ConfigError> {
    base.join(path)
        .map_err(|_| ConfigError::InvalidBaseUrl { name })
}

/// For the fuzz targets: getuserinfo's answer read as the client reads it.
#[cfg(feature = "fuzzing")]
pub(crate) fn read_userinfo(
    status: http::StatusCode,
    body: &[u8],
) -> Result<AuthenticatedDingTalkUser, String> {
    match userinfo::read(status, body, None) {
        Ok(user) => Ok(user),
        Err(CallFailure::Final(error)) => Err(error.to_string()),
        Err(CallFailure::Busy) => Err("busy".to_owned()),
        Err(CallFailure::TokenRejected(errcode)) => Err(format!("token rejected: {errcode}")),
    }
}

/// For the fuzz targets: the access token endpoint's answer read as the client reads it.
#[cfg(feature = "fuzzing")]
pub(crate) fn read_access_token(status: http::StatusCode, body: &[u8]) -> Result<(), AuthError> {
    token::read_access_token(status, body, "fuzz").map(drop)
}
