//! Every error class: its status, its JSON body, its headers, and that the inner service never runs.

mod support;

use std::time::Duration;

use support::{TestApp, assert_rejection, capture_logs, json};
use tower_dingtalk_auth::testing::{Endpoint, Fault};

/// One request with a fresh code while `fault` is injected on `endpoint`; checks the rejection.
async fn rejected_with(
    endpoint: Endpoint,
    fault: Fault,
    status: u16,
    error: &str,
) -> (TestApp, reqwest::header::HeaderMap) {
    let app = TestApp::start().await;
    app.dingtalk.fail_always(endpoint, fault);
    let code = app.dingtalk.issue_code("staff01");
    let secret = app.dingtalk.app_secret();
    let response = app.get_with_code("/me", &code).await;
    let headers = assert_rejection(response, status, error, &[&code, &secret]).await;
    assert_eq!(app.handler_runs(), 0);
    (app, headers)
}

#[tokio::test]
async fn dingtalk_answering_5xx_is_502() {
    for status in [500, 502, 503] {
        let (app, _) = rejected_with(
            Endpoint::GetUserInfo,
            Fault::HttpStatus(status),
            502,
            "upstream_error",
        )
        .await;
        assert_eq!(
            app.dingtalk.userinfo_calls(),
            1,
            "no retry on HTTP {status}"
        );
    }
}

#[tokio::test]
async fn a_token_endpoint_answering_5xx_is_502() {
    let (app, _) = rejected_with(
        Endpoint::AccessToken,
        Fault::HttpStatus(500),
        502,
        "upstream_error",
    )
    .await;
    assert_eq!(app.dingtalk.userinfo_calls(), 0);
}

#[tokio::test]
async fn answers_that_are_not_dingtalks_json_are_502() {
    for fault in [Fault::Html, Fault::TruncatedJson, Fault::CloseConnection] {
        rejected_with(Endpoint::GetUserInfo, fault, 502, "upstream_error").await;
    }
}

#[tokio::test]
async fn an_unknown_errcode_is_502() {
    rejected_with(
        Endpoint::GetUserInfo,
        Fault::Errcode(12345),
        502,
        "upstream_error",
    )
    .await;
}

#[tokio::test]
async fn dingtalk_unreachable_is_502() {
    // Port 1 (tcpmux) on loopback: nothing listens there, and no test can take it (a port freed a
    // moment ago could be another test's fake DingTalk by the time the layer connects).
    let app = TestApp::with_client(
        support::dingtalk().await,
        |c| c.base_url("http://127.0.0.1:1"),
        |l| l,
    )
    .await;
    let response = app.get_with_code("/me", "some-code-123").await;
    assert_rejection(response, 502, "upstream_error", &["some-code-123"]).await;
    assert_eq!(app.handler_runs(), 0);
}

#[tokio::test]
async fn dingtalk_too_slow_is_504() {
    let app = TestApp::with_client(
        support::dingtalk().await,
        |c| c.upstream_timeout(Duration::from_millis(200)),
        |l| l,
    )
    .await;
    app.dingtalk.fail_always(
        Endpoint::GetUserInfo,
        Fault::Latency(Duration::from_secs(2)),
    );
    let code = app.dingtalk.issue_code("staff01");
    let response = app.get_with_code("/me", &code).await;
    assert_rejection(response, 504, "upstream_timeout", &[&code]).await;
    assert_eq!(app.handler_runs(), 0);
}

#[tokio::test]
async fn throttling_is_503_with_retry_after() {
    let cases = [
        (Fault::Errcode(90018), "1"),
        (Fault::Errcode(90002), "1"),
        (Fault::SubCode(90018), "1"),
        // DingTalk's ban `wait` is in minutes: 5 of them.
        (Fault::IpBan, "300"),
    ];
    for (fault, retry_after) in cases {
        let (_, headers) = rejected_with(
            Endpoint::GetUserInfo,
            fault.clone(),
            503,
            "upstream_throttled",
        )
        .await;
        assert_eq!(headers["retry-after"], retry_after, "{fault:?}");
    }
}

#[tokio::test]
async fn codes_rejected_by_dingtalk_are_401() {
    for errcode in [40078, 42008] {
        let (app, headers) = rejected_with(
            Endpoint::GetUserInfo,
            Fault::Errcode(errcode),
            401,
            "code_rejected",
        )
        .await;
        assert!(headers.contains_key("www-authenticate"));
        assert_eq!(app.dingtalk.userinfo_calls(), 1, "no retry for {errcode}");
    }
}

/// A misconfiguration is a 500 and an error-level log that says what to fix.
async fn misconfigured(endpoint: Endpoint, fault: Fault, hint: &str) {
    let (_logs_guard, logs) = capture_logs();
    rejected_with(endpoint, fault.clone(), 500, "misconfigured").await;
    let logs = logs.contents();
    let line = logs
        .lines()
        .find(|line| line.contains("ERROR"))
        .unwrap_or_else(|| panic!("no error log for {fault:?}: {logs}"));
    assert!(line.contains(hint), "{fault:?}: {line}");
}

#[tokio::test]
async fn a_wrong_app_secret_is_500_and_logged() {
    misconfigured(
        Endpoint::AccessToken,
        Fault::InvalidCredentials,
        "app secret",
    )
    .await;
}

#[tokio::test]
async fn a_missing_permission_is_500_and_logged() {
    misconfigured(Endpoint::GetUserInfo, Fault::Errcode(60011), "qyapi_base").await;
}

#[tokio::test]
async fn an_ip_outside_the_whitelist_is_500_and_logged() {
    misconfigured(Endpoint::GetUserInfo, Fault::Errcode(60020), "whitelist").await;
}

#[tokio::test]
async fn system_busy_is_retried_twice() {
    let app = TestApp::start().await;
    app.dingtalk
        .fail_next(Endpoint::GetUserInfo, Fault::Errcode(-1), 2);
    let code = app.dingtalk.issue_code("staff01");
    let response = app.get_with_code("/me", &code).await;
    assert_eq!(json(response).await["userid"], "staff01");
    assert_eq!(app.dingtalk.userinfo_calls(), 3);

    app.dingtalk
        .fail_always(Endpoint::GetUserInfo, Fault::Errcode(-1));
    let code = app.dingtalk.issue_code("staff01");
    let response = app.get_with_code("/me", &code).await;
    assert_rejection(response, 502, "upstream_error", &[&code]).await;
    assert_eq!(app.dingtalk.userinfo_calls(), 6);
}

#[tokio::test]
async fn on_rejection_builds_a_custom_response() {
    let app = TestApp::with(support::dingtalk().await, |b| {
        b.on_rejection(|error| {
            http::Response::builder()
                .status(error.status())
                .header("x-auth-error", error.kind().as_str())
                .body(format!("please log in ({})", error.kind()))
                .unwrap()
        })
    })
    .await;
    let response = app.get("/me").await;
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()["x-auth-error"], "missing_code");
    assert_eq!(
        response.text().await.unwrap(),
        "please log in (missing_code)"
    );
    let response = app.get_with_code("/me", "never-issued").await;
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.text().await.unwrap(),
        "please log in (code_rejected)"
    );
    assert_eq!(app.handler_runs(), 0);
}
