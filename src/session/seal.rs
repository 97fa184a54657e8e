//! The sealed session: what a cookie holds (the user, its times and its app), how it is sealed
//! into a `Set-Cookie` and opened from a `Cookie` header.

use std::time::Duration;

use cookie::{Cookie, CookieJar, SameSite};
use http::{HeaderMap, HeaderValue, header};
use serde::{Deserialize, Serialize};

use super::SessionConfig;
use super::clock::{millis, now_millis};
use crate::config_error::ConfigError;
use crate::extract::cookie_values;
use crate::login_method::LoginMethod;
use crate::user::AuthenticatedDingTalkUser;

/// The longest cookie value that is even tried: browsers keep at most 4096 bytes per cookie.
const MAX_SEALED_LEN: usize = 4096;

/// The version of the sealed payload's shape: 3 seals the session's kind (cookie or token).
const PAYLOAD_VERSION: u8 = 3;

/// The version before the kind was sealed: read as a cookie only, never as a bearer token.
const PAYLOAD_VERSION_WITHOUT_KIND: u8 = 2;

/// How a session is carried, sealed into it: a cookie is never taken as a bearer token (nor
/// refreshed), and a token is never taken as a cookie.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum SessionKind {
    /// The `HttpOnly` session cookie.
    Cookie,
    /// A bearer token from the token login endpoint.
    Token,
}

/// A copy the layer never bound, used to read sessions, is logged at most once a minute.
static UNBOUND_LOG: std::sync::LazyLock<crate::log_gate::LogGate> =
    std::sync::LazyLock::new(|| crate::log_gate::LogGate::new(Duration::from_secs(60)));

/// How far in the future a session's issue time may lie: the clock skew allowed between replicas.
const CLOCK_SKEW: Duration = Duration::from_secs(60);

/// What the cookie (or token) holds, sealed.
#[derive(Serialize)]
struct PayloadRef<'a> {
    v: u8,
    /// Issued at, milliseconds since the Unix epoch.
    iat: u64,
    /// Expires at, milliseconds since the Unix epoch.
    exp: u64,
    /// When the code exchange that started the login happened: a refreshed token keeps it.
    auth: u64,
    /// The app (app key or suite key) the session belongs to; empty outside a layer.
    aud: &'a str,
    kind: SessionKind,
    user: &'a AuthenticatedDingTalkUser,
}

#[derive(Deserialize)]
struct Payload {
    v: u8,
    iat: u64,
    exp: u64,
    /// Absent in sessions sealed before tokens could be refreshed: their issue time.
    auth: Option<u64>,
    aud: String,
    /// Absent in sessions sealed before the kind was: those are cookies.
    kind: Option<SessionKind>,
    user: AuthenticatedDingTalkUser,
}

impl SessionConfig {
    /// A `Set-Cookie` value that signs `user` in for the lifetime, from now, if this configuration
    /// is a layer's ([`DingTalkAuthLayer::sessions`](crate::DingTalkAuthLayer::sessions) hands
    /// out the layer's own): the copy you passed to
    /// [`session`](crate::DingTalkAuthLayerBuilder::session) is not bound to the app, and would
    /// seal sessions the layer refuses, so it answers [`ConfigError::SessionNotBound`]. A
    /// configuration that does not pass [`validate`](Self::validate) is an error too.
    ///
    /// ```
    /// use tower_dingtalk_auth::{AuthenticatedDingTalkUser, ConfigError, SessionConfig, SessionKey};
    ///
    /// let mine = SessionConfig::new(SessionKey::generate());
    /// let user = AuthenticatedDingTalkUser::builder("user456", "Zhang San").build();
    /// # #[allow(deprecated)]
    /// let refused = mine.issue(&user);
    /// assert!(matches!(refused, Err(ConfigError::SessionNotBound)));
    /// ```
    #[deprecated(
        since = "0.1.0",
        note = "a copy of the configuration seals sessions the layer refuses: use `DingTalkAuthLayer::sessions()`"
    )]
    pub fn issue(&self, user: &AuthenticatedDingTalkUser) -> Result<HeaderValue, ConfigError> {
        self.validate()?;
        if self.audience.is_none() {
            return Err(ConfigError::SessionNotBound);
        }
        Ok(self.issue_cookie(user))
    }

    /// The layer's `Set-Cookie` for `user`, from now; the configuration was validated when the
    /// layer was built.
    pub(crate) fn issue_cookie(&self, user: &AuthenticatedDingTalkUser) -> HeaderValue {
        let now = now_millis();
        let sealed = self.seal(user, now, now, SessionKind::Cookie).value;
        // Max-Age counts whole seconds; round up so the browser never drops it early. The sealed
        // expiry is what counts.
        let max_age = self.lifetime.as_secs() + u64::from(self.lifetime.subsec_nanos() > 0);
        let max_age = i64::try_from(max_age).unwrap_or(i64::MAX);
        self.header(
            self.cookie(sealed)
                .max_age(cookie::time::Duration::seconds(max_age)),
        )
        .expect("a validated configuration makes its cookie")
    }

    /// A `Cookie` request header that carries `user`'s session.
    pub(crate) fn cookie_request_header(&self, user: &AuthenticatedDingTalkUser) -> HeaderValue {
        let now = now_millis();
        let sealed = self.seal(user, now, now, SessionKind::Cookie).value;
        HeaderValue::try_from(format!("{}={sealed}", self.name()))
            .expect("a validated name and a sealed value are visible ASCII")
    }

    /// The layer's sign-out `Set-Cookie`; the configuration was validated when the layer was built.
    pub(crate) fn sign_out_header(&self) -> HeaderValue {
        self.sign_out_cookie()
            .expect("a validated configuration makes its cookie")
    }

    /// A `Set-Cookie` value that signs the user out: it empties the session cookie and expires
    /// it now. Send it from your sign-out route; it works with any server. A configuration that
    /// does not pass [`validate`](Self::validate) is an error.
    ///
    /// ```
    /// use axum::{Router, http::header::SET_COOKIE, response::{IntoResponse, Redirect}, routing::post};
    /// use tower_dingtalk_auth::{SessionConfig, SessionKey};
    ///
    /// let session = SessionConfig::new(SessionKey::generate());
    /// let sign_out = session.sign_out_cookie().unwrap();
    /// assert!(sign_out.to_str().unwrap().contains("Max-Age=0"));
    ///
    /// let app: Router = Router::new().route(
    ///     "/sign-out",
    ///     post(move || async move { ([(SET_COOKIE, sign_out)], Redirect::to("/")).into_response() }),
    /// );
    /// ```
    pub fn sign_out_cookie(&self) -> Result<HeaderValue, ConfigError> {
        self.validate()?;
        self.header(
            self.cookie(String::new())
                .max_age(cookie::time::Duration::ZERO)
                .expires(cookie::time::OffsetDateTime::UNIX_EPOCH),
        )
    }

    /// The user of a valid session cookie among `headers`' `Cookie` headers, if this
    /// configuration is a layer's: sealed with one of the keys, under this name, for this app,
    /// issued no later than now and not expired. Anything else is `None`, never an error. The copy
    /// you passed to [`session`](crate::DingTalkAuthLayerBuilder::session) is not bound to the app
    /// and reads no session of the layer's: it answers `None` and logs an error (at most once a
    /// minute). Use [`DingTalkAuthLayer::sessions`](crate::DingTalkAuthLayer::sessions).
    #[deprecated(
        since = "0.1.0",
        note = "a copy of the configuration reads none of the layer's sessions: use `DingTalkAuthLayer::sessions()`"
    )]
    pub fn user_from_headers(&self, headers: &HeaderMap) -> Option<AuthenticatedDingTalkUser> {
        if self.audience.is_none() {
            if UNBOUND_LOG.allow() {
                tracing::error!(
                    "SessionConfig::user_from_headers on a configuration no layer bound reads no \
                     session: use DingTalkAuthLayer::sessions() (logged at most once a minute)"
                );
            }
            return None;
        }
        cookie_values(headers, self.name()).find_map(|value| self.open(value))
    }

    /// Whether a response already sets this session's cookie (a sign-out route, say).
    pub(crate) fn is_set_by(&self, headers: &HeaderMap) -> bool {
        let name = self.name().as_bytes();
        headers.get_all(header::SET_COOKIE).iter().any(|value| {
            let value = value.as_bytes();
            value.len() > name.len() && value.starts_with(name) && value[name.len()] == b'='
        })
    }

    /// `user`'s session sealed now as a `kind`, for a login made at `auth` (milliseconds since the
    /// epoch): it expires after the lifetime, and never after the absolute lifetime from `auth`.
    pub(super) fn seal(
        &self,
        user: &AuthenticatedDingTalkUser,
        auth: u64,
        now: u64,
        kind: SessionKind,
    ) -> Sealed {
        let exp = now
            .saturating_add(millis(self.lifetime))
            .min(auth.saturating_add(millis(self.absolute_lifetime)));
        let payload = PayloadRef {
            v: PAYLOAD_VERSION,
            iat: now,
            exp,
            auth,
            aud: self.audience(),
            kind,
            user,
        };
        let json = serde_json::to_string(&payload).expect("a user always serializes");
        let mut jar = CookieJar::new();
        jar.private_mut(&self.key.0)
            .add(Cookie::new(self.name().to_owned(), json));
        let value = jar
            .get(self.name())
            .expect("the jar holds the cookie just added")
            .value()
            .to_owned();
        Sealed {
            value,
            expires_at_millis: exp,
        }
    }

    /// The user of `sealed` as a `kind`, if it is valid now, with when its login was made (ms
    /// since the epoch).
    pub(crate) fn open_as(
        &self,
        sealed: &str,
        kind: SessionKind,
    ) -> Option<(AuthenticatedDingTalkUser, u64)> {
        self.open_session(sealed, kind)
            .map(|opened| (opened.user, opened.auth))
    }

    fn open(&self, sealed: &str) -> Option<AuthenticatedDingTalkUser> {
        self.open_session(sealed, SessionKind::Cookie)
            .map(|opened| opened.user)
    }

    /// The session sealed in `sealed`, if it is valid now as a `kind`: sealed with one of the
    /// keys, under this name, for this app, as this kind, issued no later than now, not expired,
    /// and within the absolute lifetime of its login.
    pub(super) fn open_session(&self, sealed: &str, kind: SessionKind) -> Option<Opened> {
        if sealed.is_empty() || sealed.len() > MAX_SEALED_LEN {
            return None;
        }
        let cookie = Cookie::new(self.name().to_owned(), sealed.to_owned());
        let jar = CookieJar::new();
        let opened = std::iter::once(&self.key)
            .chain(&self.previous_keys)
            .find_map(|key| jar.private(&key.0).decrypt(cookie.clone()));
        let Some(opened) = opened else {
            tracing::debug!("session refused: tampered with, or sealed with another key");
            return None;
        };
        let payload: Payload = match serde_json::from_str(opened.value()) {
            Ok(payload) => payload,
            Err(_) => {
                tracing::debug!("session refused: unknown payload");
                return None;
            }
        };
        if payload.aud != self.audience() {
            tracing::debug!("session refused: sealed for another app");
            return None;
        }
        let sealed_kind = match (payload.v, payload.kind) {
            (PAYLOAD_VERSION, Some(sealed_kind)) => sealed_kind,
            (PAYLOAD_VERSION_WITHOUT_KIND, None) => SessionKind::Cookie,
            _ => {
                tracing::debug!("session refused: unknown version");
                return None;
            }
        };
        if sealed_kind != kind {
            tracing::debug!(
                sealed = ?sealed_kind,
                presented = ?kind,
                "session refused: a cookie is not a token, nor a token a cookie"
            );
            return None;
        }
        let now = now_millis();
        let auth = payload.auth.unwrap_or(payload.iat).min(payload.iat);
        let expiry = payload
            .exp
            .min(payload.iat.saturating_add(millis(self.lifetime)))
            .min(auth.saturating_add(millis(self.absolute_lifetime)));
        if now >= expiry {
            tracing::debug!("session refused: expired");
            return None;
        }
        if payload.iat > now.saturating_add(millis(CLOCK_SKEW)) {
            tracing::debug!("session refused: issued in the future");
            return None;
        }
        tracing::debug!("session accepted");
        // How the user signed in, as this request shows it: a bearer token, a cookie started by
        // DingTalk's web login, or a cookie started by a code.
        let method = match (kind, payload.user.login_method()) {
            (SessionKind::Token, _) => LoginMethod::Token,
            (SessionKind::Cookie, LoginMethod::WebLogin) => LoginMethod::WebLogin,
            (SessionKind::Cookie, _) => LoginMethod::Session,
        };
        Some(Opened {
            user: payload.user.signed_in_by(method),
            auth,
            expires_at_millis: expiry,
        })
    }

    fn cookie(&self, value: String) -> cookie::CookieBuilder<'static> {
        let mut cookie = Cookie::build((self.name().to_owned(), value))
            .http_only(true)
            .secure(self.secure)
            .same_site(SameSite::Lax)
            .path(self.path.clone());
        if let Some(domain) = &self.domain {
            cookie = cookie.domain(domain.clone());
        }
        cookie
    }

    /// The `Set-Cookie` value; a validated configuration always makes one.
    fn header(&self, cookie: cookie::CookieBuilder<'static>) -> Result<HeaderValue, ConfigError> {
        HeaderValue::try_from(cookie.build().to_string())
            .map_err(|_| ConfigError::InvalidSessionCookie { what: "name" })
    }
}

/// A session just sealed.
pub(super) struct Sealed {
    pub(super) value: String,
    pub(super) expires_at_millis: u64,
}

/// A valid session, opened.
pub(super) struct Opened {
    pub(super) user: AuthenticatedDingTalkUser,
    /// When its login was made (milliseconds since the epoch).
    pub(super) auth: u64,
    /// When it expires (milliseconds since the epoch).
    pub(super) expires_at_millis: u64,
}
