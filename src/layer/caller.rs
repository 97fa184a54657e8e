//! Who a request comes from, for the fair queue of new exchanges: the layer's
//! [`ClientKey`](super::ClientKey) (the builder's settings for it too), and the one warning when a
//! proxy's headers meet a key that reads none of them.

use http::request::Parts;

use super::authenticator::Authenticator;
use super::builder::DingTalkAuthLayerBuilder;
use super::client_key::ClientKey;
use crate::client::CallerKey;

impl Authenticator {
    /// Who the request comes from, as the client key says. Behind a proxy that the key does not
    /// read (the peer key, or a proxy key that found nothing it trusts), every client is the
    /// proxy: said once, in a warning.
    pub(super) fn caller_of(&self, parts: &Parts) -> CallerKey {
        let (key, from_peer) = self.client_key.resolve(parts);
        if from_peer
            && (parts.headers.contains_key("x-forwarded-for")
                || parts.headers.contains_key(http::header::FORWARDED))
            && self.proxy_warning.allow()
        {
            tracing::warn!(
                client_key = ?self.client_key,
                "requests carry X-Forwarded-For or Forwarded, but the client key read no address \
                 a proxy vouches for and used the peer's: behind a reverse proxy every client is \
                 the proxy, and one client's share of new logins is the whole company's. Say \
                 which address the proxy vouches for: ClientKey::forwarded_for(hops) for a proxy \
                 that appends to X-Forwarded-For, or ClientKey::header(\"x-real-ip\") for a \
                 header it sets (logged once)"
            );
        }
        key.map_or_else(CallerKey::unknown, CallerKey::new)
    }
}

impl DingTalkAuthLayerBuilder {
    /// Says who a request comes from, for the fair queue of new exchanges, with a function:
    /// requests of one client share one turn, and a client past its share gets 429. `None` puts
    /// the request with the others nobody can tell apart. Cache hits and sessions never queue.
    /// For the common cases (the peer, a proxy's `X-Forwarded-For` or `X-Real-IP`) use
    /// [`client_key_from`](Self::client_key_from) with a ready-made [`ClientKey`], which also
    /// groups IPv6 addresses by /64.
    ///
    /// ```
    /// use tower_dingtalk_auth::DingTalkAuthLayer;
    ///
    /// // Each signed-in tenant of a gateway is one client.
    /// let layer = DingTalkAuthLayer::builder()
    ///     .internal_app("APP_KEY", "APP_SECRET")
    ///     .client_key(|parts| {
    ///         Some(parts.headers.get("x-gateway-tenant")?.to_str().ok()?.to_owned())
    ///     })
    ///     .build()
    ///     .unwrap();
    /// # drop(layer);
    /// ```
    pub fn client_key<F>(mut self, key: F) -> Self
    where
        F: Fn(&Parts) -> Option<String> + Send + Sync + 'static,
    {
        self.client_key = Some(ClientKey::custom(key));
        self
    }

    /// Says who a request comes from, for the fair queue of new exchanges. Default:
    /// [`ClientKey::peer()`], the peer's address (serve axum apps with
    /// `into_make_service_with_connect_info::<SocketAddr>()`). Behind a reverse proxy every
    /// request comes from the proxy, so the whole company would be one client: read the address
    /// the proxy vouches for instead, and only that one, with
    /// [`ClientKey::forwarded_for`] or [`ClientKey::header`]. Clients cannot choose their key
    /// with either: entries a client wrote itself are never read.
    ///
    /// ```
    /// use tower_dingtalk_auth::{ClientKey, DingTalkAuthLayer};
    ///
    /// // nginx: proxy_set_header X-Real-IP $remote_addr;
    /// let layer = DingTalkAuthLayer::builder()
    ///     .internal_app("APP_KEY", "APP_SECRET")
    ///     .client_key_from(ClientKey::header("x-real-ip"))
    ///     .build()
    ///     .unwrap();
    /// # drop(layer);
    /// ```
    pub fn client_key_from(mut self, key: ClientKey) -> Self {
        self.client_key = Some(key);
        self
    }
}
