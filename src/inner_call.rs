//! [`InnerCall`]: the inner service's call for a request that passed, made at once when the
//! service is ready (nearly always: an axum `Router` or a `service_fn` is), else once it is.
//!
//! `tower::util::Oneshot` would hold the request in the future until its first poll and walk
//! its states there; asking for readiness first, with a waker that is never woken, lets a ready
//! service take the request now. A service that is not ready is asked again by the `Oneshot`
//! with the task's waker, so it still wakes the task; one that failed keeps its error for the
//! first poll, so the caller sees it where it would have.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use pin_project_lite::pin_project;
use tower::ServiceExt;
use tower::util::Oneshot;
use tower_service::Service;

pin_project! {
    /// The inner service's response future, or its wait for readiness.
    #[project = InnerCallProj]
    pub(crate) enum InnerCall<S, Req>
    where
        S: Service<Req>,
    {
        Called {
            #[pin]
            future: S::Future,
        },
        Waiting {
            #[pin]
            oneshot: Oneshot<S, Req>,
        },
        Failed {
            error: Option<S::Error>,
        },
    }
}

impl<S: Service<Req>, Req> InnerCall<S, Req> {
    /// Calls `inner` with `request` now if it is ready, else once it is.
    pub(crate) fn start(mut inner: S, request: Req) -> Self {
        match inner.poll_ready(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(Ok(())) => Self::Called {
                future: inner.call(request),
            },
            Poll::Ready(Err(error)) => Self::Failed { error: Some(error) },
            Poll::Pending => Self::Waiting {
                oneshot: inner.oneshot(request),
            },
        }
    }
}

impl<S: Service<Req>, Req> Future for InnerCall<S, Req> {
    type Output = Result<S::Response, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            InnerCallProj::Called { future } => future.poll(cx),
            InnerCallProj::Waiting { oneshot } => oneshot.poll(cx),
            InnerCallProj::Failed { error } => Poll::Ready(Err(error
                .take()
                .expect("InnerCall polled after completion"))),
        }
    }
}
