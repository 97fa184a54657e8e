//! The hot paths of 823063a and 4b8351c under attack: sessions found in the opened-session cache
//! by their raw bytes (cookies split with memchr, bearer tokens read as bytes), the tiny caches of
//! `SessionConfig::opened_session_cache`, the rendering a user carries instead of a second
//! extension, and codes checked as bytes. Every answer is compared with what the crate documents,
//! and with `Sessions::user_from_headers` on the same headers, and no session costs a call to
//! DingTalk.

mod support;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::routing::get;
use axum::{Extension, Router};
use http::{HeaderMap, HeaderName, HeaderValue, Response};
use support::{TestApp, assert_rejection, json};
use tower_dingtalk_auth::testing::{FixedUserLayer, MockDingTalk};
use tower_dingtalk_auth::{
    AdminLevel, AuthError, AuthenticatedDingTalkUser, CodeSource, DingTalkAuthLayer, MAX_CODE_LEN,
    SessionConfig, SessionKey, Sessions, guard,
};

const SECRET: &[u8] = b"the hot path attack's session secret, 32+ bytes";

fn session() -> SessionConfig {
    SessionConfig::new(SessionKey::from_bytes(SECRET).unwrap())
}

fn user(userid: &str) -> AuthenticatedDingTalkUser {
    support::known_users()
        .into_iter()
        .find(|user| user.userid() == userid)
        .unwrap()
}

/// The sealed value of a `name=value` header.
fn value_of(pair: &HeaderValue) -> String {
    let pair = pair.to_str().unwrap();
    pair.split_once('=').unwrap().1.to_owned()
}

/// `sealed` with one byte changed to another base64 character.
fn altered(sealed: &str, at: usize) -> String {
    let mut bytes = sealed.as_bytes().to_vec();
    bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).unwrap()
}

/// `GET url` with `headers` (raw values, appended in order): the status and the userid the
/// handler saw (`/me` answers the user as JSON), or the `error` of a rejection.
async fn layer_answer(
    http: &reqwest::Client,
    url: &str,
    headers: &[(HeaderName, HeaderValue)],
) -> (u16, Result<String, String>) {
    let mut request = http.get(url);
    for (name, value) in headers {
        request = request.header(name.clone(), value.clone());
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let body = json(response).await;
    let seen = if status == 200 {
        Ok(body["userid"].as_str().unwrap().to_owned())
    } else {
        Err(body["error"].as_str().unwrap_or_default().to_owned())
    };
    (status, seen)
}

fn header_map(headers: &[(HeaderName, HeaderValue)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.append(name.clone(), value.clone());
    }
    map
}

fn cookie(bytes: &[u8]) -> (HeaderName, HeaderValue) {
    (
        http::header::COOKIE,
        HeaderValue::from_bytes(bytes).unwrap(),
    )
}

fn authorization(bytes: &[u8]) -> (HeaderName, HeaderValue) {
    (
        http::header::AUTHORIZATION,
        HeaderValue::from_bytes(bytes).unwrap(),
    )
}

/// Asks the layer (twice: the second answer comes from the opened-session cache when the first
/// opened a session) and `Sessions::user_from_headers`, and checks both against `expected`.
async fn agree(
    app: &TestApp,
    sessions: &Sessions,
    case: &str,
    headers: &[(HeaderName, HeaderValue)],
    expected: Option<&str>,
) {
    for round in 0..2 {
        let (status, seen) = layer_answer(&app.http, &app.url("/me"), headers).await;
        let by_layer = seen.as_ref().ok().map(String::as_str);
        assert_eq!(
            by_layer, expected,
            "{case} (round {round}): the layer answered {status} {seen:?}"
        );
    }
    let by_sessions = sessions.user_from_headers(&header_map(headers)).await;
    assert_eq!(
        by_sessions.as_ref().map(AuthenticatedDingTalkUser::userid),
        expected,
        "{case}: Sessions::user_from_headers disagrees with the layer"
    );
}

async fn session_app() -> (TestApp, Sessions) {
    let app = TestApp::with(support::dingtalk().await, |builder| {
        builder.session(session()).token_login("/login")
    })
    .await;
    let sessions = app.layer.sessions().unwrap();
    (app, sessions)
}

// ------------------------------------------------------------------------------------------------
// Cookie headers
// ------------------------------------------------------------------------------------------------

/// Hostile `Cookie` headers: our name as a prefix or suffix of another, repeats (valid first or
/// second), quotes, empty pairs, bytes that are not ASCII or not UTF-8, several headers, a valid
/// session followed by garbage. The layer serves exactly the valid session of our name, agrees
/// with `Sessions::user_from_headers`, and never calls DingTalk.
#[tokio::test]
async fn hostile_cookie_headers_serve_only_a_valid_session_of_our_name() {
    let (app, sessions) = session_app().await;
    let name = sessions.cookie_name().to_owned();
    let staff = value_of(&sessions.cookie_header(&user("staff01")));
    let boss = value_of(&sessions.cookie_header(&user("boss01")));
    let tampered = altered(&staff, staff.len() / 2);
    let lower = name.to_lowercase();
    let cases: Vec<(&str, Vec<u8>, Option<&str>)> = vec![
        ("plain", format!("{name}={staff}").into(), Some("staff01")),
        (
            "our name is a prefix of another",
            format!("{name}2={staff}").into(),
            None,
        ),
        (
            "our name is a suffix of another",
            format!("x{name}={staff}").into(),
            None,
        ),
        (
            "another name that starts with ours, then ours",
            format!("{name}2={staff}; {name}={boss}").into(),
            Some("boss01"),
        ),
        (
            "the name in another case",
            format!("{lower}={staff}").into(),
            None,
        ),
        (
            "valid, then tampered",
            format!("{name}={staff}; {name}={tampered}").into(),
            Some("staff01"),
        ),
        (
            "tampered, then valid",
            format!("{name}={tampered}; {name}={staff}").into(),
            Some("staff01"),
        ),
        ("tampered only", format!("{name}={tampered}").into(), None),
        (
            "quoted",
            format!("{name}=\"{staff}\"").into(),
            Some("staff01"),
        ),
        ("half quoted", format!("{name}=\"{staff}").into(), None),
        ("quoted inside", format!("{name}={staff}\"\"").into(), None),
        (
            "empty pairs around",
            format!(";;;{name}={staff};;;").into(),
            Some("staff01"),
        ),
        (
            "spaces around",
            format!("   {name}={staff}   ;  ").into(),
            Some("staff01"),
        ),
        ("empty value", format!("{name}=").into(), None),
        ("no value", name.clone().into(), None),
        (
            "another cookie in UTF-8",
            format!("nick=张三; {name}={staff}").into(),
            Some("staff01"),
        ),
        (
            "another cookie not UTF-8",
            [
                b"nick=\xff\xfe\x80; ".as_slice(),
                format!("{name}={staff}").as_bytes(),
            ]
            .concat(),
            Some("staff01"),
        ),
        (
            "ours with a byte that is not UTF-8",
            [format!("{name}={staff}").as_bytes(), b"\xff".as_slice()].concat(),
            None,
        ),
        (
            "ours with a character that is not ASCII",
            format!("{name}={staff}é").into(),
            None,
        ),
        (
            "ours with obs-text inside",
            [
                format!("{name}={}", &staff[..10]).as_bytes(),
                b"\xa0".as_slice(),
                &staff.as_bytes()[11..],
            ]
            .concat(),
            None,
        ),
        (
            "valid, followed by garbage in the same value",
            format!("{name}={staff}garbage").into(),
            None,
        ),
        (
            "valid, followed by garbage pairs",
            format!("{name}={staff}; garbage; ==; {name}=; {name}={tampered}").into(),
            Some("staff01"),
        ),
        (
            "split by a semicolon",
            format!("{name}={};{}", &staff[..20], &staff[20..]).into(),
            None,
        ),
        (
            "two valid sessions of ours",
            format!("{name}={staff}; {name}={boss}").into(),
            Some("staff01"),
        ),
    ];
    for (case, header, expected) in &cases {
        agree(&app, &sessions, case, &[cookie(header)], *expected).await;
    }
    // Several `Cookie` headers.
    type Several<'a> = (&'a str, Vec<Vec<u8>>, Option<&'a str>);
    let several: Vec<Several> = vec![
        (
            "ours in the second header",
            vec![b"a=b; c=d".to_vec(), format!("{name}={staff}").into()],
            Some("staff01"),
        ),
        (
            "tampered in the first header, valid in the second",
            vec![
                format!("{name}={tampered}").into(),
                format!("{name}={staff}").into(),
            ],
            Some("staff01"),
        ),
        (
            "non-UTF-8 first header, ours in the second",
            vec![b"\xff\xff\xff".to_vec(), format!("{name}={boss}").into()],
            Some("boss01"),
        ),
        (
            "our value split over two headers",
            vec![
                format!("{name}={}", &staff[..30]).into(),
                staff.as_bytes()[30..].to_vec(),
            ],
            None,
        ),
    ];
    for (case, headers, expected) in &several {
        let headers: Vec<_> = headers.iter().map(|header| cookie(header)).collect();
        agree(&app, &sessions, case, &headers, *expected).await;
    }
    assert_eq!(app.dingtalk.userinfo_calls(), 0);
}

/// A `Cookie` header of thousands of pairs (about 30 KB), ours first or last, is read whole: the
/// session is served, and a tampered one among thousands is not.
#[tokio::test]
async fn a_huge_cookie_header_still_finds_the_session_and_only_a_valid_one() {
    let (app, sessions) = session_app().await;
    let name = sessions.cookie_name().to_owned();
    let staff = value_of(&sessions.cookie_header(&user("staff01")));
    let tampered = altered(&staff, staff.len() - 5);
    let noise: String = (0..2_500).map(|i| format!("c{i}=v{i}; ")).collect();
    let prefixes: String = (0..200).map(|i| format!("{name}{i}={staff}; ")).collect();
    let cases: Vec<(&str, String, Option<&str>)> = vec![
        (
            "ours last",
            format!("{noise}{name}={staff}"),
            Some("staff01"),
        ),
        (
            "ours first",
            format!("{name}={staff}; {noise}"),
            Some("staff01"),
        ),
        (
            "our value under 200 longer names, then ours",
            format!("{prefixes}{name}={staff}"),
            Some("staff01"),
        ),
        (
            "our value under 200 longer names only",
            prefixes.clone(),
            None,
        ),
        (
            "tampered among noise",
            format!("{noise}{name}={tampered}; {noise}"),
            None,
        ),
        ("only noise and empty pairs", format!("{noise};;;;;;"), None),
    ];
    for (case, header, expected) in &cases {
        agree(
            &app,
            &sessions,
            case,
            &[cookie(header.as_bytes())],
            *expected,
        )
        .await;
    }
    assert_eq!(app.dingtalk.userinfo_calls(), 0);
}

// ------------------------------------------------------------------------------------------------
// Bearer tokens
// ------------------------------------------------------------------------------------------------

/// `Authorization` values with odd spacing and casing, bytes that are not UTF-8, several headers:
/// the layer serves the user `Sessions::user_from_headers` finds on the same headers, or nobody
/// when it finds none; a token that is ours but does not open is `invalid_token`.
#[tokio::test]
async fn odd_authorization_headers_agree_with_user_from_headers() {
    let (app, sessions) = session_app().await;
    let name = sessions.cookie_name().to_owned();
    let staff = sessions.issue_token(&user("staff01"));
    let tampered = altered(&staff, staff.len() / 3);
    let boss_cookie = format!(
        "{name}={}",
        value_of(&sessions.cookie_header(&user("boss01")))
    );
    let staff_cookie_value = value_of(&sessions.cookie_header(&user("staff01")));
    let bearer = |prefix: &str, token: &str, suffix: &[u8]| -> Vec<u8> {
        [prefix.as_bytes(), token.as_bytes(), suffix].concat()
    };
    type Case = (
        &'static str,
        Vec<(HeaderName, HeaderValue)>,
        Option<&'static str>,
    );
    let cases: Vec<Case> = vec![
        (
            "plain",
            vec![authorization(&bearer("Bearer ", &staff, b""))],
            Some("staff01"),
        ),
        (
            "lower case",
            vec![authorization(&bearer("bearer ", &staff, b""))],
            Some("staff01"),
        ),
        (
            "upper case",
            vec![authorization(&bearer("BEARER ", &staff, b""))],
            Some("staff01"),
        ),
        (
            "spaces around the token",
            vec![authorization(&bearer("BeArEr    ", &staff, b"   "))],
            Some("staff01"),
        ),
        (
            "a tab for a space",
            vec![authorization(&bearer("Bearer\t", &staff, b""))],
            None,
        ),
        ("no token", vec![authorization(b"Bearer")], None),
        (
            "a byte not UTF-8 after",
            vec![authorization(&bearer("Bearer ", &staff, b"\xff"))],
            None,
        ),
        (
            "UTF-8 not ASCII after",
            vec![authorization(&bearer("Bearer ", &staff, "é".as_bytes()))],
            None,
        ),
        (
            "a non-UTF-8 bearer, then a valid one",
            vec![
                authorization(b"Bearer \xff\xfe\xfd"),
                authorization(&bearer("Bearer ", &staff, b"")),
            ],
            Some("staff01"),
        ),
        (
            "another scheme, then a valid bearer",
            vec![
                authorization(b"Basic dXNlcjpwYXNz"),
                authorization(&bearer("Bearer ", &staff, b"")),
            ],
            Some("staff01"),
        ),
        (
            "a tampered bearer, then a valid one",
            vec![
                authorization(&bearer("Bearer ", &tampered, b"")),
                authorization(&bearer("Bearer ", &staff, b"")),
            ],
            None,
        ),
        (
            "a valid bearer, then a tampered one",
            vec![
                authorization(&bearer("Bearer ", &staff, b"")),
                authorization(&bearer("Bearer ", &tampered, b"")),
            ],
            Some("staff01"),
        ),
        (
            "a valid bearer and another user's cookie",
            vec![
                authorization(&bearer("Bearer ", &staff, b"")),
                cookie(boss_cookie.as_bytes()),
            ],
            Some("staff01"),
        ),
        (
            "a non-UTF-8 bearer and a valid cookie",
            vec![
                authorization(b"Bearer \x80\x81"),
                cookie(boss_cookie.as_bytes()),
            ],
            Some("boss01"),
        ),
        (
            "a tampered bearer and a valid cookie",
            vec![
                authorization(&bearer("Bearer ", &tampered, b"")),
                cookie(boss_cookie.as_bytes()),
            ],
            None,
        ),
        (
            "a cookie's sealed value as a bearer token",
            vec![authorization(&bearer("Bearer ", &staff_cookie_value, b""))],
            None,
        ),
        (
            "a token as the session cookie",
            vec![cookie(format!("{name}={staff}").as_bytes())],
            None,
        ),
    ];
    for (case, headers, expected) in &cases {
        agree(&app, &sessions, case, headers, *expected).await;
    }
    // A bearer of ours that does not open is refused as such, not taken for no login.
    for headers in [
        vec![authorization(&bearer("Bearer ", &tampered, b""))],
        vec![authorization(b"Bearer")],
        vec![authorization(&bearer("Bearer ", &staff, "é".as_bytes()))],
        vec![authorization(&bearer("Bearer ", &staff_cookie_value, b""))],
    ] {
        let (status, seen) = layer_answer(&app.http, &app.url("/me"), &headers).await;
        assert_eq!((status, seen), (401, Err("invalid_token".to_owned())));
    }
    assert_eq!(app.dingtalk.userinfo_calls(), 0);
}

// ------------------------------------------------------------------------------------------------
// What the cache remembers still ends
// ------------------------------------------------------------------------------------------------

/// Every copy of a cached cookie or token with one byte changed, a byte cut or a byte added is
/// refused, after the genuine one was served from the cache several times, and the genuine one is
/// still served afterwards.
#[tokio::test]
async fn no_altered_copy_of_a_cached_session_is_ever_served() {
    let (app, sessions) = session_app().await;
    let name = sessions.cookie_name().to_owned();
    let sealed = value_of(&sessions.cookie_header(&user("staff01")));
    let token = sessions.issue_token(&user("boss01"));
    let by_cookie = |value: &str| vec![cookie(format!("{name}={value}").as_bytes())];
    let by_token = |value: &str| vec![authorization(format!("Bearer {value}").as_bytes())];
    for _ in 0..3 {
        let (status, seen) = layer_answer(&app.http, &app.url("/me"), &by_cookie(&sealed)).await;
        assert_eq!((status, seen), (200, Ok("staff01".to_owned())));
        let (status, seen) = layer_answer(&app.http, &app.url("/me"), &by_token(&token)).await;
        assert_eq!((status, seen), (200, Ok("boss01".to_owned())));
    }
    let served = app.handler_runs();
    for (kind, genuine) in [("cookie", sealed.as_str()), ("token", token.as_str())] {
        let mut copies: Vec<String> = (0..genuine.len()).map(|at| altered(genuine, at)).collect();
        copies.push(genuine[..genuine.len() - 1].to_owned());
        copies.push(genuine[1..].to_owned());
        copies.push(format!("{genuine}A"));
        copies.push(format!("A{genuine}"));
        for copy in copies.iter().filter(|copy| copy.as_str() != genuine) {
            let headers = if kind == "cookie" {
                by_cookie(copy)
            } else {
                by_token(copy)
            };
            let (status, _) = layer_answer(&app.http, &app.url("/me"), &headers).await;
            assert_eq!(status, 401, "{kind}: an altered copy was served: {copy}");
        }
    }
    assert_eq!(
        app.handler_runs(),
        served,
        "no altered copy reached the handler"
    );
    let (status, seen) = layer_answer(&app.http, &app.url("/me"), &by_cookie(&sealed)).await;
    assert_eq!((status, seen), (200, Ok("staff01".to_owned())));
    let (status, seen) = layer_answer(&app.http, &app.url("/me"), &by_token(&token)).await;
    assert_eq!((status, seen), (200, Ok("boss01".to_owned())));
    assert_eq!(app.dingtalk.userinfo_calls(), 0);
}

/// A cookie started by a code and a token, served from the cache several times, stop being
/// served once their (short) lifetime is over.
#[tokio::test]
async fn a_cached_session_still_expires() {
    let app = TestApp::with(support::dingtalk().await, |builder| {
        builder
            .session(session().lifetime(Duration::from_millis(1_500)))
            .token_login("/login")
    })
    .await;
    let sessions = app.layer.sessions().unwrap();
    let response = app
        .get_with_code("/me", &app.dingtalk.issue_code("staff01"))
        .await;
    assert_eq!(response.status(), 200);
    let set = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    let pair = set.split(';').next().unwrap().to_owned();
    let token = sessions.issue_token(&user("boss01"));
    let by_cookie = vec![cookie(pair.as_bytes())];
    let by_token = vec![authorization(format!("Bearer {token}").as_bytes())];
    for _ in 0..5 {
        let (status, seen) = layer_answer(&app.http, &app.url("/me"), &by_cookie).await;
        assert_eq!((status, seen), (200, Ok("staff01".to_owned())));
        let (status, seen) = layer_answer(&app.http, &app.url("/me"), &by_token).await;
        assert_eq!((status, seen), (200, Ok("boss01".to_owned())));
    }
    tokio::time::sleep(Duration::from_millis(1_700)).await;
    for _ in 0..2 {
        let (status, seen) = layer_answer(&app.http, &app.url("/me"), &by_cookie).await;
        assert_eq!((status, seen), (401, Err("missing_code".to_owned())));
        let (status, seen) = layer_answer(&app.http, &app.url("/me"), &by_token).await;
        assert_eq!((status, seen), (401, Err("invalid_token".to_owned())));
    }
    assert_eq!(
        sessions.user_from_headers(&header_map(&by_cookie)).await,
        None
    );
    assert_eq!(
        app.dingtalk.userinfo_calls(),
        1,
        "only the code was exchanged"
    );
}

/// `revoke_user` ends a cached cookie and a cached token of that user at once, and no one
/// else's; a session made more than a second later works again.
#[tokio::test]
async fn a_cached_session_ends_when_its_user_is_revoked() {
    let (app, sessions) = session_app().await;
    let name = sessions.cookie_name().to_owned();
    let staff_cookie = sessions.cookie_header(&user("staff01"));
    let staff_token = sessions.issue_token(&user("staff01"));
    let boss_cookie = sessions.cookie_header(&user("boss01"));
    let boss_token = sessions.issue_token(&user("boss01"));
    let by_token = |token: &str| vec![authorization(format!("Bearer {token}").as_bytes())];
    for _ in 0..3 {
        for (headers, userid) in [
            (
                vec![(http::header::COOKIE, staff_cookie.clone())],
                "staff01",
            ),
            (by_token(&staff_token), "staff01"),
            (vec![(http::header::COOKIE, boss_cookie.clone())], "boss01"),
            (by_token(&boss_token), "boss01"),
        ] {
            let (status, seen) = layer_answer(&app.http, &app.url("/me"), &headers).await;
            assert_eq!((status, seen), (200, Ok(userid.to_owned())));
        }
    }
    assert!(app.layer.client().revoke_user("staff01").await);
    for _ in 0..2 {
        let response = app
            .http
            .get(app.url("/me"))
            .header("cookie", staff_cookie.clone())
            .send()
            .await
            .unwrap();
        let headers = assert_rejection(response, 401, "session_revoked", &[]).await;
        let cleared = headers["set-cookie"].to_str().unwrap();
        assert!(cleared.starts_with(&format!("{name}=;")), "{cleared}");
        let (status, seen) =
            layer_answer(&app.http, &app.url("/me"), &by_token(&staff_token)).await;
        assert_eq!((status, seen), (401, Err("invalid_token".to_owned())));
    }
    let mut headers = HeaderMap::new();
    headers.insert(http::header::COOKIE, staff_cookie.clone());
    assert_eq!(sessions.user_from_headers(&headers).await, None);
    // The other user's cached sessions go on.
    let (status, seen) = layer_answer(
        &app.http,
        &app.url("/me"),
        &[(http::header::COOKIE, boss_cookie.clone())],
    )
    .await;
    assert_eq!((status, seen), (200, Ok("boss01".to_owned())));
    let (status, _) = layer_answer(&app.http, &app.url("/me"), &by_token(&boss_token)).await;
    assert_eq!(status, 200);
    // A new login later than the revocation's skew works.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let fresh = sessions.cookie_header(&user("staff01"));
    let (status, seen) =
        layer_answer(&app.http, &app.url("/me"), &[(http::header::COOKIE, fresh)]).await;
    assert_eq!((status, seen), (200, Ok("staff01".to_owned())));
    assert_eq!(app.dingtalk.userinfo_calls(), 0);
}

/// A session sealed for another app with the same key, or for this app with another key, never
/// opens here, even after the other layer served it (and cached it) many times.
#[tokio::test]
async fn a_session_another_layer_cached_never_hits_here() {
    let ours = TestApp::with(support::dingtalk().await, |builder| {
        builder
            .session(session().opened_session_cache(2))
            .token_login("/login")
    })
    .await;
    let other_app = MockDingTalk::builder()
        .app("another-app-key", "another-app-secret")
        .start()
        .await;
    for known in support::known_users() {
        other_app.add_user(known);
    }
    let theirs = TestApp::with(other_app, |builder| {
        builder
            .session(session().opened_session_cache(2))
            .token_login("/login")
    })
    .await;
    let other_key = TestApp::with(support::dingtalk().await, |builder| {
        builder
            .session(SessionConfig::new(SessionKey::generate()).opened_session_cache(2))
            .token_login("/login")
    })
    .await;
    for foreign in [&theirs, &other_key] {
        let sessions = foreign.layer.sessions().unwrap();
        let cookie_header = sessions.cookie_header(&user("boss01"));
        let token = sessions.issue_token(&user("boss01"));
        let by_token = vec![authorization(format!("Bearer {token}").as_bytes())];
        let by_cookie = vec![(http::header::COOKIE, cookie_header)];
        for _ in 0..3 {
            for headers in [&by_cookie, &by_token] {
                let (status, _) = layer_answer(&foreign.http, &foreign.url("/me"), headers).await;
                assert_eq!(status, 200, "served where it was sealed");
                let (status, seen) = layer_answer(&ours.http, &ours.url("/me"), headers).await;
                assert_eq!(status, 401, "a foreign session was served here: {seen:?}");
            }
        }
        let ours_sessions = ours.layer.sessions().unwrap();
        assert_eq!(
            ours_sessions
                .user_from_headers(&header_map(&by_cookie))
                .await,
            None
        );
    }
    assert_eq!(ours.handler_runs(), 0);
    assert_eq!(ours.dingtalk.userinfo_calls(), 0);
}

// ------------------------------------------------------------------------------------------------
// Tiny caches under concurrency
// ------------------------------------------------------------------------------------------------

/// 96 users, by cookie and by token, all at once through a cache of two, for several rounds:
/// every request is served as its own user, never another's, with no call to DingTalk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_of_two_under_many_concurrent_users_never_mixes_them_up() {
    let app = TestApp::with(support::dingtalk().await, |builder| {
        builder
            .session(session().opened_session_cache(2))
            .token_login("/login")
    })
    .await;
    let sessions = app.layer.sessions().unwrap();
    let users: Vec<String> = (0..96).map(|i| format!("user{i:03}")).collect();
    let credentials: Arc<Vec<(String, HeaderValue, String)>> = Arc::new(
        users
            .iter()
            .map(|userid| {
                let user = AuthenticatedDingTalkUser::builder(userid.clone(), "张三")
                    .admin_level(AdminLevel::Other)
                    .build();
                (
                    userid.clone(),
                    sessions.cookie_header(&user),
                    sessions.issue_token(&user),
                )
            })
            .collect(),
    );
    let url = app.url("/me");
    let mut tasks = Vec::new();
    for task in 0..24usize {
        let (http, url, credentials) = (app.http.clone(), url.clone(), credentials.clone());
        tasks.push(tokio::spawn(async move {
            let mut mixed = Vec::new();
            for round in 0..8usize {
                for step in 0..credentials.len() / 6 {
                    let index = (task * 7 + round * 13 + step * 5) % credentials.len();
                    let (userid, cookie, token) = &credentials[index];
                    let request = if (task + step) % 2 == 0 {
                        http.get(&url).header("cookie", cookie.clone())
                    } else {
                        http.get(&url).bearer_auth(token)
                    };
                    let response = request.send().await.unwrap();
                    let status = response.status().as_u16();
                    let body = response.text().await.unwrap();
                    let seen: serde_json::Value =
                        serde_json::from_str(&body).unwrap_or(serde_json::Value::Null);
                    if status != 200 || seen["userid"] != userid.as_str() {
                        mixed.push(format!("{userid}: {status} {body}"));
                    }
                }
            }
            mixed
        }));
    }
    let mut mixed = Vec::new();
    for task in tasks {
        mixed.extend(task.await.unwrap());
    }
    assert!(
        mixed.is_empty(),
        "{} wrong answers: {:?}",
        mixed.len(),
        &mixed[..mixed.len().min(5)]
    );
    assert_eq!(app.handler_runs(), 24 * 8 * 16);
    assert_eq!(app.dingtalk.userinfo_calls(), 0);
}

// ------------------------------------------------------------------------------------------------
// Renderings: stacked layers, users put on requests by hand
// ------------------------------------------------------------------------------------------------

/// A renderer that names who rendered: `"<who> (<error kind>)"`.
fn renderer(who: &'static str) -> impl Fn(&AuthError) -> Response<String> + Send + Sync + 'static {
    move |error: &AuthError| {
        Response::builder()
            .status(error.status())
            .body(format!("{who} ({})", error.kind()))
            .unwrap()
    }
}

async fn status_and_body(
    http: &reqwest::Client,
    url: &str,
    headers: &[(HeaderName, HeaderValue)],
) -> (u16, String) {
    let mut request = http.get(url);
    for (name, value) in headers {
        request = request.header(name.clone(), value.clone());
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// Two optional layers with sessions of their own (their own cookies) and renderers of their own,
/// a guard and an extractor behind both: whichever layer signed the user in, by session or by
/// code, from the cache or not, the guard and the extractor render as the inner layer, the last
/// one that saw the request.
#[tokio::test]
async fn behind_two_session_layers_guards_render_as_the_inner_one_on_every_path() {
    let dingtalk = support::dingtalk().await;
    let client = support::client_for(&dingtalk).build().unwrap();
    let layer = |who: &'static str, cookie_name: &'static str, header: &'static str| {
        DingTalkAuthLayer::builder()
            .client(client.clone())
            .code_sources([CodeSource::header(header)])
            .session(
                SessionConfig::new(SessionKey::generate())
                    .cookie_name(cookie_name)
                    .secure(false),
            )
            .optional()
            .on_rejection(renderer(who))
            .build()
            .unwrap()
    };
    let inner = layer("inner", "inner_s", "x-inner-code");
    let outer = layer("outer", "outer_s", "x-outer-code");
    let (inner_sessions, outer_sessions) = (inner.sessions().unwrap(), outer.sessions().unwrap());
    let app = Router::new()
        .route("/admin", get(|| async { "admin" }))
        .route_layer(guard::require_admin())
        .merge(
            Router::new()
                .route("/private", get(|| async { "private" }))
                .route_layer(guard::authenticated()),
        )
        .route(
            "/me",
            get(|user: AuthenticatedDingTalkUser| async move { user.userid().to_owned() }),
        )
        .layer(inner)
        .layer(outer);
    let (address, _server) = support::serve(app).await;
    let web = reqwest::Client::new();
    let url = |path: &str| format!("http://{address}{path}");
    let staff = user("staff01");
    let cookie_of = |sessions: &Sessions| (http::header::COOKIE, sessions.cookie_header(&staff));
    let mut answers = Vec::new();
    let cases: Vec<(&str, Vec<(HeaderName, HeaderValue)>)> = vec![
        ("outer cookie", vec![cookie_of(&outer_sessions)]),
        ("inner cookie", vec![cookie_of(&inner_sessions)]),
        (
            "both cookies",
            vec![cookie_of(&outer_sessions), cookie_of(&inner_sessions)],
        ),
    ];
    for (case, headers) in &cases {
        for _ in 0..2 {
            let answer = status_and_body(&web, &url("/admin"), headers).await;
            answers.push((case.to_string(), answer));
        }
        // The user is there for the extractor and `guard::authenticated`.
        assert_eq!(
            status_and_body(&web, &url("/me"), headers).await,
            (200, "staff01".to_owned()),
            "{case}"
        );
        assert_eq!(
            status_and_body(&web, &url("/private"), headers).await,
            (200, "private".to_owned()),
            "{case}"
        );
    }
    // By code: the outer layer signs in (exchange, then the cache), with the inner's cookie, or
    // the inner layer by code with the outer's cookie.
    for (case, code_header, extra) in [
        ("outer code", "x-outer-code", None),
        (
            "outer code, inner cookie",
            "x-outer-code",
            Some(cookie_of(&inner_sessions)),
        ),
        (
            "inner code, outer cookie",
            "x-inner-code",
            Some(cookie_of(&outer_sessions)),
        ),
    ] {
        let code = dingtalk.issue_code("staff01");
        for _ in 0..2 {
            let mut headers = vec![(
                HeaderName::from_static(code_header),
                HeaderValue::from_str(&code).unwrap(),
            )];
            headers.extend(extra.clone());
            let answer = status_and_body(&web, &url("/admin"), &headers).await;
            answers.push((case.to_string(), answer));
        }
    }
    let expected: Vec<_> = answers
        .iter()
        .map(|(case, _)| (case.clone(), (403, "inner (forbidden)".to_owned())))
        .collect();
    assert_eq!(answers, expected);
    // Nobody: both let it through, the guard and the extractor answer as the inner one.
    for path in ["/admin", "/private", "/me"] {
        assert_eq!(
            status_and_body(&web, &url(path), &[]).await,
            (401, "inner (missing_code)".to_owned()),
            "{path}"
        );
    }
    // An administrator passes whichever layer signed them in.
    let boss = user("boss01");
    for sessions in [&outer_sessions, &inner_sessions] {
        let headers = [(http::header::COOKIE, sessions.cookie_header(&boss))];
        assert_eq!(
            status_and_body(&web, &url("/admin"), &headers).await,
            (200, "admin".to_owned())
        );
    }
    assert_eq!(dingtalk.userinfo_calls(), 3, "each code exchanged once");
}

/// A layer with sessions (cookie `s`, not `Secure`) whose rejections render as `layer (<kind>)`.
fn rendering_layer(dingtalk: &MockDingTalk) -> DingTalkAuthLayer {
    support::layer_for(dingtalk)
        .session(session().secure(false).cookie_name("s"))
        .on_rejection(renderer("layer"))
        .build()
        .unwrap()
}

/// `url` answered as `userid` on each path the layer signs in by: a code exchanged, the same code
/// from the identity cache, a session cookie, and the same cookie from the opened sessions.
async fn on_every_path(
    dingtalk: &MockDingTalk,
    sessions: &Sessions,
    url: &str,
    userid: &str,
) -> Vec<(&'static str, (u16, String))> {
    let web = reqwest::Client::new();
    let code = dingtalk.issue_code(userid);
    let by_code = [(
        HeaderName::from_static("x-dingtalk-code"),
        HeaderValue::from_str(&code).unwrap(),
    )];
    let by_cookie = [(http::header::COOKIE, sessions.cookie_header(&user(userid)))];
    vec![
        (
            "code, exchanged",
            status_and_body(&web, url, &by_code).await,
        ),
        (
            "code, from the cache",
            status_and_body(&web, url, &by_code).await,
        ),
        ("session", status_and_body(&web, url, &by_cookie).await),
        (
            "session, from the cache",
            status_and_body(&web, url, &by_cookie).await,
        ),
    ]
}

/// An app that swaps the layer's user for one of its own behind the layer (an `Extension` inside
/// it: impersonation, a narrowed user): the layer saw the request, so a guard behind renders its
/// 403 with the layer's renderer (the guard docs), and the same whether the layer signed the user
/// in by an exchange, from the identity cache, or by a session.
#[tokio::test]
async fn a_user_swapped_in_behind_the_layer_is_refused_with_the_layers_renderer_on_every_path() {
    let dingtalk = support::dingtalk().await;
    let layer = rendering_layer(&dingtalk);
    let sessions = layer.sessions().unwrap();
    let narrowed = AuthenticatedDingTalkUser::builder("boss01", "Wang Wu (read only)").build();
    let app = Router::new()
        .route("/admin", get(|| async { "admin" }))
        .route_layer(guard::require_admin())
        .layer(Extension(narrowed))
        .layer(layer);
    let (address, _server) = support::serve(app).await;
    let answers = on_every_path(
        &dingtalk,
        &sessions,
        &format!("http://{address}/admin"),
        "boss01",
    )
    .await;
    let expected: Vec<_> = answers
        .iter()
        .map(|(case, _)| (*case, (403, "layer (forbidden)".to_owned())))
        .collect();
    assert_eq!(answers, expected);
    assert_eq!(dingtalk.userinfo_calls(), 1);
}

/// A middleware behind the layer that takes the user off the request (signing out mid-request, a
/// read-only mode): the layer saw the request, so a guard behind answers 401 `missing_code` in
/// the layer's rendering, not the 500 "not behind the layer" of a misconfigured app; the same on
/// the paths that sign in at once as on those that wait.
#[tokio::test]
async fn a_user_taken_off_behind_the_layer_is_a_401_rendered_by_the_layer_not_a_500() {
    let dingtalk = support::dingtalk().await;
    let layer = rendering_layer(&dingtalk);
    let sessions = layer.sessions().unwrap();
    let app = Router::new()
        .route("/private", get(|| async { "private" }))
        .route_layer(guard::authenticated())
        .layer(axum::middleware::map_request(
            |mut request: Request| async move {
                request
                    .extensions_mut()
                    .remove::<AuthenticatedDingTalkUser>();
                request
            },
        ))
        .layer(layer);
    let (address, _server) = support::serve(app).await;
    let answers = on_every_path(
        &dingtalk,
        &sessions,
        &format!("http://{address}/private"),
        "staff01",
    )
    .await;
    let expected: Vec<_> = answers
        .iter()
        .map(|(case, _)| (*case, (401, "layer (missing_code)".to_owned())))
        .collect();
    assert_eq!(answers, expected);
    assert_eq!(dingtalk.userinfo_calls(), 1);
}

/// `FixedUserLayer` (the testing stand-in) behaves as its docs say, alone or inside a real layer
/// that signed someone in by session: its user, with the default rendering.
#[tokio::test]
async fn the_fixed_user_stand_in_renders_as_documented_alone_and_behind_a_layer() {
    let dingtalk = support::dingtalk().await;
    let layer = rendering_layer(&dingtalk);
    let sessions = layer.sessions().unwrap();
    let staff = user("staff01");
    let routes = || {
        Router::new()
            .route("/admin", get(|| async { "admin" }))
            .route_layer(guard::require_admin())
            .route(
                "/me",
                get(|user: AuthenticatedDingTalkUser| async move { user.userid().to_owned() }),
            )
            .layer(FixedUserLayer::new(staff.clone()))
    };
    let (alone, _alone_server) = support::serve(routes()).await;
    let (behind, _behind_server) = support::serve(routes().layer(layer)).await;
    let web = reqwest::Client::new();
    let boss_cookie = [(
        http::header::COOKIE,
        sessions.cookie_header(&user("boss01")),
    )];
    for (address, headers) in [(alone, &[][..]), (behind, &boss_cookie[..])] {
        for _ in 0..2 {
            let mut request = web.get(format!("http://{address}/admin"));
            for (name, value) in headers {
                request = request.header(name.clone(), value.clone());
            }
            assert_rejection(request.send().await.unwrap(), 403, "forbidden", &[]).await;
            let (status, body) =
                status_and_body(&web, &format!("http://{address}/me"), headers).await;
            assert_eq!((status, body.as_str()), (200, "staff01"));
        }
    }
    assert_eq!(dingtalk.userinfo_calls(), 0);
}

// ------------------------------------------------------------------------------------------------
// Codes checked as bytes
// ------------------------------------------------------------------------------------------------

/// Header codes that are not UTF-8, not ASCII, hold a tab or a space, or are one byte too long:
/// `invalid_code` with no call to DingTalk; the longest well-formed code is asked of DingTalk.
#[tokio::test]
async fn malformed_header_codes_never_reach_dingtalk() {
    let app = TestApp::start().await;
    let code = app.dingtalk.issue_code("staff01");
    let too_long = "a".repeat(MAX_CODE_LEN + 1);
    let bad: Vec<(&str, Vec<u8>)> = vec![
        ("not UTF-8", b"\xff\xfe\xfd\xfc".to_vec()),
        (
            "a valid code with a byte not UTF-8",
            [code.as_bytes(), b"\x80".as_slice()].concat(),
        ),
        ("UTF-8, not ASCII", "码码码码".as_bytes().to_vec()),
        (
            "a valid code with a character not ASCII",
            format!("{code}é").into(),
        ),
        (
            "a tab inside",
            format!("{}\t{}", &code[..4], &code[4..]).into(),
        ),
        (
            "a space inside",
            format!("{} {}", &code[..4], &code[4..]).into(),
        ),
        ("one byte too long", too_long.clone().into()),
        (
            "one byte too long, with obs-text at the end",
            [&too_long.as_bytes()[..MAX_CODE_LEN], b"\xe9".as_slice()].concat(),
        ),
        (
            "the longest length, with obs-text at the end",
            [&too_long.as_bytes()[..MAX_CODE_LEN - 1], b"\xe9".as_slice()].concat(),
        ),
    ];
    for (case, value) in &bad {
        let response = app
            .http
            .get(app.url(&format!("/me?code={code}")))
            .header("x-dingtalk-code", HeaderValue::from_bytes(value).unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{case}");
        assert_eq!(json(response).await["error"], "invalid_code", "{case}");
    }
    // Two headers, the valid code and a copy with one byte that is not UTF-8: ambiguous.
    let response = app
        .http
        .get(app.url("/me"))
        .header("x-dingtalk-code", code.as_str())
        .header(
            "x-dingtalk-code",
            HeaderValue::from_bytes(&[code.as_bytes(), b"\xff".as_slice()].concat()).unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_rejection(response, 401, "invalid_code", &[&code]).await;
    assert_eq!(app.dingtalk.userinfo_calls(), 0, "nothing reached DingTalk");
    assert_eq!(app.handler_runs(), 0);
    // The longest well-formed code is DingTalk's to judge (it knows no such code).
    let longest = "a".repeat(MAX_CODE_LEN);
    let response = app.get_with_code("/me", &longest).await;
    assert_rejection(response, 401, "code_rejected", &[&longest]).await;
    assert_eq!(app.dingtalk.userinfo_calls(), 1);
    // And the genuine code still signs in, once.
    let response = app.get_with_code("/me", &code).await;
    assert_eq!(json(response).await["userid"], "staff01");
    assert_eq!(app.dingtalk.userinfo_calls(), 2);
}
