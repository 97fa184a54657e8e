//! [`Outcome`]: what the store knows of a code, as written in it (JSON, then sealed).

use serde::{Deserialize, Serialize};

use crate::error::AuthError;
use crate::user::AuthenticatedDingTalkUser;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Outcome {
    /// The code's user.
    User(AuthenticatedDingTalkUser),
    /// DingTalk rejected the code (spent, expired, never issued).
    Rejected,
}

impl Outcome {
    pub(crate) fn encode(&self) -> String {
        serde_json::to_string(self).expect("an outcome serializes")
    }

    pub(crate) fn decode(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice(bytes).ok()
    }

    pub(crate) fn into_result(self) -> Result<AuthenticatedDingTalkUser, AuthError> {
        match self {
            Self::User(user) => Ok(user),
            Self::Rejected => Err(AuthError::code_rejected()),
        }
    }
}
