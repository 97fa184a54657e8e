//! Where DingTalk's web login comes back ([`WebLogin`]), which requests are its callback, and
//! which come from inside the DingTalk client. The answers themselves are in `web_login.rs`.

use http::request::Parts;
use http::{Method, header};

/// Where DingTalk's web login comes back.
pub(crate) struct WebLogin {
    path: Box<str>,
    /// The callback as configured, when it is an absolute URL; else made from the request's host.
    url: Option<Box<str>>,
}

impl std::fmt::Debug for WebLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebLogin")
            .field("path", &self.path)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl WebLogin {
    /// `callback`: an absolute path (`/auth/dingtalk/callback`) or URL
    /// (`https://app.example.com/auth/dingtalk/callback`) of visible ASCII, without query.
    pub(crate) fn new(callback: &str) -> Option<Self> {
        let visible = !callback.is_empty()
            && callback
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b'?' && b != b'#');
        if !visible {
            return None;
        }
        let (path, url) = if callback.starts_with('/') {
            (callback.to_owned(), None)
        } else {
            let parsed = reqwest::Url::parse(callback).ok()?;
            if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
                return None;
            }
            (parsed.path().to_owned(), Some(callback.into()))
        };
        if path.starts_with("//") {
            return None;
        }
        Some(Self {
            path: path.into(),
            url,
        })
    }

    /// The callback's path.
    #[cfg(feature = "axum")]
    pub(crate) fn path(&self) -> &str {
        &self.path
    }

    /// Whether the request is DingTalk's browser coming back.
    pub(crate) fn is_callback(&self, parts: &Parts) -> bool {
        (parts.method == Method::GET || parts.method == Method::HEAD)
            && parts.uri.path() == &*self.path
    }

    /// The callback's absolute URL: as configured, or on the request's host (`http` for
    /// loopback hosts, `https` for every other).
    pub(crate) fn redirect_uri(&self, parts: &Parts) -> Option<String> {
        if let Some(url) = &self.url {
            return Some(url.to_string());
        }
        let host = match parts.uri.authority() {
            Some(authority) => authority.as_str(),
            None => parts.headers.get(header::HOST)?.to_str().ok()?,
        };
        let host_ok = !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b));
        if !host_ok {
            return None;
        }
        let name = host.rsplit_once(':').map_or(host, |(name, port)| {
            if port.bytes().all(|b| b.is_ascii_digit()) {
                name
            } else {
                host
            }
        });
        let loopback = matches!(name, "localhost" | "127.0.0.1" | "[::1]");
        let scheme = if loopback { "http" } else { "https" };
        Some(format!("{scheme}://{host}{}", self.path))
    }
}

/// Whether the request comes from inside the DingTalk client, whose pages log in silently with
/// the JSAPI instead.
pub(crate) fn in_dingtalk(parts: &Parts) -> bool {
    parts
        .headers
        .get_all(header::USER_AGENT)
        .iter()
        .any(|agent| {
            agent
                .as_bytes()
                .windows(b"dingtalk".len())
                .any(|window| window.eq_ignore_ascii_case(b"dingtalk"))
        })
}
