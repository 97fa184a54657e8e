//! [`LoginMethod`]: how the user on a request signed in.

use serde::{Deserialize, Serialize};

/// How the user on a request signed in: [`AuthenticatedDingTalkUser::login_method`](crate::AuthenticatedDingTalkUser::login_method).
///
/// In the user's JSON it is `login_method`, written only when it is not `code`.
///
/// ```
/// use tower_dingtalk_auth::{AuthenticatedDingTalkUser, LoginMethod};
///
/// let user = AuthenticatedDingTalkUser::builder("user456", "Zhang San").build();
/// assert_eq!(user.login_method(), LoginMethod::Code);
/// assert!(LoginMethod::WebLogin.is_session());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum LoginMethod {
    /// This request carried a one-time auth code (silent login inside DingTalk, or a custom
    /// login page), or the user was built by hand.
    #[default]
    Code,
    /// A session cookie started by a code.
    Session,
    /// A session cookie started by DingTalk's web login (QR code or account, in any browser).
    WebLogin,
    /// A bearer token from the token login endpoint.
    Token,
}

impl LoginMethod {
    /// Whether the user came with a session (a cookie or a bearer token) rather than a code.
    pub const fn is_session(self) -> bool {
        !matches!(self, Self::Code)
    }

    /// The name in the user's JSON: `code`, `session`, `web_login` or `token`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Code => "code",
            Self::Session => "session",
            Self::WebLogin => "web_login",
            Self::Token => "token",
        }
    }

    pub(crate) fn is_code(&self) -> bool {
        matches!(self, Self::Code)
    }
}
