//! The fake DingTalk's control surface (`/_fake/`) attacked over real loopback sockets, as a hostile
//! page and a careless front end would: odd and hostile values, bodies and paths, a browser's CORS
//! preflight, concurrency; and whether a control call ever moves a counter, meets a fault or the
//! rate limit, changes what DingTalk paths answer, or shows a secret.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use futures_util::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tower_dingtalk_auth::testing::{
    CONTROL_PREFIX, Endpoint, Fault, MOCK_SUITE_SECRET, MockDingTalk,
};
use tower_dingtalk_auth::{AdminLevel, AuthenticatedDingTalkUser};

const EVERY_ENDPOINT: [Endpoint; 13] = [
    Endpoint::AccessToken,
    Endpoint::GetToken,
    Endpoint::GetUserInfo,
    Endpoint::CorpToken,
    Endpoint::CorpAccessToken,
    Endpoint::LoginPage,
    Endpoint::UserAccessToken,
    Endpoint::UsersMe,
    Endpoint::GetByUnionId,
    Endpoint::UserGet,
    Endpoint::ListAdmin,
    Endpoint::JsApiCode,
    Endpoint::ListParentByUser,
];

/// A page on another origin, as a front end's dev server is.
const ORIGIN: &str = "http://localhost:5173";

fn control(dingtalk: &MockDingTalk, call: &str) -> String {
    format!("{}{CONTROL_PREFIX}{call}", dingtalk.base_url())
}

/// `url` with `pairs` form-encoded as its query, as a careful client writes it.
fn with_query(url: &str, pairs: &[(&str, &str)]) -> String {
    url::Url::parse_with_params(url, pairs).unwrap().into()
}

/// Every counter of the fake still at zero: no DingTalk call, fault, abandon or throttle.
fn assert_untouched(dingtalk: &MockDingTalk) {
    for endpoint in EVERY_ENDPOINT {
        assert_eq!(dingtalk.calls(endpoint), 0, "{endpoint:?}");
    }
    assert_eq!(dingtalk.total_calls(), 0);
    assert_eq!(dingtalk.faults_served(), 0);
    assert_eq!(dingtalk.abandoned_calls(), 0);
    assert_eq!(dingtalk.throttled_calls(), 0);
}

async fn counted(http: &reqwest::Client, dingtalk: &MockDingTalk) -> Value {
    let response = http.get(control(dingtalk, "calls")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// `GET /_fake/calls` says nothing was called either.
async fn assert_counted_nothing(http: &reqwest::Client, dingtalk: &MockDingTalk) {
    let counted = counted(http, dingtalk).await;
    assert_eq!(counted["total"], 0, "{counted}");
    assert_eq!(counted["faults_served"], 0, "{counted}");
    assert_eq!(counted["abandoned"], 0, "{counted}");
    let calls = counted["calls"].as_object().unwrap();
    assert!(calls.values().all(|n| n == 0), "{counted}");
}

/// A code for `userid` over HTTP.
async fn code_for(http: &reqwest::Client, dingtalk: &MockDingTalk, userid: &str) -> String {
    let response = http
        .post(with_query(
            &control(dingtalk, "codes"),
            &[("userid", userid)],
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{userid:?}");
    response.text().await.unwrap()
}

/// Adds a user by query over HTTP.
async fn add_by_query(http: &reqwest::Client, dingtalk: &MockDingTalk, userid: &str, name: &str) {
    let response = http
        .post(with_query(
            &control(dingtalk, "users"),
            &[("userid", userid), ("name", name)],
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "{userid:?} {name:?}");
}

/// The internal app's access token, fetched as a client does (one `access_token` call).
async fn token(http: &reqwest::Client, dingtalk: &MockDingTalk) -> String {
    let answer: Value = http
        .post(format!("{}/v1.0/oauth2/accessToken", dingtalk.base_url()))
        .json(&json!({ "appKey": dingtalk.app_key(), "appSecret": dingtalk.app_secret() }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    answer["accessToken"].as_str().unwrap().to_owned()
}

/// DingTalk's exchange of `code` (one `get_user_info` call): its HTTP status and body.
async fn exchange(
    http: &reqwest::Client,
    dingtalk: &MockDingTalk,
    token: &str,
    code: &str,
) -> (StatusCode, String) {
    let response = http
        .post(format!(
            "{}/topapi/v2/user/getuserinfo?access_token={token}",
            dingtalk.base_url()
        ))
        .json(&json!({ "code": code }))
        .send()
        .await
        .unwrap();
    (response.status(), response.text().await.unwrap())
}

fn errcode(body: &str) -> i64 {
    let answer: Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("{body}"));
    answer["errcode"]
        .as_i64()
        .unwrap_or_else(|| panic!("{body}"))
}

/// `code`'s user is unknown to the fake: its exchange is refused with DingTalk's 60121.
async fn assert_not_a_user(
    http: &reqwest::Client,
    dingtalk: &MockDingTalk,
    token: &str,
    code: &str,
) {
    let (_, body) = exchange(http, dingtalk, token, code).await;
    assert_eq!(errcode(&body), 60121, "{body}");
}

/// The user DingTalk answers for `code`, through the crate's own client.
async fn user_of(dingtalk: &MockDingTalk, code: &str) -> AuthenticatedDingTalkUser {
    let client = dingtalk.client_builder().build().unwrap();
    client.user_info(code).await.unwrap()
}

fn is_code(text: &str) -> bool {
    text.len() == 32 && text.chars().all(|c| c.is_ascii_hexdigit())
}

/// An answer read off a raw socket, for request targets no HTTP client would send.
struct Raw {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Raw {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends `method target` with `body` on a connection of its own and reads the whole answer.
async fn raw(addr: SocketAddr, method: &str, target: &[u8], body: &[u8]) -> Raw {
    let mut request = format!("{method} ").into_bytes();
    request.extend_from_slice(target);
    request.extend_from_slice(
        format!(
            " HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    request.extend_from_slice(body);
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(&request).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let end = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no head in {:?}", String::from_utf8_lossy(&answer)));
    let head = String::from_utf8(answer[..end].to_vec()).unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    Raw {
        status,
        head,
        body: answer[end + 4..].to_vec(),
    }
}

#[tokio::test]
async fn every_control_answer_carries_cors_and_no_store_whatever_its_status() {
    let dingtalk = MockDingTalk::start().await;
    let http = reqwest::Client::new();
    let big = vec![b' '; 65 * 1024];
    let cases: [(Method, &str, Option<&[u8]>, u16); 8] = [
        (Method::POST, "codes?userid=alice", None, 200),
        (Method::POST, "users?userid=alice", None, 201),
        (Method::GET, "calls", None, 200),
        (Method::POST, "codes", None, 400),
        (Method::GET, "codes?userid=alice", None, 405),
        (Method::GET, "nope", None, 404),
        (Method::OPTIONS, "users", None, 204),
        (Method::POST, "users", Some(&big), 413),
    ];
    for (method, call, body, status) in cases {
        let mut request = http.request(method.clone(), control(&dingtalk, call));
        if let Some(body) = body {
            request = request.body(body.to_vec());
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), status, "{method} {call}");
        let headers = response.headers();
        assert_eq!(
            headers
                .get("access-control-allow-origin")
                .map(|v| v.to_str().unwrap()),
            Some("*"),
            "{method} {call}"
        );
        assert_eq!(
            headers.get("cache-control").map(|v| v.to_str().unwrap()),
            Some("no-store"),
            "{method} {call}"
        );
    }
    assert_untouched(&dingtalk);
}

#[tokio::test]
async fn a_page_on_another_origin_passes_the_preflight_and_posts_a_json_user() {
    let dingtalk = MockDingTalk::start().await;
    let http = reqwest::Client::new();
    // What a browser sends before `fetch(url, {method: "POST", headers: {"Content-Type":
    // "application/json"}, body})` from another origin: the POST goes only if this is a 2xx that
    // allows the origin, the method and the header.
    let cases = [
        ("users", "POST", "content-type"),
        (
            "codes?userid=alice",
            "POST",
            "content-type,x-requested-with",
        ),
        ("calls", "GET", "authorization"),
    ];
    for (call, method, asked) in cases {
        let preflight = http
            .request(Method::OPTIONS, control(&dingtalk, call))
            .header("origin", ORIGIN)
            .header("access-control-request-method", method)
            .header("access-control-request-headers", asked)
            .header("access-control-request-private-network", "true")
            .send()
            .await
            .unwrap();
        assert!(
            preflight.status().is_success(),
            "{call}: {}",
            preflight.status()
        );
        let headers = preflight.headers();
        let header = |name: &str| {
            headers
                .get(name)
                .map(|v| v.to_str().unwrap().to_ascii_lowercase())
                .unwrap_or_default()
        };
        assert_eq!(header("access-control-allow-origin"), "*", "{call}");
        let methods = header("access-control-allow-methods");
        assert!(
            methods
                .split(',')
                .any(|m| m.trim() == method.to_ascii_lowercase()),
            "{call}: {methods}"
        );
        let allowed = header("access-control-allow-headers");
        for name in asked.split(',') {
            assert!(
                allowed == "*" && name != "authorization"
                    || allowed.split(',').any(|a| a.trim() == name),
                "{call}: {name} not in {allowed}"
            );
        }
        // Chrome's check before a public page reaches loopback.
        assert_eq!(
            header("access-control-allow-private-network"),
            "true",
            "{call}"
        );
        assert_eq!(header("cache-control"), "no-store", "{call}");
    }
    // The preflighted POST itself.
    let boss = AuthenticatedDingTalkUser::builder("boss7", "Qian Ba")
        .admin_level(AdminLevel::Boss)
        .build();
    let added = http
        .post(control(&dingtalk, "users"))
        .header("origin", ORIGIN)
        .json(&boss)
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), 201);
    assert_eq!(added.headers()["access-control-allow-origin"], "*");
    let code = code_for(&http, &dingtalk, "boss7").await;
    assert_untouched(&dingtalk);
    assert_eq!(user_of(&dingtalk, &code).await, boss);

    // A preflight for a call that does not exist is not passed.
    let nowhere = http
        .request(Method::OPTIONS, control(&dingtalk, "reset"))
        .header("origin", ORIGIN)
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(nowhere.status(), 404);
}

#[tokio::test]
async fn lengths_are_counted_in_bytes_up_to_exactly_256() {
    let dingtalk = MockDingTalk::start().await;
    let http = reqwest::Client::new();
    // 256 bytes each way: ASCII, three-byte Chinese plus one byte, four-byte emoji.
    let fits = [
        "a".repeat(256),
        format!("{}a", "张".repeat(85)),
        "😀".repeat(64),
    ];
    let over = [
        "a".repeat(257),
        "张".repeat(86),                 // 86 characters, 258 bytes
        format!("{}a", "😀".repeat(64)), // 65 characters, 257 bytes
        "b".repeat(60_000),              // long, but a URI still (`http` takes up to 65 534 bytes)
    ];
    for value in &fits {
        add_by_query(&http, &dingtalk, value, value).await;
        let body = json!({ "userid": value, "name": value });
        let added = http
            .post(control(&dingtalk, "users"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(added.status(), 201, "{value}");
        let code = code_for(&http, &dingtalk, value).await;
        assert!(is_code(&code), "{code}");
        let user = user_of(&dingtalk, &code).await;
        assert_eq!(
            (user.userid(), user.name()),
            (value.as_str(), value.as_str())
        );
    }
    for value in &over {
        let queries = [
            ("codes", vec![("userid", value.as_str())]),
            ("users", vec![("userid", value.as_str())]),
            ("users", vec![("userid", "ok"), ("name", value.as_str())]),
        ];
        for (call, query) in queries {
            let response = http
                .post(with_query(&control(&dingtalk, call), &query))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 400, "{call} {} bytes", value.len());
            assert!(
                response
                    .text()
                    .await
                    .unwrap()
                    .contains("longer than 256 bytes")
            );
        }
        for body in [
            json!({ "userid": value, "name": "ok" }),
            json!({ "userid": "ok", "name": value }),
        ] {
            let response = http
                .post(control(&dingtalk, "users"))
                .json(&body)
                .send()
                .await
                .unwrap();
            // 60 000 bytes fit the body limit: refused for their length.
            assert_eq!(response.status(), 400, "{} bytes", value.len());
            let text = response.text().await.unwrap();
            assert!(text.contains("longer than 256 bytes"), "{text}");
        }
    }
    // "ok" was never added: a code for it is refused at the exchange with 60121.
    let code = code_for(&http, &dingtalk, "ok").await;
    let token = token(&http, &dingtalk).await;
    assert_not_a_user(&http, &dingtalk, &token, &code).await;
}

#[tokio::test]
async fn bytes_that_are_not_utf8_are_refused_rather_than_made_into_another_user() {
    let dingtalk = MockDingTalk::start().await;
    let http = reqwest::Client::new();
    // A careless client's GBK (张三 is D5 C5 C8 FD) or Latin-1 bytes: decoded leniently they would
    // all become U+FFFD, so that `%FF` and `%FE` were the same user.
    for call in [
        "codes?userid=%FF",
        "codes?userid=ok&userid2=%FE",
        "users?userid=%D5%C5%C8%FD",
        "users?userid=zhang&name=%D5%C5%C8%FD",
        "users?userid=%C3",
        "users?userid=%ED%A0%80", // a UTF-16 surrogate, not UTF-8
    ] {
        let response = http.post(control(&dingtalk, call)).send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        if call.contains("userid2") {
            // Another parameter's bytes are none of its business.
            assert_eq!(status, 200, "{call}: {text}");
            continue;
        }
        assert_eq!(status, 400, "{call}: {text}");
        assert!(text.contains("UTF-8"), "{call}: {text}");
    }
    // Raw bytes past ASCII in the request target: refused too, whoever refuses them.
    let raw_bytes = raw(
        dingtalk.addr(),
        "POST",
        b"/_fake/codes?userid=\xff\xfe",
        b"",
    )
    .await;
    assert_eq!(raw_bytes.status, 400, "{}", raw_bytes.text());
    assert!(!is_code(&raw_bytes.text()));

    // Proper UTF-8, and U+FFFD itself properly encoded, are taken as they are.
    add_by_query(&http, &dingtalk, "zhang", "张三").await;
    add_by_query(&http, &dingtalk, "\u{FFFD}", "Replacement").await;
    let code = code_for(&http, &dingtalk, "zhang").await;
    assert_eq!(user_of(&dingtalk, &code).await.name(), "张三");
    let code = code_for(&http, &dingtalk, "\u{FFFD}").await;
    assert_eq!(user_of(&dingtalk, &code).await.name(), "Replacement");
    let refused = http
        .post(control(&dingtalk, "codes?userid=%FF"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);

    // In a JSON body, bytes that are not UTF-8 are not a user's JSON.
    let mut body = br#"{"userid":"gbk","name":""#.to_vec();
    body.extend_from_slice(b"\xd5\xc5\xc8\xfd\"}");
    let response = http
        .post(control(&dingtalk, "users"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert!(response.text().await.unwrap().contains("not a user's JSON"));
}

#[tokio::test]
async fn a_repeated_parameter_is_refused_rather_than_guessed() {
    let dingtalk = MockDingTalk::start().await;
    let http = reqwest::Client::new();
    for call in [
        "codes?userid=alice&userid=mallory",
        "codes?userid=alice&userid=alice",
        "codes?userid=&userid=alice",
        "users?userid=alice&userid=mallory",
        "users?userid=alice&name=Alice&name=Mallory",
    ] {
        let response = http.post(control(&dingtalk, call)).send().await.unwrap();
        assert_eq!(response.status(), 400, "{call}");
        let text = response.text().await.unwrap();
        assert!(text.contains("more than once"), "{call}: {text}");
    }
    // Neither alice nor mallory was added.
    let token = token(&http, &dingtalk).await;
    for userid in ["alice", "mallory"] {
        let code = dingtalk.issue_code(userid);
        assert_not_a_user(&http, &dingtalk, &token, &code).await;
    }
}

#[tokio::test]
async fn odd_but_valid_userids_and_names_come_back_exactly() {
    let dingtalk = MockDingTalk::start().await;
    let http = reqwest::Client::new();
    let odd = [
        "line\nbreak",
        "tab\there\r\n",
        "nul\0byte",
        " padded ",
        "a+b&c=d%25e#f?g/h",
        "<script>alert(1)</script>",
        "\"quoted\" \\ back",
        "张三😀",
        "\u{202E}rtl",
        "1",
    ];
    for (i, value) in odd.iter().enumerate() {
        add_by_query(&http, &dingtalk, value, value).await;
        let code = code_for(&http, &dingtalk, value).await;
        assert!(is_code(&code), "{value:?}: {code}");
        let user = user_of(&dingtalk, &code).await;
        assert_eq!((user.userid(), user.name()), (*value, *value), "{i}");
    }
    // Written by hand, `+` is a space, as in any form-encoded query (DingTalk's paths read it so).
    let added = http
        .post(control(&dingtalk, "users?userid=a+b&name=A+B"))
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), 201);
    let code = code_for(&http, &dingtalk, "a b").await;
    assert_eq!(user_of(&dingtalk, &code).await.name(), "A B");
}

#[tokio::test]
async fn markup_added_over_http_is_escaped_on_the_fake_login_page() {
    // A page on any origin may add users: what it adds must not run on the fake's own origin.
    let dingtalk = MockDingTalk::start().await;
    let http = reqwest::Client::new();
    let evil = "<img src=x onerror=alert(document.domain)>";
    let body = json!({ "userid": "evil\"><script>x()</script>", "name": evil,
                       "unionid": "u\"><script>y()</script>" });
    let added = http
        .post(control(&dingtalk, "users"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), 201);
    let page = http
        .get(with_query(
            &dingtalk.login_page_url(),
            &[
                ("redirect_uri", "http://127.0.0.1:9/cb"),
                ("response_type", "code"),
                ("client_id", &dingtalk.app_key()),
                ("scope", "openid"),
                ("state", "s"),
                ("prompt", "consent"),
            ],
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("&lt;img src=x onerror=alert(document.domain)&gt;"),
        "{html}"
    );
    assert!(
        !html.contains("<img") && !html.contains("<script>"),
        "{html}"
    );
    assert_eq!(dingtalk.calls(Endpoint::LoginPage), 1);
}

#[tokio::test]
async fn bodies_past_the_limit_are_refused_and_the_fake_keeps_serving() {
    let dingtalk = MockDingTalk::start().await;
    let http = reqwest::Client::new();
    // Just under the limit: a whole user padded with spaces is read.
    let mut padded = serde_json::to_vec(&json!({ "userid": "pad", "name": "Pad" })).unwrap();
    padded.resize(64 * 1024, b' ');
    let response = http
        .post(control(&dingtalk, "users"))
        .header("content-type", "application/json")
        .body(padded)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    // Just over, and far over: refused, whatever it holds.
    for size in [64 * 1024 + 1, 8 * 1024 * 1024] {
        let mut body = serde_json::to_vec(&json!({ "userid": "huge", "name": "Huge" })).unwrap();
        body.resize(size, b' ');
        let response = http
            .post(control(&dingtalk, "users"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await;
        // Far over, the fake may stop reading before the client stops writing: the refusal or a
        // closed connection, never a hang or a 201.
        match response {
            Ok(response) => {
                assert_eq!(response.status(), 413, "{size}");
                assert!(response.text().await.unwrap().contains("64 KiB"));
            }
            Err(error) => assert!(size > 1024 * 1024, "{size}: {error}"),
        }
    }
    // A chunked body that does not say how long it is, over a raw socket.
    let mut stream = TcpStream::connect(dingtalk.addr()).await.unwrap();
    let head = "POST /_fake/users HTTP/1.1\r\nHost: fake\r\nTransfer-Encoding: chunked\r\n\
                Content-Type: application/json\r\n\r\n";
    stream.write_all(head.as_bytes()).await.unwrap();
    let chunk = format!("{:x}\r\n{}\r\n", 16 * 1024, " ".repeat(16 * 1024));
    for _ in 0..5 {
        stream.write_all(chunk.as_bytes()).await.unwrap();
    }
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");

    // Still serving; nobody past the limit was added.
    let token = token(&http, &dingtalk).await;
    let code = code_for(&http, &dingtalk, "huge").await;
    assert_not_a_user(&http, &dingtalk, &token, &code).await;
    let code = code_for(&http, &dingtalk, "pad").await;
    assert_eq!(
        errcode(&exchange(&http, &dingtalk, &token, &code).await.1),
        0
    );
}

#[tokio::test]
async fn bodies_that_are_not_a_user_are_400_and_add_nobody() {
    let dingtalk = MockDingTalk::start().await;
    let http = reqwest::Client::new();
    let deep = |open: &str, close: &str, depth: usize| {
        format!(
            r#"{{"userid":"deep","name":"Deep","extra":{}1{}}}"#,
            open.repeat(depth),
            close.repeat(depth)
        )
    };
    // Nested 30 000 deep in a field the user does not have, it is skipped without recursion (no
    // stack to overflow), and the user is taken.
    for (i, body) in [deep("[", "]", 30_000), deep(r#"{"a":"#, "}", 6_000)]
        .into_iter()
        .enumerate()
    {
        let body = body.replacen("deep", &format!("deep{i}"), 1);
        let response = http
            .post(control(&dingtalk, "users"))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "{i}");
        let code = code_for(&http, &dingtalk, &format!("deep{i}")).await;
        assert_eq!(user_of(&dingtalk, &code).await.name(), "Deep");
    }
    let bodies: Vec<(String, &str)> = vec![
        (
            format!("{}{}", "[".repeat(30_000), "]".repeat(30_000)),
            "application/json",
        ),
        (
            deep("[", "]", 30_000).replace(r#""name":"Deep","#, ""),
            "application/json",
        ),
        ("[".repeat(60_000), "application/json"),
        ("null".to_owned(), "application/json"),
        ("[]".to_owned(), "application/json"),
        (r#""deep""#.to_owned(), "application/json"),
        ("42".to_owned(), "application/json"),
        (" ".to_owned(), "application/json"),
        (
            r#"{"userid":"deep","name":"Deep"} trailing"#.to_owned(),
            "application/json",
        ),
        (
            r#"{"userid":"deep","userid":"other","name":"Deep"}"#.to_owned(),
            "application/json",
        ),
        (
            r#"{"userId":"deep","name":"Deep"}"#.to_owned(),
            "application/json",
        ),
        (
            r#"{"userid":7,"name":"Deep"}"#.to_owned(),
            "application/json",
        ),
        (
            r#"{"userid":"deep","name":"Deep","is_admin":"yes"}"#.to_owned(),
            "application/json",
        ),
        (
            "\u{FEFF}{\"userid\":\"deep\",\"name\":\"Deep\"}".to_owned(),
            "application/json",
        ),
        // A form, as `new URLSearchParams(...)` as the body sends: not a user's JSON.
        (
            "userid=deep&name=Deep".to_owned(),
            "application/x-www-form-urlencoded",
        ),
    ];
    for (body, content_type) in bodies {
        let response = http
            .post(control(&dingtalk, "users?userid=deep"))
            .header("content-type", content_type)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{}", &body[..body.len().min(80)]);
        let text = response.text().await.unwrap();
        assert!(text.contains("not a user's JSON"), "{text}");
        assert!(
            text.len() < 1024,
            "the refusal does not echo the body: {}",
            text.len()
        );
    }
    let token = token(&http, &dingtalk).await;
    let code = dingtalk.issue_code("deep");
    assert_not_a_user(&http, &dingtalk, &token, &code).await;
}

#[tokio::test]
async fn a_user_s_json_is_read_whatever_content_type_says() {
    let dingtalk = MockDingTalk::start().await;
    let http = reqwest::Client::new();
    // `text/plain` is what a page sends to skip the preflight; some send none, or a charset.
    for (i, content_type) in [
        Some("text/plain"),
        None,
        Some("application/json; charset=utf-8"),
        Some("application/octet-stream"),
    ]
    .into_iter()
    .enumerate()
    {
        let userid = format!("typed{i}");
        let mut request = http
            .post(control(&dingtalk, "users"))
            .header("origin", ORIGIN)
            .body(json!({ "userid": userid, "name": "Typed", "admin_level": 2 }).to_string());
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 201, "{content_type:?}");
        assert_eq!(response.text().await.unwrap(), format!("added {userid}"));
        let code = code_for(&http, &dingtalk, &userid).await;
        assert_eq!(
            user_of(&dingtalk, &code).await.admin_level(),
            AdminLevel::SubAdmin
        );
    }
    // The body wins over the query, as documented: the answer says who was added.
    let response = http
        .post(control(&dingtalk, "users?userid=query&name=Query"))
        .json(&json!({ "userid": "body", "name": "Body" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.text().await.unwrap(), "added body");
    let token = token(&http, &dingtalk).await;
    let code = dingtalk.issue_code("query");
    assert_not_a_user(&http, &dingtalk, &token, &code).await;
}

#[tokio::test]
async fn admin_levels_at_the_edges_of_i64_are_kept_or_refused_without_a_panic() {
    let dingtalk = MockDingTalk::start().await;
    let http = reqwest::Client::new();
    for level in [i64::MAX, i64::MIN, -1, 0, 3, 100] {
        let userid = format!("level{level}");
        let body = json!({ "userid": userid, "name": "L", "admin_level": level, "is_admin": true });
        let added = http
            .post(control(&dingtalk, "users"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(added.status(), 201, "{level}");
        let code = code_for(&http, &dingtalk, &userid).await;
        let user = user_of(&dingtalk, &code).await;
        assert_eq!(user.admin_level(), AdminLevel::from_sys_level(level));
        assert_eq!(user.admin_level().sys_level(), level);
        assert!(user.is_admin());
    }
    for level in [
        "18446744073709551615",
        "9223372036854775808",
        "-9223372036854775809",
        "1.5",
        "1e3",
        "\"1\"",
        "null",
        "true",
        "[]",
        "1e400",
    ] {
        let body = format!(r#"{{"userid":"odd","name":"Odd","admin_level":{level}}}"#);
        let response = http
            .post(control(&dingtalk, "users"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{level}");
    }
    let token = token(&http, &dingtalk).await;
    let code = dingtalk.issue_code("odd");
    assert_not_a_user(&http, &dingtalk, &token, &code).await;
}

#[tokio::test]
async fn other_methods_are_405_with_allow_and_head_has_no_body() {
    let dingtalk = MockDingTalk::start().await;
    let http = reqwest::Client::new();
    for (call, allowed) in [
        ("codes?userid=alice", "POST"),
        ("users?userid=alice", "POST"),
        ("calls", "GET"),
    ] {
        for method in [
            "GET", "POST", "HEAD", "PUT", "DELETE", "PATCH", "TRACE", "CONNECTX",
        ] {
            if method == allowed {
                continue;
            }
            let response = http
                .request(
                    Method::from_bytes(method.as_bytes()).unwrap(),
                    control(&dingtalk, call),
                )
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 405, "{method} {call}");
            assert_eq!(response.headers()["allow"], allowed, "{method} {call}");
            assert_eq!(response.headers()["access-control-allow-origin"], "*");
            let text = response.text().await.unwrap();
            if method == "HEAD" {
                assert_eq!(text, "");
            } else {
                assert!(
                    text.contains(&format!("use {allowed}")),
                    "{method} {call}: {text}"
                );
            }
        }
    }
    // A body on the GET is no reason to answer otherwise.
    let response = http
        .get(control(&dingtalk, "calls?verbose=1&total=999"))
        .json(&json!({ "reset": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap()["total"], 0);
    // Nobody was added by the refused methods.
    let token = token(&http, &dingtalk).await;
    let code = dingtalk.issue_code("alice");
    assert_not_a_user(&http, &dingtalk, &token, &code).await;
}

#[tokio::test]
async fn paths_near_the_prefix_issue_no_code_and_dingtalk_paths_answer_as_dingtalk() {
    let dingtalk = MockDingTalk::start().await;
    let http = reqwest::Client::new();
    let addr = dingtalk.addr();
    // Under the prefix but not a call: the 404 listing the calls.
    for target in [
        "/_fake/",
        "/_fake//codes?userid=alice",
        "/_fake/codes/?userid=alice",
        "/_fake/Codes?userid=alice",
        "/_fake/%63odes?userid=alice",
        "/_fake/codes%2F?userid=alice",
        "/_fake/codes;x?userid=alice",
        "/_fake/../oauth2/auth",
        "/_fake/./codes?userid=alice",
        "/_fake/calls/../codes?userid=alice",
    ] {
        let answer = raw(addr, "POST", target.as_bytes(), b"").await;
        assert_eq!(answer.status, 404, "{target}");
        assert!(
            answer.text().contains("POST /_fake/codes?userid=ID"),
            "{target}"
        );
        assert_eq!(answer.header("access-control-allow-origin"), Some("*"));
    }
    // Not under the prefix: DingTalk's own answer to a path it does not serve, no code.
    for target in [
        "/_fake?userid=alice",
        "/_FAKE/codes?userid=alice",
        "/_fake%2Fcodes?userid=alice",
        "/oauth2/../_fake/codes?userid=alice",
        "//_fake/codes?userid=alice",
    ] {
        let answer = raw(addr, "POST", target.as_bytes(), b"").await;
        assert_eq!(answer.status, 200, "{target}");
        assert_eq!(errcode(&answer.text()), 22, "{target}");
        assert_eq!(
            answer.header("access-control-allow-origin"),
            None,
            "{target}"
        );
    }
    // The prefix in absolute form is still the control surface.
    let absolute = format!("http://{addr}/_fake/codes?userid=alice");
    let answer = raw(addr, "POST", absolute.as_bytes(), b"").await;
    assert_eq!(answer.status, 200);
    assert!(is_code(&answer.text()));
    // A query on `calls` changes nothing.
    let counted = counted(&http, &dingtalk).await;
    assert_eq!(counted["total"], 0);
    assert_untouched(&dingtalk);
}

#[tokio::test]
async fn control_calls_of_every_kind_move_no_counter() {
    let dingtalk = MockDingTalk::start().await;
    let http = reqwest::Client::new();
    let requests = [
        (Method::POST, "users?userid=alice&name=Alice"),
        (Method::POST, "codes?userid=alice"),
        (Method::POST, "codes?userid=nobody"),
        (Method::POST, "codes"),
        (Method::GET, "codes"),
        (Method::OPTIONS, "codes"),
        (Method::HEAD, "calls"),
        (Method::GET, "calls?x=1"),
        (Method::DELETE, "users"),
        (Method::GET, "get_user_info"),
        (Method::POST, "topapi/v2/user/getuserinfo"),
    ];
    for (method, call) in requests {
        http.request(method, control(&dingtalk, call))
            .send()
            .await
            .unwrap();
    }
    let big = http
        .post(control(&dingtalk, "users"))
        .body(vec![b'{'; 100 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(big.status(), 413);
    assert_untouched(&dingtalk);
    assert_counted_nothing(&http, &dingtalk).await;
    // The counters do move for DingTalk's own calls, so the zeros above mean something.
    let code = code_for(&http, &dingtalk, "alice").await;
    assert_eq!(user_of(&dingtalk, &code).await.name(), "Alice");
    let counted = counted(&http, &dingtalk).await;
    assert_eq!(counted["total"], 2, "{counted}");
    assert_eq!(counted["calls"]["access_token"], 1);
    assert_eq!(counted["calls"]["get_user_info"], 1);
    assert_eq!(dingtalk.total_calls(), 2);
}

#[tokio::test]
async fn armed_faults_neither_reach_nor_are_spent_by_control_calls() {
    let dingtalk = MockDingTalk::start().await;
    let http = reqwest::Client::new();
    for endpoint in EVERY_ENDPOINT {
        dingtalk.fail_always(endpoint, Fault::CloseConnection);
    }
    add_by_query(&http, &dingtalk, "alice", "Alice").await;
    let code = code_for(&http, &dingtalk, "alice").await;
    assert!(is_code(&code));
    assert_counted_nothing(&http, &dingtalk).await;
    let preflight = http
        .request(Method::OPTIONS, control(&dingtalk, "users"))
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), 204);
    assert_untouched(&dingtalk);

    // One fault armed for the exchange survives any number of control calls...
    dingtalk.clear_faults();
    dingtalk.fail_next(Endpoint::GetUserInfo, Fault::HttpStatus(503), 1);
    for _ in 0..5 {
        code_for(&http, &dingtalk, "alice").await;
        add_by_query(&http, &dingtalk, "bob", "Bob").await;
        counted(&http, &dingtalk).await;
    }
    assert_eq!(dingtalk.faults_served(), 0);
    // ...and meets the first DingTalk call it was armed for, spending no code.
    let token = token(&http, &dingtalk).await;
    let (status, _) = exchange(&http, &dingtalk, &token, &code).await;
    assert_eq!(status, 503);
    assert_eq!(dingtalk.faults_served(), 1);
    assert_eq!(counted(&http, &dingtalk).await["faults_served"], 1);
    let (status, body) = exchange(&http, &dingtalk, &token, &code).await;
    assert_eq!((status, errcode(&body)), (StatusCode::OK, 0), "{body}");
}

#[tokio::test]
async fn the_qps_limit_does_not_apply_to_control_calls() {
    let dingtalk = MockDingTalk::start().await;
    let http = reqwest::Client::new();
    dingtalk.set_qps_limit(Some(1));
    let mut codes = Vec::new();
    for i in 0..30 {
        add_by_query(&http, &dingtalk, &format!("user{i}"), "U").await;
        codes.push(code_for(&http, &dingtalk, &format!("user{i}")).await);
        counted(&http, &dingtalk).await;
    }
    assert_untouched(&dingtalk);
    // DingTalk's first call of each endpoint in the window still goes through.
    let token = token(&http, &dingtalk).await;
    let (_, body) = exchange(&http, &dingtalk, &token, &codes[0]).await;
    assert_eq!(errcode(&body), 0, "{body}");
    assert_eq!(dingtalk.throttled_calls(), 0);
}

#[tokio::test]
async fn codes_over_http_are_one_time_and_expire_as_dingtalk_s_do() {
    let dingtalk = MockDingTalk::start().await;
    let http = reqwest::Client::new();
    add_by_query(&http, &dingtalk, "alice", "Alice").await;
    let token = token(&http, &dingtalk).await;
    let code = code_for(&http, &dingtalk, "alice").await;
    let (_, first) = exchange(&http, &dingtalk, &token, &code).await;
    assert_eq!(errcode(&first), 0, "{first}");
    let (_, second) = exchange(&http, &dingtalk, &token, &code).await;
    assert_eq!(errcode(&second), 40078, "{second}");
    // The same refusal as a code from `issue_code` reused gets.
    let in_process = dingtalk.issue_code("alice");
    exchange(&http, &dingtalk, &token, &in_process).await;
    let (_, reused) = exchange(&http, &dingtalk, &token, &in_process).await;
    let (second, reused): (Value, Value) = (
        serde_json::from_str(&second).unwrap(),
        serde_json::from_str(&reused).unwrap(),
    );
    assert_eq!(second["errmsg"], reused["errmsg"]);
    // A code lives as long as the fake's code lifetime says, however it was issued.
    dingtalk.set_code_ttl(Duration::ZERO);
    let expired = code_for(&http, &dingtalk, "alice").await;
    let (_, body) = exchange(&http, &dingtalk, &token, &expired).await;
    assert_eq!(errcode(&body), 40078, "{body}");
    // A code that was never issued, shaped like one: the same.
    let (_, body) = exchange(&http, &dingtalk, &token, &"0".repeat(32)).await;
    assert_eq!(errcode(&body), 40078, "{body}");
}

#[tokio::test]
async fn adding_a_userid_again_replaces_the_whole_user() {
    let dingtalk = MockDingTalk::start().await;
    let http = reqwest::Client::new();
    let boss = AuthenticatedDingTalkUser::builder("alice", "Alice")
        .unionid("union-alice")
        .device_id("phone")
        .admin_level(AdminLevel::SuperAdmin)
        .build();
    let added = http
        .post(control(&dingtalk, "users"))
        .json(&boss)
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), 201);
    // A code issued before the replacement is exchanged for who the user is at the exchange.
    let before = code_for(&http, &dingtalk, "alice").await;
    add_by_query(&http, &dingtalk, "alice", "Alice Demoted").await;
    let replaced = AuthenticatedDingTalkUser::builder("alice", "Alice Demoted").build();
    assert_eq!(user_of(&dingtalk, &before).await, replaced);
    let after = code_for(&http, &dingtalk, "alice").await;
    let user = user_of(&dingtalk, &after).await;
    assert_eq!(user, replaced);
    assert_eq!(user.admin_level(), AdminLevel::Other);
    assert_eq!(user.unionid(), "");
    // `add_user` in process and the HTTP call replace each other alike.
    dingtalk.add_user(boss.clone());
    let code = code_for(&http, &dingtalk, "alice").await;
    assert_eq!(user_of(&dingtalk, &code).await, boss);
}

#[tokio::test]
async fn two_hundred_parallel_codes_are_distinct_and_each_is_exchanged_once() {
    let dingtalk = MockDingTalk::start().await;
    let http = reqwest::Client::new();
    let adds = (0..200).map(|i| {
        let (http, dingtalk) = (&http, &dingtalk);
        async move { add_by_query(http, dingtalk, &format!("u{i}"), &format!("User {i}")).await }
    });
    join_all(adds).await;
    let issued = (0..200).map(|i| {
        let (http, dingtalk) = (&http, &dingtalk);
        async move { (i, code_for(http, dingtalk, &format!("u{i}")).await) }
    });
    let codes = join_all(issued).await;
    let distinct: HashSet<_> = codes.iter().map(|(_, code)| code.clone()).collect();
    assert_eq!(distinct.len(), 200);
    assert!(codes.iter().all(|(_, code)| is_code(code)));
    assert_untouched(&dingtalk);
    let token = token(&http, &dingtalk).await;
    for (i, code) in &codes {
        let (_, body) = exchange(&http, &dingtalk, &token, code).await;
        let answer: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(answer["result"]["userid"], format!("u{i}"), "{body}");
        assert_eq!(answer["result"]["name"], format!("User {i}"), "{body}");
    }
    for (_, code) in codes.iter().take(10) {
        assert_eq!(
            errcode(&exchange(&http, &dingtalk, &token, code).await.1),
            40078
        );
    }
    assert_eq!(dingtalk.userinfo_calls(), 210);
}

#[tokio::test]
async fn no_control_answer_shows_a_secret() {
    let dingtalk = MockDingTalk::start().await;
    let http = reqwest::Client::new();
    // A token issued, and a user whose fields try to pull secrets in.
    let token = token(&http, &dingtalk).await;
    let requests: Vec<(Method, String, Option<Vec<u8>>)> = vec![
        (Method::POST, "users?userid=alice".into(), None),
        (Method::POST, "codes?userid=alice".into(), None),
        (Method::POST, "codes?userid=appSecret".into(), None),
        (Method::GET, "calls".into(), None),
        (Method::POST, "codes".into(), None),
        (Method::GET, "codes".into(), None),
        (Method::OPTIONS, "users".into(), None),
        (Method::GET, "secret".into(), None),
        (
            Method::POST,
            format!("codes?userid={}", "s".repeat(300)),
            None,
        ),
        (
            Method::POST,
            "users".into(),
            Some(br#"{"userid":"x","name":"#.to_vec()),
        ),
        (Method::POST, "users".into(), Some(vec![b'x'; 70 * 1024])),
    ];
    let secrets = [dingtalk.app_secret(), MOCK_SUITE_SECRET.to_owned(), token];
    for (method, call, body) in requests {
        let mut request = http.request(method.clone(), control(&dingtalk, &call));
        if let Some(body) = body {
            request = request.body(body);
        }
        let response = request.send().await.unwrap();
        let mut seen = format!("{:?}", response.headers());
        seen.push_str(&response.text().await.unwrap());
        for secret in &secrets {
            assert!(!seen.contains(secret.as_str()), "{method} {call}: {seen}");
        }
    }
    assert_eq!(dingtalk.issued_tokens().len(), 1);
}
