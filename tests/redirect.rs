//! Page routes: `redirect_when_missing` sends page requests with neither code nor session to the
//! login page, and nothing else: not a code that failed, not the page's API calls.

mod support;

use support::{TestApp, assert_rejection, json};
use tower_dingtalk_auth::{ConfigError, SessionConfig, SessionKey};

const LOGIN: &str = "https://app.example.com/login.html?next=%2Fhome";

async fn page_app() -> TestApp {
    TestApp::with(support::dingtalk().await, |builder| {
        builder
            .session(SessionConfig::new(SessionKey::generate()))
            .redirect_when_missing(LOGIN)
    })
    .await
}

/// A client that shows redirects instead of following them.
fn no_follow() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

const HTML: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

#[tokio::test]
async fn a_page_with_no_code_and_no_session_is_302_to_the_login_page() {
    let app = page_app().await;
    let http = no_follow();
    for request in [
        http.get(app.url("/me")).header("accept", HTML),
        http.get(app.url("/ext?other=1"))
            .header("accept", "TEXT/HTML"),
        http.head(app.url("/me")).header("accept", HTML),
        http.get(app.url("/me"))
            .header("accept", HTML)
            .header("cookie", "__Host-dingtalk_session=forged; theme=dark"),
    ] {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 302);
        assert_eq!(response.headers()["location"], LOGIN);
        assert_eq!(response.headers()["cache-control"], "no-store");
        assert!(response.headers().get("set-cookie").is_none());
        assert!(response.text().await.unwrap().is_empty());
    }
    assert_eq!(app.dingtalk.total_calls(), 0);
    assert_eq!(app.handler_runs(), 0);
}

#[tokio::test]
async fn what_is_not_a_page_gets_the_401_it_can_act_on() {
    let app = page_app().await;
    let http = no_follow();
    for request in [
        // The page's own fetch calls, a form post, curl's `*/*`, a client that says nothing.
        http.get(app.url("/me"))
            .header("accept", "application/json"),
        http.post(app.url("/me")).header("accept", HTML),
        http.get(app.url("/me")).header("accept", "*/*"),
        http.get(app.url("/me")),
    ] {
        let response = request.send().await.unwrap();
        assert_rejection(response, 401, "missing_code", &[]).await;
    }
    assert_eq!(app.dingtalk.total_calls(), 0);
    assert_eq!(app.handler_runs(), 0);
}

#[tokio::test]
async fn a_code_signs_in_and_the_session_then_avoids_the_redirect() {
    let app = page_app().await;
    let http = no_follow();
    let code = app.dingtalk.issue_code("staff01");
    // The login page came back with a code in the query.
    let response = http
        .get(app.url(&format!("/me?code={code}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    assert_eq!(json(response).await["userid"], "staff01");
    let response = http
        .get(app.url("/me"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(app.dingtalk.userinfo_calls(), 1);
}

#[tokio::test]
async fn a_code_that_fails_is_still_401_not_a_redirect() {
    let app = page_app().await;
    let http = no_follow();
    let response = http
        .get(app.url("/me"))
        .header("x-dingtalk-code", "not issued")
        .send()
        .await
        .unwrap();
    assert_rejection(response, 401, "invalid_code", &[]).await;
    let response = http
        .get(app.url("/me?code=never-issued"))
        .send()
        .await
        .unwrap();
    assert_rejection(response, 401, "code_rejected", &[]).await;
    assert_eq!(app.handler_runs(), 0);
}

#[tokio::test]
async fn the_redirect_works_without_sessions_too() {
    let app = TestApp::with(support::dingtalk().await, |builder| {
        builder.redirect_when_missing("/login")
    })
    .await;
    let response = no_follow()
        .get(app.url("/me"))
        .header("accept", HTML)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 302);
    assert_eq!(response.headers()["location"], "/login?next=%2Fme");
    let response = app
        .get_with_code("/me", &app.dingtalk.issue_code("sub01"))
        .await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("set-cookie").is_none());
}

#[tokio::test]
async fn bad_redirects_are_configuration_errors() {
    let dingtalk = support::dingtalk().await;
    for url in ["", "/login page", "/login\n", "/登录"] {
        let built = support::layer_for(&dingtalk)
            .redirect_when_missing(url)
            .build();
        assert!(
            matches!(built, Err(ConfigError::InvalidRedirectUrl)),
            "{url:?}: {built:?}"
        );
    }
    let built = support::layer_for(&dingtalk)
        .optional()
        .redirect_when_missing("/login")
        .build();
    assert!(matches!(
        built,
        Err(ConfigError::ConflictingOptions {
            first: "optional",
            second: "redirect_when_missing"
        })
    ));
}

/// `GET <target>` as a page navigation, sent as written (clients normalise paths such as `/\x`).
async fn raw_page_get(app: &TestApp, target: &str) -> (u16, Option<String>) {
    support::raw_page_get(app.addr, target, "").await
}

/// Every `Location` the layer writes stays on the app's host: the URL a code arrived on, cleaned of
/// it, can never be a network-path reference (`//evil.example/`) that a chat link on the app's
/// trusted host would turn into a sign-in followed by a trip to the attacker's page.
#[tokio::test]
async fn no_open_redirect_every_location_stays_on_the_host() {
    let app = TestApp::with(support::dingtalk().await, |b| {
        b.session(SessionConfig::new(SessionKey::generate()).secure(false))
    })
    .await;
    let base = url::Url::parse("https://app.example.com/").unwrap();
    let mut redirected = 0;
    for path in [
        "//evil.example/",
        "/\\evil.example/",
        "\\/evil.example/",
        "/%2F%2Fevil.example/",
        "/%2f/evil.example/",
        "/%5C%5Cevil.example/",
        "///evil.example/x",
        "/\\/\\evil.example",
    ] {
        let code = app.dingtalk.issue_code("boss01");
        let (status, location) = raw_page_get(&app, &format!("{path}?code={code}&tab=2")).await;
        let Some(location) = location else {
            // A request line the server refuses before the layer (400) is no redirect at all.
            assert!(status >= 400, "{path}: {status}");
            continue;
        };
        assert_eq!(status, 303, "{path}");
        redirected += 1;
        assert!(!location.contains(&code), "{path}: {location}");
        let target = base.join(&location).unwrap();
        assert_eq!(
            target.host_str(),
            Some("app.example.com"),
            "{path} -> {location}"
        );
        assert!(
            location.starts_with('/')
                && !location[1..].starts_with(['/', '\\'])
                && !location[1..].to_ascii_lowercase().starts_with("%2f")
                && !location[1..].to_ascii_lowercase().starts_with("%5c"),
            "{path} -> {location}"
        );
        assert!(location.ends_with("?tab=2"), "{path} -> {location}");
    }
    assert!(redirected >= 5, "most of these reach the layer");
    // An ordinary page keeps its path.
    let code = app.dingtalk.issue_code("staff01");
    let (status, location) = raw_page_get(&app, &format!("/me/a//b?code={code}")).await;
    assert_eq!((status, location.as_deref()), (303, Some("/me/a//b")));
}

/// The login page learns where the browser was going (`next`, the code's own parameters removed,
/// DingTalk's `corpId` kept and also passed on), and the login by query goes back there; only a
/// path on this host is followed, anything else lands on `/`.
#[tokio::test]
async fn the_login_goes_back_where_the_browser_was_going() {
    let app = TestApp::with(support::dingtalk().await, |b| {
        b.session(SessionConfig::new(SessionKey::generate()).secure(false))
            .redirect_when_missing("/login")
    })
    .await;
    for (target, location) in [
        (
            "/admin/users?tab=2",
            "/login?next=%2Fadmin%2Fusers%3Ftab%3D2",
        ),
        (
            "/me?corpId=ding1&code=stale&x=a%20b",
            "/login?corpId=ding1&next=%2Fme%3FcorpId%3Dding1%26x%3Da%2520b",
        ),
        (
            "/%E4%BD%A0%E5%A5%BD",
            "/login?next=%2F%25E4%25BD%25A0%25E5%25A5%25BD",
        ),
    ] {
        // A stale code on a link from another site is sent to the login page too, by a page that
        // continues there by script (a redirect would keep the chain cross-site).
        let (expected, (status, got)) = if target.contains("code=") {
            (200, raw_cross_site_get(&app, target).await)
        } else {
            (302, raw_page_get(&app, target).await)
        };
        assert_eq!(
            (status, got.as_deref()),
            (expected, Some(location)),
            "{target}"
        );
    }
    // Back from the login page with a code and `next`: a 303 there, with the session.
    let http = no_follow();
    let base = url::Url::parse("https://app.example.com/").unwrap();
    for (next, expected) in [
        ("%2Fadmin%2Fusers%3Ftab%3D2", "/admin/users?tab=2"),
        ("%2Fme%3FcorpId%3Dding1%26code%3Dold", "/me?corpId=ding1"),
        ("https%3A%2F%2Fevil.example%2F", "/"),
        ("%2F%2Fevil.example%2F", "/"),
        ("%2F%5Cevil.example", "/"),
        ("%5C%5Cevil.example", "/"),
        ("javascript%3Aalert(1)", "/"),
        ("%2Fa%0D%0ASet-Cookie%3A%20x%3D1", "/"),
    ] {
        let code = app.dingtalk.issue_code("boss01");
        let response = http
            .get(app.url(&format!("/?code={code}&next={next}")))
            .header("accept", HTML)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 303, "{next}");
        let location = response.headers()["location"].to_str().unwrap().to_owned();
        assert_eq!(location, expected, "{next}");
        assert_eq!(
            base.join(&location).unwrap().host_str(),
            Some("app.example.com")
        );
        assert!(response.headers().contains_key("set-cookie"));
    }
    // A login URL that names the parameter itself is left alone; the name is configurable; and
    // apps with their own scheme give a function.
    let named = TestApp::with(support::dingtalk().await, |b| {
        b.session(SessionConfig::new(SessionKey::generate()))
            .redirect_when_missing("/login?back=%2F")
            .redirect_return_param("back")
    })
    .await;
    let (_, location) = raw_page_get(&named, "/deep?x=1").await;
    assert_eq!(location.as_deref(), Some("/login?back=%2F"));
    let code = named.dingtalk.issue_code("boss01");
    let response = http
        .get(named.url(&format!("/me?code={code}&back=%2Fdeep%3Fx%3D1")))
        .header("accept", HTML)
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["location"], "/deep?x=1");
    let custom = TestApp::with(support::dingtalk().await, |b| {
        b.session(SessionConfig::new(SessionKey::generate()))
            .redirect_when_missing_with(|parts| {
                format!("https://sso.example.com/start?page={}", parts.uri.path())
            })
    })
    .await;
    let (status, location) = raw_page_get(&custom, "/reports").await;
    assert_eq!(
        (status, location.as_deref()),
        (302, Some("https://sso.example.com/start?page=/reports"))
    );
    assert_eq!(
        app.handler_runs() + named.handler_runs() + custom.handler_runs(),
        0
    );
}

/// A page navigation from another site, as a raw request line.
async fn raw_cross_site_get(app: &TestApp, target: &str) -> (u16, Option<String>) {
    let from_elsewhere = "sec-fetch-site: cross-site\r\nsec-fetch-mode: navigate\r\n";
    support::raw_page_get(app.addr, target, from_elsewhere).await
}

#[tokio::test]
async fn bad_return_params_are_configuration_errors() {
    for name in ["", "a b", "n&x", "下一"] {
        let built = support::layer_for(&support::dingtalk().await)
            .session(SessionConfig::new(SessionKey::generate()))
            .redirect_when_missing("/login")
            .redirect_return_param(name)
            .build();
        assert!(
            matches!(built, Err(ConfigError::InvalidRedirectUrl)),
            "{name:?}"
        );
    }
    let both = support::layer_for(&support::dingtalk().await)
        .session(SessionConfig::new(SessionKey::generate()))
        .redirect_when_missing("/login")
        .redirect_when_missing_with(|_| "/x".to_owned())
        .build();
    assert!(matches!(both, Err(ConfigError::ConflictingOptions { .. })));
}
