//! The layer's own endpoints as a service to mount: [`LoginService`] answers the token login, its
//! refresh and the web login's callback (and nothing else), so that an app can put the layer on
//! its routes with `route_layer` (unknown paths stay 404) and mount the endpoints beside them.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use tower_service::Service;

use super::authenticator::Authenticator;
use super::layer::DingTalkAuthLayer;

/// The login endpoints of a [`DingTalkAuthLayer`] as a service of their own: `POST <path>` and
/// `POST <path>/refresh` of its [`token_login`](crate::DingTalkAuthLayerBuilder::token_login),
/// and `GET` of its [`web_login`](crate::DingTalkAuthLayerBuilder::web_login) callback, are
/// answered as the layer answers them; any other request is 404 (every request, without either). Made by [`DingTalkAuthLayer::login_service`] (and, with axum,
/// [`DingTalkAuthLayer::login_routes`]).
#[derive(Clone, Debug)]
pub struct LoginService {
    authenticator: Arc<Authenticator>,
}

impl DingTalkAuthLayer {
    /// The layer's login endpoints as a tower service, to mount beside routes the layer covers
    /// with `route_layer`: see [`LoginService`].
    pub fn login_service(&self) -> LoginService {
        LoginService {
            authenticator: self.authenticator().clone(),
        }
    }

    /// The layer's login endpoints as an axum router, to merge into an app whose routes the layer
    /// covers with `route_layer`, so that unknown paths stay 404:
    ///
    /// ```
    /// use axum::{Router, routing::get};
    /// use tower_dingtalk_auth::{AuthenticatedDingTalkUser, DingTalkAuthLayer, SessionConfig, SessionKey};
    ///
    /// async fn me(user: AuthenticatedDingTalkUser) -> String {
    ///     user.userid().to_owned()
    /// }
    ///
    /// let auth = DingTalkAuthLayer::builder()
    ///     .internal_app("APP_KEY", "APP_SECRET")
    ///     .session(SessionConfig::new(SessionKey::generate()))
    ///     .token_login("/auth/login")
    ///     .build()
    ///     .unwrap();
    /// let app: Router = Router::new()
    ///     .route("/api/me", get(me))
    ///     .route_layer(auth.clone())
    ///     .merge(auth.login_routes()) // POST /auth/login, POST /auth/login/refresh
    ///                                 // (and GET of the web login's callback, with one)
    ///     .route("/health", get(|| async { "ok" }));
    /// # drop(app);
    /// ```
    #[cfg(feature = "axum")]
    pub fn login_routes(&self) -> axum::Router {
        let service = self.login_service();
        let mut router = axum::Router::new();
        if let Some(token_login) = &self.authenticator().token_login {
            // `POST` only: the app may serve its own page at the same path.
            router = router
                .route(
                    token_login.login_path(),
                    axum::routing::post_service(service.clone()),
                )
                .route(
                    token_login.refresh_path(),
                    axum::routing::post_service(service.clone()),
                );
        }
        if let Some(web_login) = &self.authenticator().web_login {
            router = router.route(web_login.path(), axum::routing::get_service(service));
        }
        router
    }
}

impl<B> Service<Request<B>> for LoginService
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let authenticator = self.authenticator.clone();
        let (parts, body) = request.into_parts();
        let route = authenticator
            .token_login
            .as_ref()
            .and_then(|token_login| token_login.route(&parts));
        let callback = authenticator
            .web_login
            .as_ref()
            .is_some_and(|web_login| web_login.is_callback(&parts));
        Box::pin(async move {
            let response = match route {
                _ if callback => authenticator.answer_web_login(parts).await,
                Some(route) => {
                    let body = authenticator.read_login_body(body).await;
                    authenticator.answer_token_route(route, parts, body).await
                }
                None => {
                    let mut response = Response::new(Bytes::new());
                    *response.status_mut() = StatusCode::NOT_FOUND;
                    response
                }
            };
            Ok(response.map(Full::new))
        })
    }
}
