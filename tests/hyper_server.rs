//! The layer in front of a plain hyper 1 server (hyper-util), with hyper's `Incoming` body.

mod support;

use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use tower::ServiceBuilder;
use tower_dingtalk_auth::testing::MockDingTalk;
use tower_dingtalk_auth::{AdminLevel, AuthenticatedDingTalkUser};

async fn hello(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let user = request
        .extensions()
        .get::<AuthenticatedDingTalkUser>()
        .expect("the layer put the user here");
    Ok(Response::new(Full::new(Bytes::from(format!(
        "hello {} ({:?})",
        user.name(),
        user.admin_level()
    )))))
}

#[tokio::test]
async fn a_plain_hyper_server_behind_the_layer() {
    let dingtalk = MockDingTalk::start().await;
    dingtalk.add_user(
        AuthenticatedDingTalkUser::builder("user456", "Zhang San")
            .admin_level(AdminLevel::SubAdmin)
            .build(),
    );
    let layer = dingtalk.layer_builder().build().unwrap();
    let service = ServiceBuilder::new()
        .layer(layer)
        .service(tower::service_fn(hello));

    let (addr, server) = support::serve_hyper(service).await;

    let http = reqwest::Client::new();
    let code = dingtalk.issue_code("user456");
    let response = http
        .get(format!("http://{addr}/"))
        .header("x-dingtalk-code", &code)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "hello Zhang San (SubAdmin)");

    let response = http.get(format!("http://{addr}/")).send().await.unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.headers()["www-authenticate"],
        r#"DingTalk realm="dingtalk""#
    );
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"], "missing_code");
    assert_eq!(dingtalk.userinfo_calls(), 1);
    server.abort();
}
