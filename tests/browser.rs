//! The flows of `examples/web_app.rs` in a real browser: headless Chromium driven over WebDriver
//! (fantoccini and Debian's `chromium-driver`), each asserting what the page shows, the address
//! bar and the cookies the browser holds, and saving a screenshot for a person to look at
//! (`target/tmp/browser/*.png`).
//!
//! Without Chromium the tests fail saying how to install it: `apt-get install chromium
//! chromium-driver` (`.ci/run` does). `CHROMIUM` and `CHROMEDRIVER` name other binaries.

#[path = "../examples/sessions.rs"]
#[allow(dead_code)]
mod sessions_example;
#[path = "../examples/web_app.rs"]
#[allow(dead_code)]
mod web_app;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use tower_dingtalk_auth::testing::{Endpoint, MockDingTalk};
use tower_dingtalk_auth::{SessionConfig, SessionKey};

const INSTALL: &str = "apt-get update && apt-get install -y chromium chromium-driver";
const DESKTOP_AGENT: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0 Safari/537.36";
const DINGTALK_AGENT: &str = "Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 Chrome/156.0 Mobile Safari/537.36 AliApp(DingTalk/7.6.0)";

/// One browser at a time: two Chromiums on two cores make every page slow.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn binary(variable: &str, default: &str) -> PathBuf {
    let path = std::env::var_os(variable)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(default));
    assert!(
        path.exists(),
        "{} not found: the browser tests need Debian's Chromium and ChromeDriver; install them with \
         `{INSTALL}` (or set {variable})",
        path.display()
    );
    path
}

/// chromedriver on a free port, stopped when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn driver() -> Driver {
    let chromedriver = binary("CHROMEDRIVER", "/usr/bin/chromedriver");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(chromedriver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|error| panic!("chromedriver did not start ({error}); `{INSTALL}`"));
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let status = format!("{}/status", driver.url);
    for _ in 0..100 {
        if reqwest::get(&status)
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return driver;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("chromedriver did not answer on {status} within 10 s");
}

/// A fresh headless Chromium (no cookies) with this `User-Agent`.
async fn browser(driver: &Driver, agent: &str) -> Client {
    let chromium = binary("CHROMIUM", "/usr/bin/chromium");
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".to_owned(),
        serde_json::json!({
            "binary": chromium,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=900,600", format!("--user-agent={agent}"),
            ],
        }),
    );
    ClientBuilder::rustls()
        .expect("a TLS configuration for the WebDriver client")
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .unwrap_or_else(|error| panic!("Chromium did not start ({error}); `{INSTALL}`"))
}

/// The example app in front of a fresh fake DingTalk.
struct Site {
    dingtalk: MockDingTalk,
    addr: SocketAddr,
}

impl Site {
    async fn start(session: SessionConfig) -> Self {
        let dingtalk = web_app::fake_dingtalk().await;
        let app = web_app::app(&dingtalk, session).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { dingtalk, addr }
    }

    async fn new() -> Self {
        Self::start(SessionConfig::new(SessionKey::generate()).secure(false)).await
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

async fn text(browser: &Client, id: &str) -> String {
    let found = browser
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Id(id))
        .await;
    match found {
        Ok(element) => element.text().await.unwrap(),
        Err(error) => panic!(
            "#{id} never showed ({error}) at {:?}: {:?}",
            browser.current_url().await,
            browser.source().await
        ),
    }
}

/// The names of the cookies the browser holds for the current page's site.
async fn cookie_names(browser: &Client) -> Vec<String> {
    browser
        .get_all_cookies()
        .await
        .unwrap()
        .iter()
        .map(|cookie| cookie.name().to_owned())
        .collect()
}

async fn screenshot(browser: &Client, flow: &str) {
    let folder = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser");
    std::fs::create_dir_all(&folder).unwrap();
    let png = browser.screenshot().await.unwrap();
    std::fs::write(folder.join(format!("{flow}.png")), png).unwrap();
}

/// Waits until the address bar starts with `prefix`.
async fn arrive(browser: &Client, prefix: &str) -> String {
    for _ in 0..100 {
        let url = browser.current_url().await.unwrap().to_string();
        if url.starts_with(prefix) {
            return url;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let url = browser.current_url().await.unwrap();
    panic!(
        "never reached {prefix}: at {url}: {:?}",
        browser.source().await
    );
}

/// On DingTalk's (fake) login page: approve `unionid`.
async fn approve(browser: &Client, site: &Site, unionid: &str) {
    arrive(browser, &site.dingtalk.login_page_url()).await;
    browser
        .find(Locator::Id(&format!("approve-{unionid}")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

fn assert_clean(url: &str) {
    for secret in ["code=", "authCode", "state="] {
        assert!(
            !url.contains(secret),
            "the address bar holds {secret}: {url}"
        );
    }
}

#[tokio::test]
async fn outside_dingtalk_the_web_login_signs_in_and_the_address_bar_keeps_nothing() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let (driver, site) = (driver().await, Site::new().await);
    let browser = browser(&driver, DESKTOP_AGENT).await;
    browser.goto(&site.url("/reports")).await.unwrap();
    approve(&browser, &site, "union-super01").await;
    let url = arrive(&browser, &site.url("/reports")).await;
    assert_eq!(
        url,
        site.url("/reports"),
        "back to the page first asked for"
    );
    assert_clean(&url);
    assert_eq!(text(&browser, "greeting").await, "Reports for Zhang San");
    let cookies = cookie_names(&browser).await;
    assert_eq!(
        cookies,
        ["dingtalk_session"],
        "the session, and no state cookie left"
    );
    let session = browser.get_named_cookie("dingtalk_session").await.unwrap();
    assert_eq!(session.http_only(), Some(true));
    screenshot(&browser, "web_login").await;

    let calls = site.dingtalk.total_calls();
    browser.goto(&site.url("/")).await.unwrap();
    assert_eq!(text(&browser, "method").await, "web_login");
    assert_eq!(text(&browser, "userid").await, "super01");
    assert_eq!(
        site.dingtalk.total_calls(),
        calls,
        "a later page costs no call"
    );
    for endpoint in [
        Endpoint::UserAccessToken,
        Endpoint::UsersMe,
        Endpoint::GetByUnionId,
        Endpoint::UserGet,
    ] {
        assert_eq!(site.dingtalk.calls(endpoint), 1, "{endpoint:?}");
    }
    browser.close().await.unwrap();
}

#[tokio::test]
async fn inside_dingtalk_the_jsapi_signs_in_without_a_click() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let (driver, site) = (driver().await, Site::new().await);
    let browser = browser(&driver, DINGTALK_AGENT).await;
    browser.goto(&site.url("/reports")).await.unwrap();
    let url = arrive(&browser, &site.url("/reports")).await;
    assert_clean(&url);
    assert_eq!(text(&browser, "greeting").await, "Reports for Li Si");
    assert_eq!(cookie_names(&browser).await, ["dingtalk_session"]);
    screenshot(&browser, "inside_dingtalk").await;
    browser.goto(&site.url("/")).await.unwrap();
    assert_eq!(text(&browser, "method").await, "session");
    assert_eq!(site.dingtalk.calls(Endpoint::JsApiCode), 1);
    assert_eq!(site.dingtalk.userinfo_calls(), 1);
    assert_eq!(
        site.dingtalk.calls(Endpoint::LoginPage),
        0,
        "no QR page inside DingTalk"
    );
    browser.close().await.unwrap();
}

#[tokio::test]
async fn an_outsider_gets_a_403_page_and_no_session() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let (driver, site) = (driver().await, Site::new().await);
    let browser = browser(&driver, DESKTOP_AGENT).await;
    browser.goto(&site.url("/")).await.unwrap();
    approve(&browser, &site, "union-eve").await;
    assert_eq!(text(&browser, "error").await, "not_a_member");
    assert!(text(&browser, "message").await.contains("not a member"));
    assert!(
        arrive(&browser, &site.url(web_app::CALLBACK))
            .await
            .starts_with(&site.url("/"))
    );
    assert!(
        cookie_names(&browser).await.is_empty(),
        "no session, no state cookie"
    );
    screenshot(&browser, "outsider").await;
    browser.close().await.unwrap();
}

/// DingTalk's answer to this browser's login, got without the browser: the callback URL with
/// a fresh authCode and the browser's own state.
async fn callback_for(browser: &Client, site: &Site, unionid: &str) -> String {
    let login = arrive(browser, &site.dingtalk.login_page_url()).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let approved = http
        .get(format!("{login}&approve={unionid}"))
        .send()
        .await
        .unwrap();
    approved.headers()["location"].to_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_tampered_replayed_or_redirected_callback_signs_nobody_in_elsewhere() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let (driver, site) = (driver().await, Site::new().await);
    let browser = browser(&driver, DESKTOP_AGENT).await;

    // A state this browser was not given.
    browser.goto(&site.url("/")).await.unwrap();
    let callback = callback_for(&browser, &site, "union-staff01").await;
    let (before, state) = callback.split_once("state=").unwrap();
    let tampered = format!(
        "{before}state={}",
        state.replace(&state[..1], if &state[..1] == "0" { "1" } else { "0" })
    );
    browser.goto(&tampered).await.unwrap();
    assert_eq!(text(&browser, "error").await, "invalid_login_state");
    assert!(
        !cookie_names(&browser)
            .await
            .contains(&"dingtalk_session".to_owned())
    );
    screenshot(&browser, "tampered_state").await;

    // The real one, with a foreign place to go added: stays on our origin, signed in.
    browser.goto(&site.url("/reports")).await.unwrap();
    let callback = callback_for(&browser, &site, "union-staff01").await;
    let foreign = format!(
        "{callback}&next=https%3A%2F%2Fevil.example%2F&redirect_uri=https%3A%2F%2Fevil.example%2F"
    );
    browser.goto(&foreign).await.unwrap();
    let url = arrive(&browser, &site.url("/reports")).await;
    assert_eq!(url, site.url("/reports"));
    assert_eq!(text(&browser, "greeting").await, "Reports for Li Si");

    // The browser forgets its cookies (signed out, or another browser): the same callback again
    // is refused, and starts no session.
    browser.delete_all_cookies().await.unwrap();
    browser.goto(&foreign).await.unwrap();
    assert_eq!(text(&browser, "error").await, "invalid_login_state");
    assert!(cookie_names(&browser).await.is_empty());
    screenshot(&browser, "replayed_state").await;
    assert_eq!(
        site.dingtalk.calls(Endpoint::UserAccessToken),
        1,
        "only the real callback"
    );
    browser.close().await.unwrap();
}

/// From a page of another site (a `data:` page), a link to ours with a stale code: refused as a
/// login, continued by script, signed in after one trip, no redirect loop.
async fn link_from_elsewhere(agent: &str, flow: &str) -> Site {
    let (driver, site) = (driver().await, Site::new().await);
    let browser = browser(&driver, agent).await;
    let stale = site.dingtalk.issue_code("super01");
    let link = format!(
        "data:text/html,<a id=go href='{}'>open the report</a>",
        site.url(&format!("/reports?code={stale}"))
    );
    browser.goto(&link).await.unwrap();
    browser
        .find(Locator::Id("go"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    if agent == DESKTOP_AGENT {
        approve(&browser, &site, "union-staff01").await;
    }
    let url = arrive(&browser, &site.url("/reports")).await;
    assert_clean(&url);
    assert_eq!(text(&browser, "greeting").await, "Reports for Li Si");
    assert_eq!(cookie_names(&browser).await, ["dingtalk_session"]);
    screenshot(&browser, flow).await;
    browser.close().await.unwrap();
    site
}

#[tokio::test]
async fn a_link_from_another_site_with_a_stale_code_signs_in_after_one_trip() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let site = link_from_elsewhere(DESKTOP_AGENT, "link_from_elsewhere").await;
    assert_eq!(
        site.dingtalk.calls(Endpoint::LoginPage),
        1,
        "one trip through DingTalk's page"
    );
    assert_eq!(
        site.dingtalk.userinfo_calls(),
        0,
        "the stale code is never exchanged"
    );
    let site = link_from_elsewhere(DINGTALK_AGENT, "link_from_elsewhere_in_dingtalk").await;
    assert_eq!(
        site.dingtalk.calls(Endpoint::JsApiCode),
        1,
        "one trip through the login page"
    );
    assert_eq!(site.dingtalk.userinfo_calls(), 1, "only the fresh code");
}

/// The loop measured before the fix: the `sessions` example's login page answers with a server
/// redirect and a fresh code, which a redirect chain begun on another site kept cross-site, round
/// after round, to `ERR_TOO_MANY_REDIRECTS`.
#[tokio::test]
async fn a_login_page_that_redirects_back_with_a_code_loops_nowhere() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let driver = driver().await;
    let dingtalk = std::sync::Arc::new(MockDingTalk::start().await);
    dingtalk.add_user(
        tower_dingtalk_auth::AuthenticatedDingTalkUser::builder("staff1024", "Li Si").build(),
    );
    let session = SessionConfig::new(SessionKey::generate()).secure(false);
    let app = sessions_example::app(dingtalk.clone(), session).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let browser = browser(&driver, DESKTOP_AGENT).await;
    let stale = dingtalk.issue_code("staff1024");
    browser
        .goto(&format!(
            "data:text/html,<a id=go href='http://{addr}/?code={stale}'>open</a>"
        ))
        .await
        .unwrap();
    browser
        .find(Locator::Id("go"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let url = arrive(&browser, &format!("http://{addr}/")).await;
    assert_eq!(
        url,
        format!("http://{addr}/"),
        "signed in, the address bar clean"
    );
    let greeting = browser
        .find(Locator::Css("h1"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(greeting, "你好 Li Si");
    assert_eq!(
        dingtalk.userinfo_calls(),
        1,
        "one fresh code, the stale one never exchanged"
    );
    screenshot(&browser, "sessions_example_link_from_elsewhere").await;
    browser.close().await.unwrap();
}

#[tokio::test]
async fn sign_out_and_expiry_send_the_next_page_to_login_again() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let driver = driver().await;
    let site = Site::new().await;
    let browser = browser(&driver, DESKTOP_AGENT).await;
    browser.goto(&site.url("/")).await.unwrap();
    approve(&browser, &site, "union-staff01").await;
    assert_eq!(text(&browser, "userid").await, "staff01");
    browser
        .find(Locator::Id("sign-out"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert_eq!(text(&browser, "signed-out").await, "Signed out");
    assert!(
        cookie_names(&browser).await.is_empty(),
        "the cookie is gone"
    );
    browser.goto(&site.url("/")).await.unwrap();
    arrive(&browser, &site.dingtalk.login_page_url()).await;
    screenshot(&browser, "signed_out").await;
    browser.close().await.unwrap();

    let short = SessionConfig::new(SessionKey::generate())
        .secure(false)
        .lifetime(Duration::from_secs(2));
    let site = Site::start(short).await;
    let browser = browser_again(&driver).await;
    browser.goto(&site.url("/")).await.unwrap();
    approve(&browser, &site, "union-staff01").await;
    assert_eq!(text(&browser, "userid").await, "staff01");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    browser.goto(&site.url("/")).await.unwrap();
    arrive(&browser, &site.dingtalk.login_page_url()).await;
    screenshot(&browser, "expired").await;
    browser.close().await.unwrap();
}

async fn browser_again(driver: &Driver) -> Client {
    browser(driver, DESKTOP_AGENT).await
}
