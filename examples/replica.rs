//! One replica of an app that runs several behind a load balancer, configured from the
//! environment: the replicas share a Redis (feature `redis`) so that a code is exchanged once
//! whichever replicas its requests reach. `tests/balancer.rs` runs three behind HAProxy.
//!
//! ```sh
//! cargo run --example fake_dingtalk -- --port 9000 &     # prints the DINGTALK_* lines below
//! export DINGTALK_BASE_URL=http://127.0.0.1:9000 DINGTALK_APP_KEY=mock-app-key \
//!        DINGTALK_APP_SECRET=mock-app-secret REDIS_URL=redis://127.0.0.1:6379 \
//!        DINGTALK_STORE_SECRET=0123456789abcdef0123456789abcdef
//! PORT=3001 cargo run --example replica &
//! PORT=3002 cargo run --example replica &
//! curl -H "x-dingtalk-code: $(curl -s -X POST 'http://127.0.0.1:9000/_fake/codes?userid=staff1024')" \
//!      -i http://127.0.0.1:3001/me
//! ```
//!
//! | variable | what |
//! | --- | --- |
//! | `DINGTALK_APP_KEY`, `DINGTALK_APP_SECRET`, `DINGTALK_BASE_URL`... | the app, read by `DingTalkClientBuilder::from_env` |
//! | `REDIS_URL`, `DINGTALK_STORE_SECRET` | the shared Redis and the secret every replica shares (32 bytes or more) |
//! | `PORT` | where it listens on 127.0.0.1 (default 3000; 0: a free port) |
//! | `DINGTALK_RATE_LIMIT` | exchanges a second for this replica (default 20: DingTalk's limit is per app, so 20 / replicas in production) |
//! | `DINGTALK_STORE_TIMEOUT_MS` | how long one Redis call may take (default 50) |
//!
//! Its first line is `replica listening on http://127.0.0.1:PORT`. `GET /me` answers the user as
//! JSON (the layer's 401 without a valid code); `GET /health` answers `ok` without a user. Every
//! answer names the replica in `x-replica: PORT`. The layer takes the client's address from the
//! one proxy's `X-Forwarded-For` (HAProxy's `option forwardfor`).

use std::time::Duration;

use axum::http::HeaderValue;
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use tower_dingtalk_auth::{
    AuthenticatedDingTalkUser, ClientKey, DingTalkAuthLayer, DingTalkClientBuilder, RedisStore,
};

type Error = Box<dyn std::error::Error>;

async fn me(user: AuthenticatedDingTalkUser) -> Json<AuthenticatedDingTalkUser> {
    Json(user)
}

/// An optional number from the environment; `Err` names the variable.
fn number<T: std::str::FromStr>(name: &str) -> Result<Option<T>, Error> {
    match std::env::var(name) {
        Ok(value) => {
            Ok(Some(value.parse().map_err(|_| {
                format!("{name} is not a number: `{value}`")
            })?))
        }
        Err(_) => Ok(None),
    }
}

fn required(name: &str) -> Result<String, Error> {
    std::env::var(name).map_err(|_| format!("{name} is not set").into())
}

/// The app behind the layer, answering as the replica on `port`.
async fn app(port: u16) -> Result<Router, Error> {
    let mut store =
        RedisStore::builder(required("REDIS_URL")?).secret(required("DINGTALK_STORE_SECRET")?);
    if let Some(millis) = number("DINGTALK_STORE_TIMEOUT_MS")? {
        store = store.timeout(Duration::from_millis(millis));
    }
    let mut client = DingTalkClientBuilder::from_env()?.shared_store(store.connect().await?);
    if let Some(per_second) = number("DINGTALK_RATE_LIMIT")? {
        client = client.rate_limit(per_second);
    }
    let auth = DingTalkAuthLayer::builder()
        .client(client.build()?)
        .client_key_from(ClientKey::forwarded_for(1))
        .build()?;
    let replica = HeaderValue::from(port);
    Ok(Router::new()
        .route("/me", get(me))
        .route_layer(auth)
        .route("/health", get(|| async { "ok\n" }))
        .layer(axum::middleware::map_response(
            move |mut response: Response| {
                response.headers_mut().insert("x-replica", replica.clone());
                async move { response }
            },
        )))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,tower_dingtalk_auth=info".into()),
        )
        .init();
    let port = number("PORT")?.unwrap_or(3000);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let port = listener.local_addr()?.port();
    let app = app(port).await?;
    // Whoever started it reads this line for the address.
    println!("replica listening on http://127.0.0.1:{port}");
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
