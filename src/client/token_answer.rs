//! What an answer of a token endpoint means. The new "api" host says what went wrong in the
//! body's `code`, not in the HTTP status: a throttle comes as 403, DingTalk's own fault as 400, a
//! wrong secret on the unified corp endpoint as 500. The decision is made by `code`.

use std::time::Duration;

use http::StatusCode;

use super::oapi::{DEFAULT_THROTTLE_WAIT, IP_REFUSED, upstream_error};
use super::token::{AccessToken, FetchedToken};
use super::wire::{AccessTokenResponse, ApiError};
use crate::error::{AuthError, AuthErrorKind};

/// Which token endpoint answered: they differ in the shape of a success and in what `unknownError`
/// means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TokenEndpoint {
    /// `POST /v1.0/oauth2/accessToken` (internal apps).
    App,
    /// `POST /v1.0/oauth2/{corpId}/token` (third-party apps, unified).
    CorpUnified,
    /// `POST /v1.0/oauth2/corpAccessToken` (third-party apps, by suite ticket).
    CorpBySuiteTicket,
    /// `POST /v1.0/oauth2/userAccessToken` (a web login's user token).
    User,
}

/// Why a token endpoint gave no token, and how loudly to say it.
#[derive(Debug)]
pub(crate) struct TokenRefusal {
    pub(crate) error: AuthError,
    status: StatusCode,
    code: String,
    cause: Cause,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cause {
    /// The operator must fix something: the advice says what.
    Configuration(&'static str),
    /// DingTalk throttles the token endpoint.
    Throttled,
    /// DingTalk failed, or answered something we do not know.
    DingTalk,
    /// DingTalk says our request is malformed: a bug in this crate.
    Bug,
}

impl TokenRefusal {
    fn new(error: AuthError, status: StatusCode, code: &str, cause: Cause) -> Self {
        Self {
            error,
            status,
            code: code.to_owned(),
            cause,
        }
    }

    /// Whether DingTalk refused this corp (it did not install the app, or does not exist), rather
    /// than the app: such a corp is remembered for a while, so that invented corp ids cost one
    /// call each, not one per request.
    pub(crate) fn refuses_corp(&self) -> bool {
        matches!(
            self.cause,
            Cause::Configuration(CHECK_INSTALLED | CHECK_UNIFIED)
        )
    }

    /// Whether DingTalk only said no, without naming the app's configuration, a throttle or a
    /// bug: for a user token, the `authCode` it was given.
    pub(crate) fn is_only_upstream(&self) -> bool {
        self.cause == Cause::DingTalk
    }

    /// Whether the endpoint named a failure of DingTalk's own (`system.error`, `server.error`,
    /// `unknownError`, a 5xx), rather than something about what it was sent.
    pub(crate) fn is_dingtalks_own(&self) -> bool {
        self.status.is_server_error()
            || matches!(
                self.code.as_str(),
                "system.error" | "server.error" | "unknownError" | "ServiceUnavailable" | ""
            )
    }

    /// Forgets the endpoint's `code` when it holds `secret` (an endpoint echoing what it was sent):
    /// only the log reads it after the decision.
    pub(crate) fn without_echo_of(mut self, secret: &str) -> Self {
        if !secret.is_empty() && self.code.contains(secret) {
            "<redacted>".clone_into(&mut self.code);
        }
        self
    }

    /// Logs the refusal; `whose` names the credentials, such as `app key "dingabc"`.
    pub(crate) fn log(&self, whose: &str) {
        let status = self.status;
        // DingTalk's codes are short identifiers; anything else is logged by name only.
        let identifier = |code: &str| {
            code.len() <= 64
                && code
                    .bytes()
                    .all(|byte| byte.is_ascii_alphanumeric() || b"._-<>".contains(&byte))
        };
        let code = if identifier(&self.code) {
            self.code.as_str()
        } else {
            "<not an identifier>"
        };
        match self.cause {
            Cause::Configuration(advice) => {
                tracing::error!(%status, code, "DingTalk refused a token for {whose}: {advice}");
            }
            Cause::Throttled => {
                tracing::warn!(%status, code, "DingTalk is throttling token requests for {whose}");
            }
            Cause::DingTalk => {
                tracing::warn!(%status, code, "the access token endpoint failed for {whose}");
            }
            Cause::Bug => tracing::error!(
                %status,
                code,
                "DingTalk rejected the form of a token request for {whose}: a bug in \
                 tower-dingtalk-auth, not your configuration; please report it"
            ),
        }
    }
}

/// The fewest and the most seconds a token is kept, whatever `expireIn` says: a token that claims
/// to live 0 s or 300 years is used for a sane time and refreshed, at most once a second.
pub(crate) const MIN_TOKEN_LIFETIME: Duration = Duration::from_secs(1);
pub(crate) const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);

const CHECK_SECRET: &str = "check the app key and app secret (Client ID and Client Secret) in the \
                            DingTalk developer console";
const CHECK_SUITE: &str = "check the suite key and suite secret in the DingTalk developer console";
const CHECK_TICKET: &str = "the suite ticket is not the latest one: pass every ticket DingTalk \
                            pushes to the app's callback to the SuiteTicketStore";
const CHECK_INSTALLED: &str = "the corp has not installed or has disabled the app; check the corp \
                               id the request named";
const CHECK_UNIFIED: &str = "DingTalk answers this for a corp that did not install the app and for \
                             wrong credentials alike: check the corp id the request named, and the \
                             suite key and suite secret";
const CHECK_WHITELIST: &str = "this server's IP is not in the app's whitelist; add it in the \
                               DingTalk developer console";

/// What an answer of a token endpoint means: a token and its lifetime, or why not.
pub(crate) fn read(
    status: StatusCode,
    bytes: &[u8],
    endpoint: TokenEndpoint,
) -> Result<FetchedToken, TokenRefusal> {
    let text = std::str::from_utf8(bytes).ok();
    if status.is_success()
        && let Some(token) =
            text.and_then(|text| serde_json::from_str::<AccessTokenResponse>(text).ok())
    {
        return success(token, status);
    }
    let error = text.and_then(|text| serde_json::from_str::<ApiError>(text).ok());
    let Some(error) = error else {
        return Err(TokenRefusal::new(
            upstream_error(if status.is_success() {
                "the access token endpoint answered something that is not its JSON"
            } else {
                "DingTalk's access token endpoint failed"
            }),
            status,
            "",
            Cause::DingTalk,
        ));
    };
    let code = error.code.as_deref().unwrap_or_default();
    // A wrong path answers HTTP 200 with an errcode (404, or 22 on the legacy host).
    if let Some(errcode) = error.errcode.filter(|errcode| *errcode != 0) {
        let cause = match errcode {
            22 | 404 => Cause::Bug,
            // The gateway's throttle, as the legacy host writes it (88 wrapping 90018).
            88 if is_throttle(text.unwrap_or_default()) => Cause::Throttled,
            90001..=90018 => Cause::Throttled,
            _ => Cause::DingTalk,
        };
        let error = match cause {
            Cause::Bug => bug().with_errcode(errcode),
            Cause::Throttled => {
                AuthError::throttled(DEFAULT_THROTTLE_WAIT, "DingTalk is throttling this app")
                    .with_errcode(errcode)
            }
            _ => upstream_error("DingTalk's access token endpoint failed").with_errcode(errcode),
        };
        return Err(TokenRefusal::new(error, status, code, cause));
    }
    let cause = cause_of(code, status, endpoint);
    let error = match cause {
        Cause::Configuration(CHECK_WHITELIST) => {
            AuthError::new(AuthErrorKind::Misconfigured, IP_REFUSED)
        }
        Cause::Configuration(_) => AuthError::new(
            AuthErrorKind::Misconfigured,
            "DingTalk refused the app's credentials",
        ),
        Cause::Throttled => {
            AuthError::throttled(DEFAULT_THROTTLE_WAIT, "DingTalk is throttling this app")
        }
        Cause::DingTalk => upstream_error("DingTalk's access token endpoint failed"),
        Cause::Bug => bug(),
    };
    Err(TokenRefusal::new(error, status, code, cause))
}

/// Whether an errcode answer wraps a throttle (`sub_code` 9000x, or `subcode=9000x` in `errmsg`).
fn is_throttle(text: &str) -> bool {
    serde_json::from_str::<super::wire::OapiEnvelope<serde_json::Value>>(text)
        .ok()
        .and_then(|envelope| super::wire::effective_errcode(&envelope))
        .is_some_and(|errcode| (90001..=90018).contains(&errcode))
}

fn cause_of(code: &str, status: StatusCode, endpoint: TokenEndpoint) -> Cause {
    match code {
        "invalidClientIdOrSecret" | "invalid.client" => Cause::Configuration(match endpoint {
            TokenEndpoint::App | TokenEndpoint::User => CHECK_SECRET,
            _ => CHECK_SUITE,
        }),
        "invalidSuiteKey" | "invalidSuiteSecret" => Cause::Configuration(CHECK_SUITE),
        "invalidSuiteTicket" => Cause::Configuration(CHECK_TICKET),
        "invalidAuthInfo" | "unauthorized.client" | "invalidAuthCorpId" => {
            Cause::Configuration(CHECK_INSTALLED)
        }
        "Forbidden.AccessDenied.IpNotInWhiteList" => Cause::Configuration(CHECK_WHITELIST),
        "unknownError" if endpoint == TokenEndpoint::CorpUnified => {
            Cause::Configuration(CHECK_UNIFIED)
        }
        "Missingbody"
        | "MissingParameter"
        | "InvalidParameter"
        | "unsupported.grant.type"
        | "InvalidAction.NotFound" => Cause::Bug,
        _ if code.starts_with("Forbidden.AccessDenied.Qp")
            || code.starts_with("Throttling")
            || status == StatusCode::TOO_MANY_REQUESTS =>
        {
            Cause::Throttled
        }
        // "system.error", "unknownError", "server.error", and codes we have never seen.
        _ => Cause::DingTalk,
    }
}

fn success(token: AccessTokenResponse, status: StatusCode) -> Result<FetchedToken, TokenRefusal> {
    if token.access_token.is_empty() {
        return Err(TokenRefusal::new(
            upstream_error("the access token endpoint answered an empty token"),
            status,
            "",
            Cause::DingTalk,
        ));
    }
    let claimed = token.expire_in.unwrap_or(0);
    let lifetime = Duration::from_secs(claimed.clamp(0, i64::MAX).unsigned_abs())
        .clamp(MIN_TOKEN_LIFETIME, MAX_TOKEN_LIFETIME);
    if i64::try_from(lifetime.as_secs()) != Ok(claimed) {
        tracing::warn!(
            claimed,
            kept_secs = lifetime.as_secs(),
            "the access token endpoint claimed an odd lifetime; keeping the token for a sane one"
        );
    }
    Ok(FetchedToken {
        token: AccessToken::new(token.access_token),
        lifetime,
    })
}

fn bug() -> AuthError {
    AuthError::new(
        AuthErrorKind::Internal,
        "DingTalk rejected the form of a request",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(status: u16, body: &str, endpoint: TokenEndpoint) -> AuthErrorKind {
        let status = StatusCode::from_u16(status).unwrap();
        read(status, body.as_bytes(), endpoint)
            .unwrap_err()
            .error
            .kind()
    }

    #[test]
    fn decided_by_code_not_status() {
        use AuthErrorKind::*;
        use TokenEndpoint::*;
        let throttle = r#"{"code":"Forbidden.AccessDenied.QpsLimitForAppkeyAndApi","message":"x"}"#;
        assert_eq!(kind(403, throttle, App), Throttled);
        assert_eq!(kind(400, r#"{"code":"system.error"}"#, App), Upstream);
        assert_eq!(
            kind(400, r#"{"code":"invalidClientIdOrSecret"}"#, App),
            Misconfigured
        );
        assert_eq!(
            kind(500, r#"{"code":"unknownError"}"#, CorpUnified),
            Misconfigured
        );
        assert_eq!(kind(500, r#"{"code":"unknownError"}"#, App), Upstream);
        assert_eq!(kind(400, r#"{"code":"brandNew.Code"}"#, App), Upstream);
        assert_eq!(
            kind(404, r#"{"code":"InvalidAction.NotFound"}"#, App),
            Internal
        );
        assert_eq!(
            kind(200, r#"{"errcode":404,"errmsg":"x"}"#, CorpBySuiteTicket),
            Internal
        );
        assert_eq!(
            kind(
                403,
                r#"{"code":"Forbidden.AccessDenied.IpNotInWhiteList"}"#,
                CorpUnified
            ),
            Misconfigured
        );
    }

    #[test]
    fn lifetimes_are_clamped() {
        for (claimed, kept) in [
            ("0", 1),
            ("-5", 1),
            ("7200", 7200),
            ("9223372036854775807", 86_400),
            ("\"7200\"", 7200),
            ("7200.9", 7200),
            ("null", 1),
        ] {
            let body = format!(r#"{{"accessToken":"t","expireIn":{claimed}}}"#);
            let fetched = read(StatusCode::OK, body.as_bytes(), TokenEndpoint::App)
                .unwrap_or_else(|refusal| panic!("{claimed}: {refusal:?}"));
            assert_eq!(fetched.lifetime, Duration::from_secs(kept), "{claimed}");
        }
    }
}
