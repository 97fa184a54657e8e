//! The middleware: [`DingTalkAuthLayer`], the [`DingTalkAuth`] service it makes, and their future
//! and body types.
//!
//! A request travels: extract the code → identity cache → (on a miss, one exchange per code,
//! coalesced) → insert [`AuthenticatedDingTalkUser`](crate::AuthenticatedDingTalkUser) → inner
//! service. Any failure on the way becomes a response and the inner service never runs.

mod authenticator;
mod body;
mod builder;
mod caller;
mod client_key;
mod corp_admission;
mod corp_check;
mod future;
#[allow(clippy::module_inception)]
mod layer;
mod login;
mod login_redirect;
mod login_routes;
mod pages;
mod refusal;
mod resolution;
mod resolver;
mod service;
mod session_check;
mod session_options;
mod sessions;
mod token_login;
mod token_route;
mod web_login;
mod web_login_route;

pub use self::authenticator::DEFAULT_CORP_RECHECK;
pub use self::body::ResponseBody;
pub use self::builder::DingTalkAuthLayerBuilder;
pub use self::client_key::ClientKey;
pub use self::future::ResponseFuture;
pub use self::layer::DingTalkAuthLayer;
pub use self::login_routes::LoginService;
pub use self::service::DingTalkAuth;
pub use self::sessions::Sessions;
pub use crate::reject::DEFAULT_REALM;
