//! Sessions: one code exchange, then an encrypted cookie; its life, its attributes, tampering,
//! key rotation, replicas, signing out and configuration errors.

mod support;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use axum::routing::get;
use support::{TestApp, assert_rejection, json};
use tower_dingtalk_auth::{
    AuthenticatedDingTalkUser, ConfigError, HOST_SESSION_COOKIE, SessionConfig, SessionKey,
};

const SECRET: &[u8] = b"the session secret every replica shares, 32+ bytes";
const OTHER_SECRET: &[u8] = b"another secret entirely, also at least 32 bytes";
const THIRD_SECRET: &[u8] = b"a third secret, which nobody else has, 32 bytes+";

fn key(secret: &[u8]) -> SessionKey {
    SessionKey::from_bytes(secret).expect("a long enough secret")
}

fn session() -> SessionConfig {
    SessionConfig::new(key(SECRET))
}

async fn app_with(session: SessionConfig) -> TestApp {
    TestApp::with(support::dingtalk().await, move |builder| {
        builder.session(session)
    })
    .await
}

/// Every `Set-Cookie` of a response for the cookie `name`.
fn set_cookies<'a>(response: &'a reqwest::Response, name: &str) -> Vec<&'a str> {
    let prefix = format!("{name}=");
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|value| value.to_str().unwrap())
        .filter(|value| value.starts_with(&prefix))
        .collect()
}

/// The session cookie a response sets, as the `name=value` pair a browser sends back.
fn session_cookie(response: &reqwest::Response) -> String {
    let set = set_cookies(response, HOST_SESSION_COOKIE);
    assert_eq!(set.len(), 1, "one session cookie: {set:?}");
    set[0].split(';').next().unwrap().to_owned()
}

async fn get_with_cookie(app: &TestApp, path: &str, cookie: &str) -> reqwest::Response {
    app.http
        .get(app.url(path))
        .header("cookie", cookie)
        .send()
        .await
        .expect("the app answers")
}

/// Signs `userid` in on `app` with a fresh code and returns the session cookie.
async fn sign_in(app: &TestApp, userid: &str) -> String {
    let code = app.dingtalk.issue_code(userid);
    let response = app.get_with_code("/me", &code).await;
    assert_eq!(response.status(), 200);
    let cookie = session_cookie(&response);
    assert_eq!(json(response).await["userid"], userid);
    cookie
}

#[tokio::test]
async fn a_session_lives_from_one_code_to_its_expiry_without_calling_dingtalk_again() {
    let app = app_with(session().lifetime(Duration::from_secs(2))).await;
    let code = app.dingtalk.issue_code("boss01");

    // The code is exchanged once, and the answer carries the session.
    let response = app.get_with_code("/me", &code).await;
    assert_eq!(response.status(), 200);
    let cookie = session_cookie(&response);
    assert_eq!(json(response).await["userid"], "boss01");
    assert_eq!(app.dingtalk.userinfo_calls(), 1);

    // The cookie alone signs in, on every route, with every extractor, and sets no new cookie.
    let response = get_with_cookie(&app, "/me", &cookie).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("set-cookie").is_none());
    let user = json(response).await;
    assert_eq!(user["userid"], "boss01");
    assert_eq!(user["name"], "Wang Wu");
    assert_eq!(user["admin_level"], 100);
    assert_eq!(user["associated_unionid"], "assoc-boss01");
    let response = get_with_cookie(&app, "/maybe", &cookie).await;
    assert_eq!(response.text().await.unwrap(), "user boss01");
    let response = get_with_cookie(&app, "/ext", &cookie).await;
    assert_eq!(response.text().await.unwrap(), "ext boss01");
    assert_eq!(app.dingtalk.userinfo_calls(), 1);
    assert_eq!(app.dingtalk.token_calls(), 1);
    assert_eq!(app.handler_runs(), 4);

    // Past the lifetime the cookie is refused even though the client kept sending it: the expiry
    // is sealed inside, not only in Max-Age.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let response = get_with_cookie(&app, "/me", &cookie).await;
    let headers = assert_rejection(response, 401, "missing_code", &[&code]).await;
    assert_eq!(headers["www-authenticate"], r#"DingTalk realm="dingtalk""#);
    assert_eq!(app.dingtalk.userinfo_calls(), 1);
    assert_eq!(app.handler_runs(), 4);
}

#[tokio::test]
async fn the_cookie_is_http_only_secure_lax_on_the_root_for_eight_hours_by_default() {
    let app = app_with(session()).await;
    let code = app.dingtalk.issue_code("staff01");
    let response = app.get_with_code("/me", &code).await;
    let set = set_cookies(&response, "__Host-dingtalk_session");
    assert_eq!(set.len(), 1);
    let mut parts = set[0].split("; ");
    let pair = parts.next().unwrap();
    let mut attributes: Vec<&str> = parts.collect();
    attributes.sort_unstable();
    assert_eq!(
        attributes,
        [
            "HttpOnly",
            "Max-Age=28800",
            "Path=/",
            "SameSite=Lax",
            "Secure"
        ]
    );
    // The value is sealed: nothing of the user, nor the code, can be read in it.
    let value = pair.strip_prefix("__Host-dingtalk_session=").unwrap();
    assert!(value.len() > 40, "{value}");
    for clear in ["staff01", "Li Si", "union-staff01", "device-staff01", &code] {
        assert!(!value.contains(clear), "{clear} in {value}");
    }
    // Two sessions of the same user never look alike (a fresh nonce each time).
    let again = app
        .get_with_code("/me", &app.dingtalk.issue_code("staff01"))
        .await;
    assert_ne!(session_cookie(&again), pair);
}

#[tokio::test]
async fn the_cookie_attributes_can_be_configured() {
    let app = app_with(
        session()
            .cookie_name("sid")
            .secure(false)
            .lifetime(Duration::from_secs(90 * 60))
            .path("/app")
            .domain("example.com"),
    )
    .await;
    let code = app.dingtalk.issue_code("staff01");
    let response = app.get_with_code("/me", &code).await;
    assert!(set_cookies(&response, "__Host-dingtalk_session").is_empty());
    let set = set_cookies(&response, "sid");
    assert_eq!(set.len(), 1);
    let mut attributes: Vec<&str> = set[0].split("; ").skip(1).collect();
    attributes.sort_unstable();
    assert_eq!(
        attributes,
        [
            "Domain=example.com",
            "HttpOnly",
            "Max-Age=5400",
            "Path=/app",
            "SameSite=Lax"
        ]
    );
    // And it signs in under its own name.
    let pair = set[0].split(';').next().unwrap().to_owned();
    let response = get_with_cookie(&app, "/me", &pair).await;
    assert_eq!(json(response).await["userid"], "staff01");
}

#[tokio::test]
async fn changing_any_byte_of_the_cookie_makes_it_absent() {
    let app = app_with(session()).await;
    let cookie = sign_in(&app, "super01").await;
    let value = cookie.strip_prefix("__Host-dingtalk_session=").unwrap();
    assert_eq!(
        get_with_cookie(&app, "/me", &cookie).await.status(),
        200,
        "the untouched cookie works"
    );
    for i in 0..value.len() {
        let mut bytes = value.as_bytes().to_vec();
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        let tampered = format!(
            "__Host-dingtalk_session={}",
            String::from_utf8(bytes).unwrap()
        );
        let response = get_with_cookie(&app, "/me", &tampered).await;
        assert_eq!(response.status(), 401, "byte {i} changed: {tampered}");
        assert_eq!(json(response).await["error"], "missing_code");
    }
    assert_eq!(app.dingtalk.userinfo_calls(), 1);
    assert_eq!(app.handler_runs(), 2);
}

#[tokio::test]
async fn cookies_that_are_not_ours_are_absent_never_an_error() {
    let app = app_with(session()).await;
    let cookie = sign_in(&app, "staff01").await;
    let value = cookie
        .strip_prefix("__Host-dingtalk_session=")
        .unwrap()
        .to_owned();
    let user = AuthenticatedDingTalkUser::builder("staff01", "Li Si").build();
    // The same key and app, sealed under another cookie name: the name is bound into the seal.
    let other_layer = support::layer_for(&app.dingtalk)
        .session(session().cookie_name("other"))
        .build()
        .unwrap();
    let other_name = other_layer.sessions().unwrap().issue(&user);
    let other_value =
        other_name.to_str().unwrap().split(';').next().unwrap()["other=".len()..].to_owned();
    let hostile = [
        String::new(),
        "x".to_owned(),
        "%%%%".to_owned(),
        "====".to_owned(),
        value[..value.len() - 1].to_owned(),
        value[..value.len() / 2].to_owned(),
        value[1..].to_owned(),
        format!("{value}{value}"),
        format!("{value}AAAA"),
        "A".repeat(5000),
        "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB".to_owned(),
        r#"{"v":1,"iat":0,"exp":99999999999999,"user":{"userid":"boss01","name":"x"}}"#.to_owned(),
        other_value,
    ];
    for bad in &hostile {
        let response = get_with_cookie(
            &app,
            "/me",
            &format!("__Host-__Host-dingtalk_session={bad}"),
        )
        .await;
        assert_eq!(response.status(), 401, "cookie {bad:?}");
        assert_eq!(json(response).await["error"], "missing_code");
    }
    // Alongside other cookies, a bad session among several is skipped and a good one is found.
    let response = get_with_cookie(
        &app,
        "/me",
        &format!("theme=dark; __Host-dingtalk_session=forged; {cookie}; lang=zh"),
    )
    .await;
    assert_eq!(json(response).await["userid"], "staff01");
    assert_eq!(app.handler_runs(), 2);
}

#[tokio::test]
async fn in_optional_mode_a_bad_cookie_means_no_user() {
    let app = TestApp::with(support::dingtalk().await, |builder| {
        builder.optional().session(session())
    })
    .await;
    let response = get_with_cookie(&app, "/maybe", "__Host-dingtalk_session=forged").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "anonymous");
    let cookie = sign_in(&app, "sub01").await;
    let response = get_with_cookie(&app, "/maybe", &cookie).await;
    assert_eq!(response.text().await.unwrap(), "user sub01");
}

#[tokio::test]
async fn an_old_key_still_opens_after_rotation_and_an_unknown_key_does_not() {
    let before = app_with(SessionConfig::new(key(SECRET))).await;
    let rotated =
        app_with(SessionConfig::new(key(OTHER_SECRET)).previous_keys([key(SECRET)])).await;
    let stranger = app_with(SessionConfig::new(key(THIRD_SECRET))).await;

    let old_cookie = sign_in(&before, "boss01").await;
    // After the rotation the old cookie still signs in...
    let response = get_with_cookie(&rotated, "/me", &old_cookie).await;
    assert_eq!(json(response).await["userid"], "boss01");
    // ...new cookies are sealed with the new key, which the old configuration cannot open...
    let new_cookie = sign_in(&rotated, "sub01").await;
    let response = get_with_cookie(&rotated, "/me", &new_cookie).await;
    assert_eq!(json(response).await["userid"], "sub01");
    let response = get_with_cookie(&before, "/me", &new_cookie).await;
    assert_rejection(response, 401, "missing_code", &[]).await;
    // ...and a key nobody configured opens nothing.
    for cookie in [&old_cookie, &new_cookie] {
        let response = get_with_cookie(&stranger, "/me", cookie).await;
        assert_rejection(response, 401, "missing_code", &[]).await;
    }
    assert_eq!(rotated.dingtalk.userinfo_calls(), 1);
    assert_eq!(stranger.dingtalk.total_calls(), 0);
}

#[tokio::test]
async fn replicas_that_share_the_key_share_the_sessions() {
    let first = app_with(session()).await;
    let second = app_with(session()).await;
    let cookie = sign_in(&first, "super01").await;
    for _ in 0..3 {
        let response = get_with_cookie(&second, "/me", &cookie).await;
        assert_eq!(json(response).await["userid"], "super01");
    }
    assert_eq!(first.dingtalk.userinfo_calls(), 1);
    assert_eq!(second.dingtalk.total_calls(), 0);
}

#[tokio::test]
async fn a_code_wins_over_the_cookie() {
    let app = app_with(session()).await;
    let staff = sign_in(&app, "staff01").await;
    // Someone else signs in on the same browser: the code is the fresher proof.
    let code = app.dingtalk.issue_code("boss01");
    let response = app
        .http
        .get(app.url("/me"))
        .header("x-dingtalk-code", &code)
        .header("cookie", &staff)
        .send()
        .await
        .unwrap();
    let boss = session_cookie(&response);
    assert_eq!(json(response).await["userid"], "boss01");
    let response = get_with_cookie(&app, "/me", &boss).await;
    assert_eq!(json(response).await["userid"], "boss01");

    // A code that fails is a 401 even next to a valid session.
    let response = app
        .http
        .get(app.url("/me"))
        .header("x-dingtalk-code", "never-issued")
        .header("cookie", &staff)
        .send()
        .await
        .unwrap();
    assert!(response.headers().get("set-cookie").is_none());
    assert_rejection(response, 401, "code_rejected", &[]).await;
    let response = app
        .http
        .get(app.url("/me?code=two%20words"))
        .header("cookie", &staff)
        .send()
        .await
        .unwrap();
    assert_rejection(response, 401, "invalid_code", &[]).await;
}

#[tokio::test]
async fn signing_out_clears_the_cookie() {
    let dingtalk = support::dingtalk().await;
    let layer = support::layer_for(&dingtalk)
        .session(session())
        .build()
        .unwrap();
    let sign_out = layer.sessions().expect("a session").sign_out_cookie();
    let app = support::routes(Arc::new(AtomicU64::new(0)))
        .route(
            "/sign-out",
            get(move || {
                let sign_out = sign_out.clone();
                async move { ([(http::header::SET_COOKIE, sign_out)], "bye") }
            }),
        )
        .layer(layer);
    let (addr, server) = support::serve(app).await;
    let http = reqwest::Client::new();

    let code = dingtalk.issue_code("staff01");
    let response = http
        .get(format!("http://{addr}/me"))
        .header("x-dingtalk-code", &code)
        .send()
        .await
        .unwrap();
    let cookie = session_cookie(&response);
    let response = http
        .get(format!("http://{addr}/sign-out"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        set_cookies(&response, "__Host-dingtalk_session"),
        [
            "__Host-dingtalk_session=; HttpOnly; SameSite=Lax; Secure; Path=/; Max-Age=0; \
             Expires=Thu, 01 Jan 1970 00:00:00 GMT"
        ]
    );
    // Signing out with a code in hand: the handler's clearing cookie is the only one.
    let code = dingtalk.issue_code("staff01");
    let response = http
        .get(format!("http://{addr}/sign-out"))
        .header("x-dingtalk-code", &code)
        .send()
        .await
        .unwrap();
    let set = set_cookies(&response, "__Host-dingtalk_session");
    assert_eq!(set.len(), 1);
    assert!(set[0].starts_with("__Host-dingtalk_session=;"), "{set:?}");
    server.abort();
}

#[tokio::test]
async fn bad_session_settings_are_configuration_errors() {
    assert!(matches!(
        SessionKey::from_bytes([7u8; 31]),
        Err(ConfigError::SessionKeyTooShort { len: 31 })
    ));
    assert!(SessionKey::from_bytes([7u8; 32]).is_ok());
    let key_debug = format!("{:?}", session());
    assert!(key_debug.contains("SessionKey(..)"), "{key_debug}");

    let dingtalk = support::dingtalk().await;
    let build = |session: SessionConfig| support::layer_for(&dingtalk).session(session).build();
    for (config, what) in [
        (session().cookie_name(""), "name"),
        (session().cookie_name("two words"), "name"),
        (session().cookie_name("a;b"), "name"),
        (session().cookie_name("é"), "name"),
        (session().path(""), "path"),
        (session().path("/a;b"), "path"),
        (session().domain("a b"), "domain"),
        (session().domain("a\nb"), "domain"),
    ] {
        match build(config) {
            Err(ConfigError::InvalidSessionCookie { what: got }) => assert_eq!(got, what),
            other => panic!("{what}: {other:?}"),
        }
    }
    assert!(matches!(
        build(session().lifetime(Duration::ZERO)),
        Err(ConfigError::ZeroLimit {
            name: "session lifetime"
        })
    ));
    // Used without a layer, a bad configuration is an error too, never a panic.
    let user = AuthenticatedDingTalkUser::builder("staff01", "Li Si").build();
    for config in [
        session().cookie_name("two words"),
        session().path("/a;b"),
        session().cookie_name("__Host-x").domain("example.com"),
    ] {
        #[allow(deprecated)]
        let issued = config.issue(&user);
        assert!(matches!(
            issued,
            Err(ConfigError::InvalidSessionCookie { .. })
        ));
        assert!(config.sign_out_cookie().is_err());
    }
}

/// No silent session copy: the layer hands out its own sessions (`layer.sessions()`), which issue
/// cookies and tokens the layer accepts, read the layer's sessions, and sign out; the copy of the
/// `SessionConfig` a user kept fails loudly instead of sealing sessions the layer refuses.
#[tokio::test(flavor = "current_thread")]
async fn the_layers_sessions_are_the_only_ones_and_a_copy_fails_loudly() {
    let (_guard, logs) = support::capture_logs();
    let mine = session();
    let app = TestApp::with(support::dingtalk().await, {
        let mine = mine.clone();
        move |builder| builder.session(mine).token_login("/auth/login")
    })
    .await;
    let sessions = app.layer.sessions().expect("the layer keeps sessions");
    let user = AuthenticatedDingTalkUser::builder("boss01", "Wang Wu").build();

    // What the handle issues, the layer accepts: a cookie, a `Cookie` header, a token.
    let set_cookie = sessions.issue(&user);
    let pair = set_cookie
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let cookie_header = sessions.cookie_header(&user).to_str().unwrap().to_owned();
    for cookie in [&pair, &cookie_header] {
        let response = get_with_cookie(&app, "/me", cookie).await;
        assert_eq!(response.status(), 200);
        assert_eq!(json(response).await["userid"], "boss01");
    }
    let token = sessions.issue_token(&user);
    let response = app
        .http
        .get(app.url("/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(json(response).await["userid"], "boss01");
    assert_eq!(app.dingtalk.total_calls(), 0, "no DingTalk for any of them");

    // What the layer issues, the handle reads.
    let response = app
        .get_with_code("/me", &app.dingtalk.issue_code("staff01"))
        .await;
    let layers_cookie = session_cookie(&response);
    let mut headers = http::HeaderMap::new();
    headers.insert("cookie", layers_cookie.parse().unwrap());
    assert_eq!(
        sessions.user_from_headers(&headers).await.unwrap().userid(),
        "staff01"
    );
    let mut bearer = http::HeaderMap::new();
    bearer.insert("authorization", format!("Bearer {token}").parse().unwrap());
    assert_eq!(
        sessions.user_from_headers(&bearer).await,
        Some(user.clone())
    );
    // The sign-out cookie empties the layer's cookie.
    let sign_out = sessions.sign_out_cookie();
    let sign_out = sign_out.to_str().unwrap();
    assert!(
        sign_out.starts_with(&format!("{}=;", sessions.cookie_name())),
        "{sign_out}"
    );
    assert!(sign_out.contains("Max-Age=0"));

    // The copy the user kept: issuing is an error, reading is `None` with an error log.
    #[allow(deprecated)]
    let issued = mine.issue(&user);
    assert!(
        matches!(issued, Err(ConfigError::SessionNotBound)),
        "{issued:?}"
    );
    #[allow(deprecated)]
    let read = mine.user_from_headers(&headers);
    assert_eq!(read, None);
    assert!(
        logs.contents()
            .contains("use DingTalkAuthLayer::sessions()")
    );
    // Its sign-out cookie still clears the layer's cookie: same name, path and domain.
    assert_eq!(mine.sign_out_cookie().unwrap(), sessions.sign_out_cookie());
    // A layer without sessions has none to hand out.
    let plain = support::layer_for(&app.dingtalk).build().unwrap();
    assert!(plain.sessions().is_none());
}
