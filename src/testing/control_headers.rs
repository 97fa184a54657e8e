//! The headers every answer of the control surface carries: any origin may call it (a front end's
//! dev server fetching codes), a browser's preflight passes, nobody caches it (codes), and a 405
//! says which method is allowed.

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Response, StatusCode};
use http_body_util::Full;

use super::control::Control;

/// Chrome asks this of a preflight before a public page may reach a private address (loopback).
const REQUEST_PRIVATE_NETWORK: &str = "access-control-request-private-network";
const ALLOW_PRIVATE_NETWORK: &str = "access-control-allow-private-network";

/// Adds the headers to `response`, the answer to `control` called with `method` and `request`'s
/// headers.
pub(super) fn add(
    control: Control,
    method: &Method,
    request: &HeaderMap,
    response: &mut Response<Full<Bytes>>,
) {
    let status = response.status();
    let allowed = control
        .method()
        .and_then(|allowed| HeaderValue::from_str(allowed.as_str()).ok());
    let headers = response.headers_mut();
    if let Some(allowed) = allowed {
        if status == StatusCode::METHOD_NOT_ALLOWED {
            headers.insert(header::ALLOW, allowed);
        } else if method == Method::OPTIONS && status.is_success() {
            // Without these a browser never sends the POST with a JSON body it asked about.
            headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, allowed);
            if let Some(asked) = request.get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
                headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, asked.clone());
            }
            if request
                .get(REQUEST_PRIVATE_NETWORK)
                .is_some_and(|v| v == "true")
            {
                headers.insert(ALLOW_PRIVATE_NETWORK, HeaderValue::from_static("true"));
            }
        }
    }
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}
