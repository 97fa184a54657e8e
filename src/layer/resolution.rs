//! What a user carries besides the login, as each request applies it: the directory's profile
//! (when the client asks for one) and the app's resolver (a sign-in, or a re-validation, runs it;
//! other requests take what it answered lately), without an await when both are at hand.

use std::sync::Arc;

use bytes::Bytes;
use http::Response;

use super::authenticator::{AfterLogin, Authenticator};
use super::resolver::Insert;
use crate::error::AuthError;
use crate::user::AuthenticatedDingTalkUser;

impl Authenticator {
    /// The app's value for `user` when it can be had without waiting: `Some(None)` without a
    /// resolver, `Some(Some(..))` when it was resolved lately (and this is no sign-in, `fresh`);
    /// `None` when the resolver must run.
    fn resolved_now(
        &self,
        user: &AuthenticatedDingTalkUser,
        fresh: bool,
    ) -> Option<Option<Insert>> {
        let Some(resolver) = &self.resolver else {
            return Some(None);
        };
        if fresh {
            return None;
        }
        resolver.cached(user).map(Some)
    }

    /// `user` with the profile, and the app's value for them, when both can be had without
    /// waiting; else `Err(user)`: [`resolve_then`](Self::resolve_then) must run.
    pub(super) fn enriched_now(
        &self,
        user: AuthenticatedDingTalkUser,
        fresh: bool,
    ) -> Result<(AuthenticatedDingTalkUser, Option<Insert>), AuthenticatedDingTalkUser> {
        let user = self.client.profile_now(user)?;
        match self.resolved_now(&user, fresh) {
            Some(resolved) => Ok((user, resolved)),
            None => Err(user),
        }
    }

    /// The app's value for `user`: resolved now (`fresh`: a sign-in or a re-validation), or
    /// taken from lately.
    pub(crate) async fn resolve_for(
        &self,
        user: &AuthenticatedDingTalkUser,
        fresh: bool,
    ) -> Result<Option<Insert>, AuthError> {
        if let Some(now) = self.resolved_now(user, fresh) {
            return Ok(now);
        }
        let resolver = self
            .resolver
            .as_ref()
            .expect("resolved_now answers without one");
        resolver
            .resolve(user, fresh)
            .await
            .map(Some)
            .inspect_err(|refused| {
                tracing::debug!(error = %refused, "the app's resolver refused a user");
            })
    }

    /// A re-validation's run of the app's resolver for `user` (with their profile): once per user
    /// per interval. `Err` ends the session, unless it says the app failed (a 5xx): then the
    /// session is kept, as when DingTalk fails.
    pub(crate) async fn revalidate_resolution(
        &self,
        user: &AuthenticatedDingTalkUser,
    ) -> Result<(), AuthError> {
        let Some(resolver) = &self.resolver else {
            return Ok(());
        };
        let user = self.client.with_profile(user.clone()).await;
        match resolver.revalidate(&user).await {
            Err(error) if !error.is_client_error() => {
                tracing::warn!(error = %error, "the app's resolver failed at a re-validation; the session is kept");
                Ok(())
            }
            other => other,
        }
    }

    /// `user` with the profile and the app's value put beside them, or the resolver's refusal,
    /// rendered.
    pub(crate) async fn resolve_then(
        self: Arc<Self>,
        user: AuthenticatedDingTalkUser,
        mut after: AfterLogin,
        fresh: bool,
    ) -> Result<(AuthenticatedDingTalkUser, AfterLogin), Response<Bytes>> {
        let user = self.client.with_profile(user).await;
        after.resolved = self
            .resolve_for(&user, fresh)
            .await
            .map_err(|refused| self.rejection(&refused))?;
        Ok((user, after))
    }
}
