//! [`AuthError`], why a request was not authenticated, and how it becomes one HTTP response.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};

mod kind;

pub use self::kind::AuthErrorKind;

/// Why a request could not be authenticated.
///
/// Every failure on the way from a request to an [`AuthenticatedDingTalkUser`] is one of these, and
/// each becomes exactly one HTTP response (see [`AuthError::to_response`]). Neither the message nor
/// `Debug` ever contains the auth code, the access token or the app secret.
///
/// | [`kind`](AuthError::kind) | status | `error` in the body |
/// | --- | --- | --- |
/// | [`MissingCode`](AuthErrorKind::MissingCode) | 401 | `missing_code` |
/// | [`InvalidCode`](AuthErrorKind::InvalidCode) | 401 | `invalid_code` |
/// | [`CodeRejected`](AuthErrorKind::CodeRejected) | 401 | `code_rejected` |
/// | [`MissingCorpId`](AuthErrorKind::MissingCorpId) | 401 | `missing_corp_id` |
/// | [`InvalidCorpId`](AuthErrorKind::InvalidCorpId) | 401 | `invalid_corp_id` |
/// | [`CorpNotAuthorized`](AuthErrorKind::CorpNotAuthorized) | 401 | `corp_not_authorized` |
/// | [`InvalidToken`](AuthErrorKind::InvalidToken) | 401 + `WWW-Authenticate: Bearer` | `invalid_token` |
/// | [`InvalidRequest`](AuthErrorKind::InvalidRequest) | 400 | `invalid_request` |
/// | [`RequestTimeout`](AuthErrorKind::RequestTimeout) | 408 | `request_timeout` |
/// | [`Forbidden`](AuthErrorKind::Forbidden) | 403 | `forbidden` |
/// | [`CrossSiteLogin`](AuthErrorKind::CrossSiteLogin) | 403 | `cross_site_login` |
/// | [`TooManyAttempts`](AuthErrorKind::TooManyAttempts) | 429 + `Retry-After` | `too_many_attempts` |
/// | [`Upstream`](AuthErrorKind::Upstream) | 502 | `upstream_error` |
/// | [`UpstreamTimeout`](AuthErrorKind::UpstreamTimeout) | 504 | `upstream_timeout` |
/// | [`Throttled`](AuthErrorKind::Throttled) | 503 + `Retry-After` | `upstream_throttled` |
/// | [`Overloaded`](AuthErrorKind::Overloaded) | 503 + `Retry-After` | `rate_limited` |
/// | [`Misconfigured`](AuthErrorKind::Misconfigured) | 500 | `misconfigured` |
/// | [`Internal`](AuthErrorKind::Internal) | 500 | `internal_error` |
///
/// [`AuthenticatedDingTalkUser`]: crate::AuthenticatedDingTalkUser
///
/// ```
/// use http::StatusCode;
/// use tower_dingtalk_auth::{AuthError, AuthErrorKind};
///
/// let error = AuthError::missing_code();
/// assert_eq!(error.kind(), AuthErrorKind::MissingCode);
/// assert_eq!(error.status(), StatusCode::UNAUTHORIZED);
/// let response = error.to_response("my-app");
/// assert_eq!(response.headers()["www-authenticate"], r#"DingTalk realm="my-app""#);
/// ```
#[derive(Clone)]
pub struct AuthError {
    kind: AuthErrorKind,
    message: Cow<'static, str>,
    retry_after: Option<Duration>,
    /// What DingTalk said, when it said something: boxed, so that errors stay small on the
    /// paths that never meet DingTalk.
    upstream: Option<Box<Upstream>>,
}

/// DingTalk's side of an error.
#[derive(Clone, Debug)]
struct Upstream {
    errcode: i64,
    /// For 60020: the address DingTalk saw this server call from, for the self-check's report
    /// (never in a response).
    seen_ip: Option<String>,
}

impl AuthError {
    pub(crate) fn new(kind: AuthErrorKind, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            kind,
            message: message.into(),
            retry_after: None,
            upstream: None,
        }
    }

    /// With DingTalk's errcode already set: the address it saw.
    pub(crate) fn with_seen_ip(mut self, ip: Option<String>) -> Self {
        if let Some(upstream) = &mut self.upstream {
            upstream.seen_ip = ip;
        }
        self
    }

    pub(crate) fn seen_ip(&self) -> Option<&str> {
        self.upstream.as_ref()?.seen_ip.as_deref()
    }

    pub(crate) fn with_errcode(mut self, errcode: i64) -> Self {
        self.upstream = Some(Box::new(Upstream {
            errcode,
            seen_ip: None,
        }));
        self
    }

    pub(crate) fn with_retry_after(mut self, retry_after: Duration) -> Self {
        self.retry_after = Some(retry_after);
        self
    }

    pub(crate) fn throttled(retry_after: Duration, message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(AuthErrorKind::Throttled, message).with_retry_after(retry_after)
    }

    /// The error for a request that carries no auth code.
    pub fn missing_code() -> Self {
        Self::new(
            AuthErrorKind::MissingCode,
            "this request needs a DingTalk auth code",
        )
    }

    pub(crate) fn invalid_code() -> Self {
        Self::new(
            AuthErrorKind::InvalidCode,
            "the auth code is malformed: it must be 1 to 256 visible ASCII characters",
        )
    }

    pub(crate) fn code_rejected() -> Self {
        Self::new(
            AuthErrorKind::CodeRejected,
            "DingTalk rejected the auth code: it was used already, expired or never issued",
        )
    }

    pub(crate) fn not_a_member() -> Self {
        Self::new(
            AuthErrorKind::NotAMember,
            "this DingTalk account is not a member of the organisation",
        )
    }

    pub(crate) fn invalid_login_state() -> Self {
        Self::new(
            AuthErrorKind::InvalidLoginState,
            "this login did not start in this browser, or took longer than 10 minutes: sign in again",
        )
    }

    pub(crate) fn login_cancelled() -> Self {
        Self::new(
            AuthErrorKind::LoginCancelled,
            "the DingTalk login was cancelled: sign in again",
        )
    }

    pub(crate) fn profile_unavailable() -> Self {
        Self::new(
            AuthErrorKind::ProfileUnavailable,
            "the user's profile is not available from DingTalk just now; try again shortly",
        )
        .with_retry_after(crate::profile::PROFILE_FAILURE_HOLD)
    }

    pub(crate) fn session_revoked() -> Self {
        Self::new(
            AuthErrorKind::SessionRevoked,
            "this session was ended: sign in again",
        )
    }

    pub(crate) fn too_many_attempts() -> Self {
        Self::new(
            AuthErrorKind::TooManyAttempts,
            "too many new logins from this client at once; try again shortly",
        )
        .with_retry_after(Duration::from_secs(1))
    }

    pub(crate) fn cross_site_login() -> Self {
        Self::new(
            AuthErrorKind::CrossSiteLogin,
            "a login code may not arrive on a link from another site; sign in from this site",
        )
    }

    pub(crate) fn missing_corp_id() -> Self {
        Self::new(
            AuthErrorKind::MissingCorpId,
            "this request needs the DingTalk corp id the code was issued in",
        )
    }

    pub(crate) fn invalid_corp_id() -> Self {
        Self::new(
            AuthErrorKind::InvalidCorpId,
            "the corp id is malformed: it must be 1 to 64 ASCII letters, digits, '-' or '_'",
        )
    }

    pub(crate) fn corp_not_authorized() -> Self {
        Self::new(
            AuthErrorKind::CorpNotAuthorized,
            "this organisation has not authorised the app",
        )
    }

    pub(crate) fn invalid_token() -> Self {
        Self::new(
            AuthErrorKind::InvalidToken,
            "the bearer token is not valid: tampered with, expired, or not issued by this app",
        )
    }

    pub(crate) fn invalid_request(message: &'static str) -> Self {
        Self::new(AuthErrorKind::InvalidRequest, message)
    }

    pub(crate) fn ambiguous_code() -> Self {
        Self::new(
            AuthErrorKind::InvalidCode,
            "the auth code appears more than once with different values",
        )
    }

    pub(crate) fn ambiguous_corp_id() -> Self {
        Self::new(
            AuthErrorKind::InvalidCorpId,
            "the corp id appears more than once with different values",
        )
    }

    /// The error for an authenticated user who may not use a route; `message` says why and is
    /// shown to the caller.
    ///
    /// ```
    /// use tower_dingtalk_auth::{AuthError, AuthErrorKind};
    ///
    /// let error = AuthError::forbidden("this route is for the finance team");
    /// assert_eq!(error.kind(), AuthErrorKind::Forbidden);
    /// assert_eq!(error.status(), http::StatusCode::FORBIDDEN);
    /// assert!(error.to_response("dingtalk").headers().get("www-authenticate").is_none());
    /// ```
    pub fn forbidden(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(AuthErrorKind::Forbidden, message)
    }

    /// What went wrong.
    pub fn kind(&self) -> AuthErrorKind {
        self.kind
    }

    /// The HTTP status of the rejection.
    pub fn status(&self) -> StatusCode {
        self.kind.status()
    }

    /// How long the caller should wait before retrying, for [`AuthErrorKind::Throttled`].
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// DingTalk's `errcode` (or the `sub_code` it wrapped in errcode 88), when DingTalk gave one.
    pub fn upstream_errcode(&self) -> Option<i64> {
        self.upstream.as_ref().map(|upstream| upstream.errcode)
    }

    /// Whether the client sent no code, or one that cannot be or is no longer valid: its fault.
    pub fn is_client_error(&self) -> bool {
        self.status().is_client_error()
    }

    /// Whether DingTalk failed, throttled or was too slow: retrying later may succeed.
    pub fn is_upstream(&self) -> bool {
        matches!(
            self.kind,
            AuthErrorKind::Upstream | AuthErrorKind::UpstreamTimeout | AuthErrorKind::Throttled
        )
    }

    /// A human-readable explanation, safe to show to the caller.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The JSON body of the rejection: `{"error": "<kind>", "message": "<text>"}`.
    pub fn json_body(&self) -> String {
        serde_json::json!({ "error": self.kind.as_str(), "message": self.message }).to_string()
    }

    /// The default HTTP response for this error: the status, a JSON body, `WWW-Authenticate` on a
    /// 401 (with the given realm) and `Retry-After` on a 429 or 503.
    pub fn to_response(&self, realm: &str) -> Response<Bytes> {
        let mut response = Response::new(Bytes::from(self.json_body()));
        *response.status_mut() = self.status();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if self.status() == StatusCode::UNAUTHORIZED {
            let challenge = match self.kind {
                AuthErrorKind::MissingCode => format!(r#"DingTalk realm="{realm}""#),
                // RFC 6750, section 3: the client presented a bearer token, so the challenge is Bearer.
                AuthErrorKind::InvalidToken => {
                    format!(r#"Bearer realm="{realm}", error="invalid_token""#)
                }
                kind => format!(r#"DingTalk realm="{realm}", error="{kind}""#),
            };
            if let Ok(value) = HeaderValue::try_from(challenge) {
                headers.insert(header::WWW_AUTHENTICATE, value);
            }
        }
        if let Some(wait) = self.retry_after {
            // Retry-After takes whole seconds; round up so a client never comes back too early.
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
        }
        response
    }
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

impl fmt::Debug for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthError")
            .field("kind", &self.kind)
            .field("message", &self.message)
            .field("retry_after", &self.retry_after)
            .field("upstream_errcode", &self.upstream_errcode())
            .finish()
    }
}

impl std::error::Error for AuthError {}
