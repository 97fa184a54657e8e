//! Shared test plumbing: a fake DingTalk with known users, and an axum app behind the layer served
//! on a loopback port, reached with a real HTTP client.
#![allow(dead_code)]

pub mod budget;
pub mod budget_attack;
pub mod corps;
pub mod guards;
pub mod hostile_redis;
pub mod processes;
pub mod servers;
pub mod store;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::routing::get;
use axum::{Extension, Json, Router};
use tokio::task::JoinHandle;
use tower_dingtalk_auth::testing::{MOCK_APP_KEY, MockDingTalk};

pub const MOCK_KEY: &str = MOCK_APP_KEY;
use tower_dingtalk_auth::{
    AdminLevel, AuthenticatedDingTalkUser, DingTalkAuthLayer, DingTalkAuthLayerBuilder,
    DingTalkClientBuilder,
};

/// The users every test DingTalk knows, one per admin level plus an unknown level.
pub fn known_users() -> Vec<AuthenticatedDingTalkUser> {
    vec![
        AuthenticatedDingTalkUser::builder("staff01", "Li Si")
            .unionid("union-staff01")
            .device_id("device-staff01")
            .build(),
        AuthenticatedDingTalkUser::builder("boss01", "Wang Wu")
            .unionid("union-boss01")
            .associated_unionid("assoc-boss01")
            .device_id("device-boss01")
            .admin_level(AdminLevel::Boss)
            .build(),
        AuthenticatedDingTalkUser::builder("super01", "Zhang San")
            .unionid("union-super01")
            .associated_unionid("assoc-super01")
            .device_id("device-super01")
            .admin_level(AdminLevel::SuperAdmin)
            .build(),
        AuthenticatedDingTalkUser::builder("sub01", "Zhao Liu")
            .unionid("union-sub01")
            .device_id("device-sub01")
            .admin_level(AdminLevel::SubAdmin)
            .build(),
        AuthenticatedDingTalkUser::builder("odd01", "Qian Qi")
            .unionid("union-odd01")
            .device_id("device-odd01")
            .admin_level(AdminLevel::Unknown(7))
            .admin(false)
            .build(),
    ]
}

pub async fn dingtalk() -> MockDingTalk {
    let dingtalk = MockDingTalk::start().await;
    for user in known_users() {
        dingtalk.add_user(user);
    }
    dingtalk
}

/// A layer builder with a client pointed at `dingtalk`.
pub fn layer_for(dingtalk: &MockDingTalk) -> DingTalkAuthLayerBuilder {
    dingtalk.layer_builder()
}

/// A client builder pointed at `dingtalk`: its app and its base URL.
pub fn client_for(dingtalk: &MockDingTalk) -> DingTalkClientBuilder {
    dingtalk.client_builder()
}

/// An axum app behind the layer, listening on a loopback port.
pub struct TestApp {
    pub dingtalk: MockDingTalk,
    pub layer: DingTalkAuthLayer,
    pub addr: SocketAddr,
    /// How many times a handler ran: the inner service never runs for a rejected request.
    pub handler_runs: Arc<AtomicU64>,
    pub http: reqwest::Client,
    server: JoinHandle<()>,
}

impl TestApp {
    pub async fn start() -> Self {
        Self::with(dingtalk().await, |builder| builder).await
    }

    /// The app with the layer configured by `configure` over a client pointed at `dingtalk`.
    pub async fn with(
        dingtalk: MockDingTalk,
        configure: impl FnOnce(DingTalkAuthLayerBuilder) -> DingTalkAuthLayerBuilder,
    ) -> Self {
        Self::with_client(dingtalk, |client| client, configure).await
    }

    /// The app with the client configured by `configure_client` (from [`client_for`]) and the
    /// layer over it by `configure_layer`.
    pub async fn with_client(
        dingtalk: MockDingTalk,
        configure_client: impl FnOnce(DingTalkClientBuilder) -> DingTalkClientBuilder,
        configure_layer: impl FnOnce(DingTalkAuthLayerBuilder) -> DingTalkAuthLayerBuilder,
    ) -> Self {
        let client = configure_client(client_for(&dingtalk))
            .build()
            .expect("valid client");
        let layer = configure_layer(DingTalkAuthLayer::builder().client(client))
            .build()
            .expect("valid layer");
        let handler_runs = Arc::new(AtomicU64::new(0));
        let app = routes(handler_runs.clone()).layer(layer.clone());
        let (addr, server) = serve(app).await;
        Self {
            dingtalk,
            layer,
            addr,
            handler_runs,
            http: reqwest::Client::new(),
            server,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// GET `path` with the code in the default header.
    pub async fn get_with_code(&self, path: &str, code: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .header("x-dingtalk-code", code)
            .send()
            .await
            .expect("the app answers")
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .send()
            .await
            .expect("the app answers")
    }

    pub fn handler_runs(&self) -> u64 {
        self.handler_runs.load(Ordering::SeqCst)
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// `/me` (required user, as JSON), `/maybe` (optional user), `/ext` (`Extension`).
pub fn routes(handler_runs: Arc<AtomicU64>) -> Router {
    let runs = move || {
        handler_runs.fetch_add(1, Ordering::SeqCst);
    };
    let (me_runs, maybe_runs, ext_runs) = (runs.clone(), runs.clone(), runs);
    Router::new()
        .route(
            "/me",
            get(move |user: AuthenticatedDingTalkUser| async move {
                me_runs();
                Json(user)
            }),
        )
        .route(
            "/maybe",
            get(move |user: Option<AuthenticatedDingTalkUser>| async move {
                maybe_runs();
                match user {
                    Some(user) => format!("user {}", user.userid()),
                    None => "anonymous".to_owned(),
                }
            }),
        )
        .route(
            "/ext",
            get(
                move |Extension(user): Extension<AuthenticatedDingTalkUser>| async move {
                    ext_runs();
                    format!("ext {}", user.userid())
                },
            ),
        )
}

/// Serves `app` with axum's `ConnectInfo<SocketAddr>`, as the README asks: the layer then tells
/// clients apart by their address. Clients bind to other loopback addresses (127.0.0.2, ...) with
/// [`client_from`] to be different clients.
pub async fn serve_with_peers(app: Router) -> (SocketAddr, JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let app = app.into_make_service_with_connect_info::<SocketAddr>();
        axum::serve(listener, app).await.unwrap();
    });
    (addr, server)
}

/// An HTTP client whose connections come from `127.0.0.<last>`: another client, to the layer.
pub fn client_from(last: u8) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, last]))
        .build()
        .expect("a client")
}

/// A token the fake knows, fetched by hand from its token endpoint: the one the layer would get.
pub async fn known_token(dingtalk: &MockDingTalk) -> String {
    let answer: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/v1.0/oauth2/accessToken", dingtalk.base_url()))
        .json(&serde_json::json!({
            "appKey": dingtalk.app_key(), "appSecret": dingtalk.app_secret()
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    answer["accessToken"].as_str().unwrap().to_owned()
}

/// Serves a tower service on a plain hyper 1 server (hyper-util), with hyper's `Incoming` body.
pub async fn serve_hyper<S, B>(service: S) -> (SocketAddr, JoinHandle<()>)
where
    S: tower::Service<http::Request<hyper::body::Incoming>, Response = http::Response<B>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::server::conn::auto;
    use hyper_util::service::TowerToHyperService;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let service = TowerToHyperService::new(service.clone());
            tokio::spawn(async move {
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, server)
}

pub async fn serve(app: Router) -> (SocketAddr, JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (addr, server)
}

/// What a browser sends as `Accept` for a page.
pub const PAGE_ACCEPT: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

/// Sends `request` as written, byte for byte (clients normalise paths such as `/\x`), and reads
/// the answer's status (0 for none within 5 s) and `Location` (or where a page that continues by
/// script leads).
pub async fn raw_request(addr: SocketAddr, request: &str) -> (u16, Option<String>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let read = stream.read_to_end(&mut answer);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), read).await;
    let answer = String::from_utf8_lossy(&answer);
    let head = answer.split("\r\n\r\n").next().unwrap_or_default();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|status| status.parse().ok())
        .unwrap_or(0);
    let location = head
        .lines()
        .find_map(|line| line.strip_prefix("location: "))
        .map(str::to_owned)
        .or_else(|| continue_target(&answer));
    (status, location)
}

/// Where a page that continues by script (the layer's answer to a code from another site) leads:
/// its `Continue` link, unescaped.
pub fn continue_target(page: &str) -> Option<String> {
    let start = page.find(r#"id="continue" href=""#)? + r#"id="continue" href=""#.len();
    let end = start + page[start..].find('"')?;
    Some(
        page[start..end]
            .replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&"),
    )
}

/// `GET <target>` as a page navigation, sent as written, with `extra` header lines (each ending in
/// `\r\n`): the status and the `Location`.
pub async fn raw_page_get(addr: SocketAddr, target: &str, extra: &str) -> (u16, Option<String>) {
    let request = format!(
        "GET {target} HTTP/1.1\r\nhost: app.example.com\r\naccept: {PAGE_ACCEPT}\r\n{extra}connection: close\r\n\r\n"
    );
    raw_request(addr, &request).await
}

/// The JSON body of a response.
pub async fn json(response: reqwest::Response) -> serde_json::Value {
    let text = response.text().await.expect("a body");
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
}

/// Asserts a rejection: its status, its `error`, a message, and no secret in the body.
pub async fn assert_rejection(
    response: reqwest::Response,
    status: u16,
    error: &str,
    secrets: &[&str],
) -> reqwest::header::HeaderMap {
    assert_eq!(response.status().as_u16(), status, "status");
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], "application/json");
    let text = response.text().await.unwrap();
    for secret in secrets {
        assert!(!text.contains(secret), "the body leaks a secret: {text}");
    }
    let body: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["error"], error, "body: {body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "a message: {body}"
    );
    assert_eq!(
        body.as_object().unwrap().len(),
        2,
        "only error and message: {body}"
    );
    headers
}

/// Captures everything logged at TRACE level on this thread while the guard lives.
/// Use with a current-thread runtime so the layer's tasks log on the same thread.
pub fn capture_logs() -> (tracing::subscriber::DefaultGuard, LogBuffer) {
    let buffer = LogBuffer::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(buffer.clone())
        .finish();
    (tracing::subscriber::set_default(subscriber), buffer)
}

#[derive(Clone, Default)]
pub struct LogBuffer(Arc<std::sync::Mutex<Vec<u8>>>);

impl LogBuffer {
    pub fn contents(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for LogBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuffer {
    type Writer = LogBuffer;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}
