//! The layer in `ServiceBuilder` stacks with tower-http's usual layers, in both orders: they compile,
//! and each order answers what the README says. CORS belongs outside the layer: its preflight is
//! answered without a code, and the layer's rejections carry CORS headers.

mod support;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use axum::Router;
use http::{HeaderValue, Method, StatusCode};
use tower::ServiceBuilder;
use tower_dingtalk_auth::testing::{Endpoint, Fault};
use tower_http::compression::CompressionLayer;
use tower_http::cors::CorsLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

const ORIGIN: &str = "https://front.example.com";

fn cors() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(HeaderValue::from_static(ORIGIN))
        .allow_methods([Method::GET])
        .allow_headers([http::header::HeaderName::from_static("x-dingtalk-code")])
}

async fn serve(app: Router) -> String {
    let (addr, server) = support::serve(app).await;
    std::mem::forget(server);
    format!("http://{addr}/me")
}

#[tokio::test]
async fn cors_trace_timeout_and_compression_outside_the_layer() {
    let dingtalk = support::dingtalk().await;
    let auth = support::layer_for(&dingtalk).build().unwrap();
    let stack = ServiceBuilder::new()
        .layer(TraceLayer::new_for_http())
        .layer(cors())
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_millis(300),
        ))
        .layer(CompressionLayer::new())
        .layer(auth);
    let url = serve(support::routes(Arc::new(AtomicU64::new(0))).layer(stack)).await;
    let http = reqwest::Client::new();

    // The browser's preflight carries no code: CORS answers it, the layer never sees it.
    let preflight = http
        .request(Method::OPTIONS, &url)
        .header("origin", ORIGIN)
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "x-dingtalk-code")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), 200);
    assert_eq!(preflight.headers()["access-control-allow-origin"], ORIGIN);
    assert_eq!(dingtalk.total_calls(), 0);

    // A rejection carries the CORS headers, so the front end can read it, and is compressed.
    let rejected = http
        .get(&url)
        .header("origin", ORIGIN)
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(rejected.status(), 401);
    assert_eq!(rejected.headers()["access-control-allow-origin"], ORIGIN);

    // A login.
    let code = dingtalk.issue_code("staff01");
    let ok = http
        .get(&url)
        .header("origin", ORIGIN)
        .header("x-dingtalk-code", &code)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.headers()["access-control-allow-origin"], ORIGIN);

    // The timeout answers first when DingTalk is slow; the call goes on and answers the retry.
    dingtalk.fail_next(
        Endpoint::GetUserInfo,
        Fault::Latency(Duration::from_millis(600)),
        1,
    );
    let slow = dingtalk.issue_code("boss01");
    let timed_out = http
        .get(&url)
        .header("x-dingtalk-code", &slow)
        .send()
        .await
        .unwrap();
    assert_eq!(timed_out.status(), 408);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let retry = http
        .get(&url)
        .header("x-dingtalk-code", &slow)
        .send()
        .await
        .unwrap();
    assert_eq!(retry.status(), 200);
    assert_eq!(dingtalk.userinfo_calls(), 2);
}

#[tokio::test]
async fn the_layer_outside_cors_refuses_the_preflight() {
    let dingtalk = support::dingtalk().await;
    let auth = support::layer_for(&dingtalk).build().unwrap();
    let stack = ServiceBuilder::new()
        .layer(auth)
        .layer(TraceLayer::new_for_http())
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(5),
        ))
        .layer(CompressionLayer::new())
        .layer(cors());
    let url = serve(support::routes(Arc::new(AtomicU64::new(0))).layer(stack)).await;
    let http = reqwest::Client::new();
    // The wrong order: the preflight has no code, and the layer refuses it before CORS can answer
    // (so the browser never sends the real request). The README shows the right order.
    let preflight = http
        .request(Method::OPTIONS, &url)
        .header("origin", ORIGIN)
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), 401);
    assert!(
        preflight
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    // Logins still work in this order.
    let code = dingtalk.issue_code("staff01");
    let ok = http
        .get(&url)
        .header("x-dingtalk-code", &code)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
}
