//! The user the layer hands to handlers: every field, every admin level, both axum extractors and
//! `Extension`, and optional mode.

mod support;

use support::{TestApp, assert_rejection, json};
use tower_dingtalk_auth::AuthenticatedDingTalkUser;

#[tokio::test]
async fn every_user_field_reaches_the_handler() {
    let app = TestApp::start().await;
    for expected in support::known_users() {
        let code = app.dingtalk.issue_code(expected.userid());
        let response = app.get_with_code("/me", &code).await;
        assert_eq!(response.status(), 200);
        let got: AuthenticatedDingTalkUser = response.json().await.unwrap();
        assert_eq!(got, expected, "user {}", expected.userid());
    }
    assert_eq!(app.dingtalk.userinfo_calls(), 5);
}

#[tokio::test]
async fn each_admin_level_is_mapped_from_sys_level() {
    let app = TestApp::start().await;
    let cases = [
        ("staff01", 0, false, None),
        ("super01", 1, true, Some("assoc-super01")),
        ("sub01", 2, true, None),
        ("boss01", 100, true, Some("assoc-boss01")),
        ("odd01", 7, false, None),
    ];
    for (userid, level, is_admin, associated) in cases {
        let code = app.dingtalk.issue_code(userid);
        let body = json(app.get_with_code("/me", &code).await).await;
        assert_eq!(body["userid"], userid);
        assert_eq!(body["admin_level"], level, "{userid}");
        assert_eq!(body["is_admin"], is_admin, "{userid}");
        assert_eq!(body["associated_unionid"].as_str(), associated, "{userid}");
        assert_eq!(body["unionid"], format!("union-{userid}"));
        assert_eq!(body["device_id"], format!("device-{userid}"));
    }
}

#[tokio::test]
async fn extension_extractor_sees_the_user() {
    let app = TestApp::start().await;
    let code = app.dingtalk.issue_code("sub01");
    let response = app.get_with_code("/ext", &code).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "ext sub01");
}

#[tokio::test]
async fn optional_mode_lets_a_request_without_code_through_without_a_user() {
    let app = TestApp::with(support::dingtalk().await, |b| b.optional()).await;

    let response = app.get("/maybe").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "anonymous");

    // The required extractor still refuses when there is no user.
    let headers = assert_rejection(app.get("/me").await, 401, "missing_code", &[]).await;
    assert_eq!(headers["www-authenticate"], r#"DingTalk realm="dingtalk""#);

    let code = app.dingtalk.issue_code("boss01");
    let response = app.get_with_code("/maybe", &code).await;
    assert_eq!(response.text().await.unwrap(), "user boss01");
    assert_eq!(app.dingtalk.userinfo_calls(), 1);
    assert_eq!(
        app.handler_runs(),
        2,
        "/maybe twice; /me refused by its extractor"
    );
}

#[tokio::test]
async fn optional_mode_still_rejects_a_code_that_fails() {
    let app = TestApp::with(support::dingtalk().await, |b| b.optional()).await;
    let response = app.get_with_code("/maybe", "never-issued-code").await;
    assert_rejection(response, 401, "code_rejected", &["never-issued-code"]).await;
    let response = app.get_with_code("/maybe", "bad code").await;
    assert_rejection(response, 401, "invalid_code", &[]).await;
    assert_eq!(app.dingtalk.userinfo_calls(), 1);
    assert_eq!(app.handler_runs(), 0);
}

#[tokio::test]
async fn without_the_layer_the_extractors_say_so_loudly() {
    let (_guard, logs) = support::capture_logs();
    let handler_runs = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (addr, _server) = support::serve(support::routes(handler_runs.clone())).await;
    let http = reqwest::Client::new();
    // The required extractor: a 500, the server's fault, not a 401 that blames the user.
    let response = http.get(format!("http://{addr}/me")).send().await.unwrap();
    assert_rejection(response, 500, "internal_error", &[]).await;
    // The optional one: no user, and the same error in the log, once.
    for _ in 0..3 {
        let response = http
            .get(format!("http://{addr}/maybe"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.text().await.unwrap(), "anonymous");
    }
    let logs = logs.contents();
    assert_eq!(
        logs.matches("without passing through DingTalkAuthLayer")
            .count(),
        1,
        "{logs}"
    );
    assert!(logs.contains("route_layer"), "{logs}");
}

/// The user's JSON is a contract with front ends: this pins it, field by field, so that it cannot
/// change by accident (`admin_level` is DingTalk's own `sys_level` number).
#[test]
fn the_users_json_shape_is_pinned() {
    use tower_dingtalk_auth::AdminLevel;
    let full = AuthenticatedDingTalkUser::builder("user456", "Zhang San")
        .unionid("gliiW002zU")
        .associated_unionid("assoc-1")
        .device_id("dev-1")
        .admin_level(AdminLevel::Boss)
        .corp_id("dingcorp01")
        .build();
    assert_eq!(
        serde_json::to_string(&full).unwrap(),
        r#"{"userid":"user456","name":"Zhang San","unionid":"gliiW002zU","associated_unionid":"assoc-1","device_id":"dev-1","is_admin":true,"admin_level":100,"corp_id":"dingcorp01"}"#
    );
    let minimal = AuthenticatedDingTalkUser::builder("u1", "Li Si").build();
    assert_eq!(
        serde_json::to_string(&minimal).unwrap(),
        r#"{"userid":"u1","name":"Li Si","unionid":"","device_id":"","is_admin":false,"admin_level":0}"#
    );
    for (level, number) in [
        (AdminLevel::Other, 0),
        (AdminLevel::SuperAdmin, 1),
        (AdminLevel::SubAdmin, 2),
        (AdminLevel::Boss, 100),
        (AdminLevel::Unknown(7), 7),
    ] {
        let user = AuthenticatedDingTalkUser::builder("u", "n")
            .admin_level(level)
            .build();
        let json: serde_json::Value = serde_json::to_value(&user).unwrap();
        assert_eq!(json["admin_level"], number, "{level:?}");
        let back: AuthenticatedDingTalkUser = serde_json::from_value(json).unwrap();
        assert_eq!(back, user);
    }
}
