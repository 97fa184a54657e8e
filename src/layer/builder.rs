//! [`DingTalkAuthLayerBuilder`]: what the layer does with requests. What it does with DingTalk
//! (credentials, limits, timeouts, the identity cache) is the [`DingTalkClient`]'s, built with
//! [`DingTalkClient::builder`] and handed over whole: nothing is set in two places.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Response;

use super::authenticator::{Authenticator, DEFAULT_CORP_RECHECK};
use super::client_key::ClientKey;
use super::corp_check::CorpCheck;
use super::layer::DingTalkAuthLayer;
use super::login_redirect::{LoginPageOptions, LoginUrlFn};
use super::resolver::Resolver;
use super::token_route::TokenLogin;
use super::web_login_route::WebLogin;
use crate::client::DingTalkClient;
use crate::config_error::ConfigError;
use crate::corp::{AuthorizedCorps, CorpDirectory};
use crate::error::AuthError;
use crate::extract::{CodeExtractor, CodeSource};
use crate::log_gate::LogGate;
use crate::metrics::RequestMetrics;
use crate::reject::{DEFAULT_REALM, RejectionFn, Rejections, valid_realm};
use crate::session::{OpenedSessions, SessionConfig};

impl DingTalkAuthLayer {
    /// Starts a layer's configuration.
    pub fn builder() -> DingTalkAuthLayerBuilder {
        DingTalkAuthLayerBuilder::default()
    }
}

/// Configures a [`DingTalkAuthLayer`]; see [`DingTalkAuthLayer::builder`].
#[derive(Default)]
pub struct DingTalkAuthLayerBuilder {
    client: Option<DingTalkClient>,
    internal_app: Option<(String, String)>,
    code_sources: Option<Vec<CodeSource>>,
    corp_id_sources: Option<Vec<CodeSource>>,
    corp_directory: Option<Arc<dyn CorpDirectory>>,
    optional: bool,
    realm: Option<String>,
    on_rejection: Option<Arc<RejectionFn>>,
    pub(super) session: Option<SessionConfig>,
    pub(super) redirect: Option<String>,
    pub(super) redirect_with: Option<Arc<LoginUrlFn>>,
    pub(super) return_param: Option<String>,
    pub(super) client_key: Option<ClientKey>,
    pub(super) clean_urls: Option<bool>,
    corp_recheck: Option<Duration>,
    pub(super) token_login: Option<String>,
    pub(super) same_site_login: bool,
    pub(super) web_login: Option<String>,
    pub(super) resolver: Option<super::resolver::BoxedResolve>,
}

impl std::fmt::Debug for DingTalkAuthLayerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DingTalkAuthLayerBuilder")
            .field("client", &self.client)
            .field(
                "internal_app",
                &self.internal_app.as_ref().map(|(key, _)| key),
            )
            .field("code_sources", &self.code_sources)
            .field("corp_id_sources", &self.corp_id_sources)
            .field("optional", &self.optional)
            .field("realm", &self.realm)
            .field("session", &self.session)
            .field("redirect", &self.redirect)
            .field("redirect_with", &self.redirect_with.as_ref().map(|_| ".."))
            .field("return_param", &self.return_param)
            .field("client_key", &self.client_key)
            .field("clean_urls", &self.clean_urls)
            .field("corp_recheck", &self.corp_recheck)
            .field("token_login", &self.token_login)
            .field("web_login", &self.web_login)
            .finish_non_exhaustive()
    }
}

impl DingTalkAuthLayerBuilder {
    /// The DingTalk client the layer exchanges codes with: its app, limits, timeouts and identity
    /// cache. Every layer built on one client (or its clones) shares them, so one layer never
    /// refuses a code another already exchanged.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_dingtalk_auth::{DingTalkAuthLayer, DingTalkClient};
    ///
    /// let client = DingTalkClient::builder()
    ///     .internal_app("APP_KEY", "APP_SECRET")
    ///     .upstream_timeout(Duration::from_secs(3))
    ///     .rate_limit(10)
    ///     .build()
    ///     .unwrap();
    /// let layer = DingTalkAuthLayer::builder().client(client).build().unwrap();
    /// # drop(layer);
    /// ```
    pub fn client(mut self, client: DingTalkClient) -> Self {
        self.client = Some(client);
        self
    }

    /// A shortcut for [`client`](Self::client) with an internal app (企业内部应用) and every
    /// other client setting at its default: the app's AppKey (Client ID) and AppSecret.
    pub fn internal_app(
        mut self,
        app_key: impl Into<String>,
        app_secret: impl Into<String>,
    ) -> Self {
        self.internal_app = Some((app_key.into(), app_secret.into()));
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
    /// Checks the configuration and builds the layer.
    ///
    /// With the `metrics` feature, the layer's metrics go to the recorder installed now: install
    /// it before building the layer (and its client).
    pub fn build(self) -> Result<DingTalkAuthLayer, ConfigError> {
        let client = match (self.client, self.internal_app) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::ConflictingOptions {
                    first: "client",
                    second: "internal_app",
                });
            }
            (Some(client), None) => client,
            (None, Some((key, secret))) => DingTalkClient::builder()
                .internal_app(key, secret)
                .build()?,
            (None, None) => return Err(ConfigError::MissingCredentials),
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
                Some(CorpCheck::new(extractor, directory, recheck))
            }
        };
        let realm = self.realm.unwrap_or_else(|| DEFAULT_REALM.to_owned());
        if !valid_realm(&realm) {
            return Err(ConfigError::InvalidRealm);
        }
        let session = match self.session {
            Some(session) => {
                session.validate()?;
                Some(Arc::new(session.bound_to(client.app_key())))
            }
            None => None,
        };
        let token_login = match (self.token_login, &session) {
            (None, _) => None,
            (Some(_), None) => return Err(ConfigError::TokenLoginNeedsSession),
            (Some(path), Some(_)) => {
                Some(TokenLogin::new(&path).ok_or(ConfigError::InvalidTokenLoginPath)?)
            }
        };
        let web_login = match (self.web_login, &session) {
            (None, _) => None,
            (Some(_), None) => return Err(ConfigError::WebLoginNeedsSession),
            (Some(_), Some(_)) if self.optional => {
                return Err(ConfigError::ConflictingOptions {
                    first: "optional",
                    second: "web_login",
                });
            }
            (Some(callback), Some(_)) => {
                Some(WebLogin::new(&callback).ok_or(ConfigError::InvalidWebLoginCallback)?)
            }
        };
        let (redirect, return_param) = LoginPageOptions {
            url: self.redirect,
            with: self.redirect_with,
            return_param: self.return_param,
        }
        .build(
            self.optional,
            extractor
                .query_names()
                .chain(corps.iter().flat_map(|corps| corps.extractor.query_names())),
        )?;
        // The app's answers are kept as long as a re-validation lasts: they are asked again then.
        let resolver = self.resolver.map(|resolve| {
            let keep_for = client
                .access()
                .interval
                .unwrap_or(crate::access::DEFAULT_REVALIDATE_AFTER);
            Resolver::new(resolve, keep_for)
        });
        let rejections = if client.has_profiles() {
            Rejections::with_profiles(realm.into(), self.on_rejection)
        } else {
            Rejections::new(realm.into(), self.on_rejection)
        };
        Ok(DingTalkAuthLayer::new(Authenticator {
            client,
            extractor,
            corps,
            optional: self.optional,
            rejections,
            opened_sessions: session
                .as_ref()
                .map(|session| OpenedSessions::new(session.opened_session_capacity())),
            session,
            redirect,
            return_param,
            client_key: self.client_key.unwrap_or_default(),
            clean_urls: self.clean_urls.unwrap_or(true),
            token_login,
            same_site_login: self.same_site_login,
            proxy_warning: LogGate::once(),
            web_login,
            resolver,
            metrics: RequestMetrics::new(),
        }))
    }
}
