//! The code's one session across replicas: the mark that it started one, asked for by the first
//! replica to start it, kept for a code's whole life, and written later when the store did not
//! answer.

use std::time::Duration;

use tokio::time::Instant;

use super::CODE_LIFETIME;
use super::digest::CodeDigest;
use super::protocol::SharedStore;
use crate::key::IdentityKey;

/// How often a session mark the store did not take is tried again.
const MARK_RETRY: Duration = Duration::from_millis(200);

impl SharedStore {
    /// Whether this replica may start the code's one session: the first to ask, across replicas.
    /// The mark lasts a code's whole life at DingTalk, longer than any replica's copy of its user,
    /// so that no replica that reads the user later can start a second session. While the store
    /// does not answer, each replica decides alone.
    ///
    /// The mark is asked for whatever the health flag says (one slow answer elsewhere must not
    /// leave it unwritten while another replica, reading the user, finds none); when the store does
    /// not answer, this replica decides alone and writes the mark once the store answers again.
    pub(crate) async fn first_session(&self, app_key: &str, key: &IdentityKey) -> bool {
        let digest = self.inner.secret.digest(app_key, key);
        let mark = self.inner.backend.mark_session(&digest, CODE_LIFETIME);
        match self.call_always("mark_session", mark).await {
            Some(first) => first,
            None => {
                self.mark_later(digest);
                true
            }
        }
    }

    /// Whether a web login's `state` comes back for the first time across replicas (marked for
    /// `ttl`); `None` when the store does not answer, and the replica decides alone.
    pub(crate) async fn first_login_state(
        &self,
        app_key: &str,
        state: &IdentityKey,
        ttl: Duration,
    ) -> Option<bool> {
        let digest = self.inner.secret.digest(app_key, state);
        let mark = self.inner.backend.mark_session(&digest, ttl);
        self.call_always("mark_login_state", mark).await
    }

    /// Writes a session mark in the background once the store answers, within the code's life.
    fn mark_later(&self, digest: CodeDigest) {
        let store = self.clone();
        tokio::spawn(async move {
            let give_up = Instant::now() + CODE_LIFETIME;
            while Instant::now() < give_up {
                tokio::time::sleep(MARK_RETRY).await;
                // Only when the store is thought up (or due a probe): a dead store is not hammered.
                let mark = store.inner.backend.mark_session(&digest, CODE_LIFETIME);
                if store.call_if_up("mark_session", mark).await.is_some() {
                    return;
                }
            }
        });
    }
}
