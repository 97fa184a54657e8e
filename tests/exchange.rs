//! One exchange per code: caching, coalescing of concurrent requests, and exchanges that outlive
//! the request that started them.

mod support;

use std::time::Duration;

use futures_util::future::join_all;
use support::{TestApp, assert_rejection, json};
use tower_dingtalk_auth::testing::{Endpoint, Fault};

#[tokio::test]
async fn a_code_is_exchanged_once_and_then_served_from_the_cache() {
    let app = TestApp::start().await;
    let code = app.dingtalk.issue_code("staff01");
    for _ in 0..5 {
        let response = app.get_with_code("/me", &code).await;
        assert_eq!(json(response).await["userid"], "staff01");
    }
    assert_eq!(app.dingtalk.userinfo_calls(), 1);
    assert_eq!(app.dingtalk.token_calls(), 1);
    assert_eq!(app.layer.cached_identities().await, 1);
}

#[tokio::test]
async fn a_spent_code_is_401() {
    let app = TestApp::start().await;
    let code = app.dingtalk.issue_code("staff01");
    // Someone else (another service) spends the code first.
    let other = tower_dingtalk_auth::DingTalkClient::builder()
        .internal_app(app.dingtalk.app_key(), app.dingtalk.app_secret())
        .base_url(app.dingtalk.base_url())
        .build()
        .unwrap();
    other.user_info(&code).await.unwrap();

    let response = app.get_with_code("/me", &code).await;
    let headers = assert_rejection(response, 401, "code_rejected", &[&code]).await;
    assert_eq!(
        headers["www-authenticate"],
        r#"DingTalk realm="dingtalk", error="code_rejected""#
    );
    assert_eq!(app.dingtalk.userinfo_calls(), 2);
    assert_eq!(app.handler_runs(), 0);
}

#[tokio::test]
async fn an_expired_code_is_401() {
    let dingtalk = support::dingtalk().await;
    dingtalk.set_code_ttl(Duration::from_millis(50));
    let app = TestApp::with(dingtalk, |b| b).await;
    let code = app.dingtalk.issue_code("staff01");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let response = app.get_with_code("/me", &code).await;
    assert_rejection(response, 401, "code_rejected", &[&code]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_requests_with_one_code_make_one_exchange() {
    let app = TestApp::start().await;
    // A slow DingTalk keeps every request waiting on the same exchange.
    app.dingtalk.fail_next(
        Endpoint::GetUserInfo,
        Fault::Latency(Duration::from_millis(200)),
        1,
    );
    let code = app.dingtalk.issue_code("super01");
    let responses = join_all((0..200).map(|_| app.get_with_code("/me", &code))).await;
    for response in responses {
        assert_eq!(response.status(), 200);
        assert_eq!(json(response).await["userid"], "super01");
    }
    assert_eq!(app.dingtalk.userinfo_calls(), 1);
    assert_eq!(app.dingtalk.token_calls(), 1);
    assert_eq!(app.handler_runs(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_requests_over_fifty_codes_make_fifty_exchanges_and_one_token_call() {
    // Above DingTalk's 20 calls a second: this test is about coalescing, not the rate limit.
    let app =
        TestApp::with_client(support::dingtalk().await, |c| c.rate_limit(10_000), |l| l).await;
    let users = support::known_users();
    let codes: Vec<(String, String)> = (0..50)
        .map(|i| {
            let userid = users[i % users.len()].userid().to_owned();
            (app.dingtalk.issue_code(&userid), userid)
        })
        .collect();
    let requests = (0..1000).map(|i| {
        let (code, userid) = &codes[i % codes.len()];
        let app = &app;
        async move {
            let response = app.get_with_code("/me", code).await;
            assert_eq!(response.status(), 200);
            assert_eq!(json(response).await["userid"], userid.as_str());
        }
    });
    join_all(requests).await;
    assert_eq!(app.dingtalk.userinfo_calls(), 50);
    assert_eq!(app.dingtalk.token_calls(), 1);
    assert_eq!(app.layer.cached_identities().await, 50);
}

#[tokio::test]
async fn a_request_dropped_mid_exchange_still_caches_the_user() {
    let app = TestApp::start().await;
    app.dingtalk.fail_next(
        Endpoint::GetUserInfo,
        Fault::Latency(Duration::from_millis(300)),
        1,
    );
    let code = app.dingtalk.issue_code("boss01");

    // The client gives up long before DingTalk answers.
    let impatient = app
        .http
        .get(app.url("/me"))
        .header("x-dingtalk-code", &code)
        .timeout(Duration::from_millis(50))
        .send()
        .await;
    assert!(impatient.unwrap_err().is_timeout());

    // Wait for the exchange, already sent, to finish on its own.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let response = app.get_with_code("/me", &code).await;
    assert_eq!(response.status(), 200);
    assert_eq!(json(response).await["userid"], "boss01");
    assert_eq!(app.dingtalk.userinfo_calls(), 1);
    assert_eq!(app.handler_runs(), 1);
}

#[tokio::test]
async fn a_request_cancelled_by_a_timeout_layer_does_not_abandon_the_exchange() {
    use axum::error_handling::HandleErrorLayer;
    use tower::ServiceBuilder;

    let app = TestApp::start().await;
    app.dingtalk.fail_next(
        Endpoint::GetUserInfo,
        Fault::Latency(Duration::from_millis(300)),
        1,
    );
    let runs = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let timed = support::routes(runs).layer(
        ServiceBuilder::new()
            .layer(HandleErrorLayer::new(|_: tower::BoxError| async {
                http::StatusCode::REQUEST_TIMEOUT
            }))
            .timeout(Duration::from_millis(50))
            .layer(app.layer.clone()),
    );
    let (addr, _server) = support::serve(timed).await;
    let code = app.dingtalk.issue_code("sub01");
    let response = app
        .http
        .get(format!("http://{addr}/me"))
        .header("x-dingtalk-code", &code)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 408);

    tokio::time::sleep(Duration::from_millis(400)).await;
    let response = app.get_with_code("/me", &code).await;
    assert_eq!(json(response).await["userid"], "sub01");
    assert_eq!(app.dingtalk.userinfo_calls(), 1);
}

#[tokio::test]
async fn failures_are_not_cached() {
    let app = TestApp::start().await;
    let code = app.dingtalk.issue_code("staff01");
    app.dingtalk
        .fail_next(Endpoint::GetUserInfo, Fault::HttpStatus(503), 1);
    let response = app.get_with_code("/me", &code).await;
    assert_rejection(response, 502, "upstream_error", &[&code]).await;
    // The fault spent nothing: the same code works on the next try.
    let response = app.get_with_code("/me", &code).await;
    assert_eq!(json(response).await["userid"], "staff01");
    assert_eq!(app.dingtalk.userinfo_calls(), 2);
}

#[tokio::test]
async fn cached_identities_expire_after_the_ttl() {
    let app = TestApp::with_client(
        support::dingtalk().await,
        |c| c.code_reuse_window(Duration::from_millis(100)),
        |l| l,
    )
    .await;
    let code = app.dingtalk.issue_code("staff01");
    assert_eq!(app.get_with_code("/me", &code).await.status(), 200);
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Gone from the cache, and spent at DingTalk.
    let response = app.get_with_code("/me", &code).await;
    assert_rejection(response, 401, "code_rejected", &[&code]).await;
    assert_eq!(app.dingtalk.userinfo_calls(), 2);
}

#[tokio::test]
async fn the_cache_holds_at_most_its_capacity() {
    let app =
        TestApp::with_client(support::dingtalk().await, |c| c.cache_capacity(10), |l| l).await;
    for _ in 0..30 {
        let code = app.dingtalk.issue_code("staff01");
        assert_eq!(app.get_with_code("/me", &code).await.status(), 200);
    }
    let cached = app.layer.cached_identities().await;
    assert!(cached <= 10, "{cached} cached");
}
