//! [`DingTalkAuthLayer`]: the layer itself, cheap to clone; see [`super::builder`] for its
//! configuration.

use std::sync::Arc;

use tower_layer::Layer;

use super::authenticator::Authenticator;
use super::service::DingTalkAuth;
use super::sessions::Sessions;
use crate::cache::CacheStats;
use crate::client::DingTalkClient;
use crate::session::SessionConfig;

/// A [`Layer`] that authenticates requests with DingTalk silent login.
///
/// Build it once with [`DingTalkAuthLayer::builder`]; clones share everything. Layers built on one
/// [`DingTalkClient`] share its access tokens, limits and identity cache, so an app can put a
/// required layer on some routes and an optional one on others without either refusing a code the
/// other exchanged.
///
/// ```
/// use tower_dingtalk_auth::DingTalkAuthLayer;
///
/// let layer = DingTalkAuthLayer::builder()
///     .internal_app("APP_KEY", "APP_SECRET")
///     .build()
///     .expect("valid configuration");
/// let service = tower::ServiceBuilder::new()
///     .layer(layer)
///     .service(tower::service_fn(|_req: http::Request<String>| async {
///         Ok::<_, std::convert::Infallible>(http::Response::new(String::from("hello")))
///     }));
/// # drop(service);
/// ```
#[derive(Clone, Debug)]
pub struct DingTalkAuthLayer {
    authenticator: Arc<Authenticator>,
}

impl DingTalkAuthLayer {
    /// The DingTalk client the layer uses, for handlers that call DingTalk themselves.
    pub fn client(&self) -> &DingTalkClient {
        &self.authenticator.client
    }

    /// How many identities the layer's client has cached right now.
    pub async fn cached_identities(&self) -> u64 {
        self.cache_stats().await.identities
    }

    /// How full the layer's client's caches are right now.
    pub async fn cache_stats(&self) -> CacheStats {
        self.authenticator.client.cache_stats().await
    }

    /// The query parameters the layer reads codes from.
    #[cfg(feature = "tower-http")]
    pub(crate) fn code_query_params(&self) -> Vec<String> {
        let names = self.authenticator.extractor.query_names();
        names.map(str::to_owned).collect()
    }

    pub(crate) fn authenticator(&self) -> &Arc<Authenticator> {
        &self.authenticator
    }

    pub(crate) fn new(authenticator: Authenticator) -> Self {
        Self {
            authenticator: Arc::new(authenticator),
        }
    }

    /// The layer's sessions, if it keeps them: to issue, read and clear them as the layer does
    /// (a sign-out route, a login of your own, a signed-in user in a test). See [`Sessions`].
    pub fn sessions(&self) -> Option<Sessions> {
        let config = self.authenticator.session.clone()?;
        Some(Sessions::new(config, self.authenticator.clone()))
    }

    /// The layer's session configuration, bound to its app, if it has one.
    #[deprecated(
        since = "0.1.0",
        note = "use `sessions()`, which issues, reads and clears sessions as the layer does"
    )]
    pub fn session(&self) -> Option<&SessionConfig> {
        self.authenticator.session.as_deref()
    }
}

impl<S> Layer<S> for DingTalkAuthLayer {
    type Service = DingTalkAuth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        DingTalkAuth::new(inner, self.authenticator.clone())
    }
}
