//! [`Authenticator`]: what every clone of a layer shares, and the decision for one request.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderValue, Response, StatusCode, header};

use crate::cache::{IdentityCache, IdentityKey, IdentityKeyRef};
use crate::client::DingTalkClient;
use crate::corp::CorpDirectory;
use crate::error::AuthError;
use crate::extract::CodeExtractor;
use crate::session::SessionConfig;
use crate::user::AuthenticatedDingTalkUser;

pub(crate) type RejectionFn = dyn Fn(&AuthError) -> Response<Bytes> + Send + Sync;

/// A third-party app's corp checks: read the corp id like the code, then ask the directory.
pub(crate) struct CorpCheck {
    pub(crate) extractor: CodeExtractor,
    pub(crate) directory: Arc<dyn CorpDirectory>,
}

/// What the layer decided for a request before any await.
pub(crate) enum Decision {
    /// Pass the request on as it is (optional mode, no code).
    PassThrough,
    /// Answer with this rejection; the inner service does not run.
    Reject(Response<Bytes>),
    /// The code's user was cached: run the inner service with this user.
    Authenticated(AuthenticatedDingTalkUser),
    /// Find the user of this code, then run the inner service.
    Authenticate(IdentityKey),
    /// A valid session cookie (and no code): run the inner service with this user.
    Session(AuthenticatedDingTalkUser),
}

pub(crate) struct Authenticator {
    pub(crate) client: DingTalkClient,
    pub(crate) cache: IdentityCache,
    pub(crate) extractor: CodeExtractor,
    /// Third-party apps: where the corp id comes from, and which corps may log in.
    pub(crate) corps: Option<CorpCheck>,
    pub(crate) optional: bool,
    pub(crate) realm: Box<str>,
    pub(crate) on_rejection: Option<Arc<RejectionFn>>,
    pub(crate) session: Option<Arc<SessionConfig>>,
    /// Where requests with neither code nor session go instead of a 401.
    pub(crate) redirect: Option<HeaderValue>,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("client", &self.client)
            .field("extractor", &self.extractor)
            .field("corps", &self.corps.as_ref().map(|corps| &corps.extractor))
            .field("optional", &self.optional)
            .field("realm", &self.realm)
            .field("on_rejection", &self.on_rejection.as_ref().map(|_| ".."))
            .field("session", &self.session)
            .field("redirect", &self.redirect)
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    pub(crate) fn decide(&self, parts: &Parts) -> Decision {
        match self.extractor.extract(parts) {
            Ok(Some(code)) => match self.corp_of(parts) {
                Ok(corp_id) => self.decide_code(IdentityKeyRef {
                    corp_id: corp_id.as_deref(),
                    code: &code,
                }),
                Err(error) => Decision::Reject(self.rejection(&error)),
            },
            Ok(None) => match self.session_user(parts) {
                Some(user) => Decision::Session(user),
                None if self.optional => Decision::PassThrough,
                None => match &self.redirect {
                    Some(location) => Decision::Reject(redirect(location.clone())),
                    None => Decision::Reject(self.rejection(&AuthError::missing_code())),
                },
            },
            Err(error) => {
                tracing::debug!(error = %error, "request refused before any call to DingTalk");
                Decision::Reject(self.rejection(&error))
            }
        }
    }

    /// A cache hit is decided at once, with nothing allocated; anything else is looked up again
    /// and, on a miss, exchanged in [`authenticate`](Self::authenticate).
    fn decide_code(&self, key: IdentityKeyRef<'_>) -> Decision {
        match self.cache.get_now(key) {
            Some(Ok(user)) => {
                tracing::debug!("identity cache hit");
                Decision::Authenticated(user)
            }
            Some(Err(error)) => {
                tracing::debug!("a code DingTalk rejected, replayed");
                Decision::Reject(self.rejection(&error))
            }
            None => Decision::Authenticate(key.to_owned()),
        }
    }

    /// The corp id a third-party app's request names; `None` for internal apps.
    fn corp_of<'a>(&self, parts: &'a Parts) -> Result<Option<Cow<'a, str>>, AuthError> {
        let Some(corps) = &self.corps else {
            return Ok(None);
        };
        match corps.extractor.extract(parts)? {
            Some(corp_id) => Ok(Some(corp_id)),
            None => Err(AuthError::missing_corp_id()),
        }
    }

    fn session_user(&self, parts: &Parts) -> Option<AuthenticatedDingTalkUser> {
        self.session.as_deref()?.user_from_headers(&parts.headers)
    }

    /// The user of `code`: from the cache, or from one exchange shared with concurrent requests.
    pub(crate) async fn authenticate(
        self: Arc<Self>,
        key: IdentityKey,
    ) -> Result<AuthenticatedDingTalkUser, Response<Bytes>> {
        if let Some(known) = self.cache.get(key.as_ref()).await {
            tracing::debug!(hit = known.is_ok(), "identity cache hit");
            return known.map_err(|error| self.rejection(&error));
        }
        tracing::debug!("identity cache miss");
        self.exchange(key).await
    }

    /// The miss path: check the corp, then one exchange shared with concurrent requests.
    async fn exchange(
        self: Arc<Self>,
        key: IdentityKey,
    ) -> Result<AuthenticatedDingTalkUser, Response<Bytes>> {
        if let (Some(corps), Some(corp_id)) = (&self.corps, key.corp_id())
            && !corps.directory.is_authorized(corp_id).await
        {
            tracing::debug!(corp_id, "a corp that did not authorise the app");
            return Err(self.rejection(&AuthError::corp_not_authorized()));
        }
        self.cache
            .get_or_exchange(key, &self.client)
            .await
            .map_err(|error| self.rejection(&error))
    }

    pub(crate) fn rejection(&self, error: &AuthError) -> Response<Bytes> {
        match &self.on_rejection {
            Some(render) => render(error),
            None => error.to_response(&self.realm),
        }
    }
}

/// 302 to the login page; DingTalk is not called.
fn redirect(location: HeaderValue) -> Response<Bytes> {
    let mut response = Response::new(Bytes::new());
    *response.status_mut() = StatusCode::FOUND;
    let headers = response.headers_mut();
    headers.insert(header::LOCATION, location);
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
