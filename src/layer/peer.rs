//! Who sent a request, by default: the peer's address, as the server put it in the extensions.

use std::net::{IpAddr, SocketAddr};

use http::request::Parts;

/// The peer's IP: from axum's `ConnectInfo<SocketAddr>` (an app served with
/// `into_make_service_with_connect_info`), or a `SocketAddr` or `IpAddr` extension (a hyper
/// server that inserts the peer's address itself).
pub(crate) fn peer_ip(parts: &Parts) -> Option<IpAddr> {
    #[cfg(feature = "axum")]
    if let Some(axum::extract::ConnectInfo(addr)) = parts
        .extensions
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
    {
        return Some(addr.ip());
    }
    parts
        .extensions
        .get::<SocketAddr>()
        .map(SocketAddr::ip)
        .or_else(|| parts.extensions.get::<IpAddr>().copied())
}
