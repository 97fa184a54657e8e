//! [`ConfigError`]: why a layer, a client or a session configuration could not be built.

use std::time::Duration;

/// The layer or client could not be built from its configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A session was issued with a [`SessionConfig`](crate::SessionConfig) that no layer bound
    /// to its app: the layer would refuse it. Use
    /// [`DingTalkAuthLayer::sessions`](crate::DingTalkAuthLayer::sessions).
    #[error(
        "this SessionConfig is not the layer's: sessions it seals are refused; use DingTalkAuthLayer::sessions()"
    )]
    SessionNotBound,
    /// An environment variable the configuration needs is not set, or not UTF-8.
    #[error("the environment variable `{name}` is not set (or not UTF-8)")]
    MissingEnvVar {
        /// The variable.
        name: &'static str,
    },
    /// No app credentials were given (call `internal_app`).
    #[error("no DingTalk app credentials configured: call `internal_app(app_key, app_secret)`")]
    MissingCredentials,
    /// The app key or secret is empty.
    #[error("the DingTalk app key and app secret must not be empty")]
    EmptyCredentials,
    /// A base URL is not an absolute http(s) URL.
    #[error("`{name}` is not an absolute http or https URL")]
    InvalidBaseUrl {
        /// Which setting was wrong.
        name: &'static str,
    },
    /// A suite ticket store was given to an internal app.
    #[error("a suite ticket store is for third-party apps: call `third_party_app`")]
    SuiteTicketsNeedThirdParty,
    /// A base URL is `https` but the crate was built without a TLS stack: enable the `rustls`
    /// (default) or `native-tls` feature, or give the client your own `reqwest::Client`.
    #[error(
        "`{name}` is https but this build has no TLS: enable the `rustls` or `native-tls` feature"
    )]
    NoTls {
        /// Which setting was https.
        name: &'static str,
    },
    /// A session's absolute lifetime is shorter than its lifetime.
    #[error(
        "the session's absolute lifetime ({absolute_lifetime:?}) must be at least its lifetime \
         ({lifetime:?})"
    )]
    AbsoluteLifetimeBelowLifetime {
        /// The configured absolute lifetime.
        absolute_lifetime: Duration,
        /// The configured lifetime.
        lifetime: Duration,
    },
    /// `token_login` was configured on a layer without `session`: the token is a sealed session.
    #[error("`token_login` needs `session(..)`: a token is a sealed session")]
    TokenLoginNeedsSession,
    /// `web_login` was configured on a layer without `session`: a web login starts a session.
    #[error("`web_login` needs `session(..)`: a web login starts a session cookie")]
    WebLoginNeedsSession,
    /// The `web_login` callback is neither an absolute path nor an http(s) URL of visible ASCII.
    #[error(
        "the web login callback must be an absolute path (\"/auth/dingtalk/callback\") or an \
         http(s) URL of visible ASCII, without '?' or '#'"
    )]
    InvalidWebLoginCallback,
    /// The `token_login` path is not an absolute path of visible ASCII.
    #[error("the token login path must start with '/' and be visible ASCII without '?' or '#'")]
    InvalidTokenLoginPath,
    /// A third-party app was configured without a way to tell which corps authorised it.
    #[error(
        "a third-party app needs `authorized_corps([...])` or `corp_directory(...)`: \
         corp ids come from requests and must be checked"
    )]
    NoCorpDirectory,
    /// The realm cannot be put in a `WWW-Authenticate` header.
    #[error("the realm must be visible ASCII without quotes or backslashes")]
    InvalidRealm,
    /// No place to read the code from was configured.
    #[error("at least one code source is needed")]
    NoCodeSource,
    /// A limit was set to zero.
    #[error("`{name}` must be greater than zero")]
    ZeroLimit {
        /// Which setting was zero.
        name: &'static str,
    },
    /// [`SessionConfig::opened_session_cache`](crate::SessionConfig::opened_session_cache) is
    /// below 2 or above [`MAX_OPENED_SESSION_CACHE`](crate::MAX_OPENED_SESSION_CACHE).
    #[error(
        "the opened-session cache must hold from 2 to {} sessions, not {capacity}",
        crate::MAX_OPENED_SESSION_CACHE
    )]
    OpenedSessionCache {
        /// The capacity given.
        capacity: usize,
    },
    /// The HTTP client could not be built.
    #[error("the HTTP client could not be built")]
    HttpClient(#[source] reqwest::Error),
    /// A session key was made from fewer than
    /// [`SessionKey::MIN_LEN`](crate::SessionKey::MIN_LEN) bytes.
    #[error("a session key needs at least 32 bytes of secret, this one has {len}")]
    SessionKeyTooShort {
        /// How many bytes were given.
        len: usize,
    },
    /// The session cookie cannot be written: see
    /// [`SessionConfig::validate`](crate::SessionConfig::validate).
    #[error("the session cookie's {what} is not valid in a Set-Cookie header")]
    InvalidSessionCookie {
        /// Which attribute was wrong: `name`, `path` or `domain`.
        what: &'static str,
    },
    /// The URL given to `redirect_when_missing` cannot be a `Location` header.
    #[error("the redirect URL must be non-empty visible ASCII")]
    InvalidRedirectUrl,
    /// The shared store's lock lives as long as the request budget or longer: replicas waiting for
    /// a holder that died would give up before its lock expires.
    #[error(
        "the shared store's lock TTL ({lock_ttl:?}) must be shorter than the upstream timeout \
         ({budget:?})"
    )]
    LockOutlivesBudget {
        /// The store's lock TTL.
        lock_ttl: Duration,
        /// The layer's upstream timeout.
        budget: Duration,
    },
    /// The answer timeout is shorter than the timeout: a caller would give up on calls it still
    /// waits for.
    #[error(
        "the answer timeout ({answer_timeout:?}) must not be shorter than the upstream timeout \
         ({timeout:?})"
    )]
    AnswerTimeoutBelowTimeout {
        /// The client's answer timeout.
        answer_timeout: Duration,
        /// The client's timeout.
        timeout: Duration,
    },
    /// The code reuse window is longer than a code lives at DingTalk (5 minutes).
    #[error("the code reuse window ({window:?}) must not be longer than a code's 5 minutes")]
    ReuseWindowTooLong {
        /// The window asked for.
        window: Duration,
    },
    /// Two options that contradict each other were both set.
    #[error("`{first}` and `{second}` cannot be used together")]
    ConflictingOptions {
        /// One option.
        first: &'static str,
        /// The other.
        second: &'static str,
    },
}
