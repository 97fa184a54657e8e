//! Sessions: after one code exchange, the user stays signed in with an encrypted cookie.
//!
//! [`SessionConfig`] holds the [`SessionKey`]s and the cookie's attributes. With
//! [`DingTalkAuthLayerBuilder::session`](crate::DingTalkAuthLayerBuilder::session) the layer
//! answers every request it authenticated by a code with a `Set-Cookie` that holds the user, sealed
//! with AES-256-GCM (the `cookie` crate's private jar, RustCrypto's `aes-gcm`) under the cookie's
//! name. A later request that carries the cookie and no code is authenticated without calling
//! DingTalk; a cookie that is tampered with, expired, or sealed with a key the layer does not hold
//! counts as absent. The issue time and the expiry are sealed inside the cookie and checked on
//! every read, so a client that ignores `Max-Age` gains nothing. Every replica that holds the key
//! reads every other replica's cookies: there is no server-side state.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cookie::{Cookie, CookieJar, Key, SameSite};
use http::{HeaderMap, HeaderValue, header};
use serde::{Deserialize, Serialize};

use crate::error::ConfigError;
use crate::extract::cookie_values;
use crate::user::AuthenticatedDingTalkUser;

/// The session cookie's name unless one is configured, when the cookie cannot be a `__Host-`
/// cookie (not `Secure`, or with a `Domain` or a `Path` other than `/`).
pub const DEFAULT_SESSION_COOKIE: &str = "dingtalk_session";

/// The session cookie's name unless one is configured, when it is `Secure`, has no `Domain` and
/// the path `/`: the `__Host-` prefix makes browsers refuse the cookie unless it was set that way by
/// this very host, so a sibling subdomain or a plain-HTTP page cannot plant one.
pub const HOST_SESSION_COOKIE: &str = "__Host-dingtalk_session";

/// How long a session lasts unless configured: 8 hours, a working day.
pub const DEFAULT_SESSION_LIFETIME: Duration = Duration::from_secs(8 * 60 * 60);

/// The longest cookie value that is even tried: browsers keep at most 4096 bytes per cookie.
const MAX_SEALED_LEN: usize = 4096;

/// The version of the sealed payload's shape.
const PAYLOAD_VERSION: u8 = 2;

/// How far in the future a session's issue time may lie: the clock skew allowed between replicas.
const CLOCK_SKEW: Duration = Duration::from_secs(60);

/// A secret key that seals and opens session cookies.
///
/// Made from at least [`SessionKey::MIN_LEN`] bytes of secret: the encryption key is derived from
/// them with HKDF-SHA256. Every replica that should read the same sessions needs the same bytes;
/// keep them with your other secrets. [`SessionKey::generate`] makes a random key for a single
/// process (tests, demos): its sessions end when the process does.
///
/// `Debug` never shows the key.
///
/// ```
/// use tower_dingtalk_auth::{ConfigError, SessionKey};
///
/// let key = SessionKey::from_bytes(b"a long random secret from the vault, 32+ bytes").unwrap();
/// # drop(key);
/// assert!(matches!(
///     SessionKey::from_bytes(b"too short"),
///     Err(ConfigError::SessionKeyTooShort { len: 9 })
/// ));
/// ```
#[derive(Clone)]
pub struct SessionKey(Key);

impl SessionKey {
    /// The fewest bytes of secret a key is made from.
    pub const MIN_LEN: usize = 32;

    /// A key derived from `secret`, which must hold at least [`MIN_LEN`](Self::MIN_LEN) bytes of
    /// secret randomness (a long random string works; its bytes are used as they are).
    pub fn from_bytes(secret: impl AsRef<[u8]>) -> Result<Self, ConfigError> {
        let secret = secret.as_ref();
        if secret.len() < Self::MIN_LEN {
            return Err(ConfigError::SessionKeyTooShort { len: secret.len() });
        }
        Ok(Self(Key::derive_from(secret)))
    }

    /// A random key from the operating system's generator, for one process only.
    ///
    /// # Panics
    /// If the operating system has no randomness to give.
    pub fn generate() -> Self {
        Self(Key::try_generate().expect("the operating system's random generator failed"))
    }
}

impl fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionKey(..)")
    }
}

/// How the layer keeps users signed in between codes; see
/// [`DingTalkAuthLayerBuilder::session`](crate::DingTalkAuthLayerBuilder::session).
///
/// The cookie is `HttpOnly`, `Secure` (unless [`secure(false)`](Self::secure)), `SameSite=Lax`,
/// `Path=/`, with `Max-Age` of the lifetime (default 8 hours), and named `dingtalk_session`.
///
/// ```
/// use std::time::Duration;
/// use tower_dingtalk_auth::{DingTalkAuthLayer, SessionConfig, SessionKey};
///
/// # fn main() -> Result<(), tower_dingtalk_auth::ConfigError> {
/// let current = SessionKey::from_bytes(b"this month's secret, 32 bytes or more.....")?;
/// let previous = SessionKey::from_bytes(b"last month's secret, still read for a while")?;
/// let session = SessionConfig::new(current)
///     .previous_keys([previous])
///     .lifetime(Duration::from_secs(4 * 60 * 60));
/// let layer = DingTalkAuthLayer::builder()
///     .internal_app("APP_KEY", "APP_SECRET")
///     .session(session)
///     .build()?;
/// # drop(layer);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct SessionConfig {
    key: SessionKey,
    previous_keys: Vec<SessionKey>,
    cookie_name: Option<String>,
    /// The app a session belongs to: set by the layer, sealed in every session and checked on
    /// every read.
    audience: Option<std::sync::Arc<str>>,
    lifetime: Duration,
    secure: bool,
    path: String,
    domain: Option<String>,
}

/// What the cookie holds, sealed.
#[derive(Serialize)]
struct PayloadRef<'a> {
    v: u8,
    /// Issued at, milliseconds since the Unix epoch.
    iat: u64,
    /// Expires at, milliseconds since the Unix epoch.
    exp: u64,
    /// The app (app key or suite key) the session belongs to; empty outside a layer.
    aud: &'a str,
    user: &'a AuthenticatedDingTalkUser,
}

#[derive(Deserialize)]
struct Payload {
    v: u8,
    iat: u64,
    exp: u64,
    aud: String,
    user: AuthenticatedDingTalkUser,
}

impl SessionConfig {
    /// Sessions sealed with `key`, with the default cookie.
    pub fn new(key: SessionKey) -> Self {
        Self {
            key,
            previous_keys: Vec::new(),
            cookie_name: None,
            audience: None,
            lifetime: DEFAULT_SESSION_LIFETIME,
            secure: true,
            path: "/".to_owned(),
            domain: None,
        }
    }

    /// Keys that still open cookies but no longer seal new ones: for rotating the key without
    /// signing everybody out. Keep an old key for one lifetime after the switch, then drop it.
    pub fn previous_keys(mut self, keys: impl IntoIterator<Item = SessionKey>) -> Self {
        self.previous_keys.extend(keys);
        self
    }

    /// The cookie's name. Default: `__Host-dingtalk_session` ([`HOST_SESSION_COOKIE`]) for a
    /// `Secure` cookie without a domain on the path `/`, else `dingtalk_session`
    /// ([`DEFAULT_SESSION_COOKIE`]). Cookies sealed under another name do not open under this one.
    pub fn cookie_name(mut self, name: impl Into<String>) -> Self {
        self.cookie_name = Some(name.into());
        self
    }

    /// The name the cookie goes by: the configured one, or the default for its attributes.
    pub fn name(&self) -> &str {
        match &self.cookie_name {
            Some(name) => name,
            None if self.secure && self.domain.is_none() && self.path == "/" => HOST_SESSION_COOKIE,
            None => DEFAULT_SESSION_COOKIE,
        }
    }

    /// Binds sessions to the app `audience`: sealed into every session, and required of every one
    /// read, so that two layers sharing a key never accept each other's sessions.
    pub(crate) fn bound_to(mut self, audience: &str) -> Self {
        self.audience = Some(audience.into());
        self
    }

    fn audience(&self) -> &str {
        self.audience.as_deref().unwrap_or_default()
    }

    /// How long a session lasts after the code exchange that started it. It is not extended by
    /// use. Default: 8 hours.
    pub fn lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = lifetime;
        self
    }

    /// Whether the cookie is marked `Secure` (sent over HTTPS only). Default: `true`; turn it off
    /// only for plain-HTTP development, where browsers would not send it back.
    pub fn secure(mut self, secure: bool) -> Self {
        self.secure = secure;
        self
    }

    /// The cookie's `Path`. Default: `/`.
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }

    /// The cookie's `Domain`, to share the session with subdomains. Default: none (this host only).
    pub fn domain(mut self, domain: impl Into<String>) -> Self {
        self.domain = Some(domain.into());
        self
    }

    /// Checks that the cookie can be written: a non-empty token for a name, a path and domain
    /// without spaces, controls or `;`, and a lifetime of at least a millisecond.
    /// [`DingTalkAuthLayerBuilder::build`](crate::DingTalkAuthLayerBuilder::build) calls it.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
        let name = self.name();
        if name.is_empty() || !name.bytes().all(token) {
            return Err(ConfigError::InvalidSessionCookie { what: "name" });
        }
        // Browsers drop a `__Host-` cookie that is not Secure, has a Domain or another Path, and a
        // `__Secure-` cookie that is not Secure.
        let host_ok = !name.starts_with("__Host-")
            || (self.secure && self.domain.is_none() && self.path == "/");
        if !host_ok || (name.starts_with("__Secure-") && !self.secure) {
            return Err(ConfigError::InvalidSessionCookie { what: "name" });
        }
        let attribute = |value: &str| {
            !value.is_empty() && value.bytes().all(|b| b.is_ascii_graphic() && b != b';')
        };
        if !attribute(&self.path) {
            return Err(ConfigError::InvalidSessionCookie { what: "path" });
        }
        if self
            .domain
            .as_deref()
            .is_some_and(|domain| !attribute(domain))
        {
            return Err(ConfigError::InvalidSessionCookie { what: "domain" });
        }
        if self.lifetime.as_millis() == 0 {
            return Err(ConfigError::ZeroLimit {
                name: "session lifetime",
            });
        }
        Ok(())
    }

    /// A `Set-Cookie` value that signs `user` in for the lifetime, from now. The layer sends one
    /// after each code exchange; call it yourself to start a session some other way.
    ///
    /// # Panics
    /// If the configuration does not pass [`validate`](Self::validate), which a layer built with
    /// it has already checked.
    ///
    /// ```
    /// use http::HeaderMap;
    /// use tower_dingtalk_auth::{AuthenticatedDingTalkUser, SessionConfig, SessionKey};
    ///
    /// let secret = b"shared by every replica, at least 32 bytes";
    /// let here = SessionConfig::new(SessionKey::from_bytes(secret).unwrap());
    /// let there = SessionConfig::new(SessionKey::from_bytes(secret).unwrap());
    ///
    /// let user = AuthenticatedDingTalkUser::builder("user456", "Zhang San").build();
    /// let set_cookie = here.issue(&user);
    /// let set_cookie = set_cookie.to_str().unwrap();
    /// assert!(set_cookie.starts_with("__Host-dingtalk_session="));
    /// assert!(!set_cookie.contains("Zhang San"));
    ///
    /// // The browser sends back the name=value pair.
    /// let pair = set_cookie.split(';').next().unwrap();
    /// let mut headers = HeaderMap::new();
    /// headers.insert(http::header::COOKIE, pair.parse().unwrap());
    /// assert_eq!(there.user_from_headers(&headers), Some(user));
    /// ```
    pub fn issue(&self, user: &AuthenticatedDingTalkUser) -> HeaderValue {
        let iat = now_millis();
        let exp = iat.saturating_add(millis(self.lifetime));
        let payload = PayloadRef {
            v: PAYLOAD_VERSION,
            iat,
            exp,
            aud: self.audience(),
            user,
        };
        let json = serde_json::to_string(&payload).expect("a user always serializes");
        let mut jar = CookieJar::new();
        jar.private_mut(&self.key.0)
            .add(Cookie::new(self.name().to_owned(), json));
        let sealed = jar
            .get(self.name())
            .expect("the jar holds the cookie just added")
            .value()
            .to_owned();
        // Max-Age counts whole seconds; round up so the browser never drops it early. The sealed
        // expiry is what counts.
        let max_age = self.lifetime.as_secs() + u64::from(self.lifetime.subsec_nanos() > 0);
        let max_age = i64::try_from(max_age).unwrap_or(i64::MAX);
        self.header(
            self.cookie(sealed)
                .max_age(cookie::time::Duration::seconds(max_age)),
        )
    }

    /// A `Set-Cookie` value that signs the user out: it empties the session cookie and expires
    /// it now. Send it from your sign-out route; it works with any server.
    ///
    /// # Panics
    /// If the configuration does not pass [`validate`](Self::validate), which a layer built with
    /// it has already checked.
    ///
    /// ```
    /// use axum::{Router, http::header::SET_COOKIE, response::{IntoResponse, Redirect}, routing::post};
    /// use tower_dingtalk_auth::{SessionConfig, SessionKey};
    ///
    /// let session = SessionConfig::new(SessionKey::generate());
    /// let sign_out = session.sign_out_cookie();
    /// assert!(sign_out.to_str().unwrap().contains("Max-Age=0"));
    ///
    /// let app: Router = Router::new().route(
    ///     "/sign-out",
    ///     post(move || async move { ([(SET_COOKIE, sign_out)], Redirect::to("/")).into_response() }),
    /// );
    /// ```
    pub fn sign_out_cookie(&self) -> HeaderValue {
        self.header(
            self.cookie(String::new())
                .max_age(cookie::time::Duration::ZERO)
                .expires(cookie::time::OffsetDateTime::UNIX_EPOCH),
        )
    }

    /// The user of a valid session cookie among `headers`' `Cookie` headers: sealed with one of
    /// the keys, under this name, for this app, issued no later than now and not expired. Anything
    /// else is `None`, never an error. Only the pairs with this cookie's name are read, so other
    /// cookies (with bytes that are not ASCII, say) never hide the session.
    pub fn user_from_headers(&self, headers: &HeaderMap) -> Option<AuthenticatedDingTalkUser> {
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

    fn open(&self, sealed: &str) -> Option<AuthenticatedDingTalkUser> {
        if sealed.is_empty() || sealed.len() > MAX_SEALED_LEN {
            return None;
        }
        let cookie = Cookie::new(self.name().to_owned(), sealed.to_owned());
        let jar = CookieJar::new();
        let opened = std::iter::once(&self.key)
            .chain(&self.previous_keys)
            .find_map(|key| jar.private(&key.0).decrypt(cookie.clone()));
        let Some(opened) = opened else {
            tracing::debug!("session cookie refused: tampered with, or sealed with another key");
            return None;
        };
        let payload: Payload = match serde_json::from_str(opened.value()) {
            Ok(payload) => payload,
            Err(_) => {
                tracing::debug!("session cookie refused: unknown payload");
                return None;
            }
        };
        if payload.v != PAYLOAD_VERSION || payload.aud != self.audience() {
            tracing::debug!("session cookie refused: sealed for another app or version");
            return None;
        }
        let now = now_millis();
        let expiry = payload
            .exp
            .min(payload.iat.saturating_add(millis(self.lifetime)));
        if now >= expiry {
            tracing::debug!("session cookie refused: expired");
            return None;
        }
        if payload.iat > now.saturating_add(millis(CLOCK_SKEW)) {
            tracing::debug!("session cookie refused: issued in the future");
            return None;
        }
        tracing::debug!("session cookie accepted");
        Some(payload.user)
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

    fn header(&self, cookie: cookie::CookieBuilder<'static>) -> HeaderValue {
        HeaderValue::try_from(cookie.build().to_string())
            .expect("an invalid session cookie configuration: see SessionConfig::validate")
    }
}

fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, millis)
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
