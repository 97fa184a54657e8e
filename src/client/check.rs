//! [`DingTalkClient::check`]: ask DingTalk, before the first user does, whether it accepts this
//! app from this server: an access token, then getuserinfo with a code that cannot exist, which a
//! healthy app sees refused as "no such code" (40078). Anything else names what to fix.

use std::fmt;

use super::oapi::IP_REFUSED;
use super::{CallerKey, DingTalkClient, ExchangeBudget};
use crate::error::{AuthError, AuthErrorKind};
use crate::key::validate_corp_id;

/// A code no DingTalk issues: the self-check expects it refused as unknown.
const NO_SUCH_CODE: &str = "tower-dingtalk-auth-self-check";

/// What [`DingTalkClient::check`] found wrong. Its `Display` says what to do about it; neither it
/// nor `Debug` holds a secret.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CheckProblem {
    /// DingTalk refused the app's key or secret (the suite's, or the corp's authorisation, for a
    /// third-party app).
    Credentials,
    /// DingTalk refused this server's IP address (60020): add the address DingTalk saw, if it
    /// said, to the app's IP whitelist.
    IpNotWhitelisted {
        /// The address DingTalk saw this server call from, from its answer.
        seen_ip: Option<String>,
    },
    /// The app lacks the `qyapi_base` permission (60011).
    MissingPermission,
    /// DingTalk could not be reached, answered something that is not its JSON, or did not
    /// answer within the client's `upstream_timeout`.
    Unreachable,
    /// DingTalk (or the client's own rate limit) is throttling the app: try again shortly.
    Throttled,
    /// [`check`](DingTalkClient::check) on a third-party app, whose tokens are per corp: check a
    /// corp that installed it with [`check_corp`](DingTalkClient::check_corp). No call was sent.
    MissingCorpId,
    /// The corp id given to [`check_corp`](DingTalkClient::check_corp) is malformed (1 to 64
    /// ASCII letters, digits, `-` or `_`), as no DingTalk corp id is. No call was sent.
    InvalidCorpId,
    /// DingTalk answered something the check does not know; its errcode when it gave one.
    Unexpected {
        /// DingTalk's errcode.
        errcode: Option<i64>,
    },
}

impl fmt::Display for CheckProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Credentials => f.write_str(
                "DingTalk refused the app's credentials: check the AppKey and AppSecret (the \
                 SuiteKey and SuiteSecret, and that the corp installed the app, for third-party \
                 apps) in the developer console",
            ),
            Self::IpNotWhitelisted { seen_ip: Some(ip) } => write!(
                f,
                "DingTalk refused this server's IP address: add {ip} (the address DingTalk saw) \
                 to the app's IP whitelist in the developer console"
            ),
            Self::IpNotWhitelisted { seen_ip: None } => f.write_str(
                "DingTalk refused this server's IP address: add the server's egress address to \
                 the app's IP whitelist in the developer console",
            ),
            Self::MissingPermission => f.write_str(
                "the app lacks the permission qyapi_base (成员信息读权限): grant it in the \
                 developer console",
            ),
            Self::Unreachable => f.write_str(
                "DingTalk could not be reached in time: check the server's outbound network, \
                 proxy and DNS, and the client's base URLs",
            ),
            Self::Throttled => f.write_str("DingTalk is throttling the app: try again shortly"),
            Self::MissingCorpId => f.write_str(
                "a third-party app has no token of its own: check it in a corp that installed it \
                 with check_corp(corp_id)",
            ),
            Self::InvalidCorpId => f.write_str(
                "the corp id is malformed: it must be 1 to 64 ASCII letters, digits, '-' or '_'",
            ),
            Self::Unexpected {
                errcode: Some(code),
            } => {
                write!(f, "DingTalk answered the check with errcode {code}")
            }
            Self::Unexpected { errcode: None } => {
                f.write_str("DingTalk answered the check unexpectedly")
            }
        }
    }
}

impl std::error::Error for CheckProblem {}

impl DingTalkClient {
    /// Asks DingTalk whether it accepts this app from this server, as a first user's login would:
    /// fetches an access token, then calls getuserinfo with a code that cannot exist and expects
    /// it refused as unknown (40078), which proves the credentials, the `qyapi_base` permission
    /// and the IP whitelist. Run it at startup (or from a readiness probe, sparingly: it costs a
    /// call of DingTalk's 20 a second). A third-party app checks one corp: see
    /// [`check_corp`](Self::check_corp).
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let client = tower_dingtalk_auth::DingTalkClient::builder()
    ///     .internal_app("APP_KEY", "APP_SECRET")
    ///     .build()?;
    /// if let Err(problem) = client.check().await {
    ///     eprintln!("DingTalk login will fail: {problem}");
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn check(&self) -> Result<(), CheckProblem> {
        self.check_in(None).await
    }

    /// [`check`](Self::check) for a third-party app, in the corp `corp_id`.
    pub async fn check_corp(&self, corp_id: &str) -> Result<(), CheckProblem> {
        self.check_in(Some(corp_id)).await
    }

    async fn check_in(&self, corp_id: Option<&str>) -> Result<(), CheckProblem> {
        let corp_id = match (self.is_third_party(), corp_id) {
            (false, _) => None,
            // Refused here, as the layer refuses them: a malformed corp id costs no call.
            (true, Some(corp_id)) if validate_corp_id(corp_id).is_err() => {
                return Err(CheckProblem::InvalidCorpId);
            }
            (true, Some(corp_id)) => Some(corp_id),
            (true, None) => return Err(CheckProblem::MissingCorpId),
        };
        let budget = ExchangeBudget {
            send_by: tokio::time::Instant::now() + self.upstream_timeout(),
            caller: CallerKey::new("tower-dingtalk-auth self-check"),
        };
        // A login waits this long at most; so does the check (its code is nobody's: a call cut
        // short costs nothing).
        let exchange = self.exchange_in(corp_id, NO_SUCH_CODE, &budget);
        match tokio::time::timeout_at(budget.send_by, exchange).await {
            Err(_elapsed) => Err(CheckProblem::Unreachable),
            // A code nobody issued, refused as such: everything the login needs works.
            Ok(Err(error)) if error.kind() == AuthErrorKind::CodeRejected => Ok(()),
            Ok(Ok(_)) => Err(CheckProblem::Unexpected { errcode: Some(0) }),
            Ok(Err(error)) => Err(problem_of(&error)),
        }
    }
}

fn problem_of(error: &AuthError) -> CheckProblem {
    match (error.kind(), error.upstream_errcode()) {
        // 60020 from getuserinfo, or the token endpoint's IpNotInWhiteList.
        (AuthErrorKind::Misconfigured, _) if error.message() == IP_REFUSED => {
            CheckProblem::IpNotWhitelisted {
                seen_ip: error.seen_ip().map(str::to_owned),
            }
        }
        (AuthErrorKind::Misconfigured, Some(60011)) => CheckProblem::MissingPermission,
        (AuthErrorKind::Misconfigured, _) => CheckProblem::Credentials,
        (AuthErrorKind::Upstream | AuthErrorKind::UpstreamTimeout, _) => CheckProblem::Unreachable,
        (AuthErrorKind::Throttled | AuthErrorKind::Overloaded, _) => CheckProblem::Throttled,
        (_, errcode) => CheckProblem::Unexpected { errcode },
    }
}
