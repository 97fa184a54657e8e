//! Sessions without cookies: `token_login` exchanges a code once for a bearer token (the sealed
//! session), the token then signs every request in without DingTalk, refreshes until the absolute
//! lifetime, and a token that does not open is 401 `invalid_token`, never an anonymous request.

mod support;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use support::corps::Switch;
use support::{TestApp, assert_rejection};
use tower_dingtalk_auth::testing::MockDingTalk;
use tower_dingtalk_auth::{
    AuthenticatedDingTalkUser, ConfigError, DingTalkAuthLayer, SessionConfig, SessionKey,
};

const LOGIN: &str = "/auth/dingtalk/login";
const REFRESH: &str = "/auth/dingtalk/login/refresh";
const SECRET: &[u8] = b"the session key every replica shares, 32+ bytes";

fn session() -> SessionConfig {
    SessionConfig::new(SessionKey::from_bytes(SECRET).unwrap())
}

async fn token_app(dingtalk: MockDingTalk) -> TestApp {
    TestApp::with(dingtalk, |layer| {
        layer.session(session()).token_login(LOGIN)
    })
    .await
}

async fn login(app: &TestApp, code: &str) -> reqwest::Response {
    app.http
        .post(app.url(LOGIN))
        .json(&json!({ "code": code }))
        .send()
        .await
        .unwrap()
}

/// Logs in with a fresh code of `userid`; the token.
async fn token_of(app: &TestApp, userid: &str) -> String {
    let response = login(app, &app.dingtalk.issue_code(userid)).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["token"].as_str().unwrap().to_owned()
}

async fn get_with_token(app: &TestApp, path: &str, token: &str) -> reqwest::Response {
    app.http
        .get(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

async fn refresh(app: &TestApp, token: &str) -> reqwest::Response {
    app.http
        .post(app.url(REFRESH))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test]
async fn a_code_logs_in_once_and_its_token_serves_a_thousand_requests_without_dingtalk() {
    let app = token_app(support::dingtalk().await).await;
    let response = login(&app, &app.dingtalk.issue_code("boss01")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert_eq!(response.headers()["pragma"], "no-cache");
    assert_eq!(response.headers()["content-type"], "application/json");
    assert!(response.headers().get("set-cookie").is_none());
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["user"]["userid"], "boss01");
    assert_eq!(body["expires_in"], 8 * 60 * 60);
    let expires_at = body["expires_at"].as_u64().unwrap();
    assert!(
        expires_at.abs_diff(unix_now() + 8 * 60 * 60) <= 2,
        "{expires_at}"
    );
    let token = body["token"].as_str().unwrap();
    assert_eq!(app.dingtalk.userinfo_calls(), 1);
    assert_eq!(app.handler_runs(), 0, "the layer answers the login itself");

    for _ in 0..1000 {
        let response = get_with_token(&app, "/me", token).await;
        assert_eq!(response.status(), 200);
        assert_eq!(support::json(response).await["userid"], "boss01");
    }
    assert_eq!(app.dingtalk.userinfo_calls(), 1);
    assert_eq!(app.dingtalk.token_calls(), 1);
    assert_eq!(app.handler_runs(), 1000);
}

#[tokio::test]
async fn the_code_comes_as_json_a_form_or_from_the_usual_sources() {
    let app = token_app(support::dingtalk().await).await;
    let form = app
        .http
        .post(app.url(LOGIN))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "corpId=ignored&code={}",
            app.dingtalk.issue_code("staff01")
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 200);
    assert_eq!(support::json(form).await["user"]["userid"], "staff01");
    let header = app
        .http
        .post(app.url(LOGIN))
        .header("x-dingtalk-code", app.dingtalk.issue_code("sub01"))
        .send()
        .await
        .unwrap();
    assert_eq!(header.status(), 200);
    assert_eq!(support::json(header).await["user"]["userid"], "sub01");
    let json_charset = app
        .http
        .post(app.url(LOGIN))
        .header("content-type", "application/json; charset=utf-8")
        .body(json!({ "code": app.dingtalk.issue_code("super01") }).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(json_charset.status(), 200);
    assert_eq!(app.dingtalk.userinfo_calls(), 3);
}

#[tokio::test]
async fn a_code_starts_one_token_only() {
    let app = token_app(support::dingtalk().await).await;
    let code = app.dingtalk.issue_code("staff01");
    assert_eq!(login(&app, &code).await.status(), 200);
    // Within the reuse window the code's user is still cached, but it has had its session.
    assert_rejection(login(&app, &code).await, 401, "code_rejected", &[&code]).await;
    assert_eq!(app.dingtalk.userinfo_calls(), 1);
}

#[tokio::test]
async fn bad_logins_are_clear_and_cost_no_call() {
    let app = token_app(support::dingtalk().await).await;
    let post = || app.http.post(app.url(LOGIN));
    let cases = [
        (post(), 401, "missing_code"),
        (post().json(&json!({})), 401, "missing_code"),
        (post().json(&json!({ "code": "a b" })), 401, "invalid_code"),
        (
            post().json(&json!({ "code": "x".repeat(300) })),
            401,
            "invalid_code",
        ),
        (post().json(&json!({ "code": 42 })), 400, "invalid_request"),
        (
            post().header("content-type", "application/json").body("{"),
            400,
            "invalid_request",
        ),
        (
            post().header("content-type", "text/plain").body("code=abc"),
            400,
            "invalid_request",
        ),
        (
            post().json(&json!({ "code": "abc", "pad": "x".repeat(5000) })),
            400,
            "invalid_request",
        ),
    ];
    for (request, status, error) in cases {
        assert_rejection(request.send().await.unwrap(), status, error, &[]).await;
    }
    assert_eq!(app.dingtalk.total_calls(), 0);
    // A code DingTalk never issued costs its one call, and is refused.
    assert_rejection(login(&app, "never-issued").await, 401, "code_rejected", &[]).await;
    assert_eq!(app.dingtalk.userinfo_calls(), 1);
    assert_eq!(app.handler_runs(), 0);
}

#[tokio::test]
async fn a_token_that_does_not_open_is_invalid_token_never_anonymous() {
    let app = token_app(support::dingtalk().await).await;
    let token = token_of(&app, "staff01").await;
    // Another key, and another app with the same key.
    let other_key = TestApp::with(support::dingtalk().await, |layer| {
        layer
            .session(SessionConfig::new(SessionKey::generate()))
            .token_login(LOGIN)
    })
    .await;
    let foreign_key = token_of(&other_key, "staff01").await;
    let other_app = token_app(
        MockDingTalk::builder()
            .app("dingotherapp", "other-secret")
            .user(support::known_users().remove(0))
            .start()
            .await,
    )
    .await;
    let foreign_app = token_of(&other_app, "staff01").await;
    let mut tampered = token.clone().into_bytes();
    tampered[10] = if tampered[10] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();

    let optional = TestApp::with(support::dingtalk().await, |layer| {
        layer.session(session()).token_login(LOGIN).optional()
    })
    .await;
    for app in [&app, &optional] {
        for bad in [&tampered, &foreign_key, &foreign_app, &String::new()] {
            for path in ["/me", "/maybe"] {
                let response = get_with_token(app, path, bad).await;
                let secrets: &[&str] = if bad.is_empty() { &[] } else { &[bad] };
                let headers = assert_rejection(response, 401, "invalid_token", secrets).await;
                assert_eq!(
                    headers["www-authenticate"],
                    r#"Bearer realm="dingtalk", error="invalid_token""#
                );
            }
        }
        assert_eq!(app.handler_runs(), 0);
    }
    // Another scheme is not ours: no user, not a token error.
    let basic = optional
        .http
        .get(optional.url("/maybe"))
        .basic_auth("user", Some("password"))
        .send()
        .await
        .unwrap();
    assert_eq!(basic.text().await.unwrap(), "anonymous");
    // The real token still works everywhere with the key.
    assert_eq!(
        get_with_token(&optional, "/maybe", &token)
            .await
            .text()
            .await
            .unwrap(),
        "user staff01"
    );
}

#[tokio::test]
async fn a_token_in_the_query_string_is_not_read() {
    let app = token_app(support::dingtalk().await).await;
    let token = token_of(&app, "staff01").await;
    let encoded: String = form_urlencoded::byte_serialize(token.as_bytes()).collect();
    for query in ["access_token", "token", "authorization"] {
        let response = app
            .http
            .get(app.url(&format!("/me?{query}={encoded}")))
            .send()
            .await
            .unwrap();
        assert_rejection(response, 401, "missing_code", &[&token]).await;
    }
    assert_eq!(app.handler_runs(), 0);
}

#[tokio::test]
async fn a_code_wins_over_a_token() {
    let app = token_app(support::dingtalk().await).await;
    let token = token_of(&app, "staff01").await;
    let code = app.dingtalk.issue_code("boss01");
    let response = app
        .http
        .get(app.url("/me"))
        .bearer_auth(&token)
        .header("x-dingtalk-code", &code)
        .send()
        .await
        .unwrap();
    assert_eq!(support::json(response).await["userid"], "boss01");
    let response = app
        .http
        .get(app.url("/me"))
        .bearer_auth(&token)
        .header("x-dingtalk-code", "never-issued")
        .send()
        .await
        .unwrap();
    assert_rejection(response, 401, "code_rejected", &[&token]).await;
}

#[tokio::test]
async fn refresh_answers_a_new_token_without_dingtalk() {
    let app = token_app(support::dingtalk().await).await;
    let token = token_of(&app, "super01").await;
    let calls = app.dingtalk.total_calls();
    let response = refresh(&app, &token).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["user"]["userid"], "super01");
    let fresh = body["token"].as_str().unwrap();
    assert_ne!(fresh, token);
    let response = get_with_token(&app, "/me", fresh).await;
    assert_eq!(support::json(response).await["userid"], "super01");
    assert_eq!(app.dingtalk.total_calls(), calls);

    let no_token = app.http.post(app.url(REFRESH)).send().await.unwrap();
    assert_rejection(no_token, 401, "invalid_token", &[]).await;
    let with_code = app
        .http
        .post(app.url(REFRESH))
        .header("x-dingtalk-code", app.dingtalk.issue_code("staff01"))
        .send()
        .await
        .unwrap();
    assert_rejection(with_code, 401, "invalid_token", &[]).await;
    assert_eq!(app.dingtalk.userinfo_calls(), 1);
}

#[tokio::test]
async fn tokens_expire_and_refreshing_stops_at_the_absolute_lifetime() {
    let session = session()
        .lifetime(Duration::from_millis(1000))
        .absolute_lifetime(Duration::from_millis(1600));
    let app = TestApp::with(support::dingtalk().await, |layer| {
        layer.session(session).token_login(LOGIN)
    })
    .await;
    let first = token_of(&app, "staff01").await; // valid until 1.0 s
    tokio::time::sleep(Duration::from_millis(500)).await;
    let response = refresh(&app, &first).await; // at 0.5 s: valid until 1.5 s
    assert_eq!(response.status(), 200);
    let second = support::json(response).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    tokio::time::sleep(Duration::from_millis(600)).await; // 1.1 s
    let expired = get_with_token(&app, "/me", &first).await;
    assert_rejection(expired, 401, "invalid_token", &[&first]).await;
    assert_eq!(get_with_token(&app, "/me", &second).await.status(), 200);
    let response = refresh(&app, &second).await; // capped at the login's 1.6 s
    assert_eq!(response.status(), 200);
    let body = support::json(response).await;
    assert!(body["expires_in"].as_u64().unwrap() <= 1, "{body}");
    let third = body["token"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(650)).await; // 1.75 s
    for token in [&second, &third] {
        let response = get_with_token(&app, "/me", token).await;
        assert_rejection(response, 401, "invalid_token", &[token]).await;
        assert_rejection(refresh(&app, token).await, 401, "invalid_token", &[token]).await;
    }
    assert_eq!(app.dingtalk.userinfo_calls(), 1);
}

#[tokio::test]
async fn a_token_from_one_replica_works_on_another_with_the_same_key() {
    let dingtalk = support::dingtalk().await;
    let replica = || {
        dingtalk
            .layer_builder()
            .session(session())
            .token_login(LOGIN)
            .build()
            .unwrap()
    };
    let serve = async |layer: DingTalkAuthLayer| {
        let app = support::routes(Arc::new(AtomicU64::new(0))).layer(layer);
        support::serve(app).await.0
    };
    let (one, two) = (serve(replica()).await, serve(replica()).await);
    let http = reqwest::Client::new();
    let response = http
        .post(format!("http://{one}{LOGIN}"))
        .json(&json!({ "code": dingtalk.issue_code("sub01") }))
        .send()
        .await
        .unwrap();
    let token = support::json(response).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    for replica in [two, one, two] {
        let response = http
            .get(format!("http://{replica}/me"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(support::json(response).await["userid"], "sub01");
    }
    let response = http
        .post(format!("http://{two}{REFRESH}"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(dingtalk.userinfo_calls(), 1);
}

#[tokio::test]
async fn other_methods_and_paths_are_not_the_endpoint() {
    let app = token_app(support::dingtalk().await).await;
    // GET on the login path is an ordinary request: no code, 401.
    let response = app.http.get(app.url(LOGIN)).send().await.unwrap();
    assert_rejection(response, 401, "missing_code", &[]).await;
    let response = app
        .http
        .post(app.url(&format!("{LOGIN}/other")))
        .json(&json!({ "code": "abc" }))
        .send()
        .await
        .unwrap();
    assert_rejection(response, 401, "missing_code", &[]).await;
    assert_eq!(app.dingtalk.total_calls(), 0);
}

#[tokio::test]
async fn token_login_configuration_is_checked() {
    let dingtalk = support::dingtalk().await;
    let error = dingtalk
        .layer_builder()
        .token_login(LOGIN)
        .build()
        .unwrap_err();
    assert!(
        matches!(error, ConfigError::TokenLoginNeedsSession),
        "{error}"
    );
    for path in ["auth/login", "/auth login", "/auth?x=1", ""] {
        let error = dingtalk
            .layer_builder()
            .session(session())
            .token_login(path)
            .build()
            .unwrap_err();
        assert!(
            matches!(error, ConfigError::InvalidTokenLoginPath),
            "{path}"
        );
    }
    let error = dingtalk
        .layer_builder()
        .session(
            session()
                .lifetime(Duration::from_secs(60))
                .absolute_lifetime(Duration::from_secs(59)),
        )
        .build()
        .unwrap_err();
    assert!(
        matches!(error, ConfigError::AbsoluteLifetimeBelowLifetime { .. }),
        "{error}"
    );
}

#[tokio::test]
async fn a_third_party_token_names_its_corp_and_a_removed_corp_cannot_refresh() {
    const CORP: &str = "dingtokencorp01";
    let dingtalk = support::dingtalk().await;
    dingtalk.add_corp(CORP);
    dingtalk.add_corp_user(
        CORP,
        AuthenticatedDingTalkUser::builder("u1", "Corp User").build(),
    );
    let (key, secret) = (dingtalk.suite_key(), dingtalk.suite_secret());
    let directory = Switch::installed();
    let installed = directory.clone();
    let app = TestApp::with_client(
        dingtalk,
        move |c| c.third_party_app(key, secret),
        move |l| {
            l.corp_directory(directory)
                .session(session())
                .token_login(LOGIN)
        },
    )
    .await;
    let code = app.dingtalk.issue_corp_code(CORP, "u1");
    // Without the corp: refused before any call.
    let response = login(&app, &code).await;
    assert_rejection(response, 401, "missing_corp_id", &[&code]).await;
    // Two different corps in one form: ambiguous, refused before any call.
    let response = app
        .http
        .post(app.url(LOGIN))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("code={code}&corpId={CORP}&corpId=dingothercorp"))
        .send()
        .await
        .unwrap();
    assert_rejection(response, 401, "invalid_corp_id", &[&code]).await;
    assert_eq!(app.dingtalk.userinfo_calls(), 0);
    let response = app
        .http
        .post(app.url(LOGIN))
        .json(&json!({ "code": code, "corpId": CORP }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body = support::json(response).await;
    assert_eq!(body["user"]["corp_id"], CORP);
    let token = body["token"].as_str().unwrap().to_owned();
    assert_eq!(
        support::json(get_with_token(&app, "/me", &token).await).await["userid"],
        "u1"
    );

    installed.remove();
    let refreshed = refresh(&app, &token).await;
    assert_rejection(refreshed, 401, "corp_not_authorized", &[&token]).await;
    assert_eq!(app.dingtalk.userinfo_calls(), 1);
}

/// A cookie is not a refresh token, nor a token a cookie: the kind is sealed into the session, so
/// the `HttpOnly` cookie's value sent as a bearer token (to an API or to refresh, where it would
/// become a token that outlives the cookie) is `invalid_token`, and a token sent as the cookie is
/// no session. Both hold after the layer has opened them once (the opened-session cache).
#[tokio::test]
async fn a_cookie_is_not_a_refresh_token() {
    let app = token_app(support::dingtalk().await).await;
    let page = app
        .get_with_code("/me", &app.dingtalk.issue_code("boss01"))
        .await;
    assert_eq!(page.status(), 200);
    let set_cookie = page.headers()["set-cookie"].to_str().unwrap().to_owned();
    let pair = set_cookie.split(';').next().unwrap().to_owned();
    let (name, cookie_value) = pair.split_once('=').unwrap();
    let token = token_of(&app, "sub01").await;
    let with_cookie = |value: &str| {
        app.http
            .get(app.url("/me"))
            .header("cookie", format!("{name}={value}"))
            .send()
    };
    // Each as itself works (and is now remembered by the layer).
    assert_eq!(with_cookie(cookie_value).await.unwrap().status(), 200);
    assert_eq!(get_with_token(&app, "/me", &token).await.status(), 200);
    for _ in 0..2 {
        let response = get_with_token(&app, "/me", cookie_value).await;
        assert_rejection(response, 401, "invalid_token", &[cookie_value]).await;
        let response = refresh(&app, cookie_value).await;
        assert_rejection(response, 401, "invalid_token", &[cookie_value]).await;
        let response = with_cookie(&token).await.unwrap();
        assert_rejection(response, 401, "missing_code", &[&token]).await;
    }
    // A refreshed token is still a token, and the chain stays one of tokens.
    let refreshed = refresh(&app, &token).await;
    assert_eq!(refreshed.status(), 200);
    let refreshed: Value = refreshed.json().await.unwrap();
    let refreshed = refreshed["token"].as_str().unwrap();
    assert_eq!(get_with_token(&app, "/me", refreshed).await.status(), 200);
    let response = with_cookie(refreshed).await.unwrap();
    assert_rejection(response, 401, "missing_code", &[refreshed]).await;
    assert_eq!(app.dingtalk.userinfo_calls(), 2);
}

/// Two different codes (or corp ids) in one login body are ambiguous, as in a query: which of two
/// people would the token be for? Identical repeats are harmless.
#[tokio::test]
async fn two_codes_in_a_login_body_are_ambiguous() {
    let app = token_app(support::dingtalk().await).await;
    let alice = app.dingtalk.issue_code("staff01");
    let boss = app.dingtalk.issue_code("boss01");
    let form = |body: String| {
        app.http
            .post(app.url(LOGIN))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
    };
    let response = form(format!("code={alice}&code={boss}")).await.unwrap();
    assert_rejection(response, 401, "invalid_code", &[&alice, &boss]).await;
    // The body's code and another in the usual header.
    let response = app
        .http
        .post(app.url(LOGIN))
        .header("x-dingtalk-code", &boss)
        .json(&json!({ "code": alice }))
        .send()
        .await
        .unwrap();
    assert_rejection(response, 401, "invalid_code", &[&alice, &boss]).await;
    // JSON with the key twice is no login body.
    let response = app
        .http
        .post(app.url(LOGIN))
        .header("content-type", "application/json")
        .body(format!(r#"{{"code": "{alice}", "code": "{boss}"}}"#))
        .send()
        .await
        .unwrap();
    assert_rejection(response, 400, "invalid_request", &[&alice, &boss]).await;
    assert_eq!(
        app.dingtalk.userinfo_calls(),
        0,
        "no call for an ambiguous login"
    );
    let response = form(format!("code={boss}&code={boss}")).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(json_user(response).await, "boss01");
}

async fn json_user(response: reqwest::Response) -> String {
    let body: Value = response.json().await.unwrap();
    body["user"]["userid"].as_str().unwrap().to_owned()
}

/// A login body that never finishes has a deadline: the client's `upstream_timeout`, then 408
/// `request_timeout`, with no call to DingTalk.
#[tokio::test]
async fn a_login_body_that_never_finishes_is_408_in_time() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::with_client(
        support::dingtalk().await,
        |c| c.upstream_timeout(Duration::from_millis(500)),
        |l| l.session(session()).token_login(LOGIN),
    )
    .await;
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "POST {LOGIN} HTTP/1.1\r\nhost: app\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{{\"code\": "
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let started = std::time::Instant::now();
    let mut answer = vec![0; 4096];
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut answer))
        .await
        .expect("an answer before the test gives up")
        .unwrap();
    let took = started.elapsed();
    let answer = String::from_utf8_lossy(&answer[..read]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains(r#""error":"request_timeout""#), "{answer}");
    assert!(took >= Duration::from_millis(450), "{took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert_eq!(app.dingtalk.total_calls(), 0);
}

/// Login routes under `route_layer`: pages, their API, the token login, a public health check and
/// sign-out in one app, with the layer on the protected routes only and its endpoints mounted
/// beside them: unknown paths stay 404 and public routes need no login.
#[tokio::test]
async fn login_routes_mount_beside_route_layer_and_unknown_paths_stay_404() {
    use axum::routing::{get, post};
    let dingtalk = support::dingtalk().await;
    let auth = support::layer_for(&dingtalk)
        .session(session())
        .token_login(LOGIN)
        .build()
        .unwrap();
    let sign_out = auth.sessions().unwrap().sign_out_cookie();
    let app = axum::Router::new()
        .route(
            "/api/me",
            get(|user: AuthenticatedDingTalkUser| async move { axum::Json(user) }),
        )
        .route_layer(auth.clone())
        .merge(auth.login_routes())
        .route("/health", get(|| async { "ok" }))
        .route(
            "/sign-out",
            post(move || async move { ([(http::header::SET_COOKIE, sign_out)], "bye") }),
        );
    let (addr, _server) = support::serve(app).await;
    let http = reqwest::Client::new();
    let url = |path: &str| format!("http://{addr}{path}");

    assert_eq!(http.get(url("/health")).send().await.unwrap().status(), 200);
    assert_eq!(http.get(url("/nope")).send().await.unwrap().status(), 404);
    assert_eq!(http.post(url("/nope")).send().await.unwrap().status(), 404);
    let response = http.get(url("/api/me")).send().await.unwrap();
    assert_rejection(response, 401, "missing_code", &[]).await;
    // The token login and its refresh, through the mounted routes.
    let code = dingtalk.issue_code("boss01");
    let response = http
        .post(url(LOGIN))
        .json(&json!({ "code": code }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let token = response.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let response = http
        .get(url("/api/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.json::<Value>().await.unwrap()["userid"], "boss01");
    let response = http
        .post(url(REFRESH))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // The same code again, and a bad body, through the mounted routes too.
    let response = http
        .post(url(LOGIN))
        .json(&json!({ "code": code }))
        .send()
        .await
        .unwrap();
    assert_rejection(response, 401, "code_rejected", &[&code]).await;
    let response = http.post(url(LOGIN)).body("junk").send().await.unwrap();
    assert_rejection(response, 400, "invalid_request", &[]).await;
    assert_eq!(
        http.post(url("/sign-out")).send().await.unwrap().status(),
        200
    );
    assert_eq!(dingtalk.userinfo_calls(), 1);
    // A layer without a token login mounts nothing.
    let plain = support::layer_for(&dingtalk).build().unwrap();
    let app = axum::Router::new()
        .merge(plain.login_routes())
        .route("/health", get(|| async { "ok" }));
    let (addr, _server) = support::serve(app).await;
    let response = http
        .post(format!("http://{addr}{LOGIN}"))
        .json(&json!({ "code": "x" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
}
