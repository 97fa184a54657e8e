//! An adversarial review of `ClientKey`, per-layer corp directories, the token login endpoint and
//! the realm, with the public API only. "Found by review, fixed" marks what failed before its fix;
//! "Holds" what held.

mod support;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::future::join_all;
use serde_json::{Value, json};
use support::{TestApp, assert_rejection};
use tower_dingtalk_auth::testing::MockDingTalk;
use tower_dingtalk_auth::{
    AuthenticatedDingTalkUser, ClientKey, ConfigError, CorpDirectory, DingTalkAuthLayer,
    DingTalkClient, SessionConfig, SessionKey, guard,
};

const LOGIN: &str = "/auth/login";
const REFRESH: &str = "/auth/login/refresh";
const CORP_A: &str = "dingcorpa0001";
const CORP_B: &str = "dingcorpb0002";
const CORP_PANIC: &str = "dingcorppanic";

fn session() -> SessionConfig {
    SessionConfig::new(
        SessionKey::from_bytes(b"the review's session key, 32 bytes or more").unwrap(),
    )
    .secure(false)
}

/// A fake DingTalk where corps A and B installed the suite, each with a user `u1`.
async fn dingtalk_with_corps() -> MockDingTalk {
    let dingtalk = MockDingTalk::start().await;
    for (corp, name) in [(CORP_A, "Alice of A"), (CORP_B, "Bob of B")] {
        dingtalk.add_corp(corp);
        dingtalk.add_corp_user(corp, AuthenticatedDingTalkUser::builder("u1", name).build());
    }
    dingtalk
}

/// A directory that admits the corps given, counts how often it is asked, answers after a delay
/// a test can change, and panics when asked about `CORP_PANIC`.
#[derive(Clone)]
struct Directory {
    admitted: Arc<Vec<&'static str>>,
    asked: Arc<AtomicU64>,
    delay_ms: Arc<AtomicU64>,
}

impl Directory {
    fn new(admitted: &[&'static str], delay: Duration) -> Self {
        Self {
            admitted: Arc::new(admitted.to_vec()),
            asked: Arc::new(AtomicU64::new(0)),
            delay_ms: Arc::new(AtomicU64::new(delay.as_millis() as u64)),
        }
    }

    fn asked(&self) -> u64 {
        self.asked.load(Ordering::SeqCst)
    }

    fn set_delay(&self, delay: Duration) {
        self.delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }
}

impl CorpDirectory for Directory {
    fn is_authorized<'a>(
        &'a self,
        corp_id: &'a str,
    ) -> Pin<Box<dyn Future<Output = bool> + Send + 'a>> {
        self.asked.fetch_add(1, Ordering::SeqCst);
        if corp_id == CORP_PANIC {
            panic!("the directory's database is gone");
        }
        let delay = Duration::from_millis(self.delay_ms.load(Ordering::SeqCst));
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            self.admitted.contains(&corp_id)
        })
    }
}

/// A third-party app with `directory`, sessions and the token login, over a client configured
/// by `configure_client`.
async fn third_party_app(
    directory: Directory,
    configure_client: impl FnOnce(
        tower_dingtalk_auth::DingTalkClientBuilder,
    ) -> tower_dingtalk_auth::DingTalkClientBuilder,
    recheck: Duration,
) -> TestApp {
    let dingtalk = dingtalk_with_corps().await;
    let (key, secret) = (dingtalk.suite_key(), dingtalk.suite_secret());
    TestApp::with_client(
        dingtalk,
        move |c| configure_client(c.third_party_app(key, secret)),
        move |l| {
            l.corp_directory(directory)
                .session(session())
                .token_login(LOGIN)
                .corp_recheck_interval(recheck)
        },
    )
    .await
}

async fn corp_get(app: &TestApp, corp: &str, code: &str) -> reqwest::Response {
    app.http
        .get(app.url("/me"))
        .header("x-dingtalk-code", code)
        .header("x-dingtalk-corp-id", corp)
        .send()
        .await
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// 1. ClientKey
// ---------------------------------------------------------------------------------------------

/// Found by review, fixed: A client past its share (`max_pending_per_client`) gets 429 at once, whatever its
/// key: only requests whose key is `None` share the uncapped place. With the builder's own
/// documented key (`x-gateway-tenant`), a client that sends the header empty gets the key `""`,
/// which the fair queue takes for "unknown": uncapped, so one client queues as many junk codes as
/// it likes, pushing real users past the queue timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_past_its_share_is_refused_whatever_key_it_has() {
    let app = TestApp::with_client(
        support::dingtalk().await,
        |c| {
            c.rate_limit(1)
                .queue_timeout(Duration::from_secs(3))
                .max_pending_per_client(2)
        },
        // The example of `DingTalkAuthLayerBuilder::client_key`, verbatim.
        |l| {
            l.client_key(|parts| {
                Some(
                    parts
                        .headers
                        .get("x-gateway-tenant")?
                        .to_str()
                        .ok()?
                        .to_owned(),
                )
            })
        },
    )
    .await;
    let send = |tenant: &'static str, code: String| {
        let app = &app;
        async move {
            app.http
                .get(app.url("/me"))
                .header("x-dingtalk-code", code)
                .header("x-gateway-tenant", tenant)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    // Warm the token, then let the rate limit's slot come back.
    assert_eq!(send("warm", app.dingtalk.issue_code("staff01")).await, 200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // A named tenant: one sent, one holding the turn, one waiting, two refused at once.
    let named = join_all((0..5).map(|i| send("t1", format!("junk-t1-{i:03}")))).await;
    assert_eq!(named.iter().filter(|s| **s == 429).count(), 2, "{named:?}");
    tokio::time::sleep(Duration::from_millis(3100)).await;
    // The same burst with the header empty: the key `""` is a key like any other.
    let calls = app.dingtalk.userinfo_calls();
    let empty = join_all((0..5).map(|i| send("", format!("junk-empty-{i:03}")))).await;
    assert_eq!(
        empty.iter().filter(|s| **s == 429).count(),
        2,
        "an empty key is uncapped: {empty:?}"
    );
    let sent = empty.iter().filter(|s| **s == 401).count() as u64;
    assert_eq!(app.dingtalk.userinfo_calls(), calls + sent);
}

/// Holds: behind a proxy (`forwarded_for`), what the client wrote never becomes its key, however
/// it is written: bytes that are not UTF-8 (a lead byte right before a comma), thousands of
/// entries, many lines; the address the proxy appended is read. A proxy entry that is not a
/// plain address (a zone id, a bracketed IPv4, a bad port) falls back to the peer; IPv4-mapped
/// forms are their IPv4 address; an absurd hop count does not panic.
#[test]
fn forwarded_for_reads_only_the_proxys_entry_whatever_the_client_wrote() {
    use http::HeaderValue;
    let request = |lines: Vec<HeaderValue>| {
        let (mut parts, ()) = http::Request::new(()).into_parts();
        parts
            .extensions
            .insert("10.0.0.1:8080".parse::<std::net::SocketAddr>().unwrap());
        for line in lines {
            parts.headers.append("x-forwarded-for", line);
        }
        parts
    };
    let text = |s: &str| HeaderValue::from_str(s).unwrap();
    let bytes = |b: &[u8]| HeaderValue::from_bytes(b).unwrap();
    let one = ClientKey::forwarded_for(1);
    let key = |key: &ClientKey, lines: Vec<HeaderValue>| key.key(&request(lines)).unwrap();

    // Non-UTF-8 bytes in the client's part, on its own line or on the proxy's.
    assert_eq!(
        key(
            &one,
            vec![bytes(b"\xff\xfe6.6.6.6, \xc0,"), text("192.0.2.7")]
        ),
        "192.0.2.7"
    );
    assert_eq!(
        key(&one, vec![bytes(b"6.6.6.6\xe0, 192.0.2.7")]),
        "192.0.2.7"
    );
    assert_eq!(
        key(&one, vec![bytes(b"6.6.6.6, 192.0.2.7\xff")]),
        "10.0.0.1"
    );
    // Thousands of entries and many lines written by the client.
    let huge = (0..10_000)
        .map(|i| format!("198.18.{}.{}", i / 256 % 256, i % 256))
        .collect::<Vec<_>>()
        .join(", ");
    let mut lines: Vec<_> = (0..50).map(|_| text(&huge)).collect();
    lines.push(text("192.0.2.7"));
    assert_eq!(key(&one, lines.clone()), "192.0.2.7");
    // An absurd number of hops: the peer, no panic.
    assert_eq!(
        key(&ClientKey::forwarded_for(usize::MAX), lines),
        "10.0.0.1"
    );
    // What the proxy may write: ports, brackets, IPv4-mapped forms.
    assert_eq!(
        key(&one, vec![text("6.6.6.6, 192.0.2.7:5678")]),
        "192.0.2.7"
    );
    assert_eq!(
        key(&one, vec![text("6.6.6.6, ::ffff:192.0.2.7")]),
        "192.0.2.7"
    );
    assert_eq!(
        key(&one, vec![text("6.6.6.6, [::ffff:192.0.2.7]:443")]),
        "192.0.2.7"
    );
    assert_eq!(
        key(&one, vec![text("6.6.6.6, [2001:db8:1:2::7]:443")]),
        "2001:db8:1:2::/64"
    );
    // Not an address as a proxy writes one: the peer.
    for junk in [
        "fe80::1%eth0",
        "[fe80::1%eth0]:80",
        "[192.0.2.7]:80",
        "192.0.2.7:99999",
        "192.0.2.7 6.6.6.6",
        "0x7f.1",
        "unknown",
    ] {
        assert_eq!(
            key(&one, vec![text(&format!("6.6.6.6, {junk}"))]),
            "10.0.0.1",
            "{junk}"
        );
    }
    // `header`: the last line only, non-UTF-8 there falls back to the peer.
    let real_ip = ClientKey::header("x-real-ip");
    let (mut parts, ()) = http::Request::new(()).into_parts();
    parts
        .extensions
        .insert("10.0.0.1:8080".parse::<std::net::SocketAddr>().unwrap());
    parts.headers.append("x-real-ip", text("6.6.6.6"));
    parts.headers.append("x-real-ip", bytes(b"192.0.2.7\xff"));
    assert_eq!(real_ip.key(&parts).unwrap(), "10.0.0.1");
}

// ---------------------------------------------------------------------------------------------
// 2. Third-party apps: per-layer directories
// ---------------------------------------------------------------------------------------------

/// Found by review (minor), fixed: "The verdict is cached per layer (one directory call)": a page that loads its
/// data in ten parallel requests with one code asks the directory ten times, one per request,
/// since the verdict is looked up and asked for without any sharing between concurrent requests.
#[tokio::test]
async fn concurrent_requests_of_one_corp_ask_the_directory_once() {
    let directory = Directory::new(&[CORP_A], Duration::from_millis(300));
    let app = third_party_app(directory.clone(), |c| c, Duration::from_secs(120)).await;
    let code = app.dingtalk.issue_corp_code(CORP_A, "u1");
    let statuses = join_all((0..10).map(|_| corp_get(&app, CORP_A, &code))).await;
    for response in statuses {
        assert_eq!(response.status(), 200);
    }
    assert_eq!(app.dingtalk.userinfo_calls(), 1);
    assert_eq!(directory.asked(), 1, "the directory was asked per request");
}

/// Holds: a slow directory is bounded by `upstream_timeout` on the session and token paths too
/// (the existing test covers codes): a cookie or bearer token whose corp is due for a recheck,
/// and a refresh, are 504 `upstream_timeout` in time, with no call to DingTalk and no handler run.
#[tokio::test]
async fn a_slow_directory_is_504_in_time_for_cookies_tokens_and_refreshes() {
    let directory = Directory::new(&[CORP_A], Duration::ZERO);
    let app = third_party_app(
        directory.clone(),
        |c| c.upstream_timeout(Duration::from_millis(300)),
        Duration::from_millis(50),
    )
    .await;
    let code = app.dingtalk.issue_corp_code(CORP_A, "u1");
    let first = corp_get(&app, CORP_A, &code).await;
    assert_eq!(first.status(), 200);
    let cookie = first.headers()["set-cookie"].to_str().unwrap();
    let cookie = cookie.split(';').next().unwrap().to_owned();
    let token_code = app.dingtalk.issue_corp_code(CORP_A, "u1");
    let login = app
        .http
        .post(app.url(LOGIN))
        .json(&json!({ "code": token_code, "corpId": CORP_A }))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    let token = support::json(login).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (calls, runs) = (app.dingtalk.total_calls(), app.handler_runs());

    directory.set_delay(Duration::from_secs(30));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let requests = [
        app.http.get(app.url("/me")).header("cookie", &cookie),
        app.http.get(app.url("/me")).bearer_auth(&token),
        app.http.post(app.url(REFRESH)).bearer_auth(&token),
    ];
    for request in requests {
        let started = std::time::Instant::now();
        let response = tokio::time::timeout(Duration::from_secs(5), request.send())
            .await
            .expect("no hang")
            .unwrap();
        let took = started.elapsed();
        assert_rejection(response, 504, "upstream_timeout", &[&token]).await;
        assert!(took >= Duration::from_millis(250), "{took:?}");
        assert!(took < Duration::from_secs(3), "{took:?}");
    }
    assert_eq!(app.dingtalk.total_calls(), calls);
    assert_eq!(app.handler_runs(), runs);
}

/// Holds: a directory that panics never leaves a request hanging, never calls DingTalk, and
/// leaves the layer serving every other corp (the panicking request's connection is dropped, or
/// answered 500 by whatever catches panics).
#[tokio::test]
async fn a_panicking_directory_neither_hangs_nor_breaks_the_layer() {
    let directory = Directory::new(&[CORP_A], Duration::ZERO);
    let app = third_party_app(directory.clone(), |c| c, Duration::from_secs(120)).await;
    for _ in 0..3 {
        let answer = tokio::time::timeout(
            Duration::from_secs(5),
            app.http
                .get(app.url("/me"))
                .header("x-dingtalk-code", "some-code-of-the-panicking-corp")
                .header("x-dingtalk-corp-id", CORP_PANIC)
                .send(),
        )
        .await
        .expect("no hang");
        if let Ok(response) = answer {
            assert!(response.status().is_server_error(), "{}", response.status());
        }
    }
    assert_eq!(app.dingtalk.userinfo_calls(), 0);
    let code = app.dingtalk.issue_corp_code(CORP_A, "u1");
    assert_eq!(corp_get(&app, CORP_A, &code).await.status(), 200);
    assert_eq!(app.handler_runs(), 1);
}

/// Holds: with two layers on one client and different directories, a code another layer cached
/// gets no token at this layer's token login, and another layer's token gets no refresh here:
/// 401 `corp_not_authorized`, with no call to DingTalk.
#[tokio::test]
async fn another_layers_code_or_token_gets_nothing_from_this_layers_token_endpoint() {
    let dingtalk = dingtalk_with_corps().await;
    let client = DingTalkClient::builder()
        .third_party_app(dingtalk.suite_key(), dingtalk.suite_secret())
        .base_url(dingtalk.base_url())
        .build()
        .unwrap();
    let x = Directory::new(&[CORP_A], Duration::ZERO);
    let y = Directory::new(&[CORP_B], Duration::ZERO);
    let layer = |directory: &Directory| {
        DingTalkAuthLayer::builder()
            .client(client.clone())
            .corp_directory(directory.clone())
            .session(session())
            .token_login(LOGIN)
            .build()
            .unwrap()
    };
    let runs = Arc::new(AtomicU64::new(0));
    let app = axum::Router::new()
        .nest_service("/x", support::routes(runs.clone()).layer(layer(&x)))
        .nest_service("/y", support::routes(runs).layer(layer(&y)));
    let (addr, server) = support::serve(app).await;
    let base = format!("http://{addr}");
    let http = reqwest::Client::new();

    // Corp B's code, exchanged and cached through /y (which starts no token).
    let code = dingtalk.issue_corp_code(CORP_B, "u1");
    let at_y = http
        .get(format!("{base}/y/me"))
        .header("x-dingtalk-code", &code)
        .header("x-dingtalk-corp-id", CORP_B)
        .send()
        .await
        .unwrap();
    assert_eq!(at_y.status(), 200);
    // The cached code at /x's token login, in the body and in the usual sources.
    let response = http
        .post(format!("{base}/x{LOGIN}"))
        .json(&json!({ "code": code, "corpId": CORP_B }))
        .send()
        .await
        .unwrap();
    assert_rejection(response, 401, "corp_not_authorized", &[&code]).await;
    let response = http
        .post(format!("{base}/x{LOGIN}"))
        .header("x-dingtalk-code", &code)
        .header("x-dingtalk-corp-id", CORP_B)
        .send()
        .await
        .unwrap();
    assert_rejection(response, 401, "corp_not_authorized", &[&code]).await;
    // A token /y issued, at /x's refresh.
    let token_code = dingtalk.issue_corp_code(CORP_B, "u1");
    let login = http
        .post(format!("{base}/y{LOGIN}"))
        .json(&json!({ "code": token_code, "corpId": CORP_B }))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    let token = support::json(login).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let response = http
        .post(format!("{base}/x{REFRESH}"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_rejection(response, 401, "corp_not_authorized", &[&token]).await;
    // /y still refreshes it.
    let response = http
        .post(format!("{base}/y{REFRESH}"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(dingtalk.userinfo_calls(), 2);
    server.abort();
}

// ---------------------------------------------------------------------------------------------
// 3. The token login endpoint
// ---------------------------------------------------------------------------------------------

async fn token_app() -> TestApp {
    TestApp::with_client(
        support::dingtalk().await,
        |c| c.upstream_timeout(Duration::from_millis(500)),
        |l| l.session(session()).token_login(LOGIN),
    )
    .await
}

/// Found by review, fixed: "A body code beside a different one in the header or query is 401 `invalid_code`"
/// (CHANGELOG, Security): a login whose body and header name Alice while its query names the boss
/// signs Alice in (200, a token, a call to DingTalk), since the body's code is compared only with
/// the first source that holds one, and the query's different code is never looked at.
#[tokio::test]
async fn a_body_code_beside_a_different_query_code_is_ambiguous() {
    let app = token_app().await;
    let alice = app.dingtalk.issue_code("staff01");
    let boss = app.dingtalk.issue_code("boss01");
    let response = app
        .http
        .post(app.url(&format!("{LOGIN}?code={boss}")))
        .header("x-dingtalk-code", &alice)
        .json(&json!({ "code": alice }))
        .send()
        .await
        .unwrap();
    assert_rejection(response, 401, "invalid_code", &[&alice, &boss]).await;
    assert_eq!(app.dingtalk.userinfo_calls(), 0);
}

/// Holds: a chunked login body that trickles a byte every 100 ms is 408 `request_timeout` at
/// `upstream_timeout` (500 ms), never held open for as long as the client keeps sending.
#[tokio::test]
async fn a_trickling_chunked_login_body_is_408_in_time() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = token_app().await;
    let stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    let head = format!(
        "POST {LOGIN} HTTP/1.1\r\nhost: app\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
    );
    write.write_all(head.as_bytes()).await.unwrap();
    let started = std::time::Instant::now();
    let trickle = tokio::spawn(async move {
        for _ in 0..100 {
            if write.write_all(b"1\r\n \r\n").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let mut answer = vec![0; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), read.read(&mut answer))
        .await
        .expect("an answer before the test gives up")
        .unwrap();
    let took = started.elapsed();
    trickle.abort();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains(r#""error":"request_timeout""#), "{answer}");
    assert!(took >= Duration::from_millis(450), "{took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert_eq!(app.dingtalk.total_calls(), 0);
}

/// Holds: huge bodies (chunked, or with a length), bodies of other types and malformed JSON are
/// 400 `invalid_request` before any call; duplicate `corp_id`/`corpId` in JSON too; nobody is
/// signed in as one of two codes.
#[tokio::test]
async fn odd_login_bodies_are_400_and_sign_nobody_in() {
    let app = token_app().await;
    let alice = app.dingtalk.issue_code("staff01");
    let boss = app.dingtalk.issue_code("boss01");
    let padding = "x".repeat(64 * 1024);
    let huge = format!(r#"{{"code": "{alice}", "pad": "{padding}"}}"#);
    let chunks = futures_util::stream::iter(
        huge.clone()
            .into_bytes()
            .chunks(1000)
            .map(|c| {
                Ok::<_, std::io::Error>(http_body::Frame::data(bytes::Bytes::copy_from_slice(c)))
            })
            .collect::<Vec<_>>(),
    );
    let requests = [
        app.http
            .post(app.url(LOGIN))
            .header("content-type", "application/json")
            .body(reqwest::Body::wrap(http_body_util::StreamBody::new(chunks))),
        app.http
            .post(app.url(LOGIN))
            .header("content-type", "application/json")
            .body(huge),
        app.http
            .post(app.url(LOGIN))
            .header("content-type", "text/plain")
            .body(format!("code={alice}")),
        app.http.post(app.url(LOGIN)).body(format!("code={alice}")),
        app.http
            .post(app.url(LOGIN))
            .header("content-type", "application/json")
            .body(format!(r#"{{"code": ["{alice}", "{boss}"]}}"#)),
        app.http
            .post(app.url(LOGIN))
            .header("content-type", "application/json")
            .body(format!(r#"{{"code": "{alice}"}} {{"code": "{boss}"}}"#)),
    ];
    for (i, request) in requests.into_iter().enumerate() {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 400, "request {i}");
        assert_rejection(response, 400, "invalid_request", &[&alice, &boss]).await;
    }
    assert_eq!(app.dingtalk.total_calls(), 0);
    // The codes were not spent: each still logs in once.
    for (code, userid) in [(&alice, "staff01"), (&boss, "boss01")] {
        let response = app
            .http
            .post(app.url(LOGIN))
            .json(&json!({ "code": code }))
            .send()
            .await
            .unwrap();
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["user"]["userid"], userid);
    }
}

/// Holds: a third-party login body naming two corps (`corp_id` and `corpId`, in JSON or a form),
/// or a body corp beside another in the header, signs nobody in and costs no call.
#[tokio::test]
async fn two_corps_in_a_login_sign_nobody_in() {
    let directory = Directory::new(&[CORP_A, CORP_B], Duration::ZERO);
    let app = third_party_app(directory, |c| c, Duration::from_secs(120)).await;
    let code = app.dingtalk.issue_corp_code(CORP_A, "u1");
    let json_twice = app
        .http
        .post(app.url(LOGIN))
        .header("content-type", "application/json")
        .body(format!(
            r#"{{"code": "{code}", "corp_id": "{CORP_A}", "corpId": "{CORP_B}"}}"#
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(json_twice.status(), 400);
    let form_twice = app
        .http
        .post(app.url(LOGIN))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("code={code}&corpId={CORP_A}&corp_id={CORP_B}"))
        .send()
        .await
        .unwrap();
    assert_rejection(form_twice, 401, "invalid_corp_id", &[&code]).await;
    let beside_header = app
        .http
        .post(app.url(LOGIN))
        .header("x-dingtalk-corp-id", CORP_B)
        .json(&json!({ "code": code, "corpId": CORP_A }))
        .send()
        .await
        .unwrap();
    assert_rejection(beside_header, 401, "invalid_corp_id", &[&code]).await;
    assert_eq!(app.dingtalk.userinfo_calls(), 0);
}

// ---------------------------------------------------------------------------------------------
// 4. Realms
// ---------------------------------------------------------------------------------------------

/// Holds: no realm can forge `WWW-Authenticate`: the layer refuses to build with a realm holding
/// a quote, a backslash, CR/LF, a tab or non-ASCII; the deprecated guard realm with such bytes is
/// ignored; a comma or `=` stays inside the quoted string.
#[tokio::test]
#[allow(deprecated)]
async fn no_realm_forges_challenge_parameters() {
    let dingtalk = support::dingtalk().await;
    for realm in [
        "",
        "a\"",
        "a\\",
        "a\r\nset-cookie: x=y",
        "a\tb",
        "钉钉",
        "a\u{7f}",
    ] {
        let built = support::layer_for(&dingtalk).realm(realm).build();
        assert!(
            matches!(built, Err(ConfigError::InvalidRealm)),
            "{realm:?} was accepted"
        );
    }
    let auth = support::layer_for(&dingtalk)
        .realm("app, error=\"x")
        .build();
    assert!(matches!(auth, Err(ConfigError::InvalidRealm)));
    let auth = support::layer_for(&dingtalk)
        .realm("app, error=forged")
        .optional()
        .build()
        .unwrap();
    let ok = || async { "ok" };
    let app = axum::Router::new()
        .route(
            "/newline",
            axum::routing::get(ok).route_layer(guard::require_admin().realm("a\r\nx: y")),
        )
        .route(
            "/unicode",
            axum::routing::get(ok).route_layer(guard::require_admin().realm("钉钉")),
        )
        .route("/plain", axum::routing::get(ok))
        .layer(auth);
    let (addr, server) = support::serve(app).await;
    let http = reqwest::Client::new();
    for path in ["/newline", "/unicode"] {
        let response = http
            .get(format!("http://{addr}{path}"))
            .send()
            .await
            .unwrap();
        let headers = assert_rejection(response, 401, "missing_code", &[]).await;
        assert_eq!(
            headers["www-authenticate"], r#"DingTalk realm="app, error=forged""#,
            "{path}"
        );
    }
    let response = http
        .get(format!("http://{addr}/plain"))
        .header("x-dingtalk-code", "bad code")
        .send()
        .await
        .unwrap();
    let headers = assert_rejection(response, 401, "invalid_code", &[]).await;
    assert_eq!(
        headers["www-authenticate"],
        r#"DingTalk realm="app, error=forged", error="invalid_code""#
    );
    server.abort();
}
