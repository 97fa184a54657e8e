//! [`OpenedSessions`]: the sessions a layer opened lately, so that a signed-in user's next
//! requests skip the base64, AES-GCM and JSON work of opening their cookie or token again.

use super::SessionConfig;
use super::clock::{millis, now_millis};
use super::seal::SessionKind;
use crate::hot_slots::HotSlots;
use crate::user::AuthenticatedDingTalkUser;

/// How much of the sealed value picks its slot: the end of it, the AES-GCM tag, which nobody
/// without the key can make match a session that opened.
const HASHED_TAIL: usize = 32;

/// Sessions that opened, by their whole sealed value, with when they expire. Only a value that
/// opened under the layer's keys and passed every check is stored; a hit compares the whole value
/// and checks the expiry again, so a tampered, foreign or expired session is never served.
pub(crate) struct OpenedSessions(HotSlots<Box<[u8]>, Opened>);

#[derive(Clone)]
struct Opened {
    user: AuthenticatedDingTalkUser,
    /// What it opened as: a hit counts only for the same kind.
    kind: SessionKind,
    expires_at_millis: u64,
    /// When its login was made (ms since the epoch): a revocation since ends it.
    auth: u64,
    /// When its user is due to be re-validated with DingTalk (ms since the epoch).
    check_at: u64,
}

/// A session's user, with when its login was made and whether the user is due to be
/// re-validated.
pub(crate) struct SessionUser {
    pub(crate) user: AuthenticatedDingTalkUser,
    pub(crate) auth: u64,
    pub(crate) check_due: bool,
}

impl OpenedSessions {
    /// Room for `capacity` sessions (rounded up to a power of two).
    pub(crate) fn new(capacity: usize) -> Self {
        Self(HotSlots::new(capacity))
    }
}

impl std::fmt::Debug for OpenedSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenedSessions").finish_non_exhaustive()
    }
}

impl SessionConfig {
    /// The user of the sealed session `sealed` presented as a `kind`, from `opened` when it was
    /// opened lately; due to be re-validated once `check_every` has passed since its login, or
    /// since it was last re-validated. Bytes: a hit compares them and checks nothing else of
    /// their form (only a value that opened is ever stored).
    pub(crate) fn open_with(
        &self,
        sealed: &[u8],
        kind: SessionKind,
        opened: &OpenedSessions,
        check_every: Option<std::time::Duration>,
    ) -> Option<SessionUser> {
        let tail = &sealed[sealed.len().saturating_sub(HASHED_TAIL)..];
        if let Some(hit) = opened.0.get(tail, |key| **key == *sealed) {
            if hit.kind != kind {
                tracing::debug!("session refused: a cookie is not a token, nor a token a cookie");
                return None;
            }
            let now = now_millis();
            if now < hit.expires_at_millis {
                return Some(SessionUser {
                    user: hit.user,
                    auth: hit.auth,
                    check_due: now >= hit.check_at,
                });
            }
            opened.0.remove(tail, |key| **key == *sealed);
            tracing::debug!("session refused: expired");
            return None;
        }
        let session = self.open_session(std::str::from_utf8(sealed).ok()?, kind)?;
        let check_at =
            check_every.map_or(u64::MAX, |every| session.auth.saturating_add(millis(every)));
        let entry = Opened {
            user: session.user.clone(),
            kind,
            expires_at_millis: session.expires_at_millis,
            auth: session.auth,
            check_at,
        };
        let now = now_millis();
        let make = || (sealed.into(), entry);
        opened
            .0
            .insert(tail, make, |held| now < held.expires_at_millis);
        Some(SessionUser {
            user: session.user,
            auth: session.auth,
            check_due: now >= check_at,
        })
    }
}

impl OpenedSessions {
    /// The session `sealed` was re-validated now: not due again for `every`.
    pub(crate) fn checked(&self, sealed: &[u8], every: std::time::Duration) {
        let tail = &sealed[sealed.len().saturating_sub(HASHED_TAIL)..];
        let check_at = now_millis().saturating_add(millis(every));
        self.0.update(
            tail,
            |key| **key == *sealed,
            |held| held.check_at = check_at,
        );
    }

    /// Forgets the session `sealed` (revoked).
    pub(crate) fn forget(&self, sealed: &[u8]) {
        let tail = &sealed[sealed.len().saturating_sub(HASHED_TAIL)..];
        self.0.remove(tail, |key| **key == *sealed);
    }
}
