//! The app's own user: [`resolve_with`](crate::DingTalkAuthLayerBuilder::resolve_with) maps a
//! DingTalk user to the app's type (its record, its roles) once per sign-in, and the layer puts
//! it in each request's extensions beside the DingTalk user; or refuses the user.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use http::Extensions;

use crate::access::{UserName, is_user};
use crate::error::AuthError;
use crate::hot_slots::HotSlots;
use crate::session::{millis, now_millis};
use crate::user::AuthenticatedDingTalkUser;

/// Puts a resolved value in a request's extensions.
pub(crate) type Insert = Arc<dyn Fn(&mut Extensions) + Send + Sync>;

type ResolveFn = dyn Fn(AuthenticatedDingTalkUser) -> Pin<Box<dyn Future<Output = Result<Insert, AuthError>> + Send>>
    + Send
    + Sync;

/// How many users' resolutions a layer keeps: a user past them is resolved again.
const SLOTS: usize = 4096;

#[derive(Clone)]
struct Resolved {
    insert: Insert,
    /// Until when it holds (ms since the epoch): then the user is resolved again.
    until: u64,
}

/// The app's resolver and what it answered lately, per user.
pub(crate) struct Resolver {
    resolve: Arc<ResolveFn>,
    /// Its answers, for the hot path.
    resolved: HotSlots<UserName, Resolved>,
    /// Its runs, one per user at a time: requests that want one while it runs share it.
    running: moka::future::Cache<UserName, Insert>,
    /// The users re-validated in this interval: one run per user per interval.
    revalidated: moka::future::Cache<UserName, ()>,
    keep_for: Duration,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver")
            .field("keep_for", &self.keep_for)
            .finish_non_exhaustive()
    }
}

pub(crate) type BoxedResolve = Arc<ResolveFn>;

/// The builder's resolver, boxed: `f`'s value is cloned into each request's extensions.
pub(crate) fn boxed<F, Fut, T>(f: F) -> BoxedResolve
where
    F: Fn(AuthenticatedDingTalkUser) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<T, AuthError>> + Send + 'static,
    T: Clone + Send + Sync + 'static,
{
    Arc::new(move |user| {
        let resolving = f(user);
        Box::pin(async move {
            let value = resolving.await?;
            let insert: Insert = Arc::new(move |extensions: &mut Extensions| {
                extensions.insert(value.clone());
            });
            Ok(insert)
        })
    })
}

impl Resolver {
    /// `resolve`, each answer kept for `keep_for` (the client's re-validation interval).
    pub(crate) fn new(resolve: BoxedResolve, keep_for: Duration) -> Self {
        Self {
            resolve,
            resolved: HotSlots::new(SLOTS),
            running: moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(keep_for)
                .build(),
            revalidated: moka::future::Cache::builder()
                .max_capacity(1_000_000)
                .time_to_live(keep_for)
                .build(),
            keep_for,
        }
    }

    /// What was resolved for `user` lately, if it still holds.
    pub(crate) fn cached(&self, user: &AuthenticatedDingTalkUser) -> Option<Insert> {
        let (corp, userid) = (user.corp_id(), user.userid());
        let held = self.resolved.get((corp, userid), is_user(corp, userid))?;
        (now_millis() < held.until).then_some(held.insert)
    }

    /// The resolver's answer for `user`: run now (`fresh`: a sign-in), or the one running or kept;
    /// requests that want one at the same time share a single run. A refusal forgets what was
    /// kept.
    pub(crate) async fn resolve(
        &self,
        user: &AuthenticatedDingTalkUser,
        fresh: bool,
    ) -> Result<Insert, AuthError> {
        let key: UserName = (user.corp_id().map(Box::from), Box::from(user.userid()));
        if fresh {
            self.running.invalidate(&key).await;
        }
        let run = async {
            let insert = (self.resolve)(user.clone()).await?;
            self.keep(user, insert.clone());
            Ok::<_, AuthError>(insert)
        };
        match self.running.try_get_with(key, run).await {
            Ok(insert) => Ok(insert),
            Err(refused) => {
                self.forget(user);
                Err((*refused).clone())
            }
        }
    }

    /// A re-validation's run for `user`: once per user per interval, shared by the requests that
    /// find the user due at the same time.
    pub(crate) async fn revalidate(
        &self,
        user: &AuthenticatedDingTalkUser,
    ) -> Result<(), AuthError> {
        let key: UserName = (user.corp_id().map(Box::from), Box::from(user.userid()));
        let run = async { self.resolve(user, true).await.map(drop) };
        self.revalidated
            .try_get_with(key, run)
            .await
            .map_err(|refused| (*refused).clone())
    }

    fn keep(&self, user: &AuthenticatedDingTalkUser, insert: Insert) {
        let (corp, userid) = (user.corp_id(), user.userid());
        let until = now_millis().saturating_add(millis(self.keep_for));
        let entry = Resolved { insert, until };
        self.forget(user);
        let make = || ((corp.map(Box::from), Box::from(userid)), entry);
        let now = now_millis();
        self.resolved
            .insert((corp, userid), make, |held| now < held.until);
    }

    fn forget(&self, user: &AuthenticatedDingTalkUser) {
        let (corp, userid) = (user.corp_id(), user.userid());
        self.resolved.remove((corp, userid), is_user(corp, userid));
    }
}
