//! DingTalk's web login attacked from outside, with the public API only: where the browser is
//! sent, what the state cookie is worth elsewhere, replays and races, hostile hosts and request
//! targets, DingTalk misbehaving at each step, and what leaks.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use futures_util::future::join_all;
use reqwest::header::{ACCEPT, COOKIE, LOCATION, SET_COOKIE, USER_AGENT};
use support::{PAGE_ACCEPT, dingtalk, routes, serve};
use tokio::task::JoinHandle;
use tower_dingtalk_auth::testing::{Endpoint, Fault, MockDingTalk};
use tower_dingtalk_auth::{
    AuthenticatedDingTalkUser, ConfigError, DingTalkAuthLayer, DingTalkAuthLayerBuilder,
    DingTalkClient, DingTalkClientBuilder, SessionConfig, SessionKey,
};

const CALLBACK: &str = "/auth/dingtalk/callback";
const BROWSER: &str = "Mozilla/5.0 (X11; Linux x86_64) Chrome/156.0 Safari/537.36";
const HOST: &str = "app.example.com";
const KEY_BYTES: &[u8] = b"adversarial web login key: thirty-two bytes and more";
/// What DingTalk's new host answers when it throttles an app (see tests/data/real-answers.json,
/// T11).
const API_THROTTLE: &[u8] =
    br#"{"code":"Forbidden.AccessDenied.QpsLimitForAppkeyAndApi","message":"qps limited"}"#;

/// The web login's endpoints, in the order a login calls them.
const WEB_ENDPOINTS: [Endpoint; 5] = [
    Endpoint::UserAccessToken,
    Endpoint::UsersMe,
    Endpoint::GetByUnionId,
    Endpoint::UserGet,
    Endpoint::ListAdmin,
];

fn key() -> SessionKey {
    SessionKey::from_bytes(KEY_BYTES).unwrap()
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

struct App {
    dingtalk: MockDingTalk,
    layer: DingTalkAuthLayer,
    addr: SocketAddr,
    base: String,
    http: reqwest::Client,
    server: JoinHandle<()>,
}

impl Drop for App {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// The layer over the fake's internal app: sessions under [`key`], web login at [`CALLBACK`],
/// then whatever `configure` adds.
fn layer_over(
    client: DingTalkClient,
    configure: impl FnOnce(DingTalkAuthLayerBuilder) -> DingTalkAuthLayerBuilder,
) -> DingTalkAuthLayer {
    configure(
        DingTalkAuthLayer::builder()
            .client(client)
            .session(SessionConfig::new(key()).secure(false))
            .web_login(CALLBACK),
    )
    .build()
    .unwrap()
}

async fn serve_layer(dingtalk: MockDingTalk, layer: DingTalkAuthLayer) -> App {
    let app: Router = routes(Arc::new(AtomicU64::new(0))).layer(layer.clone());
    serve_router(dingtalk, layer, app).await
}

async fn serve_router(dingtalk: MockDingTalk, layer: DingTalkAuthLayer, app: Router) -> App {
    let (addr, server) = serve(app).await;
    App {
        dingtalk,
        layer,
        addr,
        base: format!("http://{addr}"),
        http: no_redirects(),
        server,
    }
}

async fn start_with(
    dingtalk: MockDingTalk,
    client: impl FnOnce(DingTalkClientBuilder) -> DingTalkClientBuilder,
    configure: impl FnOnce(DingTalkAuthLayerBuilder) -> DingTalkAuthLayerBuilder,
) -> App {
    let built = client(dingtalk.client_builder()).build().unwrap();
    let layer = layer_over(built, configure);
    serve_layer(dingtalk, layer).await
}

async fn start() -> App {
    start_with(dingtalk().await, |c| c, |l| l).await
}

/// `name=value` of every cookie `headers` set with a value (cleared ones are left out).
fn cookies_in(headers: &reqwest::header::HeaderMap) -> Vec<String> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .map(|value| value.to_str().unwrap())
        .filter(|cookie| !cookie.contains("Max-Age=0"))
        .map(|cookie| cookie.split(';').next().unwrap().to_owned())
        .collect()
}

fn cookies_set(response: &reqwest::Response) -> Vec<String> {
    cookies_in(response.headers())
}

fn web_calls(dingtalk: &MockDingTalk) -> Vec<u64> {
    WEB_ENDPOINTS.iter().map(|e| dingtalk.calls(*e)).collect()
}

/// Every call to DingTalk's APIs, the login page (a browser's visit, not the app's call) left out.
fn api_calls(dingtalk: &MockDingTalk) -> u64 {
    dingtalk.total_calls() - dingtalk.calls(Endpoint::LoginPage)
}

fn query(url: &reqwest::Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

/// The path and query of an absolute URL.
fn path_and_query(url: &str) -> String {
    let url = reqwest::Url::parse(url).unwrap();
    match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    }
}

/// Whether a browser at `https://app.example.com/…` following `location` stays on that host.
fn stays_on_host(location: &str) -> bool {
    let base = url::Url::parse(&format!("https://{HOST}/from/here")).unwrap();
    let on_host = base
        .join(location)
        .is_ok_and(|to| to.scheme() == "https" && to.host_str() == Some(HOST));
    on_host && location.starts_with('/') && !location.starts_with("//")
}

impl App {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn page(&self, path: &str, cookie: Option<&str>) -> reqwest::Response {
        let mut request = self
            .http
            .get(self.url(path))
            .header(ACCEPT, PAGE_ACCEPT)
            .header(USER_AGENT, BROWSER);
        if let Some(cookie) = cookie {
            request = request.header(COOKIE, cookie);
        }
        request.send().await.unwrap()
    }

    async fn api(&self, path: &str, cookie: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .header(ACCEPT, "application/json")
            .header(COOKIE, cookie)
            .send()
            .await
            .unwrap()
    }

    /// A page without a session, sent to DingTalk: DingTalk's URL and the state cookie.
    async fn start_login(&self, path: &str) -> (reqwest::Url, String) {
        let response = self.page(path, None).await;
        assert_eq!(
            response.status(),
            302,
            "a page without a login goes to DingTalk"
        );
        let location = response.headers()[LOCATION].to_str().unwrap().to_owned();
        let set_cookie = response.headers()[SET_COOKIE].to_str().unwrap().to_owned();
        let state_cookie = set_cookie.split(';').next().unwrap().to_owned();
        (reqwest::Url::parse(&location).unwrap(), state_cookie)
    }

    /// DingTalk's page approved by `unionid`: the callback URL it sends the browser to.
    async fn approve(&self, login: &reqwest::Url, unionid: &str) -> String {
        let mut approve = login.clone();
        approve.query_pairs_mut().append_pair("approve", unionid);
        let response = self.http.get(approve).send().await.unwrap();
        assert_eq!(response.status(), 302, "the fake approves");
        response.headers()[LOCATION].to_str().unwrap().to_owned()
    }

    /// The callback as DingTalk's browser sends it back (cross-site navigation).
    async fn callback(&self, url: &str, cookie: &str, accept: &str) -> reqwest::Response {
        self.http
            .get(self.url(&path_and_query(url)))
            .header(ACCEPT, accept)
            .header(USER_AGENT, BROWSER)
            .header(COOKIE, cookie)
            .header("sec-fetch-site", "cross-site")
            .header("sec-fetch-mode", "navigate")
            .send()
            .await
            .unwrap()
    }

    /// A whole login of `unionid` from the page `path`: the callback's answer.
    async fn login(&self, path: &str, unionid: &str, accept: &str) -> reqwest::Response {
        let (login, cookie) = self.start_login(path).await;
        let callback = self.approve(&login, unionid).await;
        self.callback(&callback, &cookie, accept).await
    }

    /// The user of a session cookie, as `/me` sees it.
    async fn me(&self, session: &str) -> AuthenticatedDingTalkUser {
        let response = self.api("/me", session).await;
        assert_eq!(response.status(), 200, "the session opens");
        response.json().await.unwrap()
    }
}

/// An HTTP/1.1 answer read off the socket.
struct Raw {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Raw {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
            .collect()
    }
}

/// Sends `request` byte for byte and reads the whole answer (5 s at most).
async fn raw(addr: SocketAddr, request: &str) -> Raw {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let read = stream.read_to_end(&mut answer);
    let _ = tokio::time::timeout(Duration::from_secs(5), read).await;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|status| status.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(key, value)| (key.trim().to_owned(), value.trim().to_owned()))
        .collect();
    Raw {
        status,
        headers,
        body: body.to_owned(),
    }
}

/// A browser's page navigation to `target` on `host`, with `extra` header lines.
fn page_request(target: &str, host: &str, extra: &str) -> String {
    format!(
        "GET {target} HTTP/1.1\r\nhost: {host}\r\naccept: {PAGE_ACCEPT}\r\nuser-agent: {BROWSER}\r\n\
         {extra}connection: close\r\n\r\n"
    )
}

/// The state cookie (`name=value`) a raw answer sets.
fn state_cookie_of(answer: &Raw) -> Option<String> {
    answer
        .all("set-cookie")
        .into_iter()
        .find(|cookie| cookie.contains("dingtalk_login_") && !cookie.contains("Max-Age=0"))
        .map(|cookie| cookie.split(';').next().unwrap().to_owned())
}

// ---------------------------------------------------------------------------------------------
// Where the browser is sent.
// ---------------------------------------------------------------------------------------------

/// Whether `location` names a `code` query parameter (a code there signs the browser in as
/// the code's owner on arrival).
fn carries_a_code(location: &str) -> bool {
    let base = url::Url::parse(&format!("https://{HOST}/")).unwrap();
    base.join(location)
        .is_ok_and(|to| to.query_pairs().any(|(key, _)| key == "code"))
}

/// Follows a page's answer (a `302` to DingTalk, or a continue page to it) through DingTalk's
/// approval to the callback: the callback's `Location`. `None` when the server refused the
/// request itself (400).
async fn follow_to_the_end(app: &App, start: &Raw, target: &str) -> Option<String> {
    let to_dingtalk = match start.status {
        400 => {
            assert!(start.header("location").is_none(), "{target}");
            return None;
        }
        302 => start.header("location").unwrap().to_owned(),
        200 => continue_targets(&start.body).0,
        other => panic!("{target}: {other} {}", start.body),
    };
    let to_dingtalk = reqwest::Url::parse(&to_dingtalk).unwrap();
    assert!(
        to_dingtalk
            .as_str()
            .starts_with(&app.dingtalk.login_page_url()),
        "{target}: {to_dingtalk}"
    );
    let cookie = state_cookie_of(start).expect("a state cookie");
    let callback = app.approve(&to_dingtalk, "union-staff01").await;
    let done = app.callback(&callback, &cookie, PAGE_ACCEPT).await;
    assert_eq!(done.status(), 303, "{target}");
    Some(done.headers()[LOCATION].to_str().unwrap().to_owned())
}

#[tokio::test]
async fn no_request_target_sends_the_browser_off_the_host() {
    let app = start().await;
    let targets = [
        "//evil.example/x",
        "/\\evil.example/x",
        "/\\/evil.example",
        "/%2F%2Fevil.example/x",
        "/%2f/%5c/evil.example",
        "/%5C%5Cevil.example",
        "/.//evil.example",
        "/./%2F/evil.example",
        "/%2e%2e//evil.example",
        "http://evil.example/x?tab=2",
        "/me?next=https://evil.example/",
        "/me?next=%2F%2Fevil.example",
        "/me?next=/.//evil.example",
        "/me?next=/\\evil.example",
        "/me?next=%0d%0aLocation:%20https://evil.example",
        "/me?next=%2Fme%3Fcode%3Dattackercode1",
        "/me?next=%2Fme%3Fc%256fde%3Dattackercode1%26tab%3D2",
    ];
    // On its way back from a login page (a code from another site, refused as a login), the
    // page's `next` is followed: only to a path on this host, without a code.
    let coming_back = [
        "/?code=stalecode1&next=https://evil.example/",
        "/?code=stalecode1&next=%2F%2Fevil.example",
        "/?code=stalecode1&next=/%2F/evil.example",
        "/?code=stalecode1&next=/.//evil.example",
        "/?code=stalecode1&next=%2F%5Cevil.example",
        "/?code=stalecode1&next=/\\evil.example",
        "/?code=stalecode1&next=/%09/evil.example",
        "/?code=stalecode1&next=%0d%0aLocation:%20https://evil.example",
        "/?code=stalecode1&next=javascript:alert(1)",
        "/?code=stalecode1&next=%2F%E2%80%AE%2F%2Fevil.example",
        "/?code=stalecode1&next=%E3%80%82%2F%2Fevil.example",
        "/?code=stalecode1&next=/%2e%2e/%2e%2e//evil.example",
        "/?code=stalecode1&next=/ok&next=//evil.example",
        "/?code=stalecode1&next=%2Fme%3Fcode%3Dattackercode1",
        "/?code=stalecode1&next=%2Fme%3Fc%256fde%3Dattackercode1%26tab%3D2",
        "/?code=stalecode1&next=%2F%3Fcode%3Dx%26next%3D%252F%252Fevil.example",
    ];
    let cross_site = "sec-fetch-site: cross-site\r\nsec-fetch-mode: navigate\r\n";
    let mut seen = Vec::new();
    for (target, extra) in targets
        .iter()
        .map(|target| (target, ""))
        .chain(coming_back.iter().map(|target| (target, cross_site)))
    {
        let start = raw(app.addr, &page_request(target, HOST, extra)).await;
        let Some(location) = follow_to_the_end(&app, &start, target).await else {
            seen.push(format!("{target} -> 400"));
            continue;
        };
        assert!(
            stays_on_host(&location),
            "{target}: the browser is sent to {location}"
        );
        assert!(!carries_a_code(&location), "{target}: {location}");
        seen.push(format!("{target} -> {location}"));
    }
    eprintln!("{seen:#?}");
}

#[tokio::test]
async fn a_long_page_url_still_signs_in() {
    // A page with a long query (filters, a search, a report's parameters): browsers keep cookies
    // up to 4096 bytes (name and value) and silently drop bigger ones.
    let app = start().await;
    let path = format!("/me?filter={}", "a".repeat(3000));
    let response = app.page(&path, None).await;
    assert_eq!(response.status(), 302);
    let login = reqwest::Url::parse(response.headers()[LOCATION].to_str().unwrap()).unwrap();
    let state_cookie = cookies_set(&response).pop().expect("a state cookie");
    let callback = app.approve(&login, "union-staff01").await;
    // What a browser sends back: the cookie if it kept it.
    let kept = if state_cookie.len() <= 4096 {
        state_cookie.clone()
    } else {
        String::new()
    };
    let done = app.callback(&callback, &kept, PAGE_ACCEPT).await;
    assert!(
        state_cookie.len() <= 4096 && done.status() == 303,
        "the state cookie is {} bytes (browsers drop it past 4096): the callback answers {}",
        state_cookie.len(),
        done.status()
    );
    assert!(stays_on_host(done.headers()[LOCATION].to_str().unwrap()));
}

#[tokio::test]
async fn hostile_hosts_make_no_redirect_uri_elsewhere_and_break_nothing() {
    let app = start().await;
    for host in [
        "evil.example:80@app.example.com",
        "app.example.com@evil.example",
        "evil.example/x",
        "evil.example\\x",
        "evil.example#x",
        "evil.example?x=1",
        "evil.example,app.example.com",
        "evil.example%2f",
        "a b",
        "[::1",
        "evil.example:80/",
        "\u{7f}",
        "",
        "EVIL.example",
        "evil.example.",
        "app.example.com:abc",
        "[::1]:8080",
        "localhost.evil.example",
        "127.0.0.1.evil.example",
    ] {
        let answer = raw(app.addr, &page_request("/me", host, "")).await;
        match answer.status {
            302 => {
                let location = reqwest::Url::parse(answer.header("location").unwrap()).unwrap();
                let redirect_uri = query(&location, "redirect_uri").unwrap();
                let expected = [
                    format!("https://{host}{CALLBACK}"),
                    format!("http://{host}{CALLBACK}"),
                ];
                assert!(
                    expected.contains(&redirect_uri),
                    "{host:?}: the redirect_uri is {redirect_uri}"
                );
                assert!(
                    !host.contains(['@', '/', '\\', '#', '?', ',', '%', ' ']),
                    "{host:?} made a redirect_uri: {redirect_uri}"
                );
            }
            // No callback URL can be made: no web login (401, or the server's own 400).
            400 | 401 => assert!(answer.header("location").is_none(), "{host:?}"),
            other => panic!("{host:?}: {other}"),
        }
    }
    assert_eq!(api_calls(&app.dingtalk), 0, "no call to DingTalk");
    // Still serving.
    let (_, _) = app.start_login("/me").await;
}

#[tokio::test]
async fn an_absolute_callback_ignores_the_host_header() {
    let configured = format!("https://{HOST}{CALLBACK}");
    let dingtalk = dingtalk().await;
    let client = dingtalk.client_builder().build().unwrap();
    let layer = DingTalkAuthLayer::builder()
        .client(client)
        .session(SessionConfig::new(key()).secure(false))
        .web_login(configured.clone())
        .build()
        .unwrap();
    let app = serve_layer(dingtalk, layer).await;
    for target in ["/me", "http://evil.example/me"] {
        let answer = raw(app.addr, &page_request(target, "evil.example", "")).await;
        assert_eq!(answer.status, 302, "{target}");
        let location = reqwest::Url::parse(answer.header("location").unwrap()).unwrap();
        assert_eq!(
            query(&location, "redirect_uri").unwrap(),
            configured,
            "{target}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The state cookie elsewhere.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn another_apps_state_cookie_under_the_same_key_is_refused() {
    let dingtalk = dingtalk().await;
    let base = dingtalk.base_url();
    let app_a = start_with(dingtalk, |c| c, |l| l).await;
    // Another app on the same host, with the same session key.
    let other = DingTalkClient::builder()
        .internal_app("another-app-key", "another-app-secret")
        .base_url(base)
        .build()
        .unwrap();
    let layer_b = layer_over(other, |l| l);
    let app_b = serve_layer(MockDingTalk::start().await, layer_b).await;

    let (login, cookie) = app_a.start_login("/me").await;
    let callback = app_a.approve(&login, "union-staff01").await;
    let before = api_calls(&app_a.dingtalk);
    let at_b = app_b.callback(&callback, &cookie, "application/json").await;
    support::assert_rejection(at_b, 403, "invalid_login_state", &[]).await;
    assert_eq!(api_calls(&app_a.dingtalk), before, "no call for app B");
    // B's refusal spent nothing of A's.
    let at_a = app_a.callback(&callback, &cookie, PAGE_ACCEPT).await;
    assert_eq!(at_a.status(), 303);
}

#[tokio::test]
async fn a_session_cookie_is_no_state_cookie_and_a_state_cookie_is_no_session() {
    let app = start().await;
    let done = app.login("/me", "union-staff01", PAGE_ACCEPT).await;
    assert_eq!(done.status(), 303);
    let session = cookies_set(&done).pop().unwrap();
    let (session_name, session_value) = session.split_once('=').unwrap();

    let (login, state_cookie) = app.start_login("/me").await;
    let (state_name, state_value) = state_cookie.split_once('=').unwrap();
    let callback = app.approve(&login, "union-boss01").await;
    let before = web_calls(&app.dingtalk);
    // The session's sealed value under the state cookie's name.
    let swapped = format!("{state_name}={session_value}");
    let response = app.callback(&callback, &swapped, "application/json").await;
    support::assert_rejection(response, 403, "invalid_login_state", &[]).await;
    assert_eq!(web_calls(&app.dingtalk), before);

    // The state's sealed value under the session cookie's name: nobody.
    let as_session = format!("{session_name}={state_value}");
    let api = app.api("/me", &as_session).await;
    support::assert_rejection(api, 401, "missing_code", &[]).await;
    let page = app.page("/me", Some(&as_session)).await;
    assert_eq!(page.status(), 302, "still no session: sent to DingTalk");

    // The real state cookie among forged ones with the same name, in one header or two.
    let crowded = format!("{state_name}=forged; {state_cookie}; {state_name}=");
    let mut request = app
        .http
        .get(app.url(&path_and_query(&callback)))
        .header(ACCEPT, PAGE_ACCEPT)
        .header(USER_AGENT, BROWSER)
        .header(COOKIE, format!("{state_name}=junk"))
        .header(COOKIE, crowded);
    request = request.header("sec-fetch-site", "cross-site");
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 303, "the browser's own cookie is found");
    assert_eq!(
        app.me(&cookies_set(&response).pop().unwrap())
            .await
            .userid(),
        "boss01"
    );
}

#[tokio::test]
async fn an_attackers_callback_url_logs_no_victim_in() {
    // Login CSRF: the attacker signs in on their own browser up to DingTalk's answer, and sends
    // the victim the callback URL (their own state and authCode).
    let app = start().await;
    let (attacker_login, _attacker_cookie) = app.start_login("/me").await;
    let attackers_url = app.approve(&attacker_login, "union-boss01").await;
    // The victim has a login of their own under way, or none.
    let (_victim_login, victim_cookie) = app.start_login("/me").await;
    let before = api_calls(&app.dingtalk);
    for cookie in [victim_cookie.as_str(), ""] {
        let response = app.callback(&attackers_url, cookie, PAGE_ACCEPT).await;
        assert_eq!(response.status(), 403, "{cookie:?}");
        assert!(
            cookies_set(&response).is_empty(),
            "no session for the victim"
        );
        let page = response.text().await.unwrap();
        assert!(page.contains("invalid_login_state"), "{page}");
    }
    assert_eq!(api_calls(&app.dingtalk), before, "refused before DingTalk");
}

#[tokio::test]
async fn twenty_simultaneous_callbacks_start_one_session_with_one_exchange() {
    let app = start().await;
    // Warm the app token, so that only the login's own calls are counted.
    assert_eq!(
        app.login("/me", "union-staff01", PAGE_ACCEPT)
            .await
            .status(),
        303
    );
    let before = web_calls(&app.dingtalk);
    let (login, cookie) = app.start_login("/me").await;
    let callback = app.approve(&login, "union-staff01").await;
    let answers =
        join_all((0..20).map(|_| app.callback(&callback, &cookie, "application/json"))).await;
    let mut sessions = 0;
    let mut refused = 0;
    for answer in answers {
        match answer.status().as_u16() {
            303 => {
                assert_eq!(cookies_set(&answer).len(), 1);
                sessions += 1;
            }
            403 => {
                assert!(cookies_set(&answer).is_empty());
                refused += 1;
            }
            other => panic!("{other}: {:?}", answer.text().await),
        }
    }
    assert_eq!((sessions, refused), (1, 19));
    let after = web_calls(&app.dingtalk);
    assert_eq!(after[0] - before[0], 1, "one userAccessToken call");
    assert_eq!(after[1] - before[1], 1, "one users/me call");
}

/// Two replicas of one app: layers with the same session key, each its own process's state.
/// Two layers answering one fake DingTalk: on one client, or on two replicas sharing Redis (as
/// replicas must, to share anything at all).
async fn replicas(same_client: bool) -> (App, App) {
    let dingtalk = dingtalk().await;
    let (client_a, client_b) = if same_client {
        let client = dingtalk.client_builder().build().unwrap();
        (client.clone(), client)
    } else {
        let prefix = support::store::Prefix::new("web-login-replay");
        let a = dingtalk
            .client_builder()
            .shared_store(prefix.store(|b| b).await)
            .build()
            .unwrap();
        let b = dingtalk
            .client_builder()
            .shared_store(prefix.store(|b| b).await)
            .build()
            .unwrap();
        (a, b)
    };
    let layer_b = layer_over(client_b, |l| l);
    let app_a = serve_layer(dingtalk, layer_over(client_a, |l| l)).await;
    // B answers the same fake DingTalk; its own handle is a stand-in never called.
    let app_b = serve_layer(MockDingTalk::start().await, layer_b).await;
    (app_a, app_b)
}

async fn replay_on_the_other(same_client: bool) {
    let (a, b) = replicas(same_client).await;
    let (login, cookie) = a.start_login("/me").await;
    let callback = a.approve(&login, "union-staff01").await;
    let first = a.callback(&callback, &cookie, PAGE_ACCEPT).await;
    assert_eq!(first.status(), 303);
    let spent = web_calls(&a.dingtalk);
    // The same callback, cookie and all, on the other replica (a load balancer's next pick).
    let replay = b.callback(&callback, &cookie, "application/json").await;
    let status = replay.status();
    let body = replay.text().await.unwrap();
    assert_eq!(
        (status.as_u16(), web_calls(&a.dingtalk)),
        (403, spent.clone()),
        "a replay is 403 invalid_login_state before DingTalk (doc of `web_login`); seen {body}, \
         DingTalk calls {spent:?} -> {:?}",
        web_calls(&a.dingtalk)
    );
}

#[tokio::test]
async fn a_callback_replayed_on_another_replica_is_refused_before_dingtalk() {
    replay_on_the_other(false).await;
}

#[tokio::test]
async fn a_callback_replayed_on_another_layer_of_the_same_client_is_refused_before_dingtalk() {
    replay_on_the_other(true).await;
}

#[tokio::test]
async fn one_callback_on_two_replicas_at_once_starts_at_most_one_session() {
    let (a, b) = replicas(false).await;
    for _ in 0..5 {
        let (login, cookie) = a.start_login("/me").await;
        let callback = a.approve(&login, "union-staff01").await;
        let (on_a, on_b) = tokio::join!(
            a.callback(&callback, &cookie, "application/json"),
            b.callback(&callback, &cookie, "application/json")
        );
        let sessions = [&on_a, &on_b]
            .iter()
            .filter(|answer| !cookies_set(answer).is_empty())
            .count();
        assert!(sessions <= 1, "one authCode, one session at most");
        assert!(
            [on_a.status(), on_b.status()].contains(&reqwest::StatusCode::SEE_OTHER),
            "one of them signs in"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The continue-by-script page.
// ---------------------------------------------------------------------------------------------

/// The target of a continue page's script, and of its link.
fn continue_targets(page: &str) -> (String, String) {
    let script = page
        .split_once("location.replace(")
        .and_then(|(_, rest)| rest.split_once(");</script>"))
        .map(|(literal, _)| literal)
        .expect("a script");
    let script: String = serde_json::from_str(script).expect("a JS string literal");
    let href = page
        .split_once("href=\"")
        .and_then(|(_, rest)| rest.split_once('"'))
        .map(|(href, _)| href)
        .expect("a link");
    let href = href
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    (script, href)
}

#[tokio::test]
async fn the_continue_page_is_inert_for_any_request_target_and_keeps_the_state_cookie() {
    let app = start_with(
        dingtalk().await,
        |c| c,
        |l| l.redirect_when_missing("/login.html"),
    )
    .await;
    let cross_site = "sec-fetch-site: cross-site\r\nsec-fetch-mode: navigate\r\n";
    let target = "/me/\"'x?code=stalecode1&q='};alert(1)//&r=%3C%2Fscript%3E%3Cscript%3Ealert(2)\
                  &s=javascript:alert(3)";
    let page = raw(app.addr, &page_request(target, HOST, cross_site)).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.header("location").is_none());
    assert_eq!(page.body.matches("<script").count(), 1, "{}", page.body);
    assert!(!page.body.contains("alert("), "{}", page.body);
    assert!(!page.body.contains("stalecode1"), "{}", page.body);
    let cookie = state_cookie_of(&page).expect("the state cookie is kept");
    let (script, href) = continue_targets(&page.body);
    assert_eq!(script, href);
    assert!(
        script.starts_with(&app.dingtalk.login_page_url()),
        "{script}"
    );
    // Followed through: the page first asked for, on this host, without the stale code.
    let login = reqwest::Url::parse(&script).unwrap();
    let callback = app.approve(&login, "union-staff01").await;
    let done = app.callback(&callback, &cookie, PAGE_ACCEPT).await;
    assert_eq!(done.status(), 303);
    let location = done.headers()[LOCATION].to_str().unwrap().to_owned();
    assert!(stays_on_host(&location), "{location}");
    assert!(location.starts_with("/me/"), "{location}");
    assert!(!location.contains("stalecode1"), "{location}");

    // Inside DingTalk the page continues to the login page instead: on this host.
    let inside = format!("{cross_site}user-agent: Mozilla/5.0 AliApp(DingTalk/7.6.0)\r\n");
    let request = format!(
        "GET {target} HTTP/1.1\r\nhost: {HOST}\r\naccept: {PAGE_ACCEPT}\r\n{inside}connection: close\r\n\r\n"
    );
    let page = raw(app.addr, &request).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.body.matches("<script").count(), 1, "{}", page.body);
    assert!(!page.body.contains("alert("), "{}", page.body);
    let (script, _) = continue_targets(&page.body);
    assert!(script.starts_with("/login.html?"), "{script}");
    assert!(stays_on_host(&script), "{script}");
}

// ---------------------------------------------------------------------------------------------
// DingTalk misbehaving.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn getbyunionid_naming_another_employee_signs_nobody_in_as_them() {
    // staff01 signs in; DingTalk's lookup says boss01 (whose record names another account).
    let app = start().await;
    assert_eq!(
        app.login("/me", "union-staff01", PAGE_ACCEPT)
            .await
            .status(),
        303
    );
    app.dingtalk.fail_next(
        Endpoint::GetByUnionId,
        Fault::Raw(
            200,
            br#"{"errcode":0,"errmsg":"ok","result":{"contact_type":0,"userid":"boss01"}}"#
                .to_vec(),
        ),
        1,
    );
    let response = app.login("/me", "union-staff01", "application/json").await;
    let status = response.status();
    let session = cookies_set(&response).pop();
    let who = match &session {
        Some(session) => {
            let user = app.me(session).await;
            format!("{} / {}", user.userid(), user.unionid())
        }
        None => String::new(),
    };
    assert!(
        session.is_none(),
        "the account union-staff01 signed in; user/get says boss01 is union-boss01: {status}, \
         session as {who}"
    );
}

#[tokio::test]
async fn user_get_naming_another_account_is_not_the_signed_in_account() {
    let app = start().await;
    app.dingtalk.fail_next(
        Endpoint::UserGet,
        Fault::Raw(
            200,
            br#"{"errcode":0,"errmsg":"ok","result":{"userid":"staff01","unionid":"union-boss01","name":"Li Si","admin":false,"boss":false}}"#
                .to_vec(),
        ),
        1,
    );
    let response = app.login("/me", "union-staff01", "application/json").await;
    let status = response.status();
    if let Some(session) = cookies_set(&response).pop() {
        let user = app.me(&session).await;
        assert_eq!(
            user.unionid(),
            "union-staff01",
            "{status}: the session names another DingTalk account than the one that signed in"
        );
    }
}

async fn throttled_answer(app: &App) -> (u16, String, Option<String>, bool) {
    let response = app.login("/me", "union-super01", "application/json").await;
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|value| value.to_str().unwrap().to_owned());
    let session = !cookies_set(&response).is_empty();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    let error = body["error"].as_str().unwrap_or_default().to_owned();
    (status, error, retry_after, session)
}

#[tokio::test]
async fn a_throttled_user_token_call_is_a_503_with_retry_after() {
    let app = start().await;
    app.dingtalk.fail_next(
        Endpoint::UserAccessToken,
        Fault::Raw(403, API_THROTTLE.to_vec()),
        1,
    );
    let (status, error, retry_after, session) = throttled_answer(&app).await;
    assert_eq!((status, error.as_str()), (503, "upstream_throttled"));
    assert!(retry_after.is_some() && !session);
}

#[tokio::test]
async fn a_throttled_users_me_call_is_a_503_with_retry_after() {
    // users/me is on DingTalk's new host, which throttles with 403 and a `code`.
    let app = start().await;
    app.dingtalk
        .fail_next(Endpoint::UsersMe, Fault::Raw(403, API_THROTTLE.to_vec()), 1);
    let (status, error, retry_after, session) = throttled_answer(&app).await;
    assert!(!session);
    assert_eq!(
        (status, error.as_str(), retry_after.is_some()),
        (503, "upstream_throttled", true),
        "DingTalk throttled users/me"
    );
}

#[tokio::test]
async fn the_fakes_own_qps_limit_at_the_user_token_reads_as_a_throttle() {
    // MockDingTalk::set_qps_limit answers every endpoint past the limit with 88/90018.
    let app = start().await;
    app.dingtalk
        .fail_next(Endpoint::UserAccessToken, Fault::SubCode(90018), 1);
    let (status, error, retry_after, session) = throttled_answer(&app).await;
    assert!(!session);
    assert_eq!(
        (status, error.as_str(), retry_after.is_some()),
        (503, "upstream_throttled", true),
        "a 90018 at userAccessToken"
    );
}

#[tokio::test]
async fn a_throttle_at_each_contact_step_is_a_503_with_an_honest_retry_after() {
    let app = start().await;
    for endpoint in [
        Endpoint::GetByUnionId,
        Endpoint::UserGet,
        Endpoint::ListAdmin,
    ] {
        app.dingtalk.fail_next(endpoint, Fault::SubCode(90018), 1);
        let (status, error, retry_after, session) = throttled_answer(&app).await;
        assert_eq!(
            (status, error.as_str()),
            (503, "upstream_throttled"),
            "{endpoint:?}"
        );
        assert!(!session, "{endpoint:?}");
        let wait: u64 = retry_after.expect("Retry-After").parse().unwrap();
        assert!(wait >= 1, "{endpoint:?}");
        // After the wait, a new login goes through.
        tokio::time::sleep(Duration::from_secs(wait) + Duration::from_millis(100)).await;
        let again = app.login("/me", "union-super01", PAGE_ACCEPT).await;
        assert_eq!(again.status(), 303, "{endpoint:?}: Retry-After was {wait}");
        // listadmin is cached after a success: forget it with a fresh fake next round.
        if endpoint == Endpoint::UserGet {
            break;
        }
    }
    let app = start().await;
    app.dingtalk
        .fail_next(Endpoint::ListAdmin, Fault::SubCode(90018), 1);
    let (status, error, retry_after, session) = throttled_answer(&app).await;
    assert_eq!(
        (status, error.as_str()),
        (503, "upstream_throttled"),
        "listadmin"
    );
    assert!(retry_after.is_some() && !session);
}

#[tokio::test]
async fn a_refused_app_token_is_fetched_again_at_each_contact_step() {
    let app = start().await;
    for endpoint in [
        Endpoint::ListAdmin,
        Endpoint::GetByUnionId,
        Endpoint::UserGet,
    ] {
        let tokens = app.dingtalk.token_calls();
        app.dingtalk.fail_next(endpoint, Fault::SubCode(40014), 1);
        let response = app.login("/me", "union-super01", PAGE_ACCEPT).await;
        assert_eq!(response.status(), 303, "{endpoint:?}");
        let fetched = app.dingtalk.token_calls() - tokens;
        // The first round also fetches the first token.
        assert!(
            fetched == 1 || (fetched == 2 && tokens == 0),
            "{endpoint:?}: {fetched}"
        );
    }
}

#[tokio::test]
async fn dingtalk_slower_than_the_upstream_timeout_at_any_step_is_a_prompt_504() {
    for endpoint in WEB_ENDPOINTS {
        let app = start_with(
            dingtalk().await,
            |c| {
                c.upstream_timeout(Duration::from_millis(500))
                    .answer_timeout(Duration::from_millis(500))
            },
            |l| l,
        )
        .await;
        app.dingtalk
            .fail_next(endpoint, Fault::Latency(Duration::from_secs(3)), 1);
        let (login, cookie) = app.start_login("/me").await;
        let callback = app.approve(&login, "union-super01").await;
        let started = Instant::now();
        let response = app.callback(&callback, &cookie, "application/json").await;
        let took = started.elapsed();
        support::assert_rejection(response, 504, "upstream_timeout", &[]).await;
        assert!(took < Duration::from_millis(1500), "{endpoint:?}: {took:?}");
    }
}

#[tokio::test]
async fn no_call_is_sent_past_the_upstream_timeout() {
    // Each step answers within the answer timeout, but the steps together take far longer than
    // the upstream timeout: "past it no call is sent any more" (DingTalkClientBuilder).
    let app = start_with(
        dingtalk().await,
        |c| {
            c.upstream_timeout(Duration::from_millis(500))
                .answer_timeout(Duration::from_millis(500))
        },
        |l| l,
    )
    .await;
    // A warm app token (staff01 is no administrator: listadmin is not read yet).
    assert_eq!(
        app.login("/me", "union-staff01", PAGE_ACCEPT)
            .await
            .status(),
        303
    );
    let before = web_calls(&app.dingtalk);
    for endpoint in WEB_ENDPOINTS {
        app.dingtalk
            .fail_next(endpoint, Fault::Latency(Duration::from_millis(400)), 1);
    }
    let (login, cookie) = app.start_login("/me").await;
    let callback = app.approve(&login, "union-super01").await;
    let started = Instant::now();
    let response = app.callback(&callback, &cookie, "application/json").await;
    let took = started.elapsed();
    let status = response.status();
    let after = web_calls(&app.dingtalk);
    let sent: Vec<u64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
    assert!(
        took < Duration::from_millis(1300) && status == 504,
        "upstream_timeout 500 ms, answer_timeout 500 ms: the callback took {took:?} and answered \
         {status}; calls sent (userAccessToken, users/me, getbyunionid, user/get, listadmin): \
         {sent:?}"
    );
}

#[tokio::test]
async fn listadmin_garbage_and_huge_numbers_break_nothing() {
    let many: String = (0..20_000)
        .map(|i| format!(r#"{{"userid":"u{i}","sys_level":2}},"#))
        .collect();
    let cases = [
        r#"{"errcode":0,"errmsg":"ok","result":[{"userid":"super01","sys_level":18446744073709551615}]}"#.to_owned(),
        r#"{"errcode":0,"errmsg":"ok","result":[{"userid":"super01","sys_level":-9223372036854775808}]}"#.to_owned(),
        r#"{"errcode":0,"errmsg":"ok","result":[{"userid":"super01","sys_level":1e400}]}"#.to_owned(),
        r#"{"errcode":0,"errmsg":"ok","result":[{"userid":"super01","sys_level":"1.5"}]}"#.to_owned(),
        r#"{"errcode":0,"errmsg":"ok","result":[{"userid":null,"sys_level":1},{}]}"#.to_owned(),
        r#"{"errcode":0,"errmsg":"ok","result":{"userid":"super01"}}"#.to_owned(),
        r#"{"errcode":0,"errmsg":"ok","result":null}"#.to_owned(),
        r#"{"errcode":0,"errmsg":"ok","result":"#.to_owned(),
        format!(r#"{{"errcode":0,"errmsg":"ok","result":[{many}{{"userid":"super01","sys_level":1}}]}}"#),
    ];
    for body in cases {
        let app = start().await;
        app.dingtalk.fail_next(
            Endpoint::ListAdmin,
            Fault::Raw(200, body.clone().into_bytes()),
            1,
        );
        let response = app.login("/me", "union-super01", "application/json").await;
        let status = response.status().as_u16();
        let label = &body[..body.len().min(100)];
        match status {
            303 => {
                let user = app.me(&cookies_set(&response).pop().unwrap()).await;
                assert_eq!(user.userid(), "super01", "{label}");
                assert!(user.is_admin(), "{label}");
            }
            502 => assert!(cookies_set(&response).is_empty(), "{label}"),
            other => panic!("{label}: {other}"),
        }
        // The layer still serves.
        assert_eq!(
            app.login("/me", "union-staff01", PAGE_ACCEPT)
                .await
                .status(),
            303
        );
    }
}

const CORP_A: &str = "dingcorpa0001";
const CORP_B: &str = "dingcorpb0002";

/// A third-party app whose directory admits corp A only; corps A and B installed the suite.
async fn third_party() -> App {
    let dingtalk = MockDingTalk::start().await;
    for (corp, unionid) in [(CORP_A, "union-alice"), (CORP_B, "union-bob")] {
        dingtalk.add_corp(corp);
        dingtalk.add_corp_user(
            corp,
            AuthenticatedDingTalkUser::builder("u1", unionid)
                .unionid(unionid)
                .build(),
        );
    }
    let (key, secret, base) = (
        dingtalk.suite_key(),
        dingtalk.suite_secret(),
        dingtalk.base_url(),
    );
    start_with(
        dingtalk,
        move |_| {
            DingTalkClient::builder()
                .third_party_app(key, secret)
                .base_url(base)
        },
        |l| l.authorized_corps([CORP_A]),
    )
    .await
}

impl App {
    /// A third-party login: the state from the redirect, the authCode issued directly.
    async fn corp_callback(&self, corp: &str, unionid: &str) -> reqwest::Response {
        let (login, cookie) = self.start_login("/me").await;
        let state = query(&login, "state").unwrap();
        let code = self.dingtalk.issue_corp_auth_code(corp, unionid);
        let url = format!("{}{CALLBACK}?authCode={code}&state={state}", self.base);
        self.callback(&url, &cookie, "application/json").await
    }
}

#[tokio::test]
async fn a_third_party_corp_the_directory_refuses_gets_no_session_and_no_user_calls() {
    let app = third_party().await;
    let admitted = app.corp_callback(CORP_A, "union-alice").await;
    assert_eq!(admitted.status(), 303);
    let user = app.me(&cookies_set(&admitted).pop().unwrap()).await;
    assert_eq!(user.corp_id(), Some(CORP_A));

    let before = web_calls(&app.dingtalk);
    let corp_tokens = app.dingtalk.corp_token_calls(CORP_B);
    let refused = app.corp_callback(CORP_B, "union-bob").await;
    let status = refused.status().as_u16();
    assert!(cookies_set(&refused).is_empty(), "no session");
    let body = support::json(refused).await;
    assert_eq!(body["error"], "corp_not_authorized", "{status}");
    let after = web_calls(&app.dingtalk);
    assert_eq!(
        after[0] - before[0],
        1,
        "the authCode is exchanged to learn the corp"
    );
    assert_eq!(&after[1..], &before[1..], "no user calls");
    assert_eq!(app.dingtalk.corp_token_calls(CORP_B), corp_tokens);
}

#[tokio::test]
async fn a_third_party_user_token_without_a_usable_corp_is_refused_before_user_calls() {
    let app = third_party().await;
    for answer in [
        r#"{"accessToken":"user-token-1","refreshToken":"r","expireIn":7200}"#,
        r#"{"accessToken":"user-token-2","refreshToken":"r","expireIn":7200,"corpId":""}"#,
        r#"{"accessToken":"user-token-3","refreshToken":"r","expireIn":7200,"corpId":"../../x"}"#,
        r#"{"accessToken":"user-token-4","refreshToken":"r","expireIn":7200,"corpId":{"a":1}}"#,
        r#"{"accessToken":"user-token-5","refreshToken":"r","expireIn":7200,"corpId":12345}"#,
        r#"{"accessToken":"user-token-6","refreshToken":"r","expireIn":7200,"corpId":"dingcorpb0002"}"#,
    ] {
        let before = web_calls(&app.dingtalk);
        app.dingtalk.fail_next(
            Endpoint::UserAccessToken,
            Fault::Raw(200, answer.as_bytes().to_vec()),
            1,
        );
        let response = app.corp_callback(CORP_A, "union-alice").await;
        let status = response.status().as_u16();
        assert!(cookies_set(&response).is_empty(), "{answer}: no session");
        let text = response.text().await.unwrap();
        assert!((400..500).contains(&status), "{answer}: {status} {text}");
        assert!(!text.contains("user-token"), "{text}");
        assert_eq!(&web_calls(&app.dingtalk)[1..], &before[1..], "{answer}");
    }
}

// ---------------------------------------------------------------------------------------------
// Secrets.
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "current_thread")]
async fn no_secret_reaches_logs_bodies_or_debug_output_even_when_dingtalk_fails() {
    let (_guard, logs) = support::capture_logs();
    let app = start().await;
    let mut bodies = Vec::new();
    let mut secrets = Vec::new();
    let faults = [
        None,
        Some((Endpoint::UsersMe, Fault::CloseConnection)),
        Some((Endpoint::GetByUnionId, Fault::CloseConnection)),
        Some((Endpoint::UserGet, Fault::TruncatedJson)),
        Some((
            Endpoint::UsersMe,
            Fault::Raw(500, b"{\"code\":\"x\"}".to_vec()),
        )),
        Some((Endpoint::GetByUnionId, Fault::SubCode(40014))),
        Some((
            Endpoint::UserAccessToken,
            Fault::Raw(
                400,
                b"{\"code\":\"invalidAuthCode\",\"message\":\"bad\"}".to_vec(),
            ),
        )),
    ];
    for fault in faults {
        if let Some((endpoint, fault)) = fault {
            app.dingtalk.fail_next(endpoint, fault, 1);
        }
        let (login, cookie) = app.start_login("/me?tab=1").await;
        let state = query(&login, "state").unwrap();
        let callback = app.approve(&login, "union-super01").await;
        let auth_code = query(&reqwest::Url::parse(&callback).unwrap(), "authCode").unwrap();
        for accept in [PAGE_ACCEPT, "application/json"] {
            let response = app.callback(&callback, &cookie, accept).await;
            bodies.push(response.text().await.unwrap());
        }
        secrets.extend([
            auth_code,
            state,
            cookie.split_once('=').unwrap().1.to_owned(),
        ]);
    }
    // A forged authCode.
    let (login, cookie) = app.start_login("/me").await;
    let state = query(&login, "state").unwrap();
    let url = format!(
        "{}{CALLBACK}?authCode=forgedcode123&state={state}",
        app.base
    );
    bodies.push(
        app.callback(&url, &cookie, PAGE_ACCEPT)
            .await
            .text()
            .await
            .unwrap(),
    );
    secrets.push(state);

    secrets.extend(app.dingtalk.issued_tokens());
    secrets.push(app.dingtalk.app_secret());
    let key_text = String::from_utf8_lossy(KEY_BYTES).into_owned();
    secrets.push(key_text.clone());
    let debug = [
        format!("{:?}", app.layer),
        format!(
            "{:?}",
            DingTalkAuthLayer::builder()
                .internal_app("APP_KEY", "the-app-secret-value")
                .session(SessionConfig::new(key()))
                .web_login(CALLBACK)
        ),
        format!("{:?}", app.dingtalk.client_builder().build().unwrap()),
        format!("{:?}", app.dingtalk.client_builder()),
    ];
    secrets.push("the-app-secret-value".to_owned());
    let logs = logs.contents();
    assert!(secrets.len() > 20);
    for secret in &secrets {
        assert!(
            !logs.contains(secret.as_str()),
            "a secret in the logs: {secret}"
        );
        for body in &bodies {
            assert!(
                !body.contains(secret.as_str()),
                "a secret in a body: {body}"
            );
        }
        for debug in &debug {
            assert!(
                !debug.contains(secret.as_str()),
                "a secret in Debug: {debug}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Bad input, methods, paths, and the layer's other options.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn bad_callbacks_cost_no_call_and_leave_the_login_usable() {
    let app = start().await;
    let (login, cookie) = app.start_login("/me").await;
    let state = query(&login, "state").unwrap();
    let callback = app.approve(&login, "union-staff01").await;
    let auth_code = query(&reqwest::Url::parse(&callback).unwrap(), "authCode").unwrap();
    let before = api_calls(&app.dingtalk);

    // POST to the callback: not the callback, not a page: 401, nothing spent.
    let post = app
        .http
        .post(app.url(&path_and_query(&callback)))
        .header(ACCEPT, "application/json")
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), 401);
    // The callback's path with a trailing slash, in capitals, or with an encoded letter: pages,
    // which start a new login without sending the authCode anywhere.
    for path in [
        format!("{CALLBACK}/"),
        CALLBACK.to_uppercase(),
        CALLBACK.replace("callback", "c%61llback"),
        format!("{CALLBACK};x"),
    ] {
        let url = format!("{path}?authCode={auth_code}&state={state}");
        let page = app.page(&url, Some(&cookie)).await;
        assert_eq!(page.status(), 302, "{path}");
        let location = page.headers()[LOCATION].to_str().unwrap();
        assert!(!location.contains(&auth_code), "{path}: {location}");
    }
    // Cancelled with a valid authCode; states of the wrong shape; HEAD with a forged state.
    for query in [
        format!("error=access_denied&authCode={auth_code}&state={state}"),
        format!("authCode={auth_code}&state={}", state.to_uppercase()),
        format!("authCode={auth_code}&state={state}0"),
        format!("authCode={auth_code}&state=%20{state}"),
        format!("authCode={auth_code}&state={state}&state={state}"),
        format!("authCode={auth_code}&authCode={auth_code}x&state={state}"),
        format!("authCode=a%20b&state={state}"),
    ] {
        let url = format!("{}{CALLBACK}?{query}", app.base);
        let response = app.callback(&url, &cookie, "application/json").await;
        assert!(
            response.status().is_client_error(),
            "{query}: {}",
            response.status()
        );
    }
    let head = app
        .http
        .head(app.url(&format!(
            "{CALLBACK}?authCode={auth_code}&state={}",
            "0".repeat(32)
        )))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 403);
    assert_eq!(api_calls(&app.dingtalk), before, "bad input costs no call");

    // The login itself still works (the state cookie cleared above was the browser's only copy;
    // the test still holds it).
    let done = app.callback(&callback, &cookie, PAGE_ACCEPT).await;
    assert_eq!(done.status(), 303);
}

#[tokio::test]
async fn an_optional_layer_with_web_login_sends_pages_to_dingtalk_or_does_not_build() {
    let dingtalk = dingtalk().await;
    let built = dingtalk
        .layer_builder()
        .session(SessionConfig::new(key()).secure(false))
        .web_login(CALLBACK)
        .optional()
        .build();
    let layer = match built {
        Err(ConfigError::ConflictingOptions { .. }) => return,
        Err(other) => panic!("{other}"),
        Ok(layer) => layer,
    };
    let app = serve_layer(dingtalk, layer).await;
    let page = app.page("/maybe", None).await;
    let status = page.status();
    let body = page.text().await.unwrap();
    assert_eq!(
        status, 302,
        "the layer built, with a web login no page can ever start: {status} {body:?}"
    );
}

#[tokio::test]
async fn a_custom_renderer_renders_callback_refusals() {
    let app = start_with(
        dingtalk().await,
        |c| c,
        |l| {
            l.on_rejection(|error| {
                http::Response::builder()
                    .status(error.status())
                    .header("content-type", "text/plain")
                    .body(format!("custom: {}", error.kind()))
                    .unwrap()
            })
        },
    )
    .await;
    let (login, cookie) = app.start_login("/me").await;
    let state = query(&login, "state").unwrap();
    for (query, status, kind) in [
        ("authCode=x".to_owned(), 400, "invalid_request"),
        (
            format!("error=access_denied&state={state}"),
            401,
            "login_cancelled",
        ),
        (
            format!("authCode=forged&state={}", "1".repeat(32)),
            403,
            "invalid_login_state",
        ),
        (
            format!("authCode=forged&state={state}"),
            401,
            "code_rejected",
        ),
    ] {
        let url = format!("{}{CALLBACK}?{query}", app.base);
        let response = app.callback(&url, &cookie, PAGE_ACCEPT).await;
        assert_eq!(response.status().as_u16(), status, "{query}");
        assert_eq!(
            response.text().await.unwrap(),
            format!("custom: {kind}"),
            "{query}"
        );
    }
}

#[tokio::test]
async fn a_route_layer_app_serves_the_callback_through_login_routes() {
    let dingtalk = dingtalk().await;
    let layer = layer_over(dingtalk.client_builder().build().unwrap(), |l| l);
    let router: Router = Router::new()
        .route(
            "/me",
            get(|user: AuthenticatedDingTalkUser| async move { user.userid().to_owned() }),
        )
        .route_layer(layer.clone())
        .merge(layer.login_routes())
        .route("/health", get(|| async { "ok" }));
    let app = serve_router(dingtalk, layer, router).await;
    let done = app.login("/me?x=1", "union-staff01", PAGE_ACCEPT).await;
    assert_eq!(done.status(), 303);
    assert_eq!(done.headers()[LOCATION], "/me?x=1");
    let session = cookies_set(&done).pop().unwrap();
    let me = app.api("/me", &session).await;
    assert_eq!(me.text().await.unwrap(), "staff01");
    assert_eq!(app.page("/nowhere", None).await.status(), 404);
    assert_eq!(app.page("/health", None).await.status(), 200);
    // The callback's refusals come from the mounted routes too.
    let forged = format!("{}{CALLBACK}?authCode=x&state={}", app.base, "2".repeat(32));
    let refused = app.callback(&forged, "", "application/json").await;
    support::assert_rejection(refused, 403, "invalid_login_state", &[]).await;
    let post = app.http.post(app.url(CALLBACK)).send().await.unwrap();
    assert_eq!(post.status(), 405, "GET only at the callback");
}

#[tokio::test]
async fn abandoned_logins_do_not_pile_up_state_cookies() {
    // A browser that loads pages of the app without finishing a login (reloads, tabs from
    // bookmarks, a slow DingTalk page) keeps every state cookie for 10 minutes and sends them all
    // on every request to the site. Apache (LimitRequestFieldSize) and nginx
    // (large_client_header_buffers) refuse a header line past 8 KiB by default.
    let app = start().await;
    let mut jar: Vec<String> = Vec::new();
    for _ in 0..30 {
        let cookie = jar.join("; ");
        let response = app
            .page(
                "/reports/2024/q3?tab=2",
                (!cookie.is_empty()).then_some(cookie.as_str()),
            )
            .await;
        assert_eq!(response.status(), 302);
        for set in response.headers().get_all(SET_COOKIE) {
            let set = set.to_str().unwrap();
            let pair = set.split(';').next().unwrap().to_owned();
            let name = pair.split('=').next().unwrap().to_owned();
            jar.retain(|kept| kept.split('=').next() != Some(name.as_str()));
            if !set.contains("Max-Age=0") {
                jar.push(pair);
            }
        }
    }
    let header = jar.join("; ");
    eprintln!("{} cookies, {} bytes", jar.len(), header.len());
    assert_eq!(
        jar.len(),
        3,
        "the newest login and two more in flight (tabs)"
    );
    assert!(
        header.len() <= 8190,
        "after 30 unfinished logins the browser sends {} state cookies, a Cookie header of {} \
         bytes",
        jar.len(),
        header.len()
    );
}

#[tokio::test]
async fn secure_state_cookies_are_host_only() {
    let dingtalk = dingtalk().await;
    let layer = DingTalkAuthLayer::builder()
        .client(dingtalk.client_builder().build().unwrap())
        .session(SessionConfig::new(key()))
        .web_login(format!("https://{HOST}{CALLBACK}"))
        .build()
        .unwrap();
    let app = serve_layer(dingtalk, layer).await;
    let response = app.page("/me", None).await;
    assert_eq!(response.status(), 302);
    let set = response.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    assert!(set.starts_with("__Host-dingtalk_login_"), "{set}");
    for attribute in [
        "Secure",
        "HttpOnly",
        "SameSite=Lax",
        "Path=/",
        "Max-Age=600",
    ] {
        assert!(
            set.split("; ").any(|part| part == attribute),
            "{attribute}: {set}"
        );
    }
    assert!(!set.to_ascii_lowercase().contains("domain="), "{set}");
}

#[tokio::test]
async fn a_login_started_before_a_key_rotation_finishes_after_it() {
    let dingtalk = dingtalk().await;
    let old = dingtalk.client_builder().build().unwrap();
    let new = dingtalk.client_builder().build().unwrap();
    let rotated = DingTalkAuthLayer::builder()
        .client(new)
        .session(
            SessionConfig::new(SessionKey::from_bytes([7u8; 48]).unwrap())
                .previous_keys([key()])
                .secure(false),
        )
        .web_login(CALLBACK)
        .build()
        .unwrap();
    let before = serve_layer(dingtalk, layer_over(old, |l| l)).await;
    let after = serve_layer(MockDingTalk::start().await, rotated).await;
    let (login, cookie) = before.start_login("/me?tab=3").await;
    let callback = before.approve(&login, "union-staff01").await;
    let done = after.callback(&callback, &cookie, PAGE_ACCEPT).await;
    assert_eq!(done.status(), 303);
    assert_eq!(done.headers()[LOCATION], "/me?tab=3");
}

#[tokio::test]
async fn dingtalk_failing_at_the_user_token_is_not_blamed_on_the_auth_code() {
    // The new host answers its own failures with 400 `system.error` (see token_answer.rs, and
    // its test `decided_by_code_not_status`): not the authCode's fault.
    let app = start().await;
    for body in [
        r#"{"code":"system.error","message":"系统错误","requestid":"x"}"#,
        r#"{"code":"server.error","message":"x","requestid":"x"}"#,
    ] {
        app.dingtalk.fail_next(
            Endpoint::UserAccessToken,
            Fault::Raw(400, body.as_bytes().to_vec()),
            1,
        );
        let response = app.login("/me", "union-staff01", "application/json").await;
        let status = response.status().as_u16();
        let answer = support::json(response).await;
        assert_eq!(
            (status, answer["error"].as_str().unwrap()),
            (502, "upstream_error"),
            "{body}: {answer}"
        );
    }
}
