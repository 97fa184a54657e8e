//! [`FixedUserLayer`]: a stand-in for the authentication layer in unit tests of handlers, guards
//! and extractors, which puts one fixed user on every request, without DingTalk.

use std::task::{Context, Poll};

use http::Request;
use tower_layer::Layer;
use tower_service::Service;

use crate::reject::Rejections;
use crate::user::AuthenticatedDingTalkUser;

/// Puts `user` on every request, as the [`DingTalkAuthLayer`](crate::DingTalkAuthLayer) would
/// after a successful login: handlers, extractors and [guards](crate::guard) behind it behave as
/// they would behind the real layer (with its default realm and rejections).
///
/// ```
/// use axum::{Router, body::Body, routing::get};
/// use http::Request;
/// use tower::ServiceExt;
/// use tower_dingtalk_auth::testing::FixedUserLayer;
/// use tower_dingtalk_auth::{AdminLevel, AuthenticatedDingTalkUser, guard};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let boss = AuthenticatedDingTalkUser::builder("boss01", "Wang Wu")
///     .admin_level(AdminLevel::Boss)
///     .build();
/// let app: Router = Router::new()
///     .route("/report", get(|user: AuthenticatedDingTalkUser| async move { user.name().to_owned() }))
///     .route_layer(guard::require_level([AdminLevel::Boss]))
///     .layer(FixedUserLayer::new(boss));
/// let response = app
///     .oneshot(Request::get("/report").body(Body::empty()).unwrap())
///     .await
///     .unwrap();
/// assert_eq!(response.status(), 200);
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct FixedUserLayer {
    user: AuthenticatedDingTalkUser,
}

impl FixedUserLayer {
    /// Every request gets `user`.
    pub fn new(user: AuthenticatedDingTalkUser) -> Self {
        Self { user }
    }
}

impl<S> Layer<S> for FixedUserLayer {
    type Service = FixedUser<S>;

    fn layer(&self, inner: S) -> Self::Service {
        FixedUser {
            inner,
            user: self.user.clone(),
        }
    }
}

/// The service of a [`FixedUserLayer`].
#[derive(Clone, Debug)]
pub struct FixedUser<S> {
    inner: S,
    user: AuthenticatedDingTalkUser,
}

impl<S, B> Service<Request<B>> for FixedUser<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let extensions = request.extensions_mut();
        extensions.insert(self.user.clone());
        extensions.insert(Rejections::fallback().clone());
        self.inner.call(request)
    }
}
