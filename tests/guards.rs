//! Guards on `route_layer`: 401 without a user, 403 for a user who fails, the handler untouched,
//! and a path that matches no route still 404.

mod support;

use std::convert::Infallible;
use std::future::Ready;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use http::{Request, Response};
use support::guards::{GuardedApp, guarded_routes};
use support::{assert_rejection, json};
use tower::{Layer, Service, ServiceExt};
use tower_dingtalk_auth::{AuthenticatedDingTalkUser, DingTalkAuthLayer, guard};

#[tokio::test]
async fn each_guard_lets_through_exactly_the_users_it_names() {
    let app = GuardedApp::start(false).await;
    // staff01: not admin; boss01: Boss; super01: SuperAdmin; sub01: SubAdmin;
    // odd01: level Unknown(7) with the sys flag off.
    let table = [
        ("/admin", ["boss01", "super01", "sub01"].as_slice()),
        ("/owners", ["boss01", "super01"].as_slice()),
        ("/subs", ["sub01"].as_slice()),
        ("/custom", ["staff01", "super01", "sub01"].as_slice()),
    ];
    let users = ["staff01", "boss01", "super01", "sub01", "odd01"];
    let mut expected_runs = 0;
    for (path, allowed) in table {
        for userid in users {
            let response = app.get_as(path, userid).await;
            if allowed.contains(&userid) {
                assert_eq!(response.status(), 200, "{path} {userid}");
                assert_eq!(
                    response.text().await.unwrap(),
                    format!("{path} for {userid}")
                );
                expected_runs += 1;
            } else {
                let headers = assert_rejection(response, 403, "forbidden", &[]).await;
                assert!(headers.get("www-authenticate").is_none(), "{path} {userid}");
                assert_eq!(headers["cache-control"], "no-store");
            }
            assert_eq!(app.runs(), expected_runs, "{path} {userid}");
        }
    }
    assert_eq!(app.dingtalk.userinfo_calls(), 20);
}

#[tokio::test]
async fn a_request_without_a_user_is_401_from_the_guard() {
    // The authentication layer lets anonymous requests through; the guard stops them.
    let app = GuardedApp::start(true).await;
    for path in ["/admin", "/owners", "/subs", "/custom"] {
        let response = app.get(path).await;
        let headers = assert_rejection(response, 401, "missing_code", &[]).await;
        assert_eq!(headers["www-authenticate"], r#"DingTalk realm="dingtalk""#);
    }
    assert_eq!(app.runs(), 0);
    assert_eq!(app.dingtalk.total_calls(), 0);
    // With a user, the same routes answer.
    assert_eq!(app.get_as("/admin", "super01").await.status(), 200);
}

#[tokio::test]
async fn a_path_that_matches_no_route_stays_404() {
    for optional_auth in [false, true] {
        let app = GuardedApp::start(optional_auth).await;
        assert_eq!(app.get("/nowhere").await.status(), 404);
        assert_eq!(app.get_as("/nowhere", "staff01").await.status(), 404);
        assert_eq!(app.get("/admin/deeper").await.status(), 404);
        // A route_layer'd authentication layer never even calls DingTalk for it.
        if !optional_auth {
            assert_eq!(app.dingtalk.total_calls(), 0);
        }
        assert_eq!(app.runs(), 0);
    }
}

#[tokio::test]
async fn the_403_message_can_be_configured() {
    let dingtalk = support::dingtalk().await;
    let auth = support::layer_for(&dingtalk).optional().build().unwrap();
    let app = Router::new()
        .route("/finance", get(|| async { "numbers" }))
        .route_layer(
            guard::require(|user: &AuthenticatedDingTalkUser| user.userid() == "boss01")
                .message("only the boss sees the numbers"),
        )
        .layer(auth);
    let (addr, server) = support::serve(app).await;
    let response = reqwest::Client::new()
        .get(format!("http://{addr}/finance"))
        .header("x-dingtalk-code", dingtalk.issue_code("super01"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let body = json(response).await;
    assert_eq!(body["error"], "forbidden");
    assert_eq!(body["message"], "only the boss sees the numbers");
    server.abort();
}

/// A service that is never ready and must never be called.
#[derive(Clone)]
struct NeverReady;

impl Service<Request<String>> for NeverReady {
    type Response = Response<String>;
    type Error = Infallible;
    type Future = Ready<Result<Response<String>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Pending
    }

    fn call(&mut self, _request: Request<String>) -> Self::Future {
        unreachable!("a rejected request reached the inner service")
    }
}

#[tokio::test]
async fn a_rejection_does_not_wait_for_the_inner_service_to_be_ready() {
    let service = guard::require_admin().layer(NeverReady);
    let no_user = Request::new(String::new());
    let response = tokio::time::timeout(Duration::from_secs(10), service.clone().oneshot(no_user))
        .await
        .expect("the guard answered without waiting for the inner service")
        .unwrap();
    // No authentication layer saw this request: the guard says the server is misconfigured.
    assert_eq!(response.status(), 500);

    let mut staff = Request::new(String::new());
    staff
        .extensions_mut()
        .insert(AuthenticatedDingTalkUser::builder("staff01", "Li Si").build());
    let response = tokio::time::timeout(Duration::from_secs(10), service.oneshot(staff))
        .await
        .expect("the guard answered without waiting for the inner service")
        .unwrap();
    assert_eq!(response.status(), 403);
}

#[tokio::test]
async fn guards_work_behind_sessions() {
    let dingtalk = support::dingtalk().await;
    let auth: DingTalkAuthLayer = support::layer_for(&dingtalk)
        .session(tower_dingtalk_auth::SessionConfig::new(
            tower_dingtalk_auth::SessionKey::generate(),
        ))
        .build()
        .unwrap();
    let runs = Arc::new(AtomicU64::new(0));
    let (addr, server) = support::serve(guarded_routes(runs.clone()).route_layer(auth)).await;
    let http = reqwest::Client::new();
    let mut cookies = Vec::new();
    for userid in ["staff01", "super01"] {
        let response = http
            .get(format!("http://{addr}/custom"))
            .header("x-dingtalk-code", dingtalk.issue_code(userid))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let cookie = response.headers()["set-cookie"].to_str().unwrap();
        cookies.push(cookie.split(';').next().unwrap().to_owned());
    }
    let [staff, admin] = [&cookies[0], &cookies[1]];
    let status = |cookie: &str| {
        let request = http
            .get(format!("http://{addr}/owners"))
            .header("cookie", cookie);
        async move { request.send().await.unwrap().status() }
    };
    assert_eq!(status(staff).await, 403);
    assert_eq!(status(admin).await, 200);
    assert_eq!(dingtalk.userinfo_calls(), 2);
    server.abort();
}

/// A guard's realm cannot forge challenge parameters: the deprecated `GuardLayer::realm` is held
/// to the layer's own check, and a realm that would end the quoted string early is ignored (with
/// an error log) instead of written into `WWW-Authenticate`.
#[tokio::test(flavor = "current_thread")]
#[allow(deprecated)]
async fn a_guards_realm_cannot_forge_challenge_parameters() {
    let (_guard, logs) = support::capture_logs();
    let dingtalk = support::dingtalk().await;
    let forged = guard::require_admin().realm(r#"x", error="forged"#);
    let backslash = guard::require_admin().realm(r"x\");
    let honest = guard::require_admin().realm("payroll");
    let auth = support::layer_for(&dingtalk).optional().build().unwrap();
    let ok = || async { "ok" };
    let app = axum::Router::new()
        .route("/forged", axum::routing::get(ok).route_layer(forged))
        .route("/backslash", axum::routing::get(ok).route_layer(backslash))
        .route("/honest", axum::routing::get(ok).route_layer(honest))
        .layer(auth);
    let (addr, server) = support::serve(app).await;
    let http = reqwest::Client::new();
    for (path, challenge) in [
        ("/forged", r#"DingTalk realm="dingtalk""#),
        ("/backslash", r#"DingTalk realm="dingtalk""#),
        ("/honest", r#"DingTalk realm="payroll""#),
    ] {
        let response = http
            .get(format!("http://{addr}{path}"))
            .send()
            .await
            .unwrap();
        let headers = assert_rejection(response, 401, "missing_code", &[]).await;
        assert_eq!(headers["www-authenticate"], challenge, "{path}");
    }
    assert_eq!(
        logs.contents().matches("GuardLayer::realm ignored").count(),
        2
    );
    server.abort();
}
