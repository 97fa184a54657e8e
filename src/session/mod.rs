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

use std::time::Duration;

use crate::config_error::ConfigError;

/// The session cookie's name unless one is configured, when the cookie cannot be a `__Host-`
/// cookie (not `Secure`, or with a `Domain` or a `Path` other than `/`).
pub const DEFAULT_SESSION_COOKIE: &str = "dingtalk_session";

/// The session cookie's name unless one is configured, when it is `Secure`, has no `Domain` and
/// the path `/`: the `__Host-` prefix makes browsers refuse the cookie unless it was set that way by
/// this very host, so a sibling subdomain or a plain-HTTP page cannot plant one.
pub const HOST_SESSION_COOKIE: &str = "__Host-dingtalk_session";

/// How many opened sessions each layer keeps unless configured
/// ([`SessionConfig::opened_session_cache`]).
pub const DEFAULT_OPENED_SESSION_CACHE: usize = 4096;

/// The most opened sessions a layer may keep: 4,194,304 (about 3 GB when full).
pub const MAX_OPENED_SESSION_CACHE: usize = 1 << 22;

/// How long a session lasts unless configured: 8 hours, a working day.
pub const DEFAULT_SESSION_LIFETIME: Duration = Duration::from_secs(8 * 60 * 60);

/// How long refreshed tokens can keep a login going unless configured: 7 days after the code
/// exchange that started it.
pub const DEFAULT_SESSION_ABSOLUTE_LIFETIME: Duration = Duration::from_secs(7 * 24 * 60 * 60);

mod clock;
mod key;
mod login_state;
mod opened;
mod seal;
mod token;

pub(crate) use self::clock::{millis, now_millis};
pub use self::key::SessionKey;
pub use self::login_state::LOGIN_STATE_LIFETIME;
pub(crate) use self::opened::{OpenedSessions, SessionUser};
pub(crate) use self::seal::SessionKind;
pub(crate) use self::token::{IssuedToken, bearer_token, bearer_token_bytes};

/// How the layer keeps users signed in between codes; see
/// [`DingTalkAuthLayerBuilder::session`](crate::DingTalkAuthLayerBuilder::session).
///
/// The cookie is `HttpOnly`, `Secure` (unless [`secure(false)`](Self::secure)), `SameSite=Lax`,
/// `Path=/`, with `Max-Age` of the lifetime (default 8 hours), and named
/// `__Host-dingtalk_session` (see [`name`](Self::name)). Every setting is checked when the layer
/// is built, and by [`issue`](Self::issue) and [`sign_out_cookie`](Self::sign_out_cookie) when
/// you call them yourself: a bad setting is a [`ConfigError`], never a panic.
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
    pub(super) audience: Option<std::sync::Arc<str>>,
    lifetime: Duration,
    absolute_lifetime: Duration,
    secure: bool,
    path: String,
    domain: Option<String>,
    opened_session_cache: usize,
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
            absolute_lifetime: DEFAULT_SESSION_ABSOLUTE_LIFETIME,
            secure: true,
            path: "/".to_owned(),
            domain: None,
            opened_session_cache: DEFAULT_OPENED_SESSION_CACHE,
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

    /// How long after the code exchange a login may be kept going by refreshing its token (see
    /// [`token_login`](crate::DingTalkAuthLayerBuilder::token_login)): a refreshed token never
    /// outlives it, and every token and cookie of the login is refused after it. At least the
    /// [`lifetime`](Self::lifetime). Default: 7 days.
    pub fn absolute_lifetime(mut self, absolute_lifetime: Duration) -> Self {
        self.absolute_lifetime = absolute_lifetime;
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

    /// How many opened sessions each layer keeps in memory, so that a signed-in user's next
    /// requests skip opening their cookie or token again (base64, AES-GCM and JSON: a few
    /// microseconds each time). Set it to the number of users signed in at once, with room: a
    /// session that finds no place is opened on each of its requests. Each session kept takes
    /// about 650 bytes (its sealed value, its user and its slot); the slots, about 90 bytes each
    /// for the number given rounded up to a power of two, are reserved when the layer is built.
    /// From 2 to [`MAX_OPENED_SESSION_CACHE`]. Default: [`DEFAULT_OPENED_SESSION_CACHE`].
    ///
    /// ```
    /// use tower_dingtalk_auth::{SessionConfig, SessionKey};
    ///
    /// // A company of 100,000 people, most of them signed in during the day.
    /// let session = SessionConfig::new(SessionKey::generate()).opened_session_cache(131_072);
    /// assert!(session.validate().is_ok());
    /// ```
    pub fn opened_session_cache(mut self, capacity: usize) -> Self {
        self.opened_session_cache = capacity;
        self
    }

    /// How many opened sessions each layer keeps.
    pub(crate) fn opened_session_capacity(&self) -> usize {
        self.opened_session_cache
    }

    /// Checks that the cookie can be written: a non-empty token for a name (a `__Host-` name only
    /// on a `Secure` cookie without a domain on the path `/`), a path and domain without spaces,
    /// controls or `;`, a lifetime of at least a millisecond, and an
    /// [`opened_session_cache`](Self::opened_session_cache) in range.
    /// [`DingTalkAuthLayerBuilder::build`](crate::DingTalkAuthLayerBuilder::build) calls it, and so
    /// do [`issue`](Self::issue) and [`sign_out_cookie`](Self::sign_out_cookie).
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
        if !(2..=MAX_OPENED_SESSION_CACHE).contains(&self.opened_session_cache) {
            return Err(ConfigError::OpenedSessionCache {
                capacity: self.opened_session_cache,
            });
        }
        if self.absolute_lifetime < self.lifetime {
            return Err(ConfigError::AbsoluteLifetimeBelowLifetime {
                absolute_lifetime: self.absolute_lifetime,
                lifetime: self.lifetime,
            });
        }
        Ok(())
    }
}
