//! [`Sessions`]: the layer's own sessions, handed out by
//! [`DingTalkAuthLayer::sessions`](crate::DingTalkAuthLayer::sessions) to issue, read and clear
//! them exactly as the layer does. A [`SessionConfig`](crate::SessionConfig) is settings only: the
//! layer binds its copy to the app, and a copy the layer never saw seals sessions the layer
//! refuses.

use std::sync::Arc;

use http::{HeaderMap, HeaderValue};

use super::authenticator::Authenticator;
use crate::extract::cookie_values;
use crate::session::{SessionConfig, SessionKind, bearer_token};
use crate::user::AuthenticatedDingTalkUser;

/// The sessions of one [`DingTalkAuthLayer`](crate::DingTalkAuthLayer): what its cookies and
/// tokens hold, bound to its app. Cheap to clone; hand it to the routes that sign users in some
/// other way, sign them out, or need a signed-in user in a test.
///
/// ```
/// use axum::{Router, http::header::SET_COOKIE, response::Redirect, routing::post};
/// use tower_dingtalk_auth::{AuthenticatedDingTalkUser, DingTalkAuthLayer, SessionConfig, SessionKey};
///
/// let auth = DingTalkAuthLayer::builder()
///     .internal_app("APP_KEY", "APP_SECRET")
///     .session(SessionConfig::new(SessionKey::generate()))
///     .build()
///     .unwrap();
/// let sessions = auth.sessions().expect("the layer keeps sessions");
///
/// // A sign-out route.
/// let sign_out = sessions.sign_out_cookie();
/// let app: Router = Router::new().route(
///     "/sign-out",
///     post(move || async move { ([(SET_COOKIE, sign_out)], Redirect::to("/")) }),
/// );
///
/// // A signed-in request, as the layer reads it.
/// let user = AuthenticatedDingTalkUser::builder("user456", "Zhang San").build();
/// let mut headers = http::HeaderMap::new();
/// headers.insert(http::header::COOKIE, sessions.cookie_header(&user));
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// assert_eq!(sessions.user_from_headers(&headers).await, Some(user));
/// # });
/// # drop(app);
/// ```
#[derive(Clone, Debug)]
pub struct Sessions {
    config: Arc<SessionConfig>,
    /// The layer, for what it asks of a session beyond its seal (a third-party corp's verdict).
    authenticator: Arc<Authenticator>,
}

impl Sessions {
    pub(crate) fn new(config: Arc<SessionConfig>, authenticator: Arc<Authenticator>) -> Self {
        Self {
            config,
            authenticator,
        }
    }

    /// A `Set-Cookie` value that signs `user` in for the session's lifetime, as the layer's own
    /// after a code exchange.
    pub fn issue(&self, user: &AuthenticatedDingTalkUser) -> HeaderValue {
        self.config.issue_cookie(user)
    }

    /// A `Cookie` request header that carries `user`'s session: for tests and clients that sign
    /// a user in without DingTalk.
    pub fn cookie_header(&self, user: &AuthenticatedDingTalkUser) -> HeaderValue {
        self.config.cookie_request_header(user)
    }

    /// A bearer token for `user`, as the token login answers (for `Authorization: Bearer`): read
    /// only by a layer with a [`token_login`](crate::DingTalkAuthLayerBuilder::token_login).
    pub fn issue_token(&self, user: &AuthenticatedDingTalkUser) -> String {
        self.config.issue_token_now(user)
    }

    /// The user of a valid session among `headers`, as the layer reads it: the session cookie,
    /// or with a token login an `Authorization: Bearer` token; for a third-party app, only while
    /// the layer's directory admits the user's corp (asked as the layer asks it), and unless the
    /// user was [revoked](crate::DingTalkClient::revoke_user) since the login. Anything else is
    /// `None`.
    pub async fn user_from_headers(
        &self,
        headers: &HeaderMap,
    ) -> Option<AuthenticatedDingTalkUser> {
        let (user, auth) = if self.authenticator.token_login.is_some()
            && let Some(token) = bearer_token(headers)
        {
            self.config.open_as(token, SessionKind::Token)?
        } else {
            cookie_values(headers, self.config.name())
                .find_map(|value| self.config.open_as(value, SessionKind::Cookie))?
        };
        let access = self.authenticator.client.access().clone();
        // A replica that just started reads the revocations kept in the store first.
        access.ready().await;
        if access.is_revoked(user.corp_id(), user.userid(), auth) {
            return None;
        }
        self.authenticator.admit_corp(user.corp_id()).await.ok()?;
        Some(user)
    }

    /// A `Set-Cookie` value that signs the user out: it empties the session cookie and expires
    /// it now. Tokens cannot be taken back this way: they end at their expiry, or when the user
    /// is [revoked](crate::DingTalkClient::revoke_user).
    pub fn sign_out_cookie(&self) -> HeaderValue {
        self.config.sign_out_header()
    }

    /// The session cookie's name.
    pub fn cookie_name(&self) -> &str {
        self.config.name()
    }
}
