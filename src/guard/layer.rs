//! [`GuardLayer`]: a [`Rule`] as a tower layer.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use http::Response;
use tower_layer::Layer;

use super::rule::Rule;
use super::service::Guard;
use crate::error::AuthError;
use crate::reject::valid_realm;
use crate::user::AuthenticatedDingTalkUser;

/// A [`Layer`] that lets a request through only when its user passes a check; made by
/// [`require_admin`](super::require_admin), [`require_level`](super::require_level),
/// [`require`](super::require) and [`authenticated`](super::authenticated). Clones share the check.
///
/// Its 401 and 403 are rendered as the [`DingTalkAuthLayer`](crate::DingTalkAuthLayer) in front of
/// it renders its own (realm, `on_rejection`): configure them once, on that layer.
#[derive(Clone)]
pub struct GuardLayer {
    rule: Arc<Rule>,
}

impl GuardLayer {
    pub(crate) fn new<F>(predicate: F, message: &'static str) -> Self
    where
        F: Fn(&AuthenticatedDingTalkUser) -> bool + Send + Sync + 'static,
    {
        Self {
            rule: Arc::new(Rule::new(predicate, message)),
        }
    }

    /// The guard's check reads the user's profile: a user without one gets 503.
    pub(crate) fn needs_profile(mut self) -> Self {
        Arc::make_mut(&mut self.rule).needs_profile = true;
        self
    }

    /// The `message` of the 403 body, in place of the guard's own.
    pub fn message(mut self, message: impl Into<Cow<'static, str>>) -> Self {
        Arc::make_mut(&mut self.rule).message = message.into();
        self
    }

    /// A realm of the guard's own for its 401, over the authentication layer's. A realm that
    /// the layer's [`realm`](crate::DingTalkAuthLayerBuilder::realm) would refuse (empty, a quote,
    /// a backslash or a control character, which could forge challenge parameters) is ignored
    /// with an error log: the guard then renders as the layer does.
    #[deprecated(
        since = "0.1.0",
        note = "the guard renders as the authentication layer does: set `realm` there"
    )]
    pub fn realm(mut self, realm: impl Into<String>) -> Self {
        let realm = realm.into();
        if !valid_realm(&realm) {
            tracing::error!(
                "GuardLayer::realm ignored: a realm must be visible ASCII or spaces, without \
                 quotes or backslashes; the guard renders as the authentication layer does"
            );
            return self;
        }
        let rule = Arc::make_mut(&mut self.rule);
        rule.realm = Some(realm.into_boxed_str());
        rule.seal();
        self
    }

    /// A rendering of the guard's own for its 401 and 403, over the authentication layer's.
    #[deprecated(
        since = "0.1.0",
        note = "the guard renders as the authentication layer does: set `on_rejection` there"
    )]
    pub fn on_rejection<F, B>(mut self, render: F) -> Self
    where
        F: Fn(&AuthError) -> Response<B> + Send + Sync + 'static,
        B: Into<Bytes>,
    {
        let rule = Arc::make_mut(&mut self.rule);
        rule.on_rejection = Some(Arc::new(move |error| render(error).map(Into::into)));
        rule.seal();
        self
    }
}

impl<S> Layer<S> for GuardLayer {
    type Service = Guard<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Guard::new(inner, self.rule.clone())
    }
}

impl fmt::Debug for GuardLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.rule.fmt(f)
    }
}
