//! Sessions against hostile sites, proxies and clocks: cookies that cannot be planted or borrowed,
//! one odd cookie that signs nobody out, responses that start a session never cached for someone
//! else, and no login through a link from another site.

mod support;

use std::convert::Infallible;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use support::corps::Switch;
use support::{TestApp, assert_rejection, json};
use tower_dingtalk_auth::testing::MockDingTalk;
use tower_dingtalk_auth::{
    AuthenticatedDingTalkUser, CodeSource, DEFAULT_SESSION_COOKIE, HOST_SESSION_COOKIE,
    SessionConfig, SessionKey,
};

const SECRET: &[u8] = b"the session secret every replica shares, 32+ bytes";

fn session() -> SessionConfig {
    SessionConfig::new(SessionKey::from_bytes(SECRET).unwrap())
}

/// The `name=value` pair of the session cookie a response sets.
fn cookie_pair(response: &reqwest::Response) -> String {
    let set = response.headers()["set-cookie"].to_str().unwrap();
    set.split(';').next().unwrap().to_owned()
}

async fn sign_in(app: &TestApp, userid: &str) -> String {
    let response = app
        .get_with_code("/me", &app.dingtalk.issue_code(userid))
        .await;
    assert_eq!(response.status(), 200);
    cookie_pair(&response)
}

async fn with_cookie(app: &TestApp, cookie: &str) -> reqwest::Response {
    app.http
        .get(app.url("/me"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
}

/// A session sealed by hand with the key the layer holds: what a replica with a skewed clock, or
/// another app sharing the key, would produce.
fn forged(name: &str, audience: &str, issued_at: u64) -> String {
    let payload = serde_json::json!({
        "v": 2, "iat": issued_at, "exp": issued_at + 3_600_000, "aud": audience,
        "user": { "userid": "boss01", "name": "Wang Wu" },
    });
    let key = cookie::Key::derive_from(SECRET);
    let mut jar = cookie::CookieJar::new();
    jar.private_mut(&key)
        .add(cookie::Cookie::new(name.to_owned(), payload.to_string()));
    format!("{name}={}", jar.get(name).unwrap().value())
}

fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[tokio::test]
async fn the_cookie_is_a_host_cookie_unless_it_cannot_be() {
    let app = TestApp::with(support::dingtalk().await, |b| b.session(session())).await;
    let cookie = sign_in(&app, "staff01").await;
    assert!(
        cookie.starts_with(&format!("{HOST_SESSION_COOKIE}=")),
        "{cookie}"
    );
    // With a Domain (shared with subdomains), or over plain HTTP, the prefix cannot hold.
    for config in [session().domain("example.com"), session().secure(false)] {
        assert_eq!(config.name(), DEFAULT_SESSION_COOKIE);
    }
    // A cookie of that name planted without the prefix is not ours.
    let planted = forged(
        DEFAULT_SESSION_COOKIE,
        &app.dingtalk.app_key(),
        now_millis(),
    );
    assert_rejection(with_cookie(&app, &planted).await, 401, "missing_code", &[]).await;
    // The same, under our name, opens: the forging above is the layer's own sealing.
    let ours = forged(HOST_SESSION_COOKIE, &app.dingtalk.app_key(), now_millis());
    assert_eq!(
        json(with_cookie(&app, &ours).await).await["userid"],
        "boss01"
    );
}

#[tokio::test]
async fn a_session_belongs_to_its_app_and_to_no_other_sharing_the_key() {
    let dingtalk = support::dingtalk().await;
    let first = TestApp::with(dingtalk, |b| b.session(session())).await;
    let other = MockDingTalk::builder()
        .app("another-app-key", "another-app-secret")
        .start()
        .await;
    let second = TestApp::with(other, |b| b.session(session())).await;
    let cookie = sign_in(&first, "staff01").await;
    assert_eq!(
        json(with_cookie(&first, &cookie).await).await["userid"],
        "staff01"
    );
    assert_rejection(
        with_cookie(&second, &cookie).await,
        401,
        "missing_code",
        &[],
    )
    .await;
    let foreign = forged(HOST_SESSION_COOKIE, "another-app-key", now_millis());
    assert_rejection(
        with_cookie(&first, &foreign).await,
        401,
        "missing_code",
        &[],
    )
    .await;
}

#[tokio::test]
async fn a_session_issued_in_the_future_is_refused() {
    let app = TestApp::with(support::dingtalk().await, |b| b.session(session())).await;
    let app_key = app.dingtalk.app_key();
    // Within the allowance for replicas' clocks: accepted.
    let skewed = forged(HOST_SESSION_COOKIE, &app_key, now_millis() + 30_000);
    assert_eq!(with_cookie(&app, &skewed).await.status(), 200);
    // Beyond it: somebody sealed it to last longer than it may.
    let future = forged(HOST_SESSION_COOKIE, &app_key, now_millis() + 10 * 60_000);
    assert_rejection(with_cookie(&app, &future).await, 401, "missing_code", &[]).await;
}

#[tokio::test]
async fn a_corp_removed_from_the_directory_loses_its_sessions_within_the_recheck_interval() {
    const CORP: &str = "dingcorpsession01";
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
                .corp_recheck_interval(Duration::from_millis(300))
        },
    )
    .await;
    let code = app.dingtalk.issue_corp_code(CORP, "u1");
    let response = app
        .http
        .get(app.url("/me"))
        .header("x-dingtalk-code", &code)
        .header("x-dingtalk-corp-id", CORP)
        .send()
        .await
        .unwrap();
    let cookie = cookie_pair(&response);
    assert_eq!(json(with_cookie(&app, &cookie).await).await["userid"], "u1");

    installed.remove();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let response = with_cookie(&app, &cookie).await;
    assert_rejection(response, 401, "corp_not_authorized", &[]).await;
    assert_eq!(app.dingtalk.userinfo_calls(), 1);
}

async fn hello(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let user = request
        .extensions()
        .get::<AuthenticatedDingTalkUser>()
        .map_or("nobody", |user| user.userid())
        .to_owned();
    Ok(Response::new(Full::new(Bytes::from(user))))
}

#[tokio::test]
async fn one_cookie_that_is_not_ascii_does_not_sign_the_user_out() {
    let dingtalk = support::dingtalk().await;
    let layer = support::layer_for(&dingtalk)
        .session(session())
        .code_sources([
            CodeSource::cookie("dt_code"),
            CodeSource::header("x-dingtalk-code"),
        ])
        .build()
        .unwrap();
    let service = tower::ServiceBuilder::new()
        .layer(layer)
        .service(tower::service_fn(hello));
    let (addr, server) = support::serve_hyper(service).await;
    let http = reqwest::Client::new();
    let send = async |cookie: Vec<u8>| {
        http.get(format!("http://{addr}/"))
            .header("cookie", http::HeaderValue::from_bytes(&cookie).unwrap())
            .send()
            .await
            .unwrap()
    };
    // A code in a cookie, next to one the page's own script set in UTF-8.
    let code = dingtalk.issue_code("staff01");
    let mut header = "nick=张三; dt_code=".as_bytes().to_vec();
    header.extend_from_slice(code.as_bytes());
    let response = send(header).await;
    assert_eq!(response.status(), 200);
    let session = cookie_pair(&response);
    assert_eq!(response.text().await.unwrap(), "staff01");
    // The session among the same neighbours, in every order.
    for header in [
        format!("nick=张三; {session}"),
        format!("{session}; nick=张三; theme=暗"),
        format!("a=\u{ff}; {session}"),
    ] {
        let response = send(header.into_bytes()).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.text().await.unwrap(), "staff01");
    }
    assert_eq!(dingtalk.userinfo_calls(), 1);
    server.abort();
}

#[tokio::test]
async fn a_response_that_starts_a_session_is_never_stored_by_a_shared_cache() {
    let dingtalk = support::dingtalk().await;
    let layer = support::layer_for(&dingtalk)
        .session(session())
        .build()
        .unwrap();
    let app = Router::new()
        .route(
            "/page",
            get(|| async {
                (
                    [(http::header::CACHE_CONTROL, "public, max-age=600")],
                    "page",
                )
            }),
        )
        .layer(layer);
    let (addr, server) = support::serve(app).await;
    let http = reqwest::Client::new();
    let response = http
        .get(format!("http://{addr}/page"))
        .header("x-dingtalk-code", dingtalk.issue_code("staff01"))
        .send()
        .await
        .unwrap();
    assert!(response.headers().contains_key("set-cookie"));
    let cache_control: Vec<_> = response.headers().get_all("cache-control").iter().collect();
    assert_eq!(cache_control, ["no-store"]);
    // A request the session authenticates sets no cookie: the handler's word stands.
    let cookie = cookie_pair(&response);
    let response = http
        .get(format!("http://{addr}/page"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert!(!response.headers().contains_key("set-cookie"));
    assert_eq!(response.headers()["cache-control"], "public, max-age=600");
    server.abort();
}

async fn navigate_with(app: &TestApp, code: &str, site: Option<&str>) -> reqwest::Response {
    let mut request = app
        .http
        .get(app.url(&format!("/me?code={code}")))
        .header("accept", "application/json");
    if let Some(site) = site {
        request = request
            .header("sec-fetch-site", site)
            .header("sec-fetch-mode", "navigate");
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn a_link_from_another_site_cannot_sign_the_visitor_in() {
    let app = TestApp::with(support::dingtalk().await, |b| b.session(session())).await;
    // The attacker's own code, in a link on another site.
    let code = app.dingtalk.issue_code("boss01");
    let response = navigate_with(&app, &code, Some("cross-site")).await;
    assert!(!response.headers().contains_key("set-cookie"));
    assert_rejection(response, 403, "cross_site_login", &[&code]).await;
    assert_eq!(app.dingtalk.total_calls(), 0, "DingTalk is not called");
    assert_eq!(app.handler_runs(), 0);
    // The app's own login page (same origin), and clients that send no Sec-Fetch headers.
    for site in [Some("same-origin"), Some("none"), None] {
        let code = app.dingtalk.issue_code("staff01");
        let response = navigate_with(&app, &code, site).await;
        assert_eq!(response.status(), 200, "{site:?}");
    }
    // With a login page, the visitor is sent there instead.
    let pages = TestApp::with(support::dingtalk().await, |b| {
        b.session(session()).redirect_when_missing("/login.html")
    })
    .await;
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let code = pages.dingtalk.issue_code("boss01");
    let response = no_redirects
        .get(pages.url(&format!("/me?code={code}")))
        .header("accept", "text/html")
        .header("sec-fetch-site", "cross-site")
        .header("sec-fetch-mode", "navigate")
        .send()
        .await
        .unwrap();
    // By a page that continues by script: a redirect would keep the chain cross-site.
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("location").is_none());
    let page = response.text().await.unwrap();
    assert_eq!(
        support::continue_target(&page).as_deref(),
        Some("/login.html?next=%2Fme")
    );
    assert!(!page.contains(&code), "the refused code is not carried on");
    assert_eq!(pages.dingtalk.total_calls(), 0);
}

/// The layer keeps the sessions it opened lately, to skip opening them again: a session served
/// from there still expires on time, and a copy that differs in any byte is never served from it.
#[tokio::test]
async fn a_session_the_layer_remembers_still_expires_and_its_altered_copies_are_refused() {
    let app = TestApp::with(support::dingtalk().await, |b| {
        b.session(session().lifetime(Duration::from_millis(1200)))
    })
    .await;
    let code = app.dingtalk.issue_code("staff01");
    let cookie = cookie_pair(&app.get_with_code("/me", &code).await);
    for _ in 0..3 {
        assert_eq!(
            json(with_cookie(&app, &cookie).await).await["userid"],
            "staff01"
        );
    }
    let (name, value) = cookie.split_once('=').unwrap();
    let flip = |at: usize| {
        let mut bytes = value.as_bytes().to_vec();
        bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
        format!("{name}={}", String::from_utf8(bytes).unwrap())
    };
    for altered in [
        flip(value.len() - 1),
        flip(value.len() - 20),
        flip(0),
        format!("{cookie}A"),
        format!("{name}={}", &value[..value.len() - 1]),
    ] {
        assert_rejection(with_cookie(&app, &altered).await, 401, "missing_code", &[]).await;
    }
    // Still served, then expired on time although it was served from memory a moment ago.
    assert_eq!(with_cookie(&app, &cookie).await.status(), 200);
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_rejection(with_cookie(&app, &cookie).await, 401, "missing_code", &[]).await;
    assert_eq!(app.dingtalk.userinfo_calls(), 1);
    assert_eq!(app.handler_runs(), 5);
}

/// Same-site is not same-origin: a navigation from a sibling subdomain (`Sec-Fetch-Site:
/// same-site`) logs nobody in by code, since any sibling (a user-content host, a forgotten staging
/// app) could sign visitors in as the attacker; an app whose login page lives on a sibling opts in.
#[tokio::test]
async fn same_site_is_not_same_origin() {
    let app = TestApp::with(support::dingtalk().await, |b| b.session(session())).await;
    let code = app.dingtalk.issue_code("boss01");
    let response = navigate_with(&app, &code, Some("same-site")).await;
    assert!(!response.headers().contains_key("set-cookie"));
    assert_rejection(response, 403, "cross_site_login", &[&code]).await;
    // Whatever a browser may send that is not this origin (or a typed URL) is refused too.
    for site in ["Same-Site", "cross-site", "something-new"] {
        let response = navigate_with(&app, &code, Some(site)).await;
        assert_rejection(response, 403, "cross_site_login", &[&code]).await;
    }
    // An iframe on the sibling navigates too.
    let response = app
        .http
        .get(app.url(&format!("/me?code={code}")))
        .header("sec-fetch-site", "same-site")
        .header("sec-fetch-mode", "nested-navigate")
        .send()
        .await
        .unwrap();
    assert_rejection(response, 403, "cross_site_login", &[&code]).await;
    assert_eq!(app.dingtalk.total_calls(), 0);
    assert_eq!(app.handler_runs(), 0);

    let opted_in = TestApp::with(support::dingtalk().await, |b| {
        b.session(session()).allow_same_site_login(true)
    })
    .await;
    let code = opted_in.dingtalk.issue_code("boss01");
    let response = navigate_with(&opted_in, &code, Some("same-site")).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("set-cookie"));
    // Another site stays refused.
    let code = opted_in.dingtalk.issue_code("staff01");
    let response = navigate_with(&opted_in, &code, Some("cross-site")).await;
    assert_rejection(response, 403, "cross_site_login", &[&code]).await;
}
