//! A leaked code is not a five-minute bearer token: it is accepted again only within a short
//! replay window, it starts at most one session, and a page that logged in with a code in its URL
//! is sent to the same URL without it.

mod support;

use std::time::Duration;

use support::{TestApp, assert_rejection, json};
use tower_dingtalk_auth::{
    ConfigError, DEFAULT_CODE_REUSE_WINDOW, HOST_SESSION_COOKIE, SessionConfig, SessionKey,
};

fn session() -> SessionConfig {
    SessionConfig::new(
        SessionKey::from_bytes(b"the session secret, at least 32 bytes long").unwrap(),
    )
}

fn set_cookies(response: &reqwest::Response) -> Vec<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|value| value.to_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_code_is_accepted_again_only_within_its_reuse_window() {
    assert!(DEFAULT_CODE_REUSE_WINDOW <= Duration::from_secs(30));
    let app = TestApp::with_client(
        support::dingtalk().await,
        |c| c.code_reuse_window(Duration::from_millis(400)),
        |l| l,
    )
    .await;
    let code = app.dingtalk.issue_code("boss01");
    for _ in 0..3 {
        assert_eq!(
            json(app.get_with_code("/me", &code).await).await["userid"],
            "boss01"
        );
    }
    assert_eq!(app.dingtalk.userinfo_calls(), 1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Past the window the code is exchanged again, and DingTalk says what it is: spent.
    let response = app.get_with_code("/me", &code).await;
    assert_rejection(response, 401, "code_rejected", &[&code]).await;
    assert_eq!(app.dingtalk.userinfo_calls(), 2);
    assert_eq!(app.handler_runs(), 3);
}

#[tokio::test]
async fn the_window_is_at_most_a_codes_life() {
    let dingtalk = support::dingtalk().await;
    let build = |window| {
        support::client_for(&dingtalk)
            .code_reuse_window(window)
            .build()
    };
    assert!(matches!(
        build(Duration::from_secs(301)),
        Err(ConfigError::ReuseWindowTooLong { .. })
    ));
    assert!(build(Duration::from_secs(300)).is_ok());
    assert!(matches!(
        build(Duration::ZERO),
        Err(ConfigError::ZeroLimit {
            name: "code_reuse_window"
        })
    ));
}

#[tokio::test]
async fn a_code_starts_at_most_one_session() {
    let app = TestApp::with(support::dingtalk().await, |b| b.session(session())).await;
    let code = app.dingtalk.issue_code("staff01");
    let first = app.get_with_code("/me", &code).await;
    let cookies = set_cookies(&first);
    assert_eq!(cookies.len(), 1, "{cookies:?}");
    assert!(cookies[0].starts_with(HOST_SESSION_COOKIE), "{cookies:?}");
    assert_eq!(json(first).await["userid"], "staff01");
    // Whoever presents the code again (a leak, a replay) gets the user for that request, and no
    // session of their own.
    for _ in 0..3 {
        let again = app.get_with_code("/me", &code).await;
        assert!(set_cookies(&again).is_empty());
        assert_eq!(json(again).await["userid"], "staff01");
    }
    assert_eq!(app.dingtalk.userinfo_calls(), 1);
}

async fn navigate(app: &TestApp, path: &str, accept: &str) -> reqwest::Response {
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    no_redirects
        .get(app.url(path))
        .header("accept", accept)
        .send()
        .await
        .unwrap()
}

const PAGE: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

#[tokio::test]
async fn a_page_that_logs_in_with_a_code_in_its_url_is_sent_to_the_url_without_it() {
    let app = TestApp::with(support::dingtalk().await, |b| b.session(session())).await;
    let code = app.dingtalk.issue_code("boss01");
    let response = navigate(&app, &format!("/me?tab=2&code={code}&x=a%20b"), PAGE).await;
    assert_eq!(response.status(), 303);
    let headers = response.headers();
    assert_eq!(headers["location"], "/me?tab=2&x=a%20b");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    let cookies = set_cookies(&response);
    assert_eq!(cookies.len(), 1);
    assert_eq!(app.handler_runs(), 0, "the handler runs at the clean URL");
    // The browser follows with its new cookie, and no code anywhere.
    let pair = cookies[0].split(';').next().unwrap();
    let response = app
        .http
        .get(app.url("/me?tab=2&x=a%20b"))
        .header("cookie", pair)
        .send()
        .await
        .unwrap();
    assert_eq!(json(response).await["userid"], "boss01");
    assert_eq!(app.dingtalk.userinfo_calls(), 1);
}

#[tokio::test]
async fn only_page_navigations_with_the_code_in_the_query_are_redirected() {
    let app = TestApp::with(support::dingtalk().await, |b| b.session(session())).await;
    // An API call (JSON), a code in a header, a POST: answered in place.
    let code = app.dingtalk.issue_code("staff01");
    let api = navigate(&app, &format!("/me?code={code}"), "application/json").await;
    assert_eq!(api.status(), 200);
    let header = app
        .http
        .get(app.url("/me"))
        .header("accept", PAGE)
        .header("x-dingtalk-code", app.dingtalk.issue_code("staff01"))
        .send()
        .await
        .unwrap();
    assert_eq!(header.status(), 200);
    let post = app
        .http
        .post(app.url(&format!("/me?code={}", app.dingtalk.issue_code("staff01"))))
        .header("accept", PAGE)
        .send()
        .await
        .unwrap();
    assert_eq!(
        post.status(),
        405,
        "the route only takes GET; the layer let it through"
    );
    // Without sessions there is nothing to carry the login: no redirect either.
    let plain = TestApp::start().await;
    let code = plain.dingtalk.issue_code("staff01");
    assert_eq!(
        navigate(&plain, &format!("/me?code={code}"), PAGE)
            .await
            .status(),
        200
    );
    // And it can be turned off.
    let off = TestApp::with(support::dingtalk().await, |b| {
        b.session(session()).clean_url_after_login(false)
    })
    .await;
    let code = off.dingtalk.issue_code("staff01");
    assert_eq!(
        navigate(&off, &format!("/me?code={code}"), PAGE)
            .await
            .status(),
        200
    );
}
