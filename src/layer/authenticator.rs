//! [`Authenticator`]: what every clone of a layer shares, and the decision for one request.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderValue, Method, Response};
use tokio::time::Instant;

use super::client_key::ClientKey;
use super::corp_check::CorpCheck;
use super::login::{CleanUrl, accepts_html, login_from_elsewhere};
use super::login_redirect::{LoginRedirect, return_target};
use super::pages::continue_by_script;
use super::resolver::{Insert, Resolver};
use super::token_route::{TokenLogin, TokenRoute};
use super::web_login_route::WebLogin;
use crate::cache::{CachedIdentity, Known};
use crate::client::{CallerKey, DingTalkClient, ExchangeBudget};
use crate::error::{AuthError, AuthErrorKind};
use crate::extract::CodeExtractor;
use crate::key::{IdentityKey, IdentityKeyRef};
use crate::log_gate::LogGate;
use crate::metrics::{Outcome, RequestMetrics};
use crate::reject::Rejections;
use crate::session::{OpenedSessions, SessionConfig};
use crate::user::AuthenticatedDingTalkUser;

/// What to do with the request and response of a request that signed in.
#[derive(Clone, Default)]
pub(crate) struct AfterLogin {
    /// Start the code's session: add the cookie.
    pub(crate) start_session: bool,
    /// A page navigation with the code in its query: answer 303 to this URL, without the code.
    pub(crate) clean_url: Option<HeaderValue>,
    /// The app's own user, from its resolver, to put in the request's extensions.
    pub(crate) resolved: Option<Insert>,
}

/// What the layer decided for a request before any await.
pub(crate) enum Decision {
    /// Pass the request on as it is (optional mode, no code).
    PassThrough,
    /// Answer with this rejection; the inner service does not run.
    Reject(Response<Bytes>),
    /// The code's user was cached: run the inner service as this user (or answer the 303).
    Authenticated(AuthenticatedDingTalkUser, AfterLogin),
    /// Find the user of this code, then run the inner service.
    Authenticate(Login),
    /// A valid session cookie (and no code): run the inner service with this user (and the app's
    /// value for them).
    Session(AuthenticatedDingTalkUser, Option<Insert>, Outcome),
    /// A user signed in or found, for whom the app's resolver must run first (`true`: a sign-in).
    Resolve(AuthenticatedDingTalkUser, AfterLogin, bool),
    /// A valid session whose user is due to be re-validated with DingTalk first.
    CheckSession(SessionCheck),
    /// A valid session of a third-party app whose corp this layer must ask its directory about
    /// first.
    CheckCorp(AuthenticatedDingTalkUser, Outcome),
    /// A `POST` to the token login endpoint: read the body, then answer it here.
    TokenRoute(TokenRoute),
    /// DingTalk's web login coming back: answer it here.
    WebLoginCallback,
}

/// A session whose user is due to be re-validated: the user, the sealed value (to mark it checked
/// in the opened sessions), and the answer to give if the user was revoked.
pub(crate) struct SessionCheck {
    pub(crate) user: AuthenticatedDingTalkUser,
    /// When its login was made (ms since the epoch).
    pub(crate) auth: u64,
    /// Whether it is due to be re-validated (else only the revocations were not read yet).
    pub(crate) due: bool,
    pub(crate) sealed: Box<[u8]>,
    pub(crate) revoked: Response<Bytes>,
    /// How `revoked` is counted if it is the answer.
    pub(crate) revoked_kind: AuthErrorKind,
    /// How the request is counted if the session is admitted.
    pub(crate) outcome: Outcome,
}

/// A code to look up or exchange, and for whom.
pub(crate) struct Login {
    pub(crate) key: IdentityKey,
    pub(crate) caller: CallerKey,
    pub(crate) clean_url: Option<HeaderValue>,
}

pub(crate) struct Authenticator {
    /// DingTalk, and the identity cache every layer on this client shares.
    pub(crate) client: DingTalkClient,
    pub(crate) extractor: CodeExtractor,
    /// Third-party apps: where the corp id comes from, and which corps may log in.
    pub(crate) corps: Option<CorpCheck>,
    pub(crate) optional: bool,
    /// How rejections are rendered, here and by every guard and extractor behind the layer.
    pub(crate) rejections: Rejections,
    pub(crate) session: Option<Arc<SessionConfig>>,
    /// The sessions this layer opened lately (with `session`).
    pub(crate) opened_sessions: Option<OpenedSessions>,
    /// Where requests with neither code nor session go instead of a 401.
    pub(crate) redirect: Option<LoginRedirect>,
    /// The login page's return parameter: where a login by query goes next.
    pub(crate) return_param: Box<str>,
    /// Who a request comes from, for the fair queue of new exchanges.
    pub(crate) client_key: ClientKey,
    /// Whether a page navigation that logs in with a code in its query is sent to its URL without
    /// the code.
    pub(crate) clean_urls: bool,
    /// Where codes are exchanged for bearer tokens; with it, `Authorization: Bearer` is read.
    pub(crate) token_login: Option<TokenLogin>,
    /// Whether a navigation from a sibling subdomain (`Sec-Fetch-Site: same-site`) may log in
    /// with a code.
    pub(crate) same_site_login: bool,
    /// The warning that the client key ignores a proxy's headers, logged once.
    pub(crate) proxy_warning: LogGate,
    /// DingTalk's web login for browsers outside the DingTalk client.
    pub(crate) web_login: Option<WebLogin>,
    /// The app's resolver, from DingTalk users to its own.
    pub(crate) resolver: Option<Resolver>,
    /// Requests by outcome (feature `metrics`; else nothing).
    pub(crate) metrics: RequestMetrics,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("client", &self.client)
            .field("extractor", &self.extractor)
            .field("corps", &self.corps.as_ref().map(|corps| &corps.extractor))
            .field("optional", &self.optional)
            .field("rejections", &self.rejections)
            .field("session", &self.session)
            .field("redirect", &self.redirect)
            .field("client_key", &self.client_key)
            .field("clean_urls", &self.clean_urls)
            .field("token_login", &self.token_login)
            .field("same_site_login", &self.same_site_login)
            .field("web_login", &self.web_login)
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    pub(crate) fn decide(&self, parts: &Parts) -> Decision {
        if let Some(route) = self.token_login.as_ref().and_then(|t| t.route(parts)) {
            return Decision::TokenRoute(route);
        }
        // The callback's `state` is its CSRF check: it is exempt from the cross-site refusal.
        if self
            .web_login
            .as_ref()
            .is_some_and(|web| web.is_callback(parts))
        {
            return Decision::WebLoginCallback;
        }
        match self.extractor.extract(parts) {
            Ok(Some(code)) => {
                if self.session.is_some() && login_from_elsewhere(parts, self.same_site_login) {
                    tracing::debug!("a code on a request from another origin: not a login");
                    let refusal = self.no_login(parts, AuthError::cross_site_login());
                    return Decision::Reject(continue_by_script(refusal));
                }
                match self.corp_of(parts) {
                    Ok(corp_id) => {
                        let key = IdentityKeyRef::prechecked(corp_id.as_deref(), &code.value);
                        self.decide_code(parts, key, code.from_query)
                    }
                    Err(error) => Decision::Reject(self.rejection(&error)),
                }
            }
            Ok(None) => self.decide_without_code(parts),
            Err(error) => {
                tracing::debug!(error = %error, "request refused before any call to DingTalk");
                Decision::Reject(self.rejection(&error))
            }
        }
    }

    /// A cache hit is decided at once, with nothing allocated; anything else is looked up again
    /// and, on a miss, exchanged in [`authenticate`](Self::authenticate).
    fn decide_code(&self, parts: &Parts, key: IdentityKeyRef<'_>, from_query: bool) -> Decision {
        let identities = self.client.identities();
        match identities.get_now(key) {
            Some(Known::User(identity)) => {
                tracing::debug!("identity cache hit");
                let user = identity.user();
                let access = self.client.access();
                if !access.is_ready() {
                    return Decision::Authenticate(self.login(parts, key, from_query));
                }
                if access.is_revoked(user.corp_id(), user.userid(), identity.signed_in_at()) {
                    return Decision::Reject(self.rejection(&AuthError::session_revoked()));
                }
                // The identity may have been cached by another layer on this client, with another
                // directory: this layer's verdict on the corp holds, remembered or asked.
                match self.remembered_corp_verdict(key.corp_id()) {
                    Some(true) => {}
                    Some(false) => {
                        return Decision::Reject(self.rejection(&AuthError::corp_not_authorized()));
                    }
                    None => return Decision::Authenticate(self.login(parts, key, from_query)),
                }
                let start_session = match &self.session {
                    None => false,
                    // Whether another replica started the code's session is asked in the store.
                    Some(_) if !identity.session_started() && identities.store().is_some() => {
                        return Decision::Authenticate(self.login(parts, key, from_query));
                    }
                    Some(_) => identity.start_session_locally(),
                };
                let mut after = AfterLogin {
                    start_session,
                    clean_url: self.clean_url(parts, from_query),
                    resolved: None,
                };
                let user = identity.user().clone();
                // A code's first use here is a sign-in: the app's resolver runs, once.
                let fresh = self.resolver.is_some() && identity.first_resolution();
                match self.enriched_now(user, fresh) {
                    Ok((user, resolved)) => {
                        after.resolved = resolved;
                        Decision::Authenticated(user, after)
                    }
                    Err(user) => Decision::Resolve(user, after, fresh),
                }
            }
            Some(Known::Rejected(error)) => {
                tracing::debug!("a code DingTalk rejected, replayed");
                Decision::Reject(self.rejection(&error))
            }
            None => Decision::Authenticate(self.login(parts, key, from_query)),
        }
    }

    fn login(&self, parts: &Parts, key: IdentityKeyRef<'_>, from_query: bool) -> Login {
        Login {
            key: key.to_owned(),
            caller: self.caller_of(parts),
            clean_url: self.clean_url(parts, from_query),
        }
    }

    /// For a page navigation that carries the code in its query, with sessions: the same URL
    /// without the code, to send the browser to once the session cookie is set.
    fn clean_url(&self, parts: &Parts, from_query: bool) -> Option<HeaderValue> {
        if !(from_query && self.clean_urls && self.session.is_some()) {
            return None;
        }
        if parts.method != Method::GET || !accepts_html(parts) {
            return None;
        }
        // Back from the login page: where the browser was going, if it is a path on this host.
        return_target(&parts.uri, &self.return_param, self.extractor.query_names())
            .or_else(|| CleanUrl::without(&parts.uri, self.extractor.query_names()))
    }

    /// The user of a code: from the cache, or from one exchange shared with concurrent requests.
    pub(crate) async fn authenticate(
        self: Arc<Self>,
        login: Login,
    ) -> Result<(AuthenticatedDingTalkUser, AfterLogin), Response<Bytes>> {
        let budget = ExchangeBudget {
            send_by: Instant::now() + self.client.upstream_timeout(),
            caller: login.caller,
        };
        // Before the cache: an identity another layer cached is no admission here.
        self.admit_corp(login.key.corp_id())
            .await
            .map_err(|error| self.rejection(&error))?;
        let identities = self.client.identities();
        let identity = match identities.get(login.key.as_ref()).await {
            Some(Known::User(identity)) => {
                tracing::debug!("identity cache hit");
                identity
            }
            Some(Known::Rejected(error)) => return Err(self.rejection(&error)),
            None => {
                tracing::debug!("identity cache miss");
                self.exchange(&login.key, budget).await?
            }
        };
        // A user revoked since the code was exchanged (here, or on the replica that did); a
        // replica that just started reads the revocations kept in the store first.
        let user = identity.user();
        let access = self.client.access();
        access.ready().await;
        if access.is_revoked(user.corp_id(), user.userid(), identity.signed_in_at()) {
            return Err(self.rejection(&AuthError::session_revoked()));
        }
        let start_session = match &self.session {
            Some(_) => identities.start_session(&login.key, &identity).await,
            None => false,
        };
        let after = AfterLogin {
            start_session,
            clean_url: login.clean_url,
            resolved: None,
        };
        // A code's first use here is a sign-in: the app's resolver runs, once.
        let fresh = self.resolver.is_some() && identity.first_resolution();
        self.resolve_then(identity.user().clone(), after, fresh)
            .await
    }

    /// The miss path (the corp admitted already): one exchange shared with concurrent requests.
    async fn exchange(
        &self,
        key: &IdentityKey,
        budget: ExchangeBudget,
    ) -> Result<CachedIdentity, Response<Bytes>> {
        self.client
            .identify(key.clone(), budget)
            .await
            .map_err(|error| self.rejection(&error))
    }
}

/// How long a session's corp is trusted before the directory is asked again, unless configured.
pub const DEFAULT_CORP_RECHECK: Duration = Duration::from_secs(120);
