//! The access token: fetched once, cached for DingTalk's `expireIn`, refreshed when it expires or
//! DingTalk refuses it, and one fetch at a time.

mod support;

use std::time::Duration;

use futures_util::future::join_all;
use support::{TestApp, assert_rejection, json};
use tower_dingtalk_auth::testing::{Endpoint, Fault};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_start_under_500_concurrent_requests_makes_one_token_call() {
    // Above DingTalk's 20 calls a second: this test is about coalescing, not the rate limit.
    let app =
        TestApp::with_client(support::dingtalk().await, |c| c.rate_limit(10_000), |l| l).await;
    // A slow token endpoint keeps every request waiting on the same fetch.
    app.dingtalk.fail_next(
        Endpoint::AccessToken,
        Fault::Latency(Duration::from_millis(200)),
        1,
    );
    let codes: Vec<String> = (0..500)
        .map(|_| app.dingtalk.issue_code("staff01"))
        .collect();
    let responses = join_all(codes.iter().map(|code| app.get_with_code("/me", code))).await;
    for response in responses {
        assert_eq!(response.status(), 200);
    }
    assert_eq!(app.dingtalk.token_calls(), 1);
    assert_eq!(app.dingtalk.userinfo_calls(), 500);
}

#[tokio::test]
async fn an_expired_token_is_refreshed() {
    let dingtalk = support::dingtalk().await;
    dingtalk.set_token_ttl(Duration::from_secs(1));
    let app = TestApp::with(dingtalk, |b| b).await;

    let code = app.dingtalk.issue_code("staff01");
    assert_eq!(app.get_with_code("/me", &code).await.status(), 200);
    assert_eq!(app.dingtalk.token_calls(), 1);

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let code = app.dingtalk.issue_code("boss01");
    let response = app.get_with_code("/me", &code).await;
    assert_eq!(json(response).await["userid"], "boss01");
    assert_eq!(app.dingtalk.token_calls(), 2);
    // The layer refreshed before using a dead token: no call was refused.
    assert_eq!(app.dingtalk.userinfo_calls(), 2);
}

#[tokio::test]
async fn a_token_is_refreshed_ahead_of_its_expiry() {
    let dingtalk = support::dingtalk().await;
    dingtalk.set_token_ttl(Duration::from_secs(2));
    let app = TestApp::with(dingtalk, |b| b).await;
    assert_eq!(
        app.get_with_code("/me", &app.dingtalk.issue_code("staff01"))
            .await
            .status(),
        200
    );
    // Three quarters into its life the token is still valid, but the next request renews it.
    tokio::time::sleep(Duration::from_millis(1600)).await;
    assert_eq!(
        app.get_with_code("/me", &app.dingtalk.issue_code("staff01"))
            .await
            .status(),
        200
    );
    assert_eq!(app.dingtalk.token_calls(), 2);
    assert_eq!(
        app.get_with_code("/me", &app.dingtalk.issue_code("staff01"))
            .await
            .status(),
        200
    );
    assert_eq!(app.dingtalk.token_calls(), 2);
}

/// DingTalk refuses the token (`fault`): the layer drops it, fetches another, retries once.
async fn token_refused_then_recovered(fault: Fault) {
    let app = TestApp::start().await;
    assert_eq!(
        app.get_with_code("/me", &app.dingtalk.issue_code("staff01"))
            .await
            .status(),
        200
    );

    app.dingtalk
        .fail_next(Endpoint::GetUserInfo, fault.clone(), 1);
    let code = app.dingtalk.issue_code("super01");
    let response = app.get_with_code("/me", &code).await;
    assert_eq!(response.status(), 200, "{fault:?}");
    assert_eq!(json(response).await["userid"], "super01");
    assert_eq!(app.dingtalk.token_calls(), 2, "{fault:?}");
    assert_eq!(app.dingtalk.userinfo_calls(), 3, "{fault:?}");
}

#[tokio::test]
async fn errcode_40014_refreshes_the_token_and_retries() {
    token_refused_then_recovered(Fault::Errcode(40014)).await;
}

#[tokio::test]
async fn errcode_88_wrapping_40014_refreshes_the_token_and_retries() {
    token_refused_then_recovered(Fault::SubCode(40014)).await;
}

#[tokio::test]
async fn errcodes_40001_42001_33001_refresh_the_token_and_retry() {
    for errcode in [40001, 42001, 33001] {
        token_refused_then_recovered(Fault::Errcode(errcode)).await;
    }
}

#[tokio::test]
async fn a_token_revoked_at_dingtalk_is_replaced() {
    let app = TestApp::start().await;
    assert_eq!(
        app.get_with_code("/me", &app.dingtalk.issue_code("staff01"))
            .await
            .status(),
        200
    );
    app.dingtalk.revoke_tokens();
    let response = app
        .get_with_code("/me", &app.dingtalk.issue_code("boss01"))
        .await;
    assert_eq!(json(response).await["userid"], "boss01");
    assert_eq!(app.dingtalk.token_calls(), 2);
}

#[tokio::test]
async fn a_token_refused_twice_is_a_misconfiguration_after_one_retry() {
    let app = TestApp::start().await;
    app.dingtalk
        .fail_always(Endpoint::GetUserInfo, Fault::Errcode(33001));
    let code = app.dingtalk.issue_code("staff01");
    let response = app.get_with_code("/me", &code).await;
    assert_rejection(response, 500, "misconfigured", &[&code]).await;
    assert_eq!(app.dingtalk.token_calls(), 2);
    assert_eq!(app.dingtalk.userinfo_calls(), 2);
}

#[tokio::test]
async fn a_wrong_app_secret_is_a_500_and_later_requests_do_not_storm_the_token_endpoint() {
    let dingtalk = support::dingtalk().await;
    let app = TestApp::with_client(
        dingtalk,
        |c| c.internal_app(support::MOCK_KEY, "not-the-secret"),
        |l| l,
    )
    .await;
    for _ in 0..20 {
        let code = app.dingtalk.issue_code("staff01");
        let response = app.get_with_code("/me", &code).await;
        assert_rejection(response, 500, "misconfigured", &["not-the-secret", &code]).await;
    }
    // Failures are remembered for a second: twenty requests, one token call.
    assert_eq!(app.dingtalk.token_calls(), 1);
    assert_eq!(app.dingtalk.userinfo_calls(), 0);
}

#[tokio::test]
async fn no_lifetime_dingtalk_claims_can_panic_the_layer_or_storm_the_token_endpoint() {
    for claimed in [
        "0",
        "-1",
        "-9223372036854775808",
        "9223372036854775807",
        "18446744073709551615",
        "1e300",
        "7200.5",
        "\"7200\"",
        "\"forever\"",
        "null",
    ] {
        let app = TestApp::start().await;
        let token = support::known_token(&app.dingtalk).await;
        let body = format!(r#"{{"accessToken":"{token}","expireIn":{claimed}}}"#);
        app.dingtalk
            .fail_next(Endpoint::AccessToken, Fault::Raw(200, body.into_bytes()), 1);
        for userid in ["staff01", "boss01", "super01"] {
            let response = app
                .get_with_code("/me", &app.dingtalk.issue_code(userid))
                .await;
            assert_eq!(json(response).await["userid"], userid, "expireIn {claimed}");
        }
        // The hand-made fetch and the layer's one: whatever it claimed, the token is kept for a
        // second at least, and no request fetched another.
        assert_eq!(app.dingtalk.token_calls(), 2, "expireIn {claimed}");
    }
}

#[tokio::test]
async fn a_refresh_ahead_that_fails_keeps_the_old_token_and_waits_a_second() {
    let dingtalk = support::dingtalk().await;
    // Refreshed ahead from 9 s on, expired at 11.4 s.
    dingtalk.set_token_ttl(Duration::from_secs(12));
    let app = TestApp::with(dingtalk, |b| b).await;
    let ok = async |app: &TestApp| {
        let response = app
            .get_with_code("/me", &app.dingtalk.issue_code("staff01"))
            .await;
        assert_eq!(response.status(), 200);
    };
    ok(&app).await;
    tokio::time::sleep(Duration::from_millis(9100)).await;
    app.dingtalk
        .fail_always(Endpoint::AccessToken, Fault::HttpStatus(503));
    for _ in 0..10 {
        ok(&app).await;
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    // One refresh tried and failed; the old token served every request meanwhile.
    assert_eq!(app.dingtalk.token_calls(), 2);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    ok(&app).await;
    ok(&app).await;
    // A second later, one more try.
    assert_eq!(app.dingtalk.token_calls(), 3);
}
