//! The layer in front of a plain hyper 1 server (through hyper-util), no axum, against the
//! built-in fake DingTalk.
//!
//! ```sh
//! cargo run --example hyper            # listens on 127.0.0.1:3000
//! PORT=8080 cargo run --example hyper  # another port
//! ```
//!
//! It prints `curl` commands with fresh codes. The layer also keeps a session cookie, and
//! `/sign-out` clears it with the layer's [`Sessions::sign_out_cookie`]: sessions need no
//! framework.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::{ServiceBuilder, ServiceExt};
use tower_dingtalk_auth::testing::MockDingTalk;
use tower_dingtalk_auth::{
    AdminLevel, AuthenticatedDingTalkUser, DingTalkAuthLayer, DingTalkClient, SessionConfig,
    SessionKey, Sessions,
};

/// The application: `GET /` greets, `GET /me` is the user as JSON, `POST /sign-out` ends the
/// session. The layer has already put the user on every request that reaches it.
async fn handle(
    request: Request<Incoming>,
    sessions: Option<Sessions>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let user = request
        .extensions()
        .get::<AuthenticatedDingTalkUser>()
        .expect("the layer put the user here")
        .clone();
    let response = match (request.method(), request.uri().path()) {
        (&Method::GET, "/") => text(
            StatusCode::OK,
            format!("你好 {} ({:?})\n", user.name(), user.admin_level()),
        ),
        (&Method::GET, "/me") => {
            let mut response = text(StatusCode::OK, serde_json::to_string(&user).unwrap());
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("application/json"),
            );
            response
        }
        (&Method::POST, "/sign-out") => {
            let mut response = text(StatusCode::OK, format!("再见 {}\n", user.name()));
            if let Some(sessions) = &sessions {
                response
                    .headers_mut()
                    .insert(header::SET_COOKIE, sessions.sign_out_cookie());
            }
            response
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n".to_owned()),
    };
    Ok(response)
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
}

/// Serves the application behind `layer` on `listener`, one task per connection, until the task
/// running it is dropped.
pub async fn serve(listener: TcpListener, layer: DingTalkAuthLayer) -> std::io::Result<()> {
    let sessions = layer.sessions();
    let service = ServiceBuilder::new()
        .layer(layer)
        .service(tower::service_fn(move |request| {
            handle(request, sessions.clone())
        }));
    loop {
        let (stream, peer) = listener.accept().await?;
        // The peer's address tells the layer's fair queue one client from another.
        let service = service
            .clone()
            .map_request(move |mut request: Request<Incoming>| {
                request.extensions_mut().insert(peer);
                request
            });
        let service = TowerToHyperService::new(service);
        tokio::spawn(async move {
            let connection = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
            if let Err(error) = connection {
                tracing::debug!(%error, "connection ended with an error");
            }
        });
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,tower_dingtalk_auth=debug".into()),
        )
        .init();
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3000);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));

    let dingtalk = MockDingTalk::start().await;
    dingtalk.add_user(
        AuthenticatedDingTalkUser::builder("manager4220", "Zhang San")
            .admin_level(AdminLevel::SuperAdmin)
            .build(),
    );
    dingtalk.add_user(AuthenticatedDingTalkUser::builder("staff1024", "Li Si").build());
    let client = DingTalkClient::builder()
        .internal_app(dingtalk.app_key(), dingtalk.app_secret())
        .base_url(dingtalk.base_url())
        .build()?;
    let layer = DingTalkAuthLayer::builder()
        .client(client)
        // A random key: sessions last as long as this process. `secure(false)` because the demo
        // speaks plain HTTP.
        .session(SessionConfig::new(SessionKey::generate()).secure(false))
        .build()?;
    let listener = TcpListener::bind(addr).await?;

    println!("\nA plain hyper server at http://{addr}, behind the layer, with a fake DingTalk.\n");
    println!("An administrator, code in the header:");
    println!(
        "  curl -s http://{addr}/me -H 'X-DingTalk-Code: {}'",
        dingtalk.issue_code("manager4220")
    );
    println!("An ordinary user, code in the query; the cookie jar keeps the session:");
    println!(
        "  curl -s -c /tmp/dingtalk-jar 'http://{addr}/?code={}'",
        dingtalk.issue_code("staff1024")
    );
    println!("  curl -s -b /tmp/dingtalk-jar http://{addr}/          # no code, the session");
    println!("  curl -s -b /tmp/dingtalk-jar -c /tmp/dingtalk-jar -X POST http://{addr}/sign-out");
    println!("  curl -si -b /tmp/dingtalk-jar http://{addr}/         # 401 again");
    println!("No code at all (401):");
    println!("  curl -si http://{addr}/\n");
    println!("Ctrl-C stops the server.");

    tokio::select! {
        served = serve(listener, layer) => served?,
        _ = tokio::signal::ctrl_c() => {}
    }
    drop(dingtalk);
    Ok(())
}
