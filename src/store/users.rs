//! What replicas share about users: a log of revoked users every replica reads from (sealed, so
//! that only replicas holding the store's secret can write or read it), a mark per user and
//! interval so that one replica alone re-validates a user with DingTalk, and users' profiles.

use std::time::Duration;

use super::backend::RawFinish;
use super::protocol::SharedStore;
use crate::key::IdentityKey;

/// How long the revocation log is kept after its last entry: longer than any session lives.
pub(crate) const REVOCATION_LOG_TTL: Duration = Duration::from_secs(31 * 24 * 60 * 60);

impl SharedStore {
    /// Appends `record` (a revocation, as bytes) to the log, sealed; `None` when the store did
    /// not answer.
    pub(crate) async fn revoke(&self, app_key: &str, record: &[u8]) -> Option<u64> {
        let digest = self.inner.secret.digest(app_key, &log_key());
        let sealed = self.inner.secret.seal(&digest, record);
        let call = self.inner.backend.revoke(&sealed, REVOCATION_LOG_TTL);
        self.call_always("revoke", call).await
    }

    /// The revocations after position `after` whose seal is this app's, with their positions
    /// (the last one read included even when it does not open, so that reading moves on).
    pub(crate) async fn revocations_since(
        &self,
        app_key: &str,
        after: u64,
    ) -> Option<Vec<(Option<Vec<u8>>, u64)>> {
        let call = self.inner.backend.revocations_since(after);
        let entries = self.call_if_up("revocations_since", call).await?;
        let digest = self.inner.secret.digest(app_key, &log_key());
        Some(
            entries
                .into_iter()
                .map(|(sealed, position)| {
                    let record = self.inner.secret.open(&digest, &sealed).map(<[u8]>::to_vec);
                    (record, position)
                })
                .collect(),
        )
    }

    /// Whether this replica is the first to re-validate `user` in this interval (marked for
    /// `interval`); `None` when the store did not answer.
    pub(crate) async fn first_validation(
        &self,
        app_key: &str,
        user: &IdentityKey,
        interval: Duration,
    ) -> Option<bool> {
        let digest = self.inner.secret.digest(app_key, user);
        let mark = self.inner.backend.mark_session(&digest, interval);
        self.call_if_up("mark_validation", mark).await
    }
}

impl SharedStore {
    /// A profile another replica kept for `user`, if it opens.
    pub(crate) async fn kept_profile(&self, app_key: &str, user: &IdentityKey) -> Option<Vec<u8>> {
        let digest = self.inner.secret.digest(app_key, user);
        let call = self.inner.backend.peek(&digest);
        let stored = self.call_if_up("peek_profile", call).await??;
        self.inner
            .secret
            .open(&digest, &stored.bytes)
            .map(<[u8]>::to_vec)
    }

    /// Keeps `profile` (bytes) for `user` for `ttl`, for the other replicas; best effort.
    pub(crate) async fn keep_profile(
        &self,
        app_key: &str,
        user: &IdentityKey,
        profile: &[u8],
        ttl: Duration,
    ) {
        let digest = self.inner.secret.digest(app_key, user);
        let sealed = self.inner.secret.seal(&digest, profile);
        let finish = RawFinish::Overwrite {
            value: &sealed,
            ttl,
        };
        let call = self.inner.backend.finish(&digest, "profile", finish);
        let _ = self.call_if_up("keep_profile", call).await;
    }
}

/// The name the log's seal is bound to.
fn log_key() -> IdentityKey {
    crate::key::IdentityKeyRef::prechecked(Some("revocations"), "log").to_owned()
}
