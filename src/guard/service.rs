//! [`Guard`]: the service a [`GuardLayer`](super::GuardLayer) wraps around the inner one.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_service::Service;

use super::future::ResponseFuture;
use super::rule::{Rule, Verdict};
use crate::layer::ResponseBody;

/// Lets a request through to the inner service only when its user passes the guard's check.
///
/// Made by a [`GuardLayer`](super::GuardLayer); see the [module docs](super).
#[derive(Clone)]
pub struct Guard<S> {
    inner: S,
    rule: Arc<Rule>,
}

impl<S> Guard<S> {
    pub(crate) fn new(inner: S, rule: Arc<Rule>) -> Self {
        Self { inner, rule }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: fmt::Debug> fmt::Debug for Guard<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guard")
            .field("inner", &self.inner)
            .field("rule", &self.rule)
            .finish()
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Guard<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody>;

    /// Always ready: the inner service's readiness is awaited only for requests that pass, so a
    /// rejection never waits on it.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        match self.rule.judge(request.extensions()) {
            Verdict::Reject(response) => ResponseFuture::rejected(response),
            Verdict::Pass => {
                // Take the service we were given and leave a clone: see tower's "Be careful when
                // cloning inner services" (https://docs.rs/tower/latest/tower/trait.Service.html#be-careful-when-cloning-inner-services).
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                ResponseFuture::inner(inner, request)
            }
        }
    }
}
