//! axum extractors (feature `axum`): take [`AuthenticatedDingTalkUser`] or
//! `Option<AuthenticatedDingTalkUser>` as a handler argument.
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
use http::request::Parts;

use crate::error::AuthError;
use crate::layer::DEFAULT_REALM;
use crate::user::AuthenticatedDingTalkUser;

/// The user the layer authenticated; 401 `missing_code` when there is none (the layer is missing
/// on this route, or it is optional and the request had no code).
impl<S: Send + Sync> FromRequestParts<S> for AuthenticatedDingTalkUser {
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Self>()
            .cloned()
            .ok_or_else(AuthError::missing_code)
    }
}

/// The user the layer authenticated, if any; never rejects.
impl<S: Send + Sync> OptionalFromRequestParts<S> for AuthenticatedDingTalkUser {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Self>().cloned())
    }
}

/// The default rejection response, with the realm [`DEFAULT_REALM`].
impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        self.to_response(DEFAULT_REALM).map(Body::from)
    }
}
