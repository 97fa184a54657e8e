//! [`AuthErrorKind`]: the classes of [`AuthError`](super::AuthError)(super::AuthError), each with its HTTP status and
//! its name in the JSON body.

use std::fmt;

use http::StatusCode;

/// The class of an [`AuthError`](super::AuthError); it decides the HTTP status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthErrorKind {
    /// The request carried no auth code (and the layer is not optional).
    MissingCode,
    /// Something was sent where the code belongs that cannot be a DingTalk auth code; DingTalk was
    /// not called.
    InvalidCode,
    /// DingTalk rejected the code: already used, expired, or never issued (40078, 42008).
    CodeRejected,
    /// A third-party app got a code without the corp id it was issued in.
    MissingCorpId,
    /// Something was sent where the corp id belongs that cannot be one; DingTalk was not called.
    InvalidCorpId,
    /// The corp is not one that authorised the app; DingTalk was not called.
    CorpNotAuthorized,
    /// A bearer token was sent that is tampered with, expired, or sealed with another key or for
    /// another app (RFC 6750's `invalid_token`); DingTalk was not called.
    InvalidToken,
    /// A request to the token login endpoint whose body cannot be read (not JSON or a form, or
    /// too large); DingTalk was not called.
    InvalidRequest,
    /// The body of a request to the token login endpoint did not arrive within the client's
    /// [`upstream_timeout`](crate::DingTalkClient::upstream_timeout); DingTalk was not called.
    RequestTimeout,
    /// The user was authenticated but may not use this route: a [guard](crate::guard) refused them.
    Forbidden,
    /// A code arrived on a navigation from another site while the layer keeps sessions: a link
    /// that would sign the visitor in as someone else (login CSRF). DingTalk was not called.
    CrossSiteLogin,
    /// A guard needs the user's profile (departments, ...), which DingTalk did not give just now;
    /// retry after [`AuthError::retry_after`](super::AuthError::retry_after).
    ProfileUnavailable,
    /// The session (a cookie or a bearer token) was ended: the user was revoked
    /// ([`DingTalkClient::revoke_user`](crate::DingTalkClient::revoke_user)), or DingTalk no
    /// longer knows them (they left the organisation). DingTalk was not called, or called once to
    /// re-validate them.
    SessionRevoked,
    /// DingTalk's web login: the account that signed in is not a member of the organisation
    /// (DingTalk's 60121), so it may not sign in here.
    NotAMember,
    /// DingTalk's web login came back without the state this browser was sent with: forged,
    /// replayed, expired (10 minutes), or another app's. DingTalk was not called.
    InvalidLoginState,
    /// DingTalk's web login came back with an error: the user cancelled, or DingTalk refused.
    /// DingTalk was not called.
    LoginCancelled,
    /// The client that sent the request has as many new exchanges waiting as it may have; retry
    /// after [`AuthError::retry_after`](super::AuthError::retry_after). DingTalk was not called.
    TooManyAttempts,
    /// DingTalk could not be reached, failed, or answered something that is not its documented JSON.
    Upstream,
    /// DingTalk did not answer within the exchange's time budget.
    UpstreamTimeout,
    /// DingTalk is throttling this app or this server; retry after [`AuthError::retry_after`](super::AuthError::retry_after).
    Throttled,
    /// The local rate limit on calls to DingTalk is saturated: the new exchange could not get its
    /// turn within the queue timeout. Retry after [`AuthError::retry_after`](super::AuthError::retry_after).
    Overloaded,
    /// DingTalk refused the app's configuration (secret, permission, IP whitelist). An error-level
    /// log says what to fix.
    Misconfigured,
    /// A bug: something that should not happen did.
    Internal,
}

impl AuthErrorKind {
    /// Every kind, each at its [`index`](Self::index): for counting by kind.
    pub(crate) const ALL: [Self; 23] = [
        Self::MissingCode,
        Self::InvalidCode,
        Self::CodeRejected,
        Self::MissingCorpId,
        Self::InvalidCorpId,
        Self::CorpNotAuthorized,
        Self::InvalidToken,
        Self::InvalidRequest,
        Self::RequestTimeout,
        Self::Forbidden,
        Self::CrossSiteLogin,
        Self::ProfileUnavailable,
        Self::SessionRevoked,
        Self::NotAMember,
        Self::InvalidLoginState,
        Self::LoginCancelled,
        Self::TooManyAttempts,
        Self::Upstream,
        Self::UpstreamTimeout,
        Self::Throttled,
        Self::Overloaded,
        Self::Misconfigured,
        Self::Internal,
    ];

    /// Its place in [`ALL`](Self::ALL); a new kind must be given one here, and a place there.
    pub(crate) const fn index(self) -> usize {
        match self {
            Self::MissingCode => 0,
            Self::InvalidCode => 1,
            Self::CodeRejected => 2,
            Self::MissingCorpId => 3,
            Self::InvalidCorpId => 4,
            Self::CorpNotAuthorized => 5,
            Self::InvalidToken => 6,
            Self::InvalidRequest => 7,
            Self::RequestTimeout => 8,
            Self::Forbidden => 9,
            Self::CrossSiteLogin => 10,
            Self::ProfileUnavailable => 11,
            Self::SessionRevoked => 12,
            Self::NotAMember => 13,
            Self::InvalidLoginState => 14,
            Self::LoginCancelled => 15,
            Self::TooManyAttempts => 16,
            Self::Upstream => 17,
            Self::UpstreamTimeout => 18,
            Self::Throttled => 19,
            Self::Overloaded => 20,
            Self::Misconfigured => 21,
            Self::Internal => 22,
        }
    }
    /// The HTTP status a rejection of this kind gets.
    pub const fn status(self) -> StatusCode {
        match self {
            Self::MissingCode
            | Self::InvalidCode
            | Self::CodeRejected
            | Self::MissingCorpId
            | Self::InvalidCorpId
            | Self::CorpNotAuthorized
            | Self::InvalidToken
            | Self::LoginCancelled
            | Self::SessionRevoked => StatusCode::UNAUTHORIZED,
            Self::InvalidRequest => StatusCode::BAD_REQUEST,
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::Forbidden | Self::CrossSiteLogin | Self::NotAMember | Self::InvalidLoginState => {
                StatusCode::FORBIDDEN
            }
            Self::TooManyAttempts => StatusCode::TOO_MANY_REQUESTS,
            Self::Upstream => StatusCode::BAD_GATEWAY,
            Self::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            Self::Throttled | Self::Overloaded | Self::ProfileUnavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Misconfigured | Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The machine-readable name used as `error` in the JSON body.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::MissingCode => "missing_code",
            Self::InvalidCode => "invalid_code",
            Self::CodeRejected => "code_rejected",
            Self::MissingCorpId => "missing_corp_id",
            Self::InvalidCorpId => "invalid_corp_id",
            Self::CorpNotAuthorized => "corp_not_authorized",
            Self::InvalidToken => "invalid_token",
            Self::InvalidRequest => "invalid_request",
            Self::RequestTimeout => "request_timeout",
            Self::Forbidden => "forbidden",
            Self::CrossSiteLogin => "cross_site_login",
            Self::NotAMember => "not_a_member",
            Self::SessionRevoked => "session_revoked",
            Self::ProfileUnavailable => "profile_unavailable",
            Self::InvalidLoginState => "invalid_login_state",
            Self::LoginCancelled => "login_cancelled",
            Self::TooManyAttempts => "too_many_attempts",
            Self::Upstream => "upstream_error",
            Self::UpstreamTimeout => "upstream_timeout",
            Self::Throttled => "upstream_throttled",
            Self::Overloaded => "rate_limited",
            Self::Misconfigured => "misconfigured",
            Self::Internal => "internal_error",
        }
    }
}

impl fmt::Display for AuthErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::AuthErrorKind;

    #[test]
    fn every_kind_sits_at_its_index() {
        for (index, kind) in AuthErrorKind::ALL.into_iter().enumerate() {
            assert_eq!(kind.index(), index, "{kind}");
        }
    }
}
