//! An adversarial review of the session and replica paths, with the public API only: one session
//! per code across replicas (slow and frozen Redis included), one reuse window across replicas, no
//! open redirect whatever the request target, a cookie is not a token, same-site is not
//! same-origin. "Found by review, fixed" marks what failed before its fix; "Holds" what held.
//! The Redis tests need Redis, found or started as `replicas.rs` says.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use support::store::*;
use support::{TestApp, assert_rejection, json};
use tower_dingtalk_auth::testing::MockDingTalk;
use tower_dingtalk_auth::{DingTalkAuthLayer, RedisStore, SessionConfig, SessionKey};

const LOGIN: &str = "/auth/login";
const SECRET: &[u8] = b"the session secret every replica shares, 32+ bytes";

fn session() -> SessionConfig {
    SessionConfig::new(SessionKey::from_bytes(SECRET).unwrap()).secure(false)
}

fn has_cookie(response: &reqwest::Response) -> bool {
    response.headers().contains_key("set-cookie")
}

fn cookie_pair(response: &reqwest::Response) -> String {
    let set = response.headers()["set-cookie"].to_str().unwrap();
    set.split(';').next().unwrap().to_owned()
}

async fn token_login_at(
    http: &reqwest::Client,
    addr: std::net::SocketAddr,
    code: &str,
) -> reqwest::Response {
    http.post(format!("http://{addr}{LOGIN}"))
        .json(&serde_json::json!({ "code": code }))
        .send()
        .await
        .unwrap()
}

/// A replica with sessions and the token login over `store`.
async fn session_replica(dingtalk: &MockDingTalk, store: RedisStore, window: Duration) -> Replica {
    Replica::start_with(
        dingtalk,
        store,
        |c| c.code_reuse_window(window),
        |l| l.session(session()).token_login(LOGIN),
    )
    .await
}

/// A store reached through a proxy that can hold Redis's answers back.
async fn slow_store(prefix: &Prefix, slow: Arc<AtomicBool>, retry_after: Duration) -> RedisStore {
    let proxy = slow_answers_proxy(&prefix.url, Duration::from_millis(200), slow).await;
    RedisStore::builder(proxy.as_str())
        .secret(TEST_SECRET)
        .key_prefix(&prefix.prefix)
        .retry_after(retry_after)
        .connect()
        .await
        .unwrap_or_else(|error| no_redis(&proxy, &error))
}

// ---------------------------------------------------------------------------------------------
// 1. One session per code across replicas, for good.
// ---------------------------------------------------------------------------------------------

/// Found by review, fixed: One slow Redis answer on replica A (Redis itself never down): A exchanges the code
/// directly, starts a session without marking it in the store (its health flag says down), and
/// writes the user back. Replica B, which never saw the code and whose Redis is fine, reads that
/// user and, finding no session mark, starts a second session: a cookie and a token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_starts_one_session_even_when_one_replica_heard_redis_late() {
    let dingtalk = support::dingtalk().await;
    let prefix = Prefix::new("review_session_written_back");
    let slow = Arc::new(AtomicBool::new(false));
    let window = Duration::from_secs(30);
    let a = session_replica(
        &dingtalk,
        slow_store(&prefix, slow.clone(), Duration::from_secs(5)).await,
        window,
    )
    .await;
    let b = session_replica(
        &dingtalk,
        prefix.store(|s| s.timeout(SHARING_TEST_TIMEOUT)).await,
        window,
    )
    .await;
    a.expect_user(&dingtalk.issue_code("staff01"), "staff01")
        .await;
    b.expect_user(&dingtalk.issue_code("staff01"), "staff01")
        .await;
    let calls = dingtalk.userinfo_calls();

    // The user's own page on A: A's claim is answered too late, A exchanges directly and starts
    // the code's session (each replica decides alone while it counts Redis as down).
    let code = dingtalk.issue_code("boss01");
    slow.store(true, Ordering::SeqCst);
    let first = a.get(&code).await;
    slow.store(false, Ordering::SeqCst);
    assert_eq!(first.status(), 200);
    assert!(has_cookie(&first), "the code's one session");
    assert!(!a.store.is_available());
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Someone replays the leaked code on B, whose Redis answers: the user within the window, but
    // no session, cookie or token.
    let replay = b.get(&code).await;
    assert_eq!(replay.status(), 200);
    assert!(
        !has_cookie(&replay),
        "B started a second session for a code A already started one with"
    );
    let token = token_login_at(&b.http, b.addr, &code).await;
    assert_rejection(token, 401, "code_rejected", &[&code]).await;
    assert_eq!(dingtalk.userinfo_calls(), calls + 1);
}

/// Holds. `DingTalkClient::user_info` on one replica, a cookie login on another, then the token
/// login and a hang-up on the first: one session, one exchange.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handlers_user_info_then_logins_on_two_replicas_start_one_session() {
    let dingtalk = support::dingtalk().await;
    let prefix = Prefix::new("review_user_info_mixed");
    let window = Duration::from_secs(10);
    let a = session_replica(
        &dingtalk,
        prefix.store(|s| s.timeout(SHARING_TEST_TIMEOUT)).await,
        window,
    )
    .await;
    let b = session_replica(
        &dingtalk,
        prefix.store(|s| s.timeout(SHARING_TEST_TIMEOUT)).await,
        window,
    )
    .await;
    a.expect_user(&dingtalk.issue_code("staff01"), "staff01")
        .await;
    b.expect_user(&dingtalk.issue_code("staff01"), "staff01")
        .await;
    let calls = dingtalk.userinfo_calls();

    let code = dingtalk.issue_code("sub01");
    // A handler on A exchanges the code: no session yet.
    let user = a.layer.client().user_info(&code).await.unwrap();
    assert_eq!(user.userid(), "sub01");
    // B: the first request the code authenticates starts its session.
    let first = b.get(&code).await;
    assert_eq!(first.status(), 200);
    assert!(has_cookie(&first));
    // A, whose local copy never started one: no token, no cookie, also after a hang-up.
    {
        use tokio::io::AsyncWriteExt;
        let mut stream = tokio::net::TcpStream::connect(a.addr).await.unwrap();
        let request = format!("GET /me HTTP/1.1\r\nhost: app\r\nx-dingtalk-code: {code}\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_rejection(
        token_login_at(&a.http, a.addr, &code).await,
        401,
        "code_rejected",
        &[&code],
    )
    .await;
    for replica in [&a, &b] {
        let again = replica.get(&code).await;
        assert_eq!(again.status(), 200);
        assert!(!has_cookie(&again));
    }
    assert_eq!(
        a.layer.client().user_info(&code).await.unwrap().userid(),
        "sub01"
    );
    assert_eq!(dingtalk.userinfo_calls(), calls + 1);
}

// ---------------------------------------------------------------------------------------------
// 2. One reuse window across replicas.
// ---------------------------------------------------------------------------------------------

/// Found by review, fixed: Redis freezes (a fork, a partition) while replica A exchanges a code directly. A's
/// timed-out claim and its write-back of the user were already on the wire; Redis runs them when
/// it thaws, and the user then lives a whole window from that moment, not from the exchange. B,
/// which never saw the code, serves it long after the first (and only) exchange's window ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_written_back_after_an_outage_does_not_outlive_the_first_window() {
    let redis = RedisServer::start();
    let dingtalk = support::dingtalk().await;
    let prefix = Prefix::on("review_frozen_write_back", redis.url());
    let window = Duration::from_secs(2);
    let mut replicas = Vec::new();
    for _ in 0..2 {
        let store = prefix
            .store(|s| s.retry_after(Duration::from_millis(200)))
            .await;
        replicas.push(
            Replica::start_with(&dingtalk, store, |c| c.code_reuse_window(window), |l| l).await,
        );
    }
    let (a, b) = (&replicas[0], &replicas[1]);
    a.expect_user(&dingtalk.issue_code("staff01"), "staff01")
        .await;
    b.expect_user(&dingtalk.issue_code("staff01"), "staff01")
        .await;
    let calls = dingtalk.userinfo_calls();

    redis.freeze();
    let code = dingtalk.issue_code("boss01");
    let exchanged = Instant::now();
    a.expect_user(&code, "boss01").await;
    assert_eq!(dingtalk.userinfo_calls(), calls + 1);
    // The window ends at 2 s; Redis comes back at 3 s.
    tokio::time::sleep(Duration::from_secs(3).saturating_sub(exchanged.elapsed())).await;
    redis.thaw();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(exchanged.elapsed() > window + Duration::from_millis(1000));

    // B never saw the code: it should ask DingTalk, which refuses the spent code.
    let late = b.get(&code).await;
    let status = late.status();
    let body = late.text().await.unwrap();
    assert_eq!(
        status,
        401,
        "B served the code {:?} after its only exchange (window {window:?}): {body}",
        exchanged.elapsed()
    );
}

/// Holds. The rejected-code path: B's own 40078 (got while it counted Redis as down) gives way to
/// A's stored user, but only for what is left of A's window; then 401 on both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejection_that_gives_way_to_a_stored_user_keeps_the_first_window() {
    let dingtalk = support::dingtalk().await;
    let prefix = Prefix::new("review_rejection_window");
    let slow = Arc::new(AtomicBool::new(false));
    let window = Duration::from_secs(3);
    let a = Replica::start_with(
        &dingtalk,
        prefix.store(|s| s.timeout(SHARING_TEST_TIMEOUT)).await,
        |c| c.code_reuse_window(window),
        |l| l,
    )
    .await;
    let b = Replica::start_with(
        &dingtalk,
        slow_store(&prefix, slow.clone(), Duration::from_millis(100)).await,
        // B's own window is longer: a rolling deploy.
        |c| c.code_reuse_window(Duration::from_secs(20)),
        |l| l,
    )
    .await;
    a.expect_user(&dingtalk.issue_code("staff01"), "staff01")
        .await;
    b.expect_user(&dingtalk.issue_code("staff01"), "staff01")
        .await;

    let code = dingtalk.issue_code("boss01");
    let start = Instant::now();
    a.expect_user(&code, "boss01").await;
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    slow.store(true, Ordering::SeqCst);
    assert_rejection(b.get(&code).await, 401, "code_rejected", &[&code]).await;
    slow.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(300)).await;
    b.expect_user(&code, "boss01").await;
    let calls = dingtalk.userinfo_calls();
    tokio::time::sleep(Duration::from_millis(3_400).saturating_sub(start.elapsed())).await;
    for replica in [&b, &a, &b] {
        assert_rejection(replica.get(&code).await, 401, "code_rejected", &[&code]).await;
    }
    assert!(dingtalk.userinfo_calls() <= calls + 1);
}

// ---------------------------------------------------------------------------------------------
// 3. No open redirect.
// ---------------------------------------------------------------------------------------------

async fn raw(addr: std::net::SocketAddr, request: &str) -> (u16, Option<String>) {
    support::raw_request(addr, request).await
}

/// Holds. Absolute-form targets, dot segments, `@`, encoded controls and unicode, double
/// encodings and mixed slashes: every 303 stays on the app's host and drops the code.
#[tokio::test]
async fn no_location_leaves_the_host_whatever_the_request_target() {
    let app = TestApp::with(support::dingtalk().await, |b| b.session(session())).await;
    let base = url::Url::parse("https://app.example.com/").unwrap();
    let mut redirected = 0;
    for target in [
        "http://evil.example//evil.example/",
        "http://app.example.com//evil.example/",
        "http://app.example.com/%5c%5Cevil.example/",
        "https://evil.example/\\evil.example",
        "http://user@evil.example/",
        "/.//evil.example/",
        "/..//evil.example/",
        "/./\\evil.example/",
        "/%2e/%2f/evil.example",
        "/%2e%2e%2f%2fevil.example",
        "/%09/evil.example",
        "/%0a%0d//evil.example",
        "/%252F%252Fevil.example",
        "/%E3%80%80//evil.example",
        "/%EF%BC%8F%EF%BC%8Fevil.example",
        "/@evil.example",
        "/;@evil.example/",
        "/%2F%5C%2f%5c/\\evil.example",
        "/%2",
        "/%2F%2",
        "/%2F%",
        "*",
        "/\"//evil",
        "/{}//evil",
    ] {
        let code = app.dingtalk.issue_code("boss01");
        let sep = if target.contains('?') { '&' } else { '?' };
        let request = format!(
            "GET {target}{sep}code={code}&next=//evil.example HTTP/1.1\r\nhost: app.example.com\r\n\
             accept: text/html\r\nconnection: close\r\n\r\n"
        );
        let (status, location) = raw(app.addr, &request).await;
        let Some(location) = location else {
            assert!(status >= 400 || status == 200, "{target}: {status}");
            continue;
        };
        assert_eq!(status, 303, "{target}");
        redirected += 1;
        assert!(!location.contains(&code), "{target} -> {location}");
        let resolved = base.join(&location).unwrap();
        assert_eq!(
            resolved.host_str(),
            Some("app.example.com"),
            "{target} -> {location}"
        );
        assert_eq!(resolved.scheme(), "https", "{target} -> {location}");
    }
    assert!(redirected >= 15, "{redirected}");
}

// ---------------------------------------------------------------------------------------------
// 4. A cookie is not a token, a token is not a cookie.
// ---------------------------------------------------------------------------------------------

/// Holds. Two layers of one app sharing the key, one with the token login (A), one with cookies
/// only (B): A's tokens (and refreshed ones) are no cookies at B, B's cookies no tokens at A or at
/// A's refresh, after each has been opened (and remembered) as itself on both; the public
/// `SessionConfig::user_from_headers` takes no token either.
#[tokio::test]
async fn a_token_is_no_cookie_and_a_cookie_no_token_across_two_layers_sharing_a_key() {
    let dingtalk = support::dingtalk().await;
    let a = dingtalk
        .layer_builder()
        .session(session())
        .token_login(LOGIN)
        .build()
        .unwrap();
    let b = dingtalk.layer_builder().session(session()).build().unwrap();
    let runs = Arc::new(AtomicU64::new(0));
    let (a_addr, _a) = support::serve(support::routes(runs.clone()).layer(a.clone())).await;
    let (b_addr, _b) = support::serve(support::routes(runs.clone()).layer(b.clone())).await;
    let http = reqwest::Client::new();

    let page = http
        .get(format!("http://{b_addr}/me"))
        .header("x-dingtalk-code", dingtalk.issue_code("boss01"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let cookie = cookie_pair(&page);
    let cookie_value = cookie.split_once('=').unwrap().1.to_owned();
    let login = token_login_at(&http, a_addr, &dingtalk.issue_code("sub01")).await;
    assert_eq!(login.status(), 200);
    let token = json(login).await["token"].as_str().unwrap().to_owned();
    let name = cookie.split_once('=').unwrap().0.to_owned();

    let bearer = |addr, path: &str, token: &str| {
        http.get(format!("http://{addr}{path}"))
            .header("authorization", format!("bearer   {token} "))
            .send()
    };
    let with_cookie = |addr, value: &str| {
        http.get(format!("http://{addr}/me"))
            .header("cookie", format!("a=1; {name}={value}; b=2"))
            .send()
    };
    let refresh = |token: &str| {
        http.post(format!("http://{a_addr}{LOGIN}/refresh"))
            .header("authorization", format!("Bearer {token}"))
            .header("cookie", format!("{name}={token}"))
            .send()
    };
    // Each as itself, on both layers: now remembered by both.
    for addr in [a_addr, b_addr] {
        assert_eq!(
            with_cookie(addr, &cookie_value).await.unwrap().status(),
            200
        );
    }
    assert_eq!(bearer(a_addr, "/me", &token).await.unwrap().status(), 200);
    let refreshed = refresh(&token).await.unwrap();
    assert_eq!(refreshed.status(), 200);
    let refreshed = json(refreshed).await["token"].as_str().unwrap().to_owned();
    assert_eq!(
        bearer(a_addr, "/me", &refreshed).await.unwrap().status(),
        200
    );

    for _ in 0..2 {
        for t in [&token, &refreshed] {
            for addr in [a_addr, b_addr] {
                let response = with_cookie(addr, t).await.unwrap();
                assert_rejection(response, 401, "missing_code", &[t]).await;
            }
        }
        let response = bearer(a_addr, "/me", &cookie_value).await.unwrap();
        assert_rejection(response, 401, "invalid_token", &[&cookie_value]).await;
        let response = bearer(a_addr, "/maybe", &cookie_value).await.unwrap();
        assert_rejection(response, 401, "invalid_token", &[&cookie_value]).await;
        // A valid cookie beside it does not make it a token.
        let response = refresh(&cookie_value).await.unwrap();
        assert_rejection(response, 401, "invalid_token", &[&cookie_value]).await;
    }
    let mut headers = http::HeaderMap::new();
    headers.insert("cookie", format!("{name}={token}").parse().unwrap());
    #[allow(deprecated)]
    let read = session().user_from_headers(&headers);
    assert_eq!(read, None);
    assert_eq!(dingtalk.userinfo_calls(), 2);
    let _: &DingTalkAuthLayer = &b;
}

// ---------------------------------------------------------------------------------------------
// 5. Same-site is not same-origin.
// ---------------------------------------------------------------------------------------------

/// Found by review, fixed: A sibling subdomain (`Sec-Fetch-Site: same-site`) cannot sign the visitor in with a
/// code by navigation, but it can with an `<img src="https://app/?code=ATTACKER">` or a
/// `fetch(.., {mode: "no-cors", credentials: "include"})`: the response to that same-site
/// subresource request sets the `SameSite=Lax` cookie, which browsers store (the request is
/// same-site), and the visitor is signed in as the attacker: the login CSRF the `same-site` rule
/// is there to stop.
#[tokio::test]
async fn a_sibling_subdomain_cannot_sign_the_visitor_in_with_a_subresource() {
    let app = TestApp::with(support::dingtalk().await, |b| b.session(session())).await;
    for (mode, dest) in [
        ("no-cors", "image"),
        ("no-cors", "script"),
        ("cors", "empty"),
    ] {
        let code = app.dingtalk.issue_code("boss01");
        let response = app
            .http
            .get(app.url(&format!("/me?code={code}")))
            .header("accept", "image/avif,image/webp,*/*")
            .header("sec-fetch-site", "same-site")
            .header("sec-fetch-mode", mode)
            .header("sec-fetch-dest", dest)
            .send()
            .await
            .unwrap();
        let status = response.status();
        assert!(
            !has_cookie(&response),
            "{mode}/{dest} from a sibling: {status} with a session cookie"
        );
    }
}

/// Holds. What a browser can put in the headers, and a raw client more: the value's case,
/// spaces and tabs around it, repeated lines (the first counts, and a browser sends one), and
/// `nested-navigate`: a navigation from another site or a sibling never logs in; the opt-in
/// admits the sibling only.
#[tokio::test]
async fn sec_fetch_site_variants_are_read_as_browsers_mean_them() {
    for same_site in [false, true] {
        let app = TestApp::with(support::dingtalk().await, |b| {
            b.session(session()).allow_same_site_login(same_site)
        })
        .await;
        for (mode, site, refused) in [
            ("navigate", " \tcross-site\t ", true),
            ("NAVIGATE", "CROSS-SITE", true),
            ("Nested-Navigate", "cross-site", true),
            ("navigate", "same-site ", !same_site),
            ("nested-navigate", "\tSAME-SITE", !same_site),
            ("navigate", "same-origin,cross-site", true),
            ("navigate", "", true),
            ("navigate", " Same-Origin ", false),
            ("navigate", "none", false),
        ] {
            let code = app.dingtalk.issue_code("staff01");
            let request = format!(
                "GET /me?code={code} HTTP/1.1\r\nhost: app.example.com\r\naccept: application/json\r\n\
                 sec-fetch-mode: {mode}\r\nsec-fetch-site: {site}\r\nconnection: close\r\n\r\n"
            );
            let (status, _) = raw(app.addr, &request).await;
            let expected = if refused { 403 } else { 200 };
            assert_eq!(
                status, expected,
                "allow_same_site={same_site} {mode}/{site:?}"
            );
        }
        // Repeated lines: a cross-site first is refused whatever follows.
        let code = app.dingtalk.issue_code("staff01");
        let request = format!(
            "GET /me?code={code} HTTP/1.1\r\nhost: app.example.com\r\nsec-fetch-mode: navigate\r\n\
             sec-fetch-site: cross-site\r\nsec-fetch-site: same-origin\r\nconnection: close\r\n\r\n"
        );
        assert_eq!(raw(app.addr, &request).await.0, 403);
    }
}
