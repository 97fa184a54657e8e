//! Pages and login hygiene: what a page request is and the redirects it gets; a code's URL is
//! cleaned once it has logged in, and a code arriving on a navigation from another site logs
//! nobody in.

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderValue, Method, Response, StatusCode, Uri, header};

/// Whether the request is a navigation from elsewhere (`Sec-Fetch-Mode: navigate` with a
/// `Sec-Fetch-Site` other than `same-origin` or `none`): a link or a form on another site, or on a
/// sibling subdomain (`same-site`, unless `allow_same_site`). A code on one would sign the visitor
/// in as whoever the code belongs to (login CSRF); a sibling subdomain is exactly what the
/// `__Host-` cookie keeps out. Browsers that send no `Sec-Fetch-*` headers, typed URLs and
/// bookmarks (`none`) and the app's own pages (`same-origin`) are not.
pub(crate) fn navigation_from_elsewhere(parts: &Parts, allow_same_site: bool) -> bool {
    let header = |name: &str| parts.headers.get(name).map(HeaderValue::as_bytes);
    let navigate = header("sec-fetch-mode").is_some_and(|mode| {
        mode.eq_ignore_ascii_case(b"navigate") || mode.eq_ignore_ascii_case(b"nested-navigate")
    });
    let Some(site) = header("sec-fetch-site").filter(|_| navigate) else {
        return false;
    };
    let trusted = site.eq_ignore_ascii_case(b"same-origin")
        || site.eq_ignore_ascii_case(b"none")
        || (allow_same_site && site.eq_ignore_ascii_case(b"same-site"));
    !trusted
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
