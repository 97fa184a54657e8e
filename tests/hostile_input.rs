//! Hostile or odd input: each gets a documented 4xx, no call to DingTalk, and no panic; the server
//! keeps serving afterwards.

mod support;

use std::time::Duration;

use support::{TestApp, assert_rejection, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn a_code_in_two_places_takes_the_first_source() {
    let app = TestApp::start().await;
    let in_header = app.dingtalk.issue_code("staff01");
    let in_query = app.dingtalk.issue_code("boss01");
    let response = app
        .http
        .get(app.url(&format!("/me?code={in_query}")))
        .header("x-dingtalk-code", &in_header)
        .send()
        .await
        .unwrap();
    assert_eq!(json(response).await["userid"], "staff01");
    // The query's code was not touched: it still works on its own.
    let response = app.get(&format!("/me?code={in_query}")).await;
    assert_eq!(json(response).await["userid"], "boss01");
    assert_eq!(app.dingtalk.userinfo_calls(), 2);
}

#[tokio::test]
async fn a_percent_encoded_code_is_decoded() {
    let app = TestApp::start().await;
    let code = app.dingtalk.issue_code("sub01");
    let encoded: String = code.bytes().map(|b| format!("%{b:02X}")).collect();
    let response = app.get(&format!("/me?code={encoded}")).await;
    assert_eq!(json(response).await["userid"], "sub01");
}

#[tokio::test]
async fn a_long_query_with_many_parameters_still_finds_the_code() {
    let app = TestApp::start().await;
    let code = app.dingtalk.issue_code("staff01");
    let junk: String = (0..4000).map(|i| format!("p{i}=v{i}&")).collect();
    let response = app.get(&format!("/me?{junk}code={code}")).await;
    assert_eq!(json(response).await["userid"], "staff01");

    // A thousand copies of one code are one code; one differing copy is ambiguous.
    let copies = format!("code={code}&").repeat(1000);
    assert_eq!(app.get(&format!("/me?{copies}")).await.status(), 200);
    let response = app.get(&format!("/me?{copies}code=other-code")).await;
    assert_rejection(response, 401, "invalid_code", &[&code]).await;
    assert_eq!(app.dingtalk.userinfo_calls(), 1);
}

#[tokio::test]
async fn a_cookie_header_of_garbage_is_no_code() {
    let app = TestApp::with(support::dingtalk().await, |b| {
        b.code_sources([tower_dingtalk_auth::CodeSource::cookie("dt_code")])
    })
    .await;
    for cookie in [";;;;", "=", "dt_code", "dt_code=", "a=b; =c; dt_code"] {
        let response = app
            .http
            .get(app.url("/me"))
            .header("cookie", cookie)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body = json(response).await;
        assert_eq!(status, 401, "{cookie}");
        assert!(
            body["error"] == "missing_code" || body["error"] == "invalid_code",
            "{cookie}: {body}"
        );
    }
    assert_eq!(app.dingtalk.total_calls(), 0);
}

/// Sends raw bytes to the app and returns the status line it answers with.
async fn raw_status(app: &TestApp, request: &[u8]) -> String {
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    // The server may answer and close before reading everything: ignore write errors.
    let _ = stream.write_all(request).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    answer.lines().next().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn control_bytes_and_huge_headers_are_refused_by_the_server_with_4xx() {
    let app = TestApp::start().await;
    let control = b"GET /me HTTP/1.1\r\nhost: x\r\nx-dingtalk-code: ab\x01\x02cd\r\nconnection: close\r\n\r\n";
    assert!(raw_status(&app, control).await.starts_with("HTTP/1.1 4"));

    let mut huge = b"GET /me HTTP/1.1\r\nhost: x\r\n".to_vec();
    for i in 0..200 {
        huge.extend_from_slice(format!("x-junk-{i}: {}\r\n", "j".repeat(4096)).as_bytes());
    }
    huge.extend_from_slice(b"connection: close\r\n\r\n");
    let status = raw_status(&app, &huge).await;
    assert!(status.starts_with("HTTP/1.1 431"), "{status}");

    let long_uri = format!(
        "GET /me?code={} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
        "c".repeat(1 << 20)
    );
    let status = raw_status(&app, long_uri.as_bytes()).await;
    assert!(status.starts_with("HTTP/1.1 4"), "{status}");

    // Nothing reached DingTalk, and the server still serves.
    assert_eq!(app.dingtalk.total_calls(), 0);
    let code = app.dingtalk.issue_code("staff01");
    assert_eq!(app.get_with_code("/me", &code).await.status(), 200);
}

#[tokio::test]
async fn an_oversized_code_in_a_normal_sized_request_is_invalid() {
    let app = TestApp::start().await;
    let response = app.get_with_code("/me", &"x".repeat(8000)).await;
    assert_rejection(response, 401, "invalid_code", &[]).await;
    let response = app.get(&format!("/me?code={}", "%41".repeat(300))).await;
    assert_rejection(response, 401, "invalid_code", &[]).await;
    assert_eq!(app.dingtalk.total_calls(), 0);
}
