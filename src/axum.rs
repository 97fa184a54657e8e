//! axum extractors (feature `axum`): take [`AuthenticatedDingTalkUser`] or
//! `Option<AuthenticatedDingTalkUser>` as a handler argument. Their rejections are rendered by the
//! layer in front of the handler, as its own are.
//!
//! ```
//! use axum::{Router, routing::get};
//! use tower_dingtalk_auth::{AuthenticatedDingTalkUser, DingTalkAuthLayer};
//!
//! async fn me(user: AuthenticatedDingTalkUser) -> String {
//!     format!("hello {}", user.name())
//! }
//!
//! async fn home(user: Option<AuthenticatedDingTalkUser>) -> String {
//!     match user {
//!         Some(user) => format!("welcome back {}", user.name()),
//!         None => "welcome, stranger".to_owned(),
//!     }
//! }
//!
//! let layer = DingTalkAuthLayer::builder()
//!     .internal_app("APP_KEY", "APP_SECRET")
//!     .optional()
//!     .build()
//!     .unwrap();
//! let app: Router = Router::new().route("/me", get(me)).route("/", get(home)).layer(layer);
//! ```

use std::convert::Infallible;

use axum_core::body::Body;
use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use axum_core::response::{IntoResponse, Response};
use bytes::Bytes;
use http::request::Parts;

use crate::error::AuthError;
use crate::reject::{DEFAULT_REALM, Rejections, layer_missing};
use crate::user::AuthenticatedDingTalkUser;

/// Why the [`AuthenticatedDingTalkUser`] extractor refused a request, rendered as the
/// [`DingTalkAuthLayer`](crate::DingTalkAuthLayer) in front of the handler renders its own
/// rejections (realm, `on_rejection`): 401 `missing_code` when the layer let the request through
/// without a user (it is optional), 500 when no layer saw the request at all (it is missing).
#[derive(Debug)]
pub struct AuthRejection {
    error: AuthError,
    response: http::Response<Bytes>,
}

impl AuthRejection {
    /// What went wrong.
    pub fn error(&self) -> &AuthError {
        &self.error
    }
}

impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        self.response.map(Body::from)
    }
}

/// The user the layer authenticated; a rejection when there is none (see [`AuthRejection`]).
impl<S: Send + Sync> FromRequestParts<S> for AuthenticatedDingTalkUser {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        if let Some(user) = parts.extensions.get::<Self>() {
            return Ok(user.clone());
        }
        let (error, rejections) = match Rejections::of(&parts.extensions) {
            Some(rejections) => (AuthError::missing_code(), rejections),
            None => (layer_missing("extractor"), Rejections::fallback()),
        };
        let response = rejections.render(&error);
        Err(AuthRejection { error, response })
    }
}

/// The user the layer authenticated, if any; never rejects. Without the layer in front it is
/// always `None`, and an error is logged (once a minute) saying the layer is missing.
impl<S: Send + Sync> OptionalFromRequestParts<S> for AuthenticatedDingTalkUser {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        let user = parts.extensions.get::<Self>().cloned();
        if user.is_none() && Rejections::of(&parts.extensions).is_none() {
            layer_missing("extractor");
        }
        Ok(user)
    }
}

/// The default rejection response, with the realm [`DEFAULT_REALM`].
impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        self.to_response(DEFAULT_REALM).map(Body::from)
    }
}
