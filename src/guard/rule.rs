//! [`Rule`]: what a guard checks, and what it answers a user who fails.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use http::{Extensions, Response};

use crate::error::AuthError;
use crate::reject::{RejectionFn, Rejections, layer_missing};
use crate::user::AuthenticatedDingTalkUser;

type Predicate = dyn Fn(&AuthenticatedDingTalkUser) -> bool + Send + Sync;

/// What every [`Guard`](super::Guard) made by one layer shares.
#[derive(Clone)]
pub(crate) struct Rule {
    predicate: Arc<Predicate>,
    pub(crate) message: Cow<'static, str>,
    /// A rendering of the guard's own, over the authentication layer's (deprecated).
    pub(crate) rejections: Option<Rejections>,
    /// The parts of that rendering, kept until the guard is used.
    pub(crate) realm: Option<Box<str>>,
    pub(crate) on_rejection: Option<Arc<RejectionFn>>,
    /// Whether the check reads the user's profile: without one, 503 `profile_unavailable`.
    pub(crate) needs_profile: bool,
}

/// What a guard decided for a request.
pub(crate) enum Verdict {
    Pass,
    Reject(Response<Bytes>),
}

impl Rule {
    pub(crate) fn new<F>(predicate: F, message: &'static str) -> Self
    where
        F: Fn(&AuthenticatedDingTalkUser) -> bool + Send + Sync + 'static,
    {
        Self {
            predicate: Arc::new(predicate),
            message: Cow::Borrowed(message),
            rejections: None,
            realm: None,
            on_rejection: None,
            needs_profile: false,
        }
    }

    /// Makes the guard's own rendering from what was configured on it, if anything.
    pub(crate) fn seal(&mut self) {
        if self.realm.is_some() || self.on_rejection.is_some() {
            let realm = self
                .realm
                .clone()
                .unwrap_or_else(|| crate::reject::DEFAULT_REALM.into());
            self.rejections = Some(Rejections::new(realm, self.on_rejection.clone()));
        }
    }

    /// The verdict on a request with these extensions: the user passes, or the layer's rendering
    /// of 401 (no user), 403 (the check failed), or a 500 when no layer saw the request.
    pub(crate) fn judge(&self, extensions: &Extensions) -> Verdict {
        let user = extensions.get::<AuthenticatedDingTalkUser>();
        let layer = Rejections::of(extensions);
        let rejections = self.rejections.as_ref().or(layer);
        match (user, rejections) {
            (Some(user), rejections) if self.needs_profile && user.profile().is_none() => {
                let error = if layer.is_some_and(Rejections::profiles) {
                    tracing::debug!(
                        "a guard needs the user's profile, which DingTalk did not give"
                    );
                    AuthError::profile_unavailable()
                } else {
                    profiles_not_asked_for()
                };
                let rejections = rejections.unwrap_or_else(|| Rejections::fallback());
                Verdict::Reject(rejections.render(&error))
            }
            (Some(user), _) if (self.predicate)(user) => Verdict::Pass,
            (Some(_), rejections) => {
                tracing::debug!("guard refused the user");
                let rejections = rejections.unwrap_or_else(|| Rejections::fallback());
                Verdict::Reject(rejections.render(&AuthError::forbidden(self.message.clone())))
            }
            (None, Some(rejections)) if layer.is_some() => {
                Verdict::Reject(rejections.render(&AuthError::missing_code()))
            }
            (None, rejections) => {
                let rejections = rejections.unwrap_or_else(|| Rejections::fallback());
                Verdict::Reject(rejections.render(&layer_missing("guard")))
            }
        }
    }
}

impl fmt::Debug for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuardLayer")
            .field("message", &self.message)
            .field("realm", &self.realm)
            .field("on_rejection", &self.on_rejection.as_ref().map(|_| ".."))
            .finish_non_exhaustive()
    }
}

/// A guard that needs profiles behind a layer whose client asks for none: a misconfiguration,
/// loud in the logs (once a minute) and a 500, rather than a 503 clients would retry forever.
fn profiles_not_asked_for() -> AuthError {
    static LOG: std::sync::OnceLock<crate::log_gate::LogGate> = std::sync::OnceLock::new();
    if LOG
        .get_or_init(|| crate::log_gate::LogGate::new(std::time::Duration::from_secs(60)))
        .allow()
    {
        tracing::error!(
            "a department or leader guard needs profiles: give the layer's client \
             `.profile(ProfileFields::DEPARTMENTS)`"
        );
    }
    AuthError::new(
        crate::error::AuthErrorKind::Misconfigured,
        "this route's guard needs profiles the server does not ask DingTalk for",
    )
}
