//! [`GuardLayer`]: the check, the message of its 403, and how rejections are rendered.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use http::Response;
use tower_layer::Layer;

use super::service::Guard;
use crate::error::AuthError;
use crate::layer::DEFAULT_REALM;
use crate::user::AuthenticatedDingTalkUser;

type Predicate = dyn Fn(&AuthenticatedDingTalkUser) -> bool + Send + Sync;
type RenderFn = dyn Fn(&AuthError) -> Response<Bytes> + Send + Sync;

/// A [`Layer`] that lets a request through only when its user passes a check; made by
/// [`require_admin`](super::require_admin), [`require_level`](super::require_level) and
/// [`require`](super::require). Clones share the check.
#[derive(Clone)]
pub struct GuardLayer {
    rule: Arc<Rule>,
}

/// What every [`Guard`] made by one layer shares.
#[derive(Clone)]
pub(crate) struct Rule {
    predicate: Arc<Predicate>,
    message: Cow<'static, str>,
    realm: Box<str>,
    on_rejection: Option<Arc<RenderFn>>,
}

impl Rule {
    pub(crate) fn allows(&self, user: &AuthenticatedDingTalkUser) -> bool {
        (self.predicate)(user)
    }

    pub(crate) fn missing_user(&self) -> Response<Bytes> {
        self.render(&AuthError::missing_code())
    }

    pub(crate) fn forbidden(&self) -> Response<Bytes> {
        self.render(&AuthError::forbidden(self.message.clone()))
    }

    fn render(&self, error: &AuthError) -> Response<Bytes> {
        match &self.on_rejection {
            Some(render) => render(error),
            None => error.to_response(&self.realm),
        }
    }
}

impl GuardLayer {
    pub(crate) fn new<F>(predicate: F, message: &'static str) -> Self
    where
        F: Fn(&AuthenticatedDingTalkUser) -> bool + Send + Sync + 'static,
    {
        Self {
            rule: Arc::new(Rule {
                predicate: Arc::new(predicate),
                message: Cow::Borrowed(message),
                realm: DEFAULT_REALM.into(),
                on_rejection: None,
            }),
        }
    }

    /// The `message` of the 403 body, in place of the guard's own.
    pub fn message(mut self, message: impl Into<Cow<'static, str>>) -> Self {
        Arc::make_mut(&mut self.rule).message = message.into();
        self
    }

    /// The realm of the `WWW-Authenticate` challenge on a 401; use the authentication layer's.
    /// Default: `dingtalk`.
    pub fn realm(mut self, realm: impl Into<String>) -> Self {
        Arc::make_mut(&mut self.rule).realm = realm.into().into_boxed_str();
        self
    }

    /// Builds the 401 and the 403 with `render` instead of the default JSON response, as
    /// [`DingTalkAuthLayerBuilder::on_rejection`](crate::DingTalkAuthLayerBuilder::on_rejection)
    /// does for the authentication layer.
    ///
    /// ```
    /// use tower_dingtalk_auth::guard;
    ///
    /// let guard = guard::require_admin().on_rejection(|error| {
    ///     http::Response::builder()
    ///         .status(error.status())
    ///         .body(format!("no entry: {}", error.kind()))
    ///         .unwrap()
    /// });
    /// # drop(guard);
    /// ```
    pub fn on_rejection<F, B>(mut self, render: F) -> Self
    where
        F: Fn(&AuthError) -> Response<B> + Send + Sync + 'static,
        B: Into<Bytes>,
    {
        Arc::make_mut(&mut self.rule).on_rejection =
            Some(Arc::new(move |error| render(error).map(Into::into)));
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

impl fmt::Debug for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuardLayer")
            .field("message", &self.message)
            .field("realm", &self.realm)
            .field("on_rejection", &self.on_rejection.as_ref().map(|_| ".."))
            .finish_non_exhaustive()
    }
}
