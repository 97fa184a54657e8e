//! Where the code is read from, and what is refused before any call to DingTalk.

mod support;

use support::{TestApp, assert_rejection, json};
use tower_dingtalk_auth::CodeSource;
use tower_dingtalk_auth::testing::Endpoint;

#[tokio::test]
async fn code_from_the_default_header() {
    let app = TestApp::start().await;
    let code = app.dingtalk.issue_code("staff01");
    let response = app.get_with_code("/me", &code).await;
    assert_eq!(response.status(), 200);
    assert_eq!(json(response).await["userid"], "staff01");
    assert_eq!(app.dingtalk.userinfo_calls(), 1);
}

#[tokio::test]
async fn code_from_the_default_query_parameter() {
    let app = TestApp::start().await;
    let code = app.dingtalk.issue_code("boss01");
    let response = app.get(&format!("/me?lang=zh&code={code}")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(json(response).await["userid"], "boss01");
    assert_eq!(app.dingtalk.userinfo_calls(), 1);
}

#[tokio::test]
async fn the_header_wins_over_the_query_by_default() {
    let app = TestApp::start().await;
    let header_code = app.dingtalk.issue_code("staff01");
    let query_code = app.dingtalk.issue_code("boss01");
    let response = app
        .http
        .get(app.url(&format!("/me?code={query_code}")))
        .header("x-dingtalk-code", &header_code)
        .send()
        .await
        .unwrap();
    assert_eq!(json(response).await["userid"], "staff01");
    assert_eq!(app.dingtalk.userinfo_calls(), 1);
}

#[tokio::test]
async fn configured_sources_in_their_order_cookie_and_custom() {
    let dingtalk = support::dingtalk().await;
    let app = TestApp::with(dingtalk, |builder| {
        builder.code_sources([
            CodeSource::cookie("dt_code"),
            CodeSource::custom(|parts| {
                parts
                    .headers
                    .get("authorization")?
                    .to_str()
                    .ok()?
                    .strip_prefix("DingTalk ")
                    .map(str::to_owned)
            }),
        ])
    })
    .await;
    let cookie_code = app.dingtalk.issue_code("sub01");
    let response = app
        .http
        .get(app.url("/me"))
        .header("cookie", format!("theme=dark; dt_code={cookie_code}"))
        .send()
        .await
        .unwrap();
    assert_eq!(json(response).await["userid"], "sub01");

    let custom_code = app.dingtalk.issue_code("super01");
    let response = app
        .http
        .get(app.url("/me"))
        .header("authorization", format!("DingTalk {custom_code}"))
        .send()
        .await
        .unwrap();
    assert_eq!(json(response).await["userid"], "super01");

    // The default header is no longer a source.
    let ignored = app.dingtalk.issue_code("staff01");
    let response = app.get_with_code("/me", &ignored).await;
    assert_rejection(response, 401, "missing_code", &[&ignored]).await;
    assert_eq!(app.dingtalk.userinfo_calls(), 2);
}

#[tokio::test]
async fn no_code_is_401_with_a_challenge_and_no_call() {
    let app = TestApp::start().await;
    let headers = assert_rejection(app.get("/me").await, 401, "missing_code", &[]).await;
    assert_eq!(headers["www-authenticate"], r#"DingTalk realm="dingtalk""#);
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(app.dingtalk.total_calls(), 0);
    assert_eq!(app.handler_runs(), 0);
}

#[tokio::test]
async fn the_realm_is_configurable() {
    let app = TestApp::with(support::dingtalk().await, |b| b.realm("payroll")).await;
    let headers = assert_rejection(app.get("/me").await, 401, "missing_code", &[]).await;
    assert_eq!(headers["www-authenticate"], r#"DingTalk realm="payroll""#);
}

#[tokio::test]
async fn malformed_codes_are_401_without_any_call() {
    let app = TestApp::start().await;
    let too_long = "a".repeat(257);
    let header_values: Vec<reqwest::header::HeaderValue> = vec![
        reqwest::header::HeaderValue::from_static(""),
        reqwest::header::HeaderValue::from_str(&too_long).unwrap(),
        reqwest::header::HeaderValue::from_static("has space"),
        reqwest::header::HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap(),
        reqwest::header::HeaderValue::from_bytes(b"\xff\xfe").unwrap(),
        reqwest::header::HeaderValue::from_bytes(b"tab\there").unwrap(),
    ];
    for value in header_values {
        let response = app
            .http
            .get(app.url("/me"))
            .header("x-dingtalk-code", value.clone())
            .send()
            .await
            .unwrap();
        let headers = assert_rejection(response, 401, "invalid_code", &[]).await;
        assert_eq!(
            headers["www-authenticate"], r#"DingTalk realm="dingtalk", error="invalid_code""#,
            "{value:?}"
        );
    }
    for query in [
        "code=",
        "code=%00abc",
        "code=%0d%0aSet-Cookie:x",
        "code=%E4%BD%A0%E5%A5%BD",
        "code=%ff",
        "code=a+b",
    ] {
        let response = app.get(&format!("/me?{query}")).await;
        assert_rejection(response, 401, "invalid_code", &[]).await;
    }
    let response = app.get(&format!("/me?code={too_long}")).await;
    assert_rejection(response, 401, "invalid_code", &[]).await;

    assert_eq!(app.dingtalk.total_calls(), 0);
    assert_eq!(app.handler_runs(), 0);
}

#[tokio::test]
async fn a_code_of_exactly_256_visible_characters_is_sent() {
    let app = TestApp::start().await;
    let longest = "~".repeat(256);
    let response = app.get_with_code("/me", &longest).await;
    // Well-formed but never issued: DingTalk gets the call and refuses it.
    assert_rejection(response, 401, "code_rejected", &[&longest]).await;
    assert_eq!(app.dingtalk.calls(Endpoint::GetUserInfo), 1);
}

#[tokio::test]
async fn a_code_repeated_with_different_values_is_ambiguous() {
    let app = TestApp::start().await;
    let first = app.dingtalk.issue_code("staff01");
    let second = app.dingtalk.issue_code("boss01");
    let response = app
        .http
        .get(app.url("/me"))
        .header("x-dingtalk-code", &first)
        .header("x-dingtalk-code", &second)
        .send()
        .await
        .unwrap();
    assert_rejection(response, 401, "invalid_code", &[&first, &second]).await;
    let response = app.get(&format!("/me?code={first}&code={second}")).await;
    assert_rejection(response, 401, "invalid_code", &[&first, &second]).await;
    assert_eq!(app.dingtalk.total_calls(), 0);

    // The same value twice is not ambiguous.
    let response = app.get(&format!("/me?code={first}&code={first}")).await;
    assert_eq!(response.status(), 200);
}
