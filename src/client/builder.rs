//! [`DingTalkClientBuilder`]: every setting of the client, checked once, with every URL resolved
//! at build time.

use std::fmt;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;

use super::app::{App, CorpEndpoint, Tokens};
use super::contact::{ContactUrls, admin_levels_cache};
use super::limits::{
    DEFAULT_MAX_IN_FLIGHT, DEFAULT_MAX_PENDING_PER_CLIENT, DEFAULT_QUEUE_TIMEOUT,
    DEFAULT_RATE_LIMIT, UpstreamLimits,
};
use super::suite::{CorpTokens, DEFAULT_MAX_CORPS, SuiteTicketStore};
use super::web_login::WebLoginUrls;
use super::{
    ClientInner, DEFAULT_API_BASE_URL, DEFAULT_LOGIN_BASE_URL, DEFAULT_OAPI_BASE_URL,
    DEFAULT_UPSTREAM_TIMEOUT, DingTalkClient,
};
use crate::cache::IdentityCache;
use crate::config_error::ConfigError;
use crate::metrics::ClientMetrics;
use crate::store::{SharedStore, StoreParts};

/// How long a call already sent to getuserinfo may take to answer, unless configured (and unless
/// the [timeout](DingTalkClientBuilder::timeout) is longer).
pub const DEFAULT_ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// Builds a [`DingTalkClient`]; see [`DingTalkClient::builder`].
#[derive(Default)]
pub struct DingTalkClientBuilder {
    http: Option<reqwest::Client>,
    pub(super) oapi_base_url: Option<String>,
    pub(super) api_base_url: Option<String>,
    pub(super) login_base_url: Option<String>,
    app: Option<(AppKind, String, String)>,
    tickets: Option<Arc<dyn SuiteTicketStore>>,
    max_corps: Option<u64>,
    corp_id: Option<String>,
    timeout: Option<Duration>,
    answer_timeout: Option<Duration>,
    pub(super) rate_limit: Option<u32>,
    pub(super) queue_timeout: Option<Duration>,
    pub(super) max_in_flight: Option<usize>,
    pub(super) max_pending_per_client: Option<usize>,
    pub(super) code_reuse_window: Option<Duration>,
    pub(super) cache_capacity: Option<u64>,
    pub(super) rejected_code_ttl: Option<Duration>,
    pub(super) rejected_code_capacity: Option<u64>,
    pub(super) shared_store: Option<StoreParts>,
    pub(super) revalidate_after: Option<Option<Duration>>,
    pub(super) profile: Option<(crate::profile::ProfileFields, Duration)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AppKind {
    Internal,
    ThirdParty,
}

impl fmt::Debug for DingTalkClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DingTalkClientBuilder")
            .field("oapi_base_url", &self.oapi_base_url)
            .field("api_base_url", &self.api_base_url)
            .field("login_base_url", &self.login_base_url)
            .field("app", &self.app.as_ref().map(|(kind, key, _)| (kind, key)))
            .field("corp_id", &self.corp_id)
            .field("timeout", &self.timeout)
            .field("answer_timeout", &self.answer_timeout)
            .field("rate_limit", &self.rate_limit)
            .field("queue_timeout", &self.queue_timeout)
            .field("max_in_flight", &self.max_in_flight)
            .field("max_pending_per_client", &self.max_pending_per_client)
            .field("code_reuse_window", &self.code_reuse_window)
            .field("cache_capacity", &self.cache_capacity)
            .field("rejected_code_ttl", &self.rejected_code_ttl)
            .field("rejected_code_capacity", &self.rejected_code_capacity)
            .field(
                "shared_store",
                &self.shared_store.as_ref().map(StoreParts::describe),
            )
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
        self.app = Some((AppKind::Internal, app_key.into(), app_secret.into()));
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
        self.app = Some((AppKind::ThirdParty, suite_key.into(), suite_secret.into()));
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

    /// Uses the caller's HTTP client (its pool, proxy and TLS settings). Give it no overall
    /// timeout shorter than the [answer timeout](Self::answer_timeout): a call cut short after
    /// DingTalk received it loses the user.
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http = Some(client);
        self
    }

    /// The organisation of an internal app, reported by
    /// [`AuthenticatedDingTalkUser::corp_id`](crate::AuthenticatedDingTalkUser::corp_id).
    pub fn corp_id(mut self, corp_id: impl Into<String>) -> Self {
        self.corp_id = Some(corp_id.into());
        self
    }

    /// How long a request waits for its code's exchange: token fetch, queueing and retries
    /// together. Past it no call is sent any more and the request gets 504 `upstream_timeout`; a
    /// call already sent runs to its answer (see [`answer_timeout`](Self::answer_timeout)), which
    /// is cached for the client's retry. Default: 5 s.
    pub fn upstream_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Former name of [`upstream_timeout`](Self::upstream_timeout).
    #[deprecated(
        since = "0.1.0",
        note = "use upstream_timeout, the name the layer used"
    )]
    pub fn timeout(self, timeout: Duration) -> Self {
        self.upstream_timeout(timeout)
    }

    /// How long a call already sent to getuserinfo may take to answer. DingTalk spends a code when
    /// the call arrives, so the call is not cut at the [upstream timeout](Self::upstream_timeout): its
    /// answer is kept for the caller's retry. Default: 30 s, or the timeout if that is longer; it
    /// may not be shorter than the timeout.
    pub fn answer_timeout(mut self, timeout: Duration) -> Self {
        self.answer_timeout = Some(timeout);
        self
    }

    /// Builds the client.
    ///
    /// With the `metrics` feature, the client's metrics go to the recorder installed now:
    /// install it before building the client.
    pub fn build(self) -> Result<DingTalkClient, ConfigError> {
        let timeout = self.timeout.unwrap_or(DEFAULT_UPSTREAM_TIMEOUT);
        if timeout.is_zero() {
            return Err(ConfigError::ZeroLimit { name: "timeout" });
        }
        let cache = self.cache_limits(timeout)?;
        let (kind, key, secret) = self.app.ok_or(ConfigError::MissingCredentials)?;
        if key.is_empty() || secret.is_empty() {
            return Err(ConfigError::EmptyCredentials);
        }
        let oapi = base_url(self.oapi_base_url, DEFAULT_OAPI_BASE_URL, "oapi_base_url")?;
        let api = base_url(self.api_base_url, DEFAULT_API_BASE_URL, "api_base_url")?;
        let login = base_url(
            self.login_base_url,
            DEFAULT_LOGIN_BASE_URL,
            "login_base_url",
        )?;
        // Without a TLS feature reqwest fails every https call at run time; say so at build time.
        let has_tls = cfg!(any(feature = "rustls", feature = "native-tls")) || self.http.is_some();
        for (url, name) in [(&oapi, "oapi_base_url"), (&api, "api_base_url")] {
            if url.scheme() == "https" && !has_tls {
                return Err(ConfigError::NoTls { name });
            }
        }
        let tokens = match (kind, self.tickets) {
            (AppKind::Internal, Some(_)) => return Err(ConfigError::SuiteTicketsNeedThirdParty),
            (AppKind::Internal, None) => {
                Tokens::internal(join(&api, "v1.0/oauth2/accessToken", "api_base_url")?)
            }
            (AppKind::ThirdParty, tickets) => {
                let max_corps = self.max_corps.unwrap_or(DEFAULT_MAX_CORPS);
                if max_corps == 0 {
                    return Err(ConfigError::ZeroLimit { name: "max_corps" });
                }
                let endpoint = match tickets {
                    Some(tickets) => CorpEndpoint::SuiteTicket {
                        url: join(&api, "v1.0/oauth2/corpAccessToken", "api_base_url")?,
                        tickets,
                    },
                    None => CorpEndpoint::Unified {
                        prefix: join(&api, "v1.0/oauth2/", "api_base_url")?.into(),
                    },
                };
                Tokens::ThirdParty {
                    corps: CorpTokens::new(max_corps),
                    endpoint,
                }
            }
        };
        let answer_timeout = self
            .answer_timeout
            .unwrap_or(DEFAULT_ANSWER_TIMEOUT.max(timeout));
        if answer_timeout < timeout {
            return Err(ConfigError::AnswerTimeoutBelowTimeout {
                answer_timeout,
                timeout,
            });
        }
        let rate_limit = NonZeroU32::new(self.rate_limit.unwrap_or(DEFAULT_RATE_LIMIT))
            .ok_or(ConfigError::ZeroLimit { name: "rate_limit" })?;
        let max_in_flight = self.max_in_flight.unwrap_or(DEFAULT_MAX_IN_FLIGHT);
        let max_pending = self
            .max_pending_per_client
            .unwrap_or(DEFAULT_MAX_PENDING_PER_CLIENT);
        for (name, zero) in [
            ("max_in_flight", max_in_flight == 0),
            ("max_pending_per_client", max_pending == 0),
        ] {
            if zero {
                return Err(ConfigError::ZeroLimit { name });
            }
        }
        let limits = UpstreamLimits::new(
            rate_limit,
            self.queue_timeout.unwrap_or(DEFAULT_QUEUE_TIMEOUT),
            max_in_flight,
            max_pending,
        );
        let has_store = self.shared_store.is_some();
        let store = self
            .shared_store
            .map(|parts| SharedStore::new(parts, cache.reuse_window, cache.rejected_ttl));
        #[cfg(feature = "redis")]
        let limits = match &store {
            Some(store) => limits.shared(super::shared_budget::SharedBudget::new(
                store.clone(),
                &key,
                rate_limit,
                max_pending,
            )),
            None => limits,
        };
        let http = match self.http {
            Some(http) => http,
            // No overall timeout: each request sets its own (the answer timeout for getuserinfo).
            None => reqwest::Client::builder()
                .connect_timeout(timeout)
                .build()
                .map_err(ConfigError::HttpClient)?,
        };
        Ok(DingTalkClient {
            inner: Arc::new(ClientInner {
                http,
                getuserinfo_url: join(&oapi, "topapi/v2/user/getuserinfo", "oapi_base_url")?,
                web: WebLoginUrls {
                    authorize: join(&login, "oauth2/auth", "login_base_url")?,
                    user_token: join(&api, "v1.0/oauth2/userAccessToken", "api_base_url")?,
                    me: join(&api, "v1.0/contact/users/me", "api_base_url")?,
                },
                contact: ContactUrls {
                    by_unionid: join(&oapi, "topapi/user/getbyunionid", "oapi_base_url")?,
                    user_get: join(&oapi, "topapi/v2/user/get", "oapi_base_url")?,
                    list_admin: join(&oapi, "topapi/user/listadmin", "oapi_base_url")?,
                    parents: join(
                        &oapi,
                        "topapi/v2/department/listparentbyuser",
                        "oapi_base_url",
                    )?,
                },
                admin_levels: admin_levels_cache(),
                profiles: self
                    .profile
                    .filter(|(fields, _)| !fields.is_empty())
                    .map(|(fields, ttl)| super::profiles::Profiles::new(fields, ttl)),
                access: crate::access::Access::new(
                    self.revalidate_after
                        .unwrap_or(Some(crate::access::DEFAULT_REVALIDATE_AFTER)),
                    has_store,
                ),
                login_states: moka::future::Cache::builder()
                    .max_capacity(100_000)
                    .time_to_live(crate::session::LOGIN_STATE_LIFETIME)
                    .build(),
                identities: IdentityCache::new(cache, &key, store),
                app: App::new(key, secret, tokens),
                corp_id: self.corp_id,
                timeout,
                answer_timeout,
                limits,
                metrics: ClientMetrics::new(),
            }),
        })
    }
}

fn join(base: &Url, path: &str, name: &'static str) -> Result<Url, ConfigError> {
    base.join(path)
        .map_err(|_| ConfigError::InvalidBaseUrl { name })
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
