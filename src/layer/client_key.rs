//! [`ClientKey`]: who sent a request, for the fair queue of new exchanges. By default the peer's
//! address; behind a reverse proxy, the address the nearest trusted proxy saw. Addresses are
//! grouped as hosts are handed out: an IPv6 client gets a whole /64 (one machine picks any of its
//! addresses at will), and an IPv4-mapped IPv6 address is its IPv4 address.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use http::HeaderName;
use http::request::Parts;

type CustomFn = dyn Fn(&Parts) -> Option<String> + Send + Sync;

/// Who a request comes from, for the fair queue of new exchanges: requests of one client share
/// one turn, and a client past its share gets 429; see
/// [`client_key_from`](crate::DingTalkAuthLayerBuilder::client_key_from).
///
/// Every built-in key groups addresses as hosts are handed out: an IPv6 address counts as its
/// /64 (a single machine can pick any of the 2^64 addresses of its network, so twelve addresses
/// of one /64 are one client), and an IPv4-mapped IPv6 address (`::ffff:192.0.2.7`, as a
/// dual-stack socket reports IPv4 clients) counts as the IPv4 address.
///
/// ```
/// use tower_dingtalk_auth::{ClientKey, DingTalkAuthLayer};
///
/// // Behind one nginx that appends `$remote_addr` to X-Forwarded-For
/// // (`proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;`).
/// let layer = DingTalkAuthLayer::builder()
///     .internal_app("APP_KEY", "APP_SECRET")
///     .client_key_from(ClientKey::forwarded_for(1))
///     .build()
///     .unwrap();
/// # drop(layer);
/// ```
#[derive(Clone)]
pub struct ClientKey(Kind);

#[derive(Clone)]
enum Kind {
    Peer,
    ForwardedFor { trusted_hops: usize },
    Header(HeaderName),
    Custom(Arc<CustomFn>),
}

impl ClientKey {
    /// The peer's address (the default): axum's `ConnectInfo<SocketAddr>` (serve the app with
    /// `into_make_service_with_connect_info::<SocketAddr>()`), or a `SocketAddr` or `IpAddr` your
    /// hyper server put in the request's extensions. Requests without one share one place in the
    /// queue, uncapped.
    pub fn peer() -> Self {
        Self(Kind::Peer)
    }

    /// Behind `trusted_hops` reverse proxies that each append the address they saw to
    /// `X-Forwarded-For`: the address the outermost of them saw, which is the entry
    /// `trusted_hops` from the right across every `X-Forwarded-For` line. Entries further left
    /// are whatever the client wrote, and are never read. A request whose header holds fewer
    /// entries, or an entry there that is not an IP address (with or without a port), falls
    /// back to the peer's address: it did not come through the proxies as configured.
    /// `forwarded_for(0)` is [`peer`](Self::peer).
    pub fn forwarded_for(trusted_hops: usize) -> Self {
        if trusted_hops == 0 {
            Self::peer()
        } else {
            Self(Kind::ForwardedFor { trusted_hops })
        }
    }

    /// The address in a header your proxy sets, replacing whatever the client sent (nginx's
    /// `proxy_set_header X-Real-IP $remote_addr;`): the last line of `name`. A request without
    /// it, or with something that is not an IP address, falls back to the peer's address.
    /// Panics at startup if `name` is not a valid header name, like
    /// [`HeaderName::from_static`].
    pub fn header(name: &'static str) -> Self {
        Self(Kind::Header(HeaderName::from_static(name)))
    }

    /// [`header`](Self::header) with a [`HeaderName`].
    pub fn header_name(name: HeaderName) -> Self {
        Self(Kind::Header(name))
    }

    /// Whatever `key` says; `None` puts the request with the others nobody can tell apart (one
    /// place in the queue, uncapped). No grouping is applied: that is the function's to do.
    pub fn custom<F>(key: F) -> Self
    where
        F: Fn(&Parts) -> Option<String> + Send + Sync + 'static,
    {
        Self(Kind::Custom(Arc::new(key)))
    }

    /// The client of a request, as this key says: what the fair queue tells clients apart by.
    ///
    /// ```
    /// use std::net::SocketAddr;
    /// use tower_dingtalk_auth::ClientKey;
    ///
    /// let (mut parts, ()) = http::Request::new(()).into_parts();
    /// parts.extensions.insert("[2001:db8:1:2::7]:443".parse::<SocketAddr>().unwrap());
    /// assert_eq!(ClientKey::peer().key(&parts).as_deref(), Some("2001:db8:1:2::/64"));
    ///
    /// parts.headers.append("x-forwarded-for", "6.6.6.6, 198.51.100.3".parse().unwrap());
    /// let proxied = ClientKey::forwarded_for(1);
    /// assert_eq!(proxied.key(&parts).as_deref(), Some("198.51.100.3"));
    /// ```
    pub fn key(&self, parts: &Parts) -> Option<String> {
        self.resolve(parts).0
    }

    /// The key, and whether it is the peer's address because nothing a proxy vouches for was
    /// read (the peer key, or a proxy key that fell back to the peer).
    pub(crate) fn resolve(&self, parts: &Parts) -> (Option<String>, bool) {
        let vouched = match &self.0 {
            Kind::Peer => None,
            Kind::ForwardedFor { trusted_hops } => forwarded_for(parts, *trusted_hops),
            Kind::Header(name) => parts
                .headers
                .get_all(name)
                .iter()
                .next_back()
                .and_then(|value| parse_ip(value.to_str().ok()?)),
            Kind::Custom(key) => return (key(parts), false),
        };
        match vouched {
            Some(ip) => (Some(host_group(ip)), false),
            None => (peer_ip(parts).map(host_group), true),
        }
    }
}

impl Default for ClientKey {
    fn default() -> Self {
        Self::peer()
    }
}

impl fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Kind::Peer => f.write_str("ClientKey::peer()"),
            Kind::ForwardedFor { trusted_hops } => {
                write!(f, "ClientKey::forwarded_for({trusted_hops})")
            }
            Kind::Header(name) => write!(f, "ClientKey::header({name:?})"),
            Kind::Custom(_) => f.write_str("ClientKey::custom(..)"),
        }
    }
}

/// The peer's IP: from axum's `ConnectInfo<SocketAddr>`, or a `SocketAddr` or `IpAddr` extension
/// (a hyper server that inserts the peer's address itself).
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

/// The entry `trusted_hops` from the right across every `X-Forwarded-For` line, if there are that
/// many and it is an address.
fn forwarded_for(parts: &Parts, trusted_hops: usize) -> Option<IpAddr> {
    let mut entries = parts
        .headers
        .get_all("x-forwarded-for")
        .iter()
        .rev()
        .flat_map(|line| {
            // A line that is not text still counts its entries, so that nobody can hide one.
            String::from_utf8_lossy(line.as_bytes())
                .rsplit(',')
                .map(|entry| entry.trim().to_owned())
                .filter(|entry| !entry.is_empty())
                .collect::<Vec<_>>()
        });
    parse_ip(&entries.nth(trusted_hops - 1)?)
}

/// An address as proxies write it: `192.0.2.7`, `192.0.2.7:5678`, `2001:db8::1`,
/// `[2001:db8::1]:443`.
fn parse_ip(value: &str) -> Option<IpAddr> {
    let value = value.trim();
    value
        .parse::<IpAddr>()
        .ok()
        .or_else(|| value.parse::<SocketAddr>().ok().map(|addr| addr.ip()))
}

/// The host an address stands for: an IPv4 address as it is (an IPv4-mapped IPv6 address as its
/// IPv4 address), an IPv6 address as its /64.
pub(crate) fn host_group(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let [a, b, c, d, ..] = v6.segments();
                format!("{}/64", Ipv6Addr::new(a, b, c, d, 0, 0, 0, 0))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(peer: &str, forwarded: &[&str]) -> Parts {
        let (mut parts, ()) = http::Request::new(()).into_parts();
        parts.extensions.insert(peer.parse::<SocketAddr>().unwrap());
        for line in forwarded {
            parts
                .headers
                .append("x-forwarded-for", line.parse().unwrap());
        }
        parts
    }

    #[test]
    fn hosts_are_grouped_as_they_are_handed_out() {
        let group = |ip: &str| host_group(ip.parse().unwrap());
        assert_eq!(group("192.0.2.7"), "192.0.2.7");
        assert_eq!(group("::ffff:192.0.2.7"), "192.0.2.7");
        assert_eq!(group("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
        assert_eq!(group("2001:db8:1:2::ffff"), "2001:db8:1:2::/64");
        assert_ne!(group("2001:db8:1:3::1"), group("2001:db8:1:2::1"));
        assert_eq!(group("::1"), "::/64");
    }

    #[test]
    fn the_entry_the_nearest_trusted_proxy_wrote_is_read() {
        let one = ClientKey::forwarded_for(1);
        let two = ClientKey::forwarded_for(2);
        let key = |key: &ClientKey, forwarded: &[&str]| key.key(&parts("10.0.0.1:80", forwarded));
        // The client wrote the first entries; the proxy appended the last.
        assert_eq!(
            key(&one, &["6.6.6.6, 198.51.100.3"]).unwrap(),
            "198.51.100.3"
        );
        // Across repeated lines, in order.
        assert_eq!(
            key(&one, &["6.6.6.6", "198.51.100.3"]).unwrap(),
            "198.51.100.3"
        );
        assert_eq!(
            key(&two, &["6.6.6.6", "198.51.100.3, 10.0.0.9"]).unwrap(),
            "198.51.100.3"
        );
        // Ports and brackets, as some proxies write them.
        assert_eq!(key(&one, &["[2001:db8::1]:443"]).unwrap(), "2001:db8::/64");
        assert_eq!(key(&one, &["198.51.100.3:5678"]).unwrap(), "198.51.100.3");
        // Too few entries, junk where the address belongs, no header: the peer.
        assert_eq!(key(&two, &["198.51.100.3"]).unwrap(), "10.0.0.1");
        assert_eq!(key(&one, &["198.51.100.3, junk"]).unwrap(), "10.0.0.1");
        assert_eq!(key(&one, &[]).unwrap(), "10.0.0.1");
        assert_eq!(key(&one, &["198.51.100.3,,  ,"]).unwrap(), "198.51.100.3");
    }

    #[test]
    fn a_header_set_by_the_proxy_is_read_from_its_last_line() {
        let real_ip = ClientKey::header("x-real-ip");
        let mut request = parts("10.0.0.1:80", &[]);
        assert_eq!(real_ip.key(&request).unwrap(), "10.0.0.1");
        request
            .headers
            .append("x-real-ip", "6.6.6.6".parse().unwrap());
        request
            .headers
            .append("x-real-ip", "::ffff:198.51.100.3".parse().unwrap());
        assert_eq!(real_ip.key(&request).unwrap(), "198.51.100.3");
        request
            .headers
            .append("x-real-ip", "not an address".parse().unwrap());
        assert_eq!(real_ip.key(&request).unwrap(), "10.0.0.1");
    }
}
