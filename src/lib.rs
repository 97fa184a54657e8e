//! DingTalk silent login (免登) as one tower [`Layer`](tower_layer::Layer).
//!
//! A front end inside the DingTalk client gets a one-time auth code and sends it with its request
//! (by default in the `X-DingTalk-Code` header or the `code` query parameter). [`DingTalkAuthLayer`]
//! exchanges the code with DingTalk's `getuserinfo` once, caches the user by code, and puts an
//! [`AuthenticatedDingTalkUser`] into the request's extensions before the inner service runs.
//! Every failure becomes one clear HTTP response (see [`AuthError`]) and the inner service never
//! runs for it.
//!
//! ```no_run
//! use axum::{Json, Router, routing::get};
//! use tower_dingtalk_auth::{AuthenticatedDingTalkUser, DingTalkAuthLayer};
//!
//! async fn me(user: AuthenticatedDingTalkUser) -> Json<AuthenticatedDingTalkUser> {
//!     Json(user)
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let layer = DingTalkAuthLayer::builder()
//!         .internal_app(std::env::var("DINGTALK_APP_KEY")?, std::env::var("DINGTALK_APP_SECRET")?)
//!         .build()?;
//!     let app = Router::new().route("/me", get(me)).layer(layer);
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//!     // The peer's address lets the layer queue new logins fairly between clients.
//!     let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
//!     axum::serve(listener, app).await?;
//!     Ok(())
//! }
//! ```
//!
//! The layer works with any request and response body, so plain hyper servers (through
//! `hyper_util::service::TowerToHyperService`) use it as well.
//!
//! **The [guide]** has a chapter per use: [the front end's part](guide::front_end),
//! [pages](guide::pages), [mini programs](guide::mini_programs),
//! [third-party apps](guide::third_party), [replicas](guide::replicas),
//! [behind a proxy](guide::behind_a_proxy), [testing](guide::testing),
//! [security](guide::security) and [the reference](guide::reference).
//!
//! # Features
//! - `axum` (default): extractors for [`AuthenticatedDingTalkUser`] and
//!   `Option<AuthenticatedDingTalkUser>`, `IntoResponse` for [`AuthError`], and
//!   [`DingTalkAuthLayer::login_routes`].
//! - `rustls` (default): HTTPS to DingTalk with rustls (aws-lc-rs) and the platform's verifier;
//!   with `redis`, also Redis over TLS (`rediss://`).
//! - `native-tls`: HTTPS to DingTalk with the platform's TLS, for builds that cannot compile
//!   aws-lc-sys (`default-features = false, features = ["axum", "native-tls"]`).
//! - `testing`: [`testing::MockDingTalk`] (a fake DingTalk on loopback that keeps DingTalk's
//!   rules, with faults and call counters) and [`testing::FixedUserLayer`] (one user on every
//!   request, for handler tests).
//! - `redis`: [`RedisStore`], so that replicas share identities and exchange each code once, on
//!   one Redis server or a Redis Cluster.
//! - `tower-http`: [`trace::RedactedSpan`], a span maker for tower-http's `TraceLayer` that keeps
//!   codes out of logs.
//! - `metrics`: Prometheus-style metrics on the `metrics` facade, for any exporter; install the
//!   recorder before building the client and the layer (see
//!   [operations](crate::guide::operations)).

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod access;
#[cfg(feature = "axum")]
pub mod axum;
mod cache;
mod client;
mod config_error;
mod corp;
mod error;
mod extract;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod guard;
pub mod guide;
mod hot_slots;
mod key;
pub mod layer;
mod log_gate;
mod login_method;
mod metrics;
mod profile;
mod reject;
mod session;
mod store;
#[cfg(feature = "testing")]
pub mod testing;
#[cfg(feature = "tower-http")]
pub mod trace;
mod user;

// The READMEs' Rust snippets compile, as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

#[cfg(doctest)]
#[doc = include_str!("../README.zh-CN.md")]
struct ReadmeZhDoctests;

pub use self::access::DEFAULT_REVALIDATE_AFTER;
#[allow(deprecated)]
pub use self::cache::DEFAULT_CACHE_TTL;
pub use self::cache::{
    CacheStats, DEFAULT_CACHE_CAPACITY, DEFAULT_CODE_REUSE_WINDOW, DEFAULT_REJECTED_CODE_CAPACITY,
    DEFAULT_REJECTED_CODE_TTL, MAX_CODE_REUSE_WINDOW,
};
pub use self::client::{
    CheckProblem, DEFAULT_ANSWER_TIMEOUT, DEFAULT_API_BASE_URL, DEFAULT_LOGIN_BASE_URL,
    DEFAULT_MAX_CORPS, DEFAULT_MAX_IN_FLIGHT, DEFAULT_MAX_PENDING_PER_CLIENT,
    DEFAULT_OAPI_BASE_URL, DEFAULT_PROFILE_TTL, DEFAULT_QUEUE_TIMEOUT, DEFAULT_RATE_LIMIT,
    DEFAULT_UPSTREAM_TIMEOUT, DingTalkClient, DingTalkClientBuilder, MemorySuiteTicketStore,
    Readiness, SuiteTicketStore,
};
pub use self::config_error::ConfigError;
pub use self::corp::{AuthorizedCorps, CorpDirectory};
pub use self::error::{AuthError, AuthErrorKind};
pub use self::extract::CodeSource;
pub use self::key::{MAX_CODE_LEN, MAX_CORP_ID_LEN};
pub use self::layer::{
    ClientKey, DingTalkAuth, DingTalkAuthLayer, DingTalkAuthLayerBuilder, LoginService, Sessions,
};
pub use self::login_method::LoginMethod;
pub use self::profile::{Profile, ProfileFields};
pub use self::session::{
    DEFAULT_OPENED_SESSION_CACHE, DEFAULT_SESSION_ABSOLUTE_LIFETIME, DEFAULT_SESSION_COOKIE,
    DEFAULT_SESSION_LIFETIME, HOST_SESSION_COOKIE, LOGIN_STATE_LIFETIME, MAX_OPENED_SESSION_CACHE,
    SessionConfig, SessionKey,
};
#[cfg(feature = "redis")]
pub use self::store::redis::{RedisStore, RedisStoreBuilder, RedisStoreError};
pub use self::user::{AdminLevel, AuthenticatedDingTalkUser, AuthenticatedDingTalkUserBuilder};
