//! [`ResponseFuture`]: authenticate, then run the inner service, or answer the rejection.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use pin_project_lite::pin_project;
use tower::ServiceExt;
use tower::util::Oneshot;
use tower_service::Service;

use super::authenticator::AfterLogin;
use super::body::ResponseBody;
use super::login::redirect;
use crate::session::SessionConfig;
use crate::user::AuthenticatedDingTalkUser;

type Authentication = Pin<
    Box<
        dyn Future<Output = Result<(AuthenticatedDingTalkUser, AfterLogin), Response<Bytes>>>
            + Send,
    >,
>;

/// The layer's own answer to a request it serves itself (the token login endpoint).
type Answer = Pin<Box<dyn Future<Output = Response<Bytes>> + Send>>;

pin_project! {
    /// The response future of [`DingTalkAuth`](crate::DingTalkAuth).
    pub struct ResponseFuture<S, ReqBody>
    where
        S: Service<Request<ReqBody>>,
    {
        #[pin]
        state: State<S, ReqBody>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, ReqBody>
    where
        S: Service<Request<ReqBody>>,
    {
        Authenticating {
            authentication: Authentication,
            inner: Option<S>,
            request: Option<Request<ReqBody>>,
            session: Option<Arc<SessionConfig>>,
        },
        Inner {
            #[pin]
            call: Oneshot<S, Request<ReqBody>>,
            // The session cookie to add to the response, after a code was exchanged.
            set_cookie: Option<(HeaderValue, Arc<SessionConfig>)>,
        },
        Rejected {
            response: Option<Response<Bytes>>,
        },
        Answering {
            answer: Answer,
        },
    }
}

impl<S, ReqBody> ResponseFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>>,
{
    pub(crate) fn authenticating(
        authentication: Authentication,
        inner: S,
        request: Request<ReqBody>,
        session: Option<Arc<SessionConfig>>,
    ) -> Self {
        Self {
            state: State::Authenticating {
                authentication,
                inner: Some(inner),
                request: Some(request),
                session,
            },
        }
    }

    pub(crate) fn inner(inner: S, request: Request<ReqBody>) -> Self {
        Self {
            state: State::Inner {
                call: inner.oneshot(request),
                set_cookie: None,
            },
        }
    }

    /// Runs the inner service as `user`, found in the cache without waiting.
    pub(crate) fn authenticated(
        inner: S,
        request: Request<ReqBody>,
        user: AuthenticatedDingTalkUser,
        after: AfterLogin,
        session: Option<Arc<SessionConfig>>,
    ) -> Self {
        Self {
            state: State::authenticated(inner, request, user, after, session),
        }
    }

    pub(crate) fn answering(answer: Answer) -> Self {
        Self {
            state: State::Answering { answer },
        }
    }

    pub(crate) fn rejected(response: Response<Bytes>) -> Self {
        Self {
            state: State::Rejected {
                response: Some(response),
            },
        }
    }
}

impl<S, ReqBody> State<S, ReqBody>
where
    S: Service<Request<ReqBody>>,
{
    /// The inner service's call for a request of `user`, with the code's session cookie for its
    /// response where this request starts the session; or, for a page navigation with the code in
    /// its query, the 303 to its URL without the code (the inner service does not run).
    fn authenticated(
        inner: S,
        mut request: Request<ReqBody>,
        user: AuthenticatedDingTalkUser,
        after: AfterLogin,
        session: Option<Arc<SessionConfig>>,
    ) -> Self {
        let set_cookie = session
            .filter(|_| after.start_session)
            .map(|session| (session.issue_cookie(&user), session));
        if let Some(location) = after.clean_url {
            let mut response = redirect(StatusCode::SEE_OTHER, location);
            let headers = response.headers_mut();
            // The URL that held the code is not sent on as a Referer.
            headers.insert(
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            );
            if let Some((cookie, _)) = set_cookie {
                headers.append(header::SET_COOKIE, cookie);
            }
            return Self::Rejected {
                response: Some(response),
            };
        }
        let extensions = request.extensions_mut();
        extensions.insert(user);
        if let Some(insert) = &after.resolved {
            insert(extensions);
        }
        Self::Inner {
            call: inner.oneshot(request),
            set_cookie,
        }
    }
}

impl<S, ReqBody, ResBody> Future for ResponseFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Output = Result<Response<ResponseBody<ResBody>>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Authenticating {
                    authentication,
                    inner,
                    request,
                    session,
                } => {
                    let outcome = ready!(authentication.as_mut().poll(cx));
                    let (Some(inner), Some(request)) = (inner.take(), request.take()) else {
                        unreachable!("ResponseFuture polled after the authentication finished");
                    };
                    match outcome {
                        Ok((user, after)) => {
                            let session = session.take();
                            let next = State::authenticated(inner, request, user, after, session);
                            this.state.set(next);
                        }
                        Err(rejection) => {
                            this.state.set(State::Rejected {
                                response: Some(rejection),
                            });
                        }
                    }
                }
                StateProj::Inner { call, set_cookie } => {
                    let mut response = ready!(call.poll(cx))?;
                    if let Some((cookie, session)) = set_cookie.take() {
                        // A handler that set the session cookie itself (signing out) has the last word.
                        if !session.is_set_by(response.headers()) {
                            let headers = response.headers_mut();
                            headers.append(header::SET_COOKIE, cookie);
                            // A response that starts a session is never stored by a cache or a
                            // CDN, to be handed with its cookie to the next visitor.
                            headers.insert(
                                header::CACHE_CONTROL,
                                HeaderValue::from_static("no-store"),
                            );
                        }
                    }
                    return Poll::Ready(Ok(response.map(ResponseBody::inner)));
                }
                StateProj::Answering { answer } => {
                    let response = ready!(answer.as_mut().poll(cx));
                    return Poll::Ready(Ok(response.map(ResponseBody::rejection)));
                }
                StateProj::Rejected { response } => {
                    let response = response
                        .take()
                        .expect("ResponseFuture polled after completion");
                    return Poll::Ready(Ok(response.map(ResponseBody::rejection)));
                }
            }
        }
    }
}
