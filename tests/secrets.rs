//! Nothing secret (app secret, access token, auth code) reaches a log line at any level, a
//! response body, or the `Debug` output of a public type.

mod support;

use std::time::Duration;

use support::{TestApp, capture_logs};
use tower_dingtalk_auth::testing::{Endpoint, Fault};
use tower_dingtalk_auth::{DingTalkAuthLayer, DingTalkClient};

#[tokio::test]
async fn trace_logs_and_bodies_of_every_flow_hold_no_secret() {
    let (_guard, logs) = capture_logs();
    let app = TestApp::with(support::dingtalk().await, |b| {
        b.upstream_timeout(Duration::from_millis(300))
    })
    .await;
    let dingtalk = &app.dingtalk;
    let mut codes = Vec::new();
    let mut bodies = Vec::new();
    let mut send = async |code: String| {
        let response = app.get_with_code("/me", &code).await;
        bodies.push(response.text().await.unwrap());
        codes.push(code);
    };

    let first = dingtalk.issue_code("staff01");
    send(first.clone()).await; // success
    send(first).await; // cache hit
    dingtalk.fail_next(Endpoint::GetUserInfo, Fault::Errcode(40014), 1);
    send(dingtalk.issue_code("boss01")).await; // token refresh and retry
    dingtalk.revoke_tokens();
    send(dingtalk.issue_code("sub01")).await; // revoked token replaced
    send("never-issued-code-0001".to_owned()).await; // rejected by DingTalk
    for fault in [
        Fault::HttpStatus(502),
        Fault::Html,
        Fault::TruncatedJson,
        Fault::CloseConnection,
        Fault::Errcode(60020),
        Fault::Errcode(60011),
        Fault::SubCode(90018),
        Fault::IpBan,
        Fault::Errcode(-1),
        Fault::Latency(Duration::from_secs(1)),
    ] {
        dingtalk.fail_always(Endpoint::GetUserInfo, fault);
        send(dingtalk.issue_code("staff01")).await;
        dingtalk.clear_faults();
    }
    dingtalk.revoke_tokens();
    dingtalk.fail_always(Endpoint::AccessToken, Fault::InvalidCredentials);
    send(dingtalk.issue_code("staff01")).await; // secret refused

    let logs = logs.contents();
    assert!(
        logs.contains("TRACE") || logs.contains("DEBUG"),
        "logs were captured: {logs}"
    );
    assert!(
        logs.contains("ERROR"),
        "misconfigurations were logged: {logs}"
    );
    let tokens = dingtalk.issued_tokens();
    assert_eq!(tokens.len(), 2, "the test saw a token refresh");
    let secret = dingtalk.app_secret();
    let secrets: Vec<&str> = codes
        .iter()
        .chain(&tokens)
        .map(String::as_str)
        .chain([secret.as_str()])
        .collect();
    for secret in &secrets {
        assert!(
            !logs.contains(secret),
            "a secret in the logs: {secret}\n{logs}"
        );
        for body in &bodies {
            assert!(!body.contains(secret), "a secret in a body: {body}");
        }
    }
}

#[tokio::test]
async fn debug_output_redacts_the_app_secret() {
    let secret = "s3cr3t-app-secret-value";
    let builder = DingTalkAuthLayer::builder().internal_app("key", secret);
    assert!(!format!("{builder:?}").contains(secret));
    let layer = builder.build().unwrap();
    assert!(!format!("{layer:?}").contains(secret));
    assert!(!format!("{:?}", layer.client()).contains(secret));
    let client_builder = DingTalkClient::builder().internal_app("key", secret);
    assert!(!format!("{client_builder:?}").contains(secret));
    let client = client_builder.build().unwrap();
    let debug = format!("{client:?}");
    assert!(
        !debug.contains(secret) && debug.contains("redacted"),
        "{debug}"
    );
}

#[tokio::test]
async fn errors_name_no_code() {
    let dingtalk = support::dingtalk().await;
    let client = DingTalkClient::builder()
        .internal_app(dingtalk.app_key(), dingtalk.app_secret())
        .base_url(dingtalk.base_url())
        .build()
        .unwrap();
    let code = dingtalk.issue_code("staff01");
    client.user_info(&code).await.unwrap();
    let error = client.user_info(&code).await.unwrap_err();
    for shown in [format!("{error}"), format!("{error:?}"), error.json_body()] {
        assert!(!shown.contains(&code), "{shown}");
    }
}
