//! The shared store without a backend (feature `redis` off): types with no values, so that no store
//! can be built and the identity cache's store paths compile to nothing.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use super::Shared;
use crate::error::AuthError;
use crate::key::IdentityKey;
use crate::user::AuthenticatedDingTalkUser;

/// No store parts can exist without a backend.
pub(crate) enum StoreParts {}

impl StoreParts {
    pub(crate) fn lock_ttl(&self) -> Duration {
        match *self {}
    }

    pub(crate) fn describe(&self) -> &str {
        match *self {}
    }
}

/// No store can exist without a backend.
#[derive(Clone, Debug)]
pub(crate) enum SharedStore {}

impl SharedStore {
    pub(crate) fn new(parts: StoreParts, _reuse_window: Duration, _rejected: Duration) -> Self {
        match parts {}
    }

    pub(crate) async fn exchange<F, Fut>(
        &self,
        _app_key: &str,
        _key: &IdentityKey,
        _send_by: Instant,
        _exchange: F,
    ) -> Shared
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<AuthenticatedDingTalkUser, AuthError>>,
    {
        match *self {}
    }

    pub(crate) async fn peek_user(
        &self,
        _app_key: &str,
        _key: &IdentityKey,
    ) -> Option<(AuthenticatedDingTalkUser, Option<Duration>)> {
        match *self {}
    }

    pub(crate) async fn ping(&self) -> bool {
        match *self {}
    }

    pub(crate) async fn first_session(&self, _app_key: &str, _key: &IdentityKey) -> bool {
        match *self {}
    }

    pub(crate) async fn first_login_state(
        &self,
        _app_key: &str,
        _state: &IdentityKey,
        _ttl: Duration,
    ) -> Option<bool> {
        match *self {}
    }

    pub(crate) async fn revoke(&self, _app_key: &str, _record: &[u8]) -> Option<u64> {
        match *self {}
    }

    pub(crate) async fn first_validation(
        &self,
        _app_key: &str,
        _user: &IdentityKey,
        _interval: Duration,
    ) -> Option<bool> {
        match *self {}
    }

    pub(crate) async fn kept_profile(
        &self,
        _app_key: &str,
        _user: &IdentityKey,
    ) -> Option<Vec<u8>> {
        match *self {}
    }

    pub(crate) async fn keep_profile(
        &self,
        _app_key: &str,
        _user: &IdentityKey,
        _profile: &[u8],
        _ttl: Duration,
    ) {
        match *self {}
    }
}
