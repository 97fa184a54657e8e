//! [`DingTalkClient`]: the DingTalk HTTP client the layer uses, public so that handlers can call it too.

mod app;
mod builder;
mod cache_settings;
mod check;
mod contact;
mod env;
mod fair_queue;
#[cfg(feature = "fuzzing")]
mod fuzzing;
mod hosts;
mod limit_settings;
mod limits;
mod oapi;
mod profiles;
mod rate;
mod readiness;
mod revocation;
#[cfg(feature = "redis")]
mod shared_budget;
mod suite;
mod token;
mod token_answer;
mod user_settings;
mod userinfo;
mod web_login;
mod wire;
#[cfg(all(test, not(any(feature = "rustls", feature = "native-tls"))))]
mod without_tls;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;
use tokio::time::Instant;
use tracing::Instrument;

use crate::cache::{CacheStats, CachedIdentity, IdentityCache};
use crate::error::{AuthError, AuthErrorKind};
use crate::key::{IdentityKey, IdentityKeyRef};
use crate::metrics::ClientMetrics;
use crate::user::AuthenticatedDingTalkUser;

use self::app::App;
pub use self::builder::{DEFAULT_ANSWER_TIMEOUT, DingTalkClientBuilder};
pub use self::check::CheckProblem;
use self::contact::{AdminLevels, ContactUrls};
pub(crate) use self::fair_queue::CallerKey;
#[cfg(feature = "fuzzing")]
pub(crate) use self::fuzzing::{read_access_token, read_userinfo};
use self::limits::UpstreamLimits;
pub use self::limits::{
    DEFAULT_MAX_IN_FLIGHT, DEFAULT_MAX_PENDING_PER_CLIENT, DEFAULT_QUEUE_TIMEOUT,
    DEFAULT_RATE_LIMIT,
};
pub use self::profiles::DEFAULT_PROFILE_TTL;
pub use self::readiness::Readiness;
pub use self::suite::{DEFAULT_MAX_CORPS, MemorySuiteTicketStore, SuiteTicketStore};
use self::web_login::WebLoginUrls;

/// DingTalk's legacy host, which serves getuserinfo.
pub const DEFAULT_OAPI_BASE_URL: &str = "https://oapi.dingtalk.com";
/// DingTalk's login host, which shows the web login's QR code or account login.
pub const DEFAULT_LOGIN_BASE_URL: &str = "https://login.dingtalk.com";
/// DingTalk's new host, which serves access tokens.
pub const DEFAULT_API_BASE_URL: &str = "https://api.dingtalk.com";
/// The default time a caller waits for an exchange: token fetch, queueing and retries included.
pub const DEFAULT_UPSTREAM_TIMEOUT: Duration = Duration::from_secs(5);

/// DingTalk for the layer: the app's credentials and access tokens, the limits that keep calls
/// polite, and the identity cache that exchanges each code once.
///
/// Build one with [`DingTalkClient::builder`] and hand it to
/// [`DingTalkAuthLayerBuilder::client`](crate::DingTalkAuthLayerBuilder::client); every layer built
/// on one client (or its clones) shares its tokens, limits and identities, so a code one layer
/// exchanged is known to the others. Handlers can call it too.
///
/// ```no_run
/// use std::time::Duration;
/// use tower_dingtalk_auth::{DingTalkAuthLayer, DingTalkClient};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let client = DingTalkClient::builder()
///     .internal_app("APP_KEY", "APP_SECRET")
///     .upstream_timeout(Duration::from_secs(3))
///     .build()?;
/// let api = DingTalkAuthLayer::builder().client(client.clone()).build()?;
/// let pages = DingTalkAuthLayer::builder().client(client.clone()).optional().build()?;
/// let user = client.user_info("the-code-from-the-front-end").await?;
/// println!("{} ({})", user.name(), user.userid());
/// # drop((api, pages));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct DingTalkClient {
    inner: Arc<ClientInner>,
}

struct ClientInner {
    http: reqwest::Client,
    getuserinfo_url: Url,
    /// DingTalk's web login: the login page and the user token endpoints.
    web: WebLoginUrls,
    /// The user-detail calls.
    contact: ContactUrls,
    /// The administrators' levels per organisation, for web logins.
    admin_levels: AdminLevels,
    /// Users' profiles, when asked for.
    profiles: Option<self::profiles::Profiles>,
    /// Who may still be signed in: revocations, re-validations.
    access: std::sync::Arc<crate::access::Access>,
    /// The web login states that came back, for their lifetime: each is answered once.
    login_states: moka::future::Cache<String, ()>,
    /// Users by code, shared by every layer built on this client.
    identities: IdentityCache,
    app: App,
    corp_id: Option<String>,
    timeout: Duration,
    answer_timeout: Duration,
    limits: UpstreamLimits,
    /// Exchanges, token fetches and DingTalk's errcodes (feature `metrics`; else nothing).
    metrics: ClientMetrics,
}

/// What bounds one exchange: until when a call may still be sent, and on whose behalf it queues.
#[derive(Clone, Debug)]
pub(crate) struct ExchangeBudget {
    /// Past this no call is sent; a call sent before it runs to its answer.
    pub(crate) send_by: Instant,
    /// The client the request came from, for the fair queue.
    pub(crate) caller: CallerKey,
}

impl fmt::Debug for DingTalkClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DingTalkClient")
            .field("getuserinfo_url", &self.inner.getuserinfo_url.as_str())
            .field("app", &self.inner.app)
            .field("corp_id", &self.inner.corp_id)
            .field("timeout", &self.inner.timeout)
            .field("answer_timeout", &self.inner.answer_timeout)
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
        self.inner.app.is_third_party()
    }

    /// How long a caller waits for an exchange: past it, no call is sent any more and the caller
    /// gets [`UpstreamTimeout`](AuthErrorKind::UpstreamTimeout).
    pub fn upstream_timeout(&self) -> Duration {
        self.inner.timeout
    }

    /// Former name of [`upstream_timeout`](Self::upstream_timeout).
    #[deprecated(since = "0.1.0", note = "use upstream_timeout")]
    pub fn timeout(&self) -> Duration {
        self.upstream_timeout()
    }

    /// How full the identity cache is right now.
    pub async fn cache_stats(&self) -> CacheStats {
        self.inner.identities.stats().await
    }

    pub(crate) fn identities(&self) -> &IdentityCache {
        &self.inner.identities
    }

    /// How long a call already sent to getuserinfo may take to answer.
    pub fn answer_timeout(&self) -> Duration {
        self.inner.answer_timeout
    }

    /// The user a one-time auth code was issued to.
    ///
    /// A code is spent by its first exchange, so the answer comes from the client's identity
    /// cache when this client (or a layer built on it) exchanged the code within its reuse window;
    /// concurrent calls with one code share one exchange. The token fetch, the queue and the
    /// retries take at most [`upstream_timeout`](Self::upstream_timeout), past which no call is
    /// sent and the error is [`UpstreamTimeout`](AuthErrorKind::UpstreamTimeout). A call already
    /// sent runs to its answer (at most [`answer_timeout`](Self::answer_timeout)) and is cached,
    /// because DingTalk spends the code when the call arrives: giving up on it would lose the user.
    /// A malformed code is refused without any call to DingTalk.
    ///
    /// For a third-party app use [`user_info_for_corp`](Self::user_info_for_corp): without a corp
    /// id this answers [`MissingCorpId`](AuthErrorKind::MissingCorpId).
    pub async fn user_info(&self, code: &str) -> Result<AuthenticatedDingTalkUser, AuthError> {
        let key = IdentityKeyRef::checked(None, code)?.to_owned();
        let identity = self.identify(key, self.direct_budget()).await?;
        Ok(identity.user().clone())
    }

    /// Exchanges a code issued in `corp_id` with that corp's token (third-party apps). Check that
    /// the corp authorised your app before calling this with a corp id from a request. For an
    /// internal app the corp id picks nothing: its own token is used.
    pub async fn user_info_for_corp(
        &self,
        corp_id: &str,
        code: &str,
    ) -> Result<AuthenticatedDingTalkUser, AuthError> {
        let key = IdentityKeyRef::checked(Some(corp_id), code)?.to_owned();
        let identity = self.identify(key, self.direct_budget()).await?;
        Ok(identity.user().clone())
    }

    /// A budget for a call from a handler rather than the layer.
    fn direct_budget(&self) -> ExchangeBudget {
        ExchangeBudget {
            send_by: Instant::now() + self.inner.timeout,
            caller: CallerKey::unknown(),
        }
    }

    /// The user of `key`: from the identity cache, or from one exchange within `budget` shared
    /// with concurrent callers, whose result is cached.
    pub(crate) async fn identify(
        &self,
        key: IdentityKey,
        budget: ExchangeBudget,
    ) -> Result<CachedIdentity, AuthError> {
        let client = self.clone();
        let send_by = budget.send_by;
        let exchange = move |key: IdentityKey| async move { client.exchange(&key, &budget).await };
        self.inner
            .identities
            .get_or_exchange(key, send_by, exchange)
            .await
    }

    /// The exchange of `key` within `budget`.
    async fn exchange(
        &self,
        key: &IdentityKey,
        budget: &ExchangeBudget,
    ) -> Result<AuthenticatedDingTalkUser, AuthError> {
        let corp_id = match (self.is_third_party(), key.corp_id()) {
            (false, _) => None,
            (true, Some(corp_id)) => Some(corp_id),
            (true, None) => return Err(AuthError::missing_corp_id()),
        };
        let span = tracing::debug_span!(
            "dingtalk_exchange",
            app_key = %self.app_key(),
            corp_id = corp_id.unwrap_or_default()
        );
        let metrics = &self.inner.metrics;
        let _in_flight = metrics.exchange_started();
        let started = std::time::Instant::now();
        let result = self
            .exchange_in(corp_id, key.code(), budget)
            .instrument(span)
            .await;
        let outcome = result.as_ref().map(|_| ()).map_err(AuthError::kind);
        metrics.exchanged(outcome, started.elapsed());
        result
    }

    /// `corp_id` is `Some` exactly for third-party apps. From the moment a call is on its way,
    /// DingTalk spends the code when it arrives: the call runs to its answer, whoever still waits.
    async fn exchange_in(
        &self,
        corp_id: Option<&str>,
        code: &str,
        budget: &ExchangeBudget,
    ) -> Result<AuthenticatedDingTalkUser, AuthError> {
        self.with_token(corp_id, budget, |token| async move {
            userinfo::call(self, &token, corp_id, code).await
        })
        .await
    }
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
        oapi::upstream_error("DingTalk could not be reached")
    }
}
