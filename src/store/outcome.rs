//! [`Outcome`]: what the store knows of a code, as written in it (JSON, then sealed).
//!
//! A user carries `until`, when the exchange's reuse window ends (milliseconds since the Unix
//! epoch), sealed with it: the key's TTL in Redis counts from when Redis ran the write, which a
//! write held back by a stalled connection (a write-back after an outage, say) would push past the
//! window; `until` cannot move. Values written before it was sealed in have none.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::AuthError;
use crate::user::AuthenticatedDingTalkUser;

#[derive(Clone, Debug)]
pub(crate) enum Outcome {
    /// The code's user, shared until `until`.
    User {
        user: AuthenticatedDingTalkUser,
        until: Option<u64>,
    },
    /// DingTalk rejected the code (spent, expired, never issued).
    Rejected,
}

/// The written shape: `{"user": {..}, "until": ms}` or `"rejected"`.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Wire {
    User {
        user: AuthenticatedDingTalkUser,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        until: Option<u64>,
    },
    Rejected(RejectedTag),
}

#[derive(Serialize, Deserialize)]
enum RejectedTag {
    #[serde(rename = "rejected")]
    Rejected,
}

impl Outcome {
    /// `user`, shared for `lifetime` from now.
    pub(crate) fn user_for(user: AuthenticatedDingTalkUser, lifetime: Duration) -> Self {
        let lifetime = u64::try_from(lifetime.as_millis()).unwrap_or(u64::MAX);
        Self::User {
            user,
            until: Some(now_millis().saturating_add(lifetime)),
        }
    }

    pub(crate) fn encode(&self) -> String {
        let wire = match self {
            Self::User { user, until } => Wire::User {
                user: user.clone(),
                until: *until,
            },
            Self::Rejected => Wire::Rejected(RejectedTag::Rejected),
        };
        serde_json::to_string(&wire).expect("an outcome serializes")
    }

    pub(crate) fn decode(bytes: &[u8]) -> Option<Self> {
        Some(match serde_json::from_slice(bytes).ok()? {
            Wire::User { user, until } => Self::User { user, until },
            Wire::Rejected(RejectedTag::Rejected) => Self::Rejected,
        })
    }

    /// How long the outcome stands yet, within `stored_ttl` (what the store keeps it for):
    /// `None` for a user whose window is over.
    pub(crate) fn live_for(&self, stored_ttl: Option<Duration>) -> Option<Option<Duration>> {
        let Self::User {
            until: Some(until), ..
        } = self
        else {
            return Some(stored_ttl);
        };
        let left = until.checked_sub(now_millis()).filter(|left| *left > 0)?;
        let left = Duration::from_millis(left);
        Some(Some(stored_ttl.map_or(left, |ttl| ttl.min(left))))
    }

    pub(crate) fn into_result(self) -> Result<AuthenticatedDingTalkUser, AuthError> {
        match self {
            Self::User { user, .. } => Ok(user),
            Self::Rejected => Err(AuthError::code_rejected()),
        }
    }
}

fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_carry_their_deadline_and_old_values_still_read() {
        let user = AuthenticatedDingTalkUser::builder("u1", "Li Si").build();
        let fresh = Outcome::user_for(user.clone(), Duration::from_secs(30));
        let encoded = fresh.encode();
        assert!(
            encoded.starts_with(r#"{"user":{"userid":"u1""#),
            "{encoded}"
        );
        let decoded = Outcome::decode(encoded.as_bytes()).unwrap();
        let left = decoded
            .live_for(Some(Duration::from_secs(60)))
            .unwrap()
            .unwrap();
        assert!(left <= Duration::from_secs(30) && left > Duration::from_secs(29));
        let stale = Outcome::User {
            user: user.clone(),
            until: Some(1),
        };
        assert!(stale.live_for(None).is_none());
        let old = Outcome::decode(br#"{"user":{"userid":"u1","name":"Li Si"}}"#).unwrap();
        assert_eq!(
            old.live_for(Some(Duration::from_secs(3))),
            Some(Some(Duration::from_secs(3)))
        );
        assert!(matches!(
            Outcome::decode(br#""rejected""#),
            Some(Outcome::Rejected)
        ));
        assert_eq!(Outcome::Rejected.encode(), r#""rejected""#);
        assert!(Outcome::decode(br#"{"user":{}}"#).is_none());
    }
}
