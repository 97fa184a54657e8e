//! Authorization after authentication: layers that let a request through only when the user the
//! [`DingTalkAuthLayer`](crate::DingTalkAuthLayer) put on it passes a check.
//!
//! Put them on routes with axum's `route_layer`, inside the authentication layer, so that a path
//! that matches no route stays a 404. A request without a user is answered 401 `missing_code`; a
//! user who fails the check gets 403 `forbidden`; both are rendered as the authentication layer
//! renders its own rejections (its realm, its `on_rejection`), and the inner service never runs
//! for them. A request the authentication layer never saw (the guard is outside it, or the layer
//! is missing) is a 500, with an error log saying so: a misconfiguration, not the user's fault.
//!
//! - [`require_admin`]: DingTalk reports the user as an administrator (its `sys` flag).
//! - [`require_level`]: the user's [`AdminLevel`] is one of those given.
//! - [`require`]: any predicate on the [`AuthenticatedDingTalkUser`].
//!
//! ```
//! use axum::{Router, routing::{delete, get}};
//! use tower_dingtalk_auth::{AdminLevel, AuthenticatedDingTalkUser, DingTalkAuthLayer, guard};
//!
//! async fn report(user: AuthenticatedDingTalkUser) -> String {
//!     format!("the report, for {}", user.name())
//! }
//!
//! let auth = DingTalkAuthLayer::builder()
//!     .internal_app("APP_KEY", "APP_SECRET")
//!     .build()
//!     .unwrap();
//! let admins = Router::new()
//!     .route("/admin/report", get(report))
//!     .route_layer(guard::require_admin());
//! let owners = Router::new()
//!     .route("/admin/users/{id}", delete(|| async { "deleted" }))
//!     .route_layer(guard::require_level([AdminLevel::SuperAdmin, AdminLevel::Boss]));
//! let sales = Router::new()
//!     .route("/sales", get(|| async { "numbers" }))
//!     .route_layer(guard::require(|user: &AuthenticatedDingTalkUser| {
//!         user.userid().starts_with("sales")
//!     }));
//! let app: Router = Router::new()
//!     .route("/me", get(|user: AuthenticatedDingTalkUser| async move { user.userid().to_owned() }))
//!     .merge(admins)
//!     .merge(owners)
//!     .merge(sales)
//!     .route_layer(auth);
//! # drop(app);
//! ```
//!
//! A `route_layer` wraps every route added to its router before it, so give each guard its own
//! `Router` and `merge` them, as above.

mod future;
mod layer;
mod rule;
mod service;

pub use self::future::ResponseFuture;
pub use self::layer::GuardLayer;
pub use self::service::Guard;

use crate::user::{AdminLevel, AuthenticatedDingTalkUser};

/// Lets through users DingTalk reports as administrators (its `sys` flag,
/// [`AuthenticatedDingTalkUser::is_admin`]); 403 for everyone else.
///
/// ```
/// use axum::{Router, routing::get};
/// use tower_dingtalk_auth::guard;
///
/// let admin: Router = Router::new()
///     .route("/admin", get(|| async { "for administrators" }))
///     .route_layer(guard::require_admin());
/// # drop(admin);
/// ```
pub fn require_admin() -> GuardLayer {
    GuardLayer::new(
        |user: &AuthenticatedDingTalkUser| user.is_admin(),
        "this route is for DingTalk administrators",
    )
}

/// Lets through users whose [`AdminLevel`] is one of `levels`; 403 for everyone else. An empty
/// list lets nobody through.
///
/// ```
/// use axum::{Router, routing::get};
/// use tower_dingtalk_auth::{AdminLevel, guard};
///
/// let owners: Router = Router::new()
///     .route("/billing", get(|| async { "for the boss and the main administrator" }))
///     .route_layer(guard::require_level([AdminLevel::Boss, AdminLevel::SuperAdmin]));
/// # drop(owners);
/// ```
pub fn require_level(levels: impl IntoIterator<Item = AdminLevel>) -> GuardLayer {
    let levels: Box<[AdminLevel]> = levels.into_iter().collect();
    GuardLayer::new(
        move |user: &AuthenticatedDingTalkUser| levels.contains(&user.admin_level()),
        "your DingTalk administrator level does not open this route",
    )
}

/// Lets through any authenticated user; 401 for requests without one. For the routes that need a
/// user in an app whose [`DingTalkAuthLayer`](crate::DingTalkAuthLayer) is
/// [`optional`](crate::DingTalkAuthLayerBuilder::optional): one layer serves the whole app.
///
/// ```
/// use axum::{Router, routing::get};
/// use tower_dingtalk_auth::{AuthenticatedDingTalkUser, DingTalkAuthLayer, guard};
///
/// let auth = DingTalkAuthLayer::builder()
///     .internal_app("APP_KEY", "APP_SECRET")
///     .optional()
///     .build()
///     .unwrap();
/// let private = Router::new()
///     .route("/me", get(|user: AuthenticatedDingTalkUser| async move { user.name().to_owned() }))
///     .route_layer(guard::authenticated());
/// let app: Router = Router::new()
///     .route("/", get(|| async { "welcome, whoever you are" }))
///     .merge(private)
///     .layer(auth);
/// # drop(app);
/// ```
pub fn authenticated() -> GuardLayer {
    GuardLayer::new(|_: &AuthenticatedDingTalkUser| true, "")
}

/// Lets through users for whom `predicate` is true; 403 for everyone else.
///
/// ```
/// use axum::{Router, routing::get};
/// use tower_dingtalk_auth::{AuthenticatedDingTalkUser, guard};
///
/// let corp: Router = Router::new()
///     .route("/corp", get(|| async { "for one organisation" }))
///     .route_layer(
///         guard::require(|user: &AuthenticatedDingTalkUser| user.corp_id() == Some("ding123"))
///             .message("this route is for members of ding123"),
///     );
/// # drop(corp);
/// ```
pub fn require<F>(predicate: F) -> GuardLayer
where
    F: Fn(&AuthenticatedDingTalkUser) -> bool + Send + Sync + 'static,
{
    GuardLayer::new(predicate, "you may not use this route")
}

/// Lets through users in any of `departments` or in a department below one of them (the parent
/// chain DingTalk gives, `listparentbyuser`); 403 for everyone else. Needs the client's
/// [`profile`](crate::DingTalkClientBuilder::profile) with
/// [`ProfileFields::DEPARTMENTS`](crate::ProfileFields::DEPARTMENTS): a user whose profile
/// DingTalk did not give gets 503 `profile_unavailable` with `Retry-After`.
///
/// ```
/// use axum::{Router, routing::get};
/// use tower_dingtalk_auth::guard;
///
/// // Finance is department 42: its sub-departments are in too.
/// let reports: Router = Router::new()
///     .route("/reports", get(|| async { "for Finance" }))
///     .route_layer(guard::require_department([42]));
/// # drop(reports);
/// ```
pub fn require_department(departments: impl IntoIterator<Item = i64>) -> GuardLayer {
    let departments: Box<[i64]> = departments.into_iter().collect();
    GuardLayer::new(
        move |user: &AuthenticatedDingTalkUser| {
            user.profile()
                .is_some_and(|profile| departments.iter().any(|id| profile.is_within(*id)))
        },
        "this route is for other departments",
    )
    .needs_profile()
}

/// Lets through users who lead (主管) at least one department; 403 for everyone else. Needs the
/// client's [`profile`](crate::DingTalkClientBuilder::profile) with
/// [`ProfileFields::DEPARTMENTS`](crate::ProfileFields::DEPARTMENTS), as
/// [`require_department`].
///
/// ```
/// use axum::{Router, routing::get};
/// use tower_dingtalk_auth::guard;
///
/// let approvals: Router = Router::new()
///     .route("/approvals", get(|| async { "for leaders" }))
///     .route_layer(guard::require_leader());
/// # drop(approvals);
/// ```
pub fn require_leader() -> GuardLayer {
    GuardLayer::new(
        |user: &AuthenticatedDingTalkUser| user.profile().is_some_and(|p| p.is_leader()),
        "this route is for department leaders",
    )
    .needs_profile()
}
