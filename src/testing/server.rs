//! The fake DingTalk's HTTP side: a hyper server on loopback that routes each call to the state.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use super::Shared;
use super::fault::{Endpoint, Fault};
use super::state::{Answer, Call, fault_answer};

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

async fn handle(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, CloseConnection> {
    let Some((endpoint, path_corp)) = route(request.method(), request.uri().path()) else {
        return Ok(text(StatusCode::NOT_FOUND, "text/plain", "not found"));
    };
    shared.count(endpoint);
    let query = request
        .uri()
        .query()
        .map(|query| {
            form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    let body = match Limited::new(request.into_body(), MAX_BODY).collect().await {
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
        query,
        body,
    };
    let fault = shared.state().faults.take(endpoint);
    let answer = match fault {
        Some(Fault::Latency(delay)) => {
            tokio::time::sleep(delay).await;
            shared.state().answer(&call)
        }
        Some(fault) => {
            shared.count_fault();
            fault_answer(&fault)
        }
        None => shared.state().answer(&call),
    };
    match answer {
        Answer::Json(status, value) => Ok(text(status, "application/json", value.to_string())),
        Answer::Text(status, content_type, body) => Ok(text(status, content_type, body)),
        Answer::Close => Err(CloseConnection),
    }
}

fn text(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    response
}

/// Binds the fake DingTalk to a free loopback port.
pub(crate) async fn bind() -> std::io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}
