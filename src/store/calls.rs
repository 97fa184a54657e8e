//! One call to the store: within its timeout, past a health check (or, for a lock's holder,
//! whatever the health says), reporting how it went; and the sealing of what is written, the
//! opening of what is read.

use std::future::Future;

use std::time::Duration;

use super::backend::{BackendError, RawValue};
use super::digest::CodeDigest;
use super::outcome::Outcome;
use super::protocol::SharedStore;

impl SharedStore {
    pub(super) fn seal(&self, digest: &CodeDigest, outcome: &Outcome) -> Vec<u8> {
        self.inner.secret.seal(digest, outcome.encode().as_bytes())
    }

    pub(super) fn open(&self, digest: &CodeDigest, sealed: &[u8]) -> Option<Outcome> {
        let outcome = self
            .inner
            .secret
            .open(digest, sealed)
            .and_then(Outcome::decode);
        if outcome.is_none() {
            if self.inner.unopened_log.allow() {
                tracing::warn!(
                    store = %self.inner.describe,
                    digest = ?digest,
                    "a value in the shared store does not open with this replica's secret: \
                     treated as absent. Another service with another secret under the same key \
                     prefix, or someone writing to the store?"
                );
            } else {
                tracing::debug!(digest = ?digest, "a value in the shared store does not open");
            }
        }
        outcome
    }

    /// What a stored value says, if it opens and its window is not over, with how long it stands.
    pub(super) fn open_live(
        &self,
        digest: &CodeDigest,
        found: RawValue,
    ) -> Option<(Outcome, Option<Duration>)> {
        let outcome = self.open(digest, &found.bytes)?;
        match outcome.live_for(found.ttl) {
            Some(ttl) => Some((outcome, ttl)),
            None => {
                tracing::debug!("a user in the shared store whose window is over: a miss");
                None
            }
        }
    }

    /// One call within the store's timeout, unless the store is known to be down.
    pub(super) async fn call_if_up<T>(
        &self,
        operation: &'static str,
        call: impl Future<Output = Result<T, BackendError>>,
    ) -> Option<T> {
        let began = self.inner.health.try_begin()?;
        self.call(operation, began, call).await
    }

    /// One call within the store's timeout, whatever its health: for the lock's holder.
    pub(super) async fn call_always<T>(
        &self,
        operation: &'static str,
        call: impl Future<Output = Result<T, BackendError>>,
    ) -> Option<T> {
        let began = self.inner.health.current();
        self.call(operation, began, call).await
    }

    async fn call<T>(
        &self,
        operation: &'static str,
        began: u64,
        call: impl Future<Output = Result<T, BackendError>>,
    ) -> Option<T> {
        let health = &self.inner.health;
        let timeout = self.inner.settings.timeout;
        match tokio::time::timeout(timeout, call).await {
            Ok(Ok(value)) => {
                health.succeeded(began);
                Some(value)
            }
            Ok(Err(error)) => {
                health.failed(began, operation, &error);
                None
            }
            Err(_elapsed) => {
                let why = format!("no answer within {} ms", timeout.as_millis());
                health.failed(began, operation, &why);
                None
            }
        }
    }
}
