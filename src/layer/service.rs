//! [`DingTalkAuth`]: the service the layer wraps around the inner one.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use tower_service::Service;

use super::authenticator::{Authenticator, Decision};
use super::body::ResponseBody;
use super::future::ResponseFuture;
use crate::metrics::Outcome;

/// Authenticates each request with DingTalk before the inner service sees it.
///
/// Made by [`DingTalkAuthLayer`](crate::DingTalkAuthLayer); see the crate docs.
#[derive(Clone, Debug)]
pub struct DingTalkAuth<S> {
    inner: S,
    authenticator: Arc<Authenticator>,
}

impl<S> DingTalkAuth<S> {
    pub(crate) fn new(inner: S, authenticator: Arc<Authenticator>) -> Self {
        Self {
            inner,
            authenticator,
        }
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

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for DingTalkAuth<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    // A body, for the token login endpoint, which reads the code from it.
    ReqBody: Body + Send + 'static,
    ReqBody::Data: Send,
    ReqBody::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
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
        // Take the service we were given and leave a clone: see tower's "Be careful when cloning
        // inner services" (https://docs.rs/tower/latest/tower/trait.Service.html#be-careful-when-cloning-inner-services).
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let (mut parts, body) = request.into_parts();
        let decision = self.authenticator.decide(&parts);
        if !matches!(decision, Decision::Reject(_)) {
            // Guards and extractors behind the layer render rejections as the layer does, and know
            // that the layer saw the request.
            parts
                .extensions
                .insert(self.authenticator.rejections.clone());
        }
        match decision {
            Decision::PassThrough => {
                self.authenticator.metrics.count(Outcome::PassedThrough);
                ResponseFuture::inner(inner, Request::from_parts(parts, body))
            }
            Decision::Session(user, resolved, outcome) => {
                self.authenticator.metrics.count(outcome);
                parts.extensions.insert(user);
                if let Some(insert) = resolved {
                    insert(&mut parts.extensions);
                }
                ResponseFuture::inner(inner, Request::from_parts(parts, body))
            }
            Decision::Resolve(user, after, fresh) => {
                let resolving = self.authenticator.clone().resolve_then(user, after, fresh);
                let resolving = counted(&self.authenticator, Outcome::Code, resolving);
                let session = self.authenticator.session.clone();
                let request = Request::from_parts(parts, body);
                ResponseFuture::authenticating(Box::pin(resolving), inner, request, session)
            }
            Decision::Authenticated(user, after) => {
                self.authenticator.metrics.count(Outcome::Code);
                // Only layers with sessions pay for one: `None` costs nothing.
                let session = self.authenticator.session.clone();
                let request = Request::from_parts(parts, body);
                ResponseFuture::authenticated(inner, request, user, after, session)
            }
            Decision::Reject(response) => ResponseFuture::rejected(response),
            Decision::CheckSession(check) => {
                let outcome = check.outcome;
                let checking = self.authenticator.clone().check_session(check);
                let authentication = counted(&self.authenticator, outcome, checking);
                let request = Request::from_parts(parts, body);
                ResponseFuture::authenticating(authentication, inner, request, None)
            }
            Decision::CheckCorp(user, outcome) => {
                let checking = self.authenticator.clone().check_corp(user);
                let authentication = counted(&self.authenticator, outcome, checking);
                let request = Request::from_parts(parts, body);
                // A session starts no other: no session configuration to pass on.
                ResponseFuture::authenticating(authentication, inner, request, None)
            }
            Decision::TokenRoute(route) => {
                let authenticator = self.authenticator.clone();
                let answer = async move {
                    let body = authenticator.read_login_body(body).await;
                    authenticator.answer_token_route(route, parts, body).await
                };
                ResponseFuture::answering(Box::pin(answer))
            }
            Decision::WebLoginCallback => {
                let answer = self.authenticator.clone().answer_web_login(parts);
                ResponseFuture::answering(Box::pin(answer))
            }
            Decision::Authenticate(login) => {
                let authenticating = self.authenticator.clone().authenticate(login);
                let authentication = counted(&self.authenticator, Outcome::Code, authenticating);
                // Only layers with sessions pay for one: `None` costs nothing.
                let session = self.authenticator.session.clone();
                let request = Request::from_parts(parts, body);
                ResponseFuture::authenticating(authentication, inner, request, session)
            }
        }
    }
}

/// `authentication`, its success counted as `outcome` (a refusal counts itself as it is made).
fn counted<F, T>(
    authenticator: &Arc<Authenticator>,
    outcome: Outcome,
    authentication: F,
) -> Pin<Box<dyn Future<Output = Result<T, Response<Bytes>>> + Send>>
where
    F: Future<Output = Result<T, Response<Bytes>>> + Send + 'static,
{
    let authenticator = authenticator.clone();
    Box::pin(async move {
        let result = authentication.await;
        if result.is_ok() {
            authenticator.metrics.count(outcome);
        }
        result
    })
}
