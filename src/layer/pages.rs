//! The HTML the layer answers browsers with itself: a page that continues to a URL by script
//! (not a redirect: a redirect chain that began on another site stays cross-site to its end), and
//! the page of a failed web login.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};

use crate::error::AuthError;

/// `value` safe inside HTML text and quoted attributes.
fn html_escape(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// `value` as a JavaScript string literal that cannot end the `<script>` it stands in.
fn script_string(value: &str) -> String {
    serde_json::Value::from(value)
        .to_string()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

fn html_response(status: StatusCode, body: String) -> Response<Bytes> {
    let mut response = Response::new(Bytes::from(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// `200`: a page that goes on to `location` by script, as if the user had followed a link on
/// this site, so that the next request is this site's own (`Sec-Fetch-Site: same-origin`), and no
/// redirect chain that began elsewhere can loop. Without script, a link.
pub(crate) fn continue_page(location: &HeaderValue) -> Response<Bytes> {
    let location = String::from_utf8_lossy(location.as_bytes());
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\">\
         <meta name=\"referrer\" content=\"no-referrer\"><title>Signing in</title></head>\
         <body><p>Signing in… <a id=\"continue\" href=\"{href}\">Continue</a></p>\
         <script>location.replace({script});</script></body></html>",
        href = html_escape(&location),
        script = script_string(&location),
    );
    html_response(StatusCode::OK, body)
}

/// A refusal of a code that came from another site: where it would redirect (to the login page,
/// or DingTalk's), a page that continues there by script instead, with the same cookies. A
/// redirect chain that began on another site stays cross-site to its end, so a redirect whose
/// login comes back with a code would be refused again, round after round.
pub(crate) fn continue_by_script(refusal: Response<Bytes>) -> Response<Bytes> {
    let Some(location) = refusal.headers().get(header::LOCATION) else {
        return refusal;
    };
    let mut page = continue_page(location);
    for cookie in refusal.headers().get_all(header::SET_COOKIE) {
        page.headers_mut()
            .append(header::SET_COOKIE, cookie.clone());
    }
    page
}

/// The page of a web login that failed: its status, what happened, and a way to try again.
pub(crate) fn error_page(error: &AuthError) -> Response<Bytes> {
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{status}</title></head>\
         <body><h1>{title}</h1><p id=\"message\">{message}</p><p id=\"error\">{kind}</p>\
         <p><a id=\"again\" href=\"/\">Sign in again</a></p></body></html>",
        status = error.status().as_u16(),
        title = match error.status() {
            StatusCode::FORBIDDEN => "Not allowed",
            StatusCode::UNAUTHORIZED => "Not signed in",
            StatusCode::BAD_REQUEST => "Bad sign-in request",
            _ => "Sign-in failed",
        },
        message = html_escape(error.message()),
        kind = error.kind(),
    );
    let mut response = html_response(error.status(), body);
    if let Some(wait) = error.retry_after() {
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_in_the_url_escapes_its_place() {
        let page = continue_page(&HeaderValue::from_static(
            "/a?x=</script><script>alert(1)</script>&y=\"'",
        ));
        let body = String::from_utf8(page.body().to_vec()).unwrap();
        assert!(!body.contains("</script><script>alert"));
        assert!(body.contains("href=\"/a?x=&lt;/script&gt;"));
        assert_eq!(body.matches("<script>").count(), 1);
    }
}
