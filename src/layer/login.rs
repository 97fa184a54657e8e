//! Pages and login hygiene: what a page request is and the redirects it gets; a code's URL is
//! cleaned once it has logged in, and a code arriving on a navigation from another site logs
//! nobody in.

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderValue, Method, Response, StatusCode, Uri, header};

/// Whether a code on this request must log nobody in because the request comes from elsewhere
/// (login CSRF: the visitor would be signed in as whoever the code belongs to), by its
/// `Sec-Fetch-Site`:
/// - `same-origin` and `none` (a typed URL, a bookmark), or no `Sec-Fetch-*` headers at all: from
///   here.
/// - `same-site`, a sibling subdomain (a user-content host, a forgotten staging app), unless
///   `allow_same_site`: from elsewhere, whatever the request (a navigation, an `<img>`, a
///   `fetch`), since browsers keep a `SameSite=Lax` cookie set by any same-site response. The
///   `__Host-` cookie exists to keep siblings out.
/// - `cross-site` (or anything else): from elsewhere for navigations (`Sec-Fetch-Mode: navigate`
///   or `nested-navigate`), where browsers keep the cookie. A cross-site `fetch` or subresource is
///   not refused: browsers drop the `SameSite=Lax` cookie its response sets, and an API on another
///   origin may be called with codes.
pub(crate) fn login_from_elsewhere(parts: &Parts, allow_same_site: bool) -> bool {
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .map(|value| value.as_bytes().trim_ascii())
    };
    let Some(site) = header("sec-fetch-site") else {
        return false;
    };
    if site.eq_ignore_ascii_case(b"same-origin") || site.eq_ignore_ascii_case(b"none") {
        return false;
    }
    if site.eq_ignore_ascii_case(b"same-site") {
        return !allow_same_site;
    }
    header("sec-fetch-mode").is_some_and(|mode| {
        mode.eq_ignore_ascii_case(b"navigate") || mode.eq_ignore_ascii_case(b"nested-navigate")
    })
}

/// The URL of a page without its code.
pub(crate) struct CleanUrl;

impl CleanUrl {
    /// `uri`'s path and query without the parameters named `names` (the other parameters stay as
    /// they were written), as a `Location`.
    pub(crate) fn without<'a>(
        uri: &Uri,
        names: impl Iterator<Item = &'a str> + Clone,
    ) -> Option<HeaderValue> {
        let query = uri.query().unwrap_or_default();
        let kept: Vec<&str> = query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .filter(|pair| {
                let key = form_urlencoded::parse(pair.as_bytes())
                    .next()
                    .map(|(key, _)| key);
                !key.is_some_and(|key| names.clone().any(|name| name == key))
            })
            .collect();
        let mut location = same_host_path(uri.path());
        if !kept.is_empty() {
            location.push('?');
            location.push_str(&kept.join("&"));
        }
        HeaderValue::try_from(location).ok()
    }
}

/// `path` as a `Location` that stays on this host: one `/`, then the path without the slashes,
/// backslashes (browsers read `\` as `/`) and their percent-encodings it began with. A path such as
/// `//evil.example/` would otherwise be a network-path reference to another host; here it becomes
/// `/evil.example/`.
pub(crate) fn same_host_path(path: &str) -> String {
    let mut rest = path;
    loop {
        let before = rest.len();
        rest = rest.trim_start_matches(['/', '\\']);
        for encoded in ["%2f", "%5c"] {
            if rest
                .get(..3)
                .is_some_and(|start| start.eq_ignore_ascii_case(encoded))
            {
                rest = &rest[3..];
            }
        }
        if rest.len() == before {
            break;
        }
    }
    format!("/{rest}")
}

/// Whether the request is for a page: a `GET` or `HEAD` whose client asks for HTML, as browsers do
/// for every navigation.
pub(crate) fn is_page_request(parts: &Parts) -> bool {
    (parts.method == Method::GET || parts.method == Method::HEAD) && accepts_html(parts)
}

/// Whether the client asks for HTML.
pub(crate) fn accepts_html(parts: &Parts) -> bool {
    parts.headers.get_all(header::ACCEPT).iter().any(|accept| {
        accept
            .as_bytes()
            .windows(b"text/html".len())
            .any(|window| window.eq_ignore_ascii_case(b"text/html"))
    })
}

/// A redirect; DingTalk is not called.
pub(crate) fn redirect(status: StatusCode, location: HeaderValue) -> Response<Bytes> {
    let mut response = Response::new(Bytes::new());
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::LOCATION, location);
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clean(uri: &str) -> String {
        let uri: Uri = uri.parse().unwrap();
        let names = ["code"];
        CleanUrl::without(&uri, names.iter().copied())
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned()
    }

    #[test]
    fn only_the_code_leaves_the_url() {
        assert_eq!(clean("/?code=abc"), "/");
        assert_eq!(clean("/page?tab=2&code=abc&x=a%20b"), "/page?tab=2&x=a%20b");
        assert_eq!(clean("/page?c%6fde=abc&corpId=ding1"), "/page?corpId=ding1");
        assert_eq!(clean("/a/b?code=1&code=1"), "/a/b");
    }

    #[test]
    fn a_location_never_leaves_the_host() {
        for (path, expected) in [
            ("/", "/"),
            ("/a//b", "/a//b"),
            ("//evil.example/", "/evil.example/"),
            ("/\\evil.example/", "/evil.example/"),
            ("\\/evil.example", "/evil.example"),
            ("/%2F%2Fevil.example/", "/evil.example/"),
            ("/%5c%2f/%2Fevil.example", "/evil.example"),
            ("///", "/"),
        ] {
            assert_eq!(same_host_path(path), expected, "{path}");
        }
    }
}
