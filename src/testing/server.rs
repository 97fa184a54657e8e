//! The fake DingTalk's HTTP side: a hyper server on loopback that routes each call to the state.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use super::Shared;
use super::answers::{Answer, fault_answer};
use super::call::Call;
use super::control::{self, Control};
use super::control_headers;
use super::fault::{Endpoint, Fault};
use super::login_page::Page;

/// Bodies bigger than this are refused; DingTalk's requests are a few hundred bytes.
const MAX_BODY: usize = 64 * 1024;

/// Accepts connections until the task is aborted; aborting it drops the connections too.
pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        let Ok((stream, _peer)) = listener.accept().await else {
            continue;
        };
        let shared = shared.clone();
        connections.spawn(async move {
            let service = service_fn(move |request| handle(shared.clone(), request));
            // A closed connection (or an injected close) ends here; nothing to report.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
        // Reap finished connections so a long test does not accumulate them.
        while connections.try_join_next().is_some() {}
    }
}

/// An error from the service makes hyper drop the connection without answering.
#[derive(Debug)]
struct CloseConnection;

impl std::fmt::Display for CloseConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("injected: connection closed")
    }
}

impl std::error::Error for CloseConnection {}

/// The endpoint of a request, and the corp id its path carries, if any.
fn route(method: &Method, path: &str) -> Option<(Endpoint, Option<String>)> {
    let endpoint = match (method, path) {
        (&Method::POST, "/v1.0/oauth2/accessToken") => Endpoint::AccessToken,
        (&Method::POST, "/v1.0/oauth2/corpAccessToken") => Endpoint::CorpAccessToken,
        (&Method::GET, "/gettoken") => Endpoint::GetToken,
        (&Method::POST, "/topapi/v2/user/getuserinfo") => Endpoint::GetUserInfo,
        (&Method::GET, "/oauth2/auth") => Endpoint::LoginPage,
        (&Method::POST, "/v1.0/oauth2/userAccessToken") => Endpoint::UserAccessToken,
        (&Method::GET, "/v1.0/contact/users/me") => Endpoint::UsersMe,
        (&Method::POST, "/topapi/user/getbyunionid") => Endpoint::GetByUnionId,
        (&Method::POST, "/topapi/v2/user/get") => Endpoint::UserGet,
        (&Method::POST, "/topapi/user/listadmin") => Endpoint::ListAdmin,
        (&Method::POST, "/topapi/v2/department/listparentbyuser") => Endpoint::ListParentByUser,
        (&Method::GET, "/jsapi/requestAuthCode") => Endpoint::JsApiCode,
        (&Method::POST, _) => {
            let corp = path
                .strip_prefix("/v1.0/oauth2/")?
                .strip_suffix("/token")
                .filter(|corp| !corp.is_empty() && !corp.contains('/'))?;
            return Some((Endpoint::CorpToken, Some(corp.to_owned())));
        }
        _ => return None,
    };
    Some((endpoint, None))
}

fn query_pairs(uri: &http::Uri) -> Vec<(String, String)> {
    uri.query()
        .map(|query| {
            form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default()
}

async fn handle(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, CloseConnection> {
    // The login page's helpers and the control surface are the fake's own, not DingTalk APIs: not
    // counted, never faulty.
    if let Some(control) = Control::route(request.uri().path()) {
        return control_call(&shared, control, request).await;
    }
    if let Some(page) = Page::route(request.method(), request.uri().path()) {
        let query = query_pairs(request.uri());
        return respond(shared.state().page(page, &query));
    }
    let Some((endpoint, path_corp)) = route(request.method(), request.uri().path()) else {
        return Ok(unknown_path(request.uri().path()));
    };
    shared.count(endpoint);
    let (parts, body) = request.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            return Ok(text(
                StatusCode::PAYLOAD_TOO_LARGE,
                "text/plain",
                "too large",
            ));
        }
    };
    let call = Call {
        endpoint,
        path_corp,
        query: query_pairs(&parts.uri),
        headers: parts.headers,
        body,
    };
    let fault = shared.state().faults.take(endpoint);
    // DingTalk does its work (and spends a code) the moment a call arrives; only then may the
    // answer be late, and it is lost if the client has gone by the time it is sent.
    let (delay, answer) = match fault {
        Some(Fault::Latency(delay)) => (delay, shared.state().answer(&call)),
        Some(fault) => {
            shared.count_fault();
            (Duration::ZERO, fault_answer(&fault))
        }
        None => (Duration::ZERO, shared.state().answer(&call)),
    };
    let watch = AbandonWatch::new(&shared);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    watch.answered();
    let mut response = respond(answer)?;
    if endpoint == Endpoint::JsApiCode {
        // The fake JSAPI script fetches codes from the page's origin, not the fake's.
        let headers = response.headers_mut();
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    Ok(response)
}

/// A call of the control surface: its answer, with the headers every control answer carries.
async fn control_call(
    shared: &Shared,
    control: Control,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, CloseConnection> {
    let (parts, body) = request.into_parts();
    let answer = match Limited::new(body, MAX_BODY).collect().await {
        Ok(body) => control.answer(shared, &parts.method, parts.uri.query(), &body.to_bytes()),
        Err(_) => control::too_large(MAX_BODY),
    };
    let mut response = respond(answer)?;
    control_headers::add(control, &parts.method, &parts.headers, &mut response);
    Ok(response)
}

fn respond(answer: Answer) -> Result<Response<Full<Bytes>>, CloseConnection> {
    // Login pages and redirects carry one-time codes: never cached.
    let (mut response, no_store) = match answer {
        Answer::Json(status, value) => (text(status, "application/json", value.to_string()), false),
        Answer::Text(status, content_type, body) => (text(status, content_type, body), false),
        Answer::Html(status, page) => (text(status, "text/html; charset=utf-8", page), true),
        Answer::Redirect(location) => {
            let mut response = text(StatusCode::FOUND, "text/plain", "");
            let location =
                HeaderValue::try_from(location).unwrap_or_else(|_| HeaderValue::from_static("/"));
            response.headers_mut().insert(header::LOCATION, location);
            (response, true)
        }
        Answer::Close => return Err(CloseConnection),
    };
    if no_store {
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    Ok(response)
}

/// Counts a call whose client went away before its answer: hyper drops the handler's future when
/// the connection closes.
struct AbandonWatch<'a> {
    shared: &'a Shared,
    answered: bool,
}

impl<'a> AbandonWatch<'a> {
    fn new(shared: &'a Shared) -> Self {
        Self {
            shared,
            answered: false,
        }
    }

    fn answered(mut self) {
        self.answered = true;
    }
}

impl Drop for AbandonWatch<'_> {
    fn drop(&mut self) {
        if !self.answered {
            self.shared.count_abandoned();
        }
    }
}

/// What DingTalk answers on a path it does not serve: the legacy host says errcode 22 with HTTP
/// 200, the new host a JSON 404.
fn unknown_path(path: &str) -> Response<Full<Bytes>> {
    if path.starts_with("/v1.0/") {
        let body = serde_json::json!({
            "code": "InvalidAction.NotFound",
            "message": "Specified api is not found, please check your url and method.",
            "requestid": "mock",
        });
        return text(StatusCode::NOT_FOUND, "application/json", body.to_string());
    }
    let api_name = format!(
        "dingtalk.oapi{}",
        path.replace("/topapi", "").replace('/', ".")
    );
    let body = serde_json::json!({
        "errcode": 22,
        "sub_msg": format!("不合法ApiName，ApiName = {api_name}"),
        "errmsg": format!("Invalid method[submsg=不合法ApiName，ApiName = {api_name}]"),
        "request_id": "mock",
    });
    text(StatusCode::OK, "application/json", body.to_string())
}

fn text(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// Binds the fake DingTalk to `port` of loopback, a free one for 0.
pub(crate) async fn bind(port: u16) -> std::io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}
