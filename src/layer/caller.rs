//! Who a request comes from, for the fair queue of new exchanges: the layer's [`ClientKey`](super::ClientKey), and
//! the one warning when a proxy's headers meet a key that reads none of them.

use http::request::Parts;

use super::authenticator::Authenticator;
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
