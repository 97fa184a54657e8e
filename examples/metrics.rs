//! Prometheus metrics of the layer at `/metrics`, against the built-in fake DingTalk.
//!
//! ```sh
//! cargo run --example metrics --features metrics            # listens on 127.0.0.1:3000
//! PORT=8080 cargo run --example metrics --features metrics  # another port
//! ```
//!
//! The recorder is installed first, then the client and the layer are built: their metrics go to
//! the recorder installed when they are built. `metrics-exporter-prometheus` runs no listener of
//! its own here: its handle renders the text that axum serves at `/metrics`, outside the layer.
//!
//! ```sh
//! curl -s -H "x-dingtalk-code: $CODE" http://127.0.0.1:3000/me   # a code printed at start
//! curl -s http://127.0.0.1:3000/me                                # 401 missing_code
//! curl -s http://127.0.0.1:3000/metrics | grep dingtalk_auth_
//! ```

use std::net::SocketAddr;

use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tower_dingtalk_auth::testing::MockDingTalk;
use tower_dingtalk_auth::{AuthenticatedDingTalkUser, DingTalkAuthLayer};

/// Who is calling, as JSON.
async fn me(user: AuthenticatedDingTalkUser) -> Json<AuthenticatedDingTalkUser> {
    Json(user)
}

/// `/me` behind `layer`; `/metrics`, the Prometheus text of `metrics`, outside it.
pub fn app(layer: DingTalkAuthLayer, metrics: PrometheusHandle) -> Router {
    let api = Router::new().route("/me", get(me)).layer(layer);
    Router::new()
        .route("/metrics", get(move || async move { metrics.render() }))
        .merge(api)
}

/// The recorder, installed globally: before any client or layer is built.
pub fn install_recorder() -> PrometheusHandle {
    PrometheusBuilder::new()
        .install_recorder()
        .expect("no other metrics recorder is installed")
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let metrics = install_recorder();
    let dingtalk = MockDingTalk::start().await;
    dingtalk.add_user(AuthenticatedDingTalkUser::builder("staff01", "Li Si").build());
    let layer = dingtalk.layer_builder().build()?;

    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3000);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!(
        "The layer is in front of http://{addr}/me, with the metrics at http://{addr}/metrics."
    );
    for _ in 0..3 {
        let code = dingtalk.issue_code("staff01");
        println!("  curl -s -H 'x-dingtalk-code: {code}' http://{addr}/me");
    }
    axum::serve(listener, app(layer, metrics)).await?;
    Ok(())
}
