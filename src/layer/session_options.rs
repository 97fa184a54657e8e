//! The layer builder's options for signed-in users who come back: sessions (as a cookie or a
//! bearer token), the login page, and the code's URL after a login.

use super::builder::DingTalkAuthLayerBuilder;
use crate::session::SessionConfig;

impl DingTalkAuthLayerBuilder {
    /// With sessions: whether a page navigation (`GET`, `Accept: text/html`) that logs in with the
    /// code in its query is answered `303 See Other` to the same URL without the code, with the
    /// session cookie, instead of running the handler. The code then leaves the address bar, the
    /// history and the `Referer` of the page's requests. Default: on with sessions.
    pub fn clean_url_after_login(mut self, clean: bool) -> Self {
        self.clean_urls = Some(clean);
        self
    }

    /// With sessions: whether a page navigation from a sibling subdomain of the same site
    /// (`Sec-Fetch-Site: same-site`, say from `login.example.com` to `app.example.com`) may log in
    /// with a code. Default: off. A code on a navigation that does not come from this origin (a
    /// link or a form elsewhere) would sign the visitor in as whoever the code belongs to, and any
    /// sibling subdomain (a user-content host, a forgotten staging app) could send one: such
    /// navigations get 403 `cross_site_login` (or the login page), with no call to DingTalk. Turn
    /// this on only when your login page lives on a sibling subdomain that you control.
    ///
    /// ```
    /// use tower_dingtalk_auth::{DingTalkAuthLayer, SessionConfig, SessionKey};
    ///
    /// let layer = DingTalkAuthLayer::builder()
    ///     .internal_app("APP_KEY", "APP_SECRET")
    ///     .session(SessionConfig::new(SessionKey::generate()))
    ///     .allow_same_site_login(true)
    ///     .build()
    ///     .unwrap();
    /// # drop(layer);
    /// ```
    pub fn allow_same_site_login(mut self, allow: bool) -> Self {
        self.same_site_login = allow;
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

    /// Answers page requests that have neither a code nor a valid session with `302 Found` to
    /// `url` (a login page that runs DingTalk's JSAPI and comes back with a code) instead of 401.
    /// A page request is a `GET` or `HEAD` whose `Accept` asks for `text/html`, as every browser
    /// navigation does; other requests (the page's `fetch` calls, `POST`s, API clients) still get
    /// 401 `missing_code`, so one layer serves an app's pages and its API. DingTalk is not called.
    /// A code that is present but fails is still a 401. Cannot be combined with
    /// [`optional`](Self::optional).
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
    ///
    /// The login page learns where the browser was going: the URL gets the page's path and query
    /// (without the code's own parameters) in the return parameter, `next` unless
    /// [`redirect_return_param`](Self::redirect_return_param) says otherwise, and DingTalk's
    /// `corpId` if the page's URL had one, for the JSAPI: a page `/admin/users?tab=2` goes to
    /// `/login.html?next=%2Fadmin%2Fusers%3Ftab%3D2`. A URL that names the parameter itself is
    /// left as it is. When the login page comes back with the code and that parameter
    /// (`/?code=...&next=%2Fadmin%2Fusers%3Ftab%3D2`), the layer's `303` goes there, with the
    /// session cookie; only a path on this host is followed, anything else lands on `/`.
    pub fn redirect_when_missing(mut self, url: impl Into<String>) -> Self {
        self.redirect = Some(url.into());
        self
    }

    /// [`redirect_when_missing`](Self::redirect_when_missing) with a function from the request to
    /// the login page's URL, for apps with a scheme of their own (an SSO portal, a return
    /// parameter signed by the app). The function's answer is sent as it is.
    ///
    /// ```
    /// use tower_dingtalk_auth::{DingTalkAuthLayer, SessionConfig, SessionKey};
    ///
    /// let pages = DingTalkAuthLayer::builder()
    ///     .internal_app("APP_KEY", "APP_SECRET")
    ///     .session(SessionConfig::new(SessionKey::generate()))
    ///     .redirect_when_missing_with(|parts| format!("/sso/start?page={}", parts.uri.path()))
    ///     .build()
    ///     .unwrap();
    /// # drop(pages);
    /// ```
    pub fn redirect_when_missing_with<F>(mut self, login_url: F) -> Self
    where
        F: Fn(&http::request::Parts) -> String + Send + Sync + 'static,
    {
        self.redirect_with = Some(std::sync::Arc::new(login_url));
        self
    }

    /// The name of the login page's return parameter. Default: `next`. Letters, digits, `-`,
    /// `.`, `_` and `~` only.
    pub fn redirect_return_param(mut self, name: impl Into<String>) -> Self {
        self.return_param = Some(name.into());
        self
    }

    /// Serves the token login endpoint at `path`, for clients that keep no cookies (mini
    /// programs, native apps, an API on another origin), and reads `Authorization: Bearer` tokens
    /// wherever a session cookie is read. Needs [`session`](Self::session): a token is the same
    /// sealed, app-bound, expiring session as the cookie, under the same keys.
    ///
    /// - `POST <path>` with `{"code": "..."}` (JSON, or a form; `corpId` too for third-party apps,
    ///   or the code and corp id from their usual sources) exchanges the code and answers
    ///   `200 {"token", "token_type": "Bearer", "expires_in", "expires_at", "user"}`. A code starts
    ///   one session only: a second login with it is 401 `code_rejected`.
    /// - `POST <path>/refresh` with `Authorization: Bearer <token>` answers a new token, without
    ///   DingTalk, until the session's
    ///   [`absolute_lifetime`](crate::SessionConfig::absolute_lifetime) from the login.
    /// - A token that is tampered with, expired, or not this app's is 401 `invalid_token` with
    ///   `WWW-Authenticate: Bearer error="invalid_token"`, even on an optional layer. A code still
    ///   wins over a token; a token in the query string is never read.
    ///
    /// ```
    /// use tower_dingtalk_auth::{DingTalkAuthLayer, SessionConfig, SessionKey};
    ///
    /// let api = DingTalkAuthLayer::builder()
    ///     .internal_app("APP_KEY", "APP_SECRET")
    ///     .session(SessionConfig::new(SessionKey::generate()))
    ///     .token_login("/auth/dingtalk/login")
    ///     .build()
    ///     .unwrap();
    /// # drop(api);
    /// ```
    pub fn token_login(mut self, path: impl Into<String>) -> Self {
        self.token_login = Some(path.into());
        self
    }
}

impl DingTalkAuthLayerBuilder {
    /// Signs browsers outside the DingTalk client in with DingTalk's web login (a QR code or an
    /// account login on `login.dingtalk.com`), into the same session cookie as a code would.
    /// Needs [`session`](Self::session). `callback` is where DingTalk's browser comes back, an
    /// absolute path (its URL is then made from the request's `Host`: `http` on loopback,
    /// `https` elsewhere) or, best in production, the whole URL registered in DingTalk's
    /// developer console.
    ///
    /// - A page request (`GET` or `HEAD`, `Accept: text/html`) with neither code nor session,
    ///   whose `User-Agent` is not the DingTalk client's, gets `302` to DingTalk's login page with
    ///   a fresh `state` and a sealed, `HttpOnly`, `SameSite=Lax` state cookie (10 minutes, one
    ///   per login: a browser keeps at most three logins in flight, so two tabs can sign in at
    ///   once and abandoned logins cannot grow its `Cookie` header). Inside DingTalk,
    ///   [`redirect_when_missing`](Self::redirect_when_missing) still applies; API requests still
    ///   get 401.
    /// - The callback checks `state` against this browser's state cookie (forged, replayed,
    ///   older than 10 minutes or another app's: 403 `invalid_login_state`), exchanges the
    ///   `authCode` (spent or forged: 401 `code_rejected`; a state is answered once on every
    ///   layer of the client and, with a shared store, every replica), finds the company's employee (an
    ///   account outside the organisation: 403 `not_a_member`), sets the session cookie and
    ///   answers `303` to the page first asked for (a path on this host only; one longer than
    ///   1 KiB comes back to its path, or `/`). A cancelled login
    ///   is 401 `login_cancelled`; browsers get these refusals as an HTML page. Four calls to
    ///   DingTalk with a warm app token, none for every later page of the session; none is sent
    ///   past the [`upstream_timeout`](crate::DingTalkClientBuilder::upstream_timeout) (504).
    /// - Cannot be combined with [`optional`](Self::optional), which never sends a page anywhere.
    /// - The user is the same [`AuthenticatedDingTalkUser`](crate::AuthenticatedDingTalkUser),
    ///   whose [`login_method`](crate::AuthenticatedDingTalkUser::login_method) is
    ///   [`WebLogin`](crate::LoginMethod::WebLogin); `device_id` is empty.
    /// - An internal app's login is limited to its organisation when the client has a
    ///   [`corp_id`](crate::DingTalkClientBuilder::corp_id); a third-party app's corp comes from
    ///   DingTalk's answer and is admitted by the layer's directory, as a code's is.
    ///
    /// ```
    /// use tower_dingtalk_auth::{DingTalkAuthLayer, DingTalkClient, SessionConfig, SessionKey};
    ///
    /// let client = DingTalkClient::builder()
    ///     .internal_app("APP_KEY", "APP_SECRET")
    ///     .corp_id("dingcorp123")
    ///     .build()
    ///     .unwrap();
    /// let pages = DingTalkAuthLayer::builder()
    ///     .client(client)
    ///     .session(SessionConfig::new(SessionKey::generate()))
    ///     .web_login("https://app.example.com/auth/dingtalk/callback")
    ///     .redirect_when_missing("/login.html")
    ///     .build()
    ///     .unwrap();
    /// # drop(pages);
    /// ```
    pub fn web_login(mut self, callback: impl Into<String>) -> Self {
        self.web_login = Some(callback.into());
        self
    }
}

impl DingTalkAuthLayerBuilder {
    /// Maps each DingTalk user to your app's own (its database record, its roles) in one place:
    /// `resolve` runs once per sign-in (a code exchanged, a code starting its session, a web
    /// login) and again at each [re-validation](crate::DingTalkClientBuilder::revalidate_after);
    /// other requests take its last answer without waiting. Its value is put in the request's
    /// extensions beside the [`AuthenticatedDingTalkUser`](crate::AuthenticatedDingTalkUser)
    /// (with axum, take it with `Extension<T>`); its error refuses the user, rendered as every
    /// rejection is (an [`AuthError::forbidden`](crate::AuthError::forbidden) is a 403), and at a
    /// re-validation ends the session (401 `session_revoked`, the cookie cleared). The layer
    /// keeps the answers of its 4,096 most recent users; one past them is resolved again.
    ///
    /// ```
    /// use axum::{Extension, Router, routing::get};
    /// use tower_dingtalk_auth::{AuthError, AuthenticatedDingTalkUser, DingTalkAuthLayer};
    ///
    /// #[derive(Clone)]
    /// struct Member {
    ///     id: u64,
    ///     can_approve: bool,
    /// }
    ///
    /// async fn approvals(Extension(member): Extension<Member>) -> String {
    ///     format!("member {} may approve: {}", member.id, member.can_approve)
    /// }
    ///
    /// let auth = DingTalkAuthLayer::builder()
    ///     .internal_app("APP_KEY", "APP_SECRET")
    ///     .resolve_with(|user: AuthenticatedDingTalkUser| async move {
    ///         // Your database: SELECT id, can_approve FROM members WHERE dingtalk_userid = $1
    ///         match user.userid() {
    ///             "user456" => Ok(Member { id: 7, can_approve: true }),
    ///             _ => Err(AuthError::forbidden("not a member of this app")),
    ///         }
    ///     })
    ///     .build()
    ///     .unwrap();
    /// let app: Router = Router::new().route("/approvals", get(approvals)).layer(auth);
    /// # drop(app);
    /// ```
    pub fn resolve_with<F, Fut, T>(mut self, resolve: F) -> Self
    where
        F: Fn(crate::user::AuthenticatedDingTalkUser) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<T, crate::error::AuthError>> + Send + 'static,
        T: Clone + Send + Sync + 'static,
    {
        self.resolver = Some(super::resolver::boxed(resolve));
        self
    }
}
