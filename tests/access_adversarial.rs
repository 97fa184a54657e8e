//! Hostile tests of "who may do what, and access that ends when people leave": revocation holes
//! (replicas, cached codes, token logins, `Sessions`, restarts, outages, third-party corps, odd
//! userids, thousands of revocations), re-validation (load, slow and throttling DingTalk, leavers
//! coming back, extreme intervals), the app's resolver (concurrency, panics, slowness) and
//! profiles and guards (hostile directory answers, misconfiguration, privacy, calls while failing).
//! Public API only.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::{Extension, Json, Router};
use futures_util::StreamExt;
use futures_util::future::join_all;
use reqwest::header::{COOKIE, SET_COOKIE};
use support::store::{Prefix, RedisServer, Replica, SHARING_TEST_TIMEOUT};
use support::{TestApp, json};
use tower_dingtalk_auth::testing::{DirectoryEntry, Endpoint, Fault, MockDingTalk};
use tower_dingtalk_auth::{
    AuthError, AuthenticatedDingTalkUser, DingTalkAuthLayer, DingTalkClient, ProfileFields,
    SessionConfig, SessionKey, guard,
};

fn session(key: &SessionKey) -> SessionConfig {
    SessionConfig::new(key.clone()).secure(false)
}

/// The `name=value` of the session cookie a response sets.
fn cookie_of(response: &reqwest::Response) -> String {
    let set = response
        .headers()
        .get(SET_COOKIE)
        .unwrap_or_else(|| panic!("no Set-Cookie on a {}", response.status()))
        .to_str()
        .unwrap();
    set.split(';').next().unwrap().to_owned()
}

async fn get_with_cookie(http: &reqwest::Client, url: &str, cookie: &str) -> reqwest::Response {
    http.get(url).header(COOKIE, cookie).send().await.unwrap()
}

async fn get_with_bearer(http: &reqwest::Client, url: &str, token: &str) -> reqwest::Response {
    http.get(url)
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap()
}

async fn token_for(app_base: &str, http: &reqwest::Client, code: &str) -> reqwest::Response {
    http.post(format!("{app_base}/auth/login"))
        .json(&serde_json::json!({ "code": code }))
        .send()
        .await
        .unwrap()
}

fn headers_with_cookie(cookie: &str) -> http::HeaderMap {
    let mut headers = http::HeaderMap::new();
    headers.insert(http::header::COOKIE, cookie.parse().unwrap());
    headers
}

async fn replica_on(
    dingtalk: &MockDingTalk,
    prefix: &Prefix,
    configure_client: impl FnOnce(
        tower_dingtalk_auth::DingTalkClientBuilder,
    ) -> tower_dingtalk_auth::DingTalkClientBuilder,
    configure_layer: impl FnOnce(
        tower_dingtalk_auth::DingTalkAuthLayerBuilder,
    ) -> tower_dingtalk_auth::DingTalkAuthLayerBuilder,
) -> Replica {
    let store = prefix.store(|b| b.timeout(SHARING_TEST_TIMEOUT)).await;
    Replica::start_with(dingtalk, store, configure_client, configure_layer).await
}

/// Polls `check` every 20 ms until it holds or `within` passes; answers how long it took.
async fn eventually<F, Fut>(within: Duration, mut check: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while started.elapsed() < within {
        if check().await {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

// ------------------------------------------------------------------------------------------------
// Revocation holes
// ------------------------------------------------------------------------------------------------

/// An internal app configured with its `corp_id` (as the docs' own examples do): its users carry
/// that corp id, and `revoke_user` (the internal app's call) must still end their sessions.
#[tokio::test]
async fn revoke_user_ends_the_sessions_of_an_internal_app_configured_with_its_corp_id() {
    let key = SessionKey::generate();
    let app = TestApp::with_client(
        support::dingtalk().await,
        |client| client.corp_id("dingcorp123"),
        |layer| layer.session(session(&key)).token_login("/auth/login"),
    )
    .await;
    let signed_in = app
        .get_with_code("/me", &app.dingtalk.issue_code("staff01"))
        .await;
    let cookie = cookie_of(&signed_in);
    assert_eq!(json(signed_in).await["corp_id"], "dingcorp123");
    let token = json(token_for(&app.url(""), &app.http, &app.dingtalk.issue_code("staff01")).await)
        .await["token"]
        .as_str()
        .unwrap()
        .to_owned();

    assert!(app.layer.client().revoke_user("staff01").await);
    let cookie_after = get_with_cookie(&app.http, &app.url("/me"), &cookie).await;
    let token_after = get_with_bearer(&app.http, &app.url("/me"), &token).await;
    let (cookie_status, token_status) = (cookie_after.status(), token_after.status());
    assert_eq!(
        (cookie_status.as_u16(), token_status.as_u16()),
        (401, 401),
        "after revoke_user(\"staff01\") the cookie got {cookie_status} and the token {token_status}"
    );
}

/// A code exchanged on replica A before the revocation, presented to replica B (which reads it from
/// the store) after it: "cached codes" end "on every replica".
#[tokio::test]
async fn a_revoked_users_cached_code_is_refused_on_the_other_replicas() {
    let prefix = Prefix::new("adv-code-elsewhere");
    let dingtalk = support::dingtalk().await;
    let mut replicas = Vec::new();
    for _ in 0..3 {
        replicas.push(replica_on(&dingtalk, &prefix, |c| c, |l| l).await);
    }
    let code = dingtalk.issue_code("staff01");
    replicas[0].expect_user(&code, "staff01").await;
    assert!(replicas[0].layer.client().revoke_user("staff01").await);
    // Well past the poll (250 ms): every replica knows of the revocation.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let on_a = replicas[0].get(&code).await.status();
    let on_b = replicas[1].get(&code).await.status();
    // Past the one-second skew: an identity read from the store now must not count as "now".
    tokio::time::sleep(Duration::from_millis(700)).await;
    let on_c = replicas[2].get(&code).await.status();
    assert_eq!(
        (on_a.as_u16(), on_b.as_u16(), on_c.as_u16()),
        (401, 401, 401),
        "the revoked user's cached code: A {on_a}, B (0.6 s later) {on_b}, C (1.3 s later) {on_c}"
    );
    assert_eq!(dingtalk.userinfo_calls(), 1);
}

/// Two layers on one client: an API layer (no sessions) that exchanged a code, and a layer with a
/// token login. After `revoke_user`, the cached code must not buy a bearer token.
#[tokio::test]
async fn the_token_login_issues_no_token_for_a_code_cached_before_the_revocation() {
    let dingtalk = support::dingtalk().await;
    let client = dingtalk.client_builder().build().unwrap();
    let api = DingTalkAuthLayer::builder()
        .client(client.clone())
        .build()
        .unwrap();
    let tokens = DingTalkAuthLayer::builder()
        .client(client.clone())
        .session(session(&SessionKey::generate()))
        .token_login("/auth/login")
        .build()
        .unwrap();
    let runs = Arc::new(AtomicU64::new(0));
    let (api_addr, _a) = support::serve(support::routes(runs.clone()).layer(api)).await;
    let (tokens_addr, _t) = support::serve(support::routes(runs).layer(tokens)).await;
    let http = reqwest::Client::new();
    let code = dingtalk.issue_code("staff01");
    let first = http
        .get(format!("http://{api_addr}/me"))
        .header("x-dingtalk-code", &code)
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 200);

    assert!(client.revoke_user("staff01").await);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let base = format!("http://{tokens_addr}");
    let login = token_for(&base, &http, &code).await;
    let status = login.status();
    if status == 200 {
        let token = json(login).await["token"].as_str().unwrap().to_owned();
        let used = get_with_bearer(&http, &format!("{base}/me"), &token).await;
        panic!(
            "a code cached before revoke_user bought a bearer token after it (200), and the token \
             then got {} on /me",
            used.status()
        );
    }
    support::assert_rejection(login, 401, "session_revoked", &[]).await;
    assert_eq!(dingtalk.userinfo_calls(), 1);
}

/// `Sessions::user_from_headers` on a replica that just started (a restart): the revocation is in
/// the store, and "a replica that restarts still refuses those sessions".
#[tokio::test]
async fn sessions_user_from_headers_on_a_restarted_replica_refuses_a_revoked_user() {
    let prefix = Prefix::new("adv-sessions-restart");
    let key = SessionKey::generate();
    let dingtalk = support::dingtalk().await;
    let a = replica_on(&dingtalk, &prefix, |c| c, |l| l.session(session(&key))).await;
    let cookie = cookie_of(&a.get(&dingtalk.issue_code("staff01")).await);
    assert!(a.layer.client().revoke_user("staff01").await);

    let restarted = replica_on(&dingtalk, &prefix, |c| c, |l| l.session(session(&key))).await;
    let sessions = restarted.layer.sessions().expect("sessions");
    let user = sessions
        .user_from_headers(&headers_with_cookie(&cookie))
        .await;
    assert!(
        user.is_none(),
        "a restarted replica's Sessions::user_from_headers answered the revoked user {:?}",
        user.map(|u| u.userid().to_owned())
    );
    // The layer itself, on the same replica, refuses it.
    let response = get_with_cookie(&restarted.http, &restarted.url(), &cookie).await;
    assert_eq!(response.status(), 401);
}

/// `Sessions::user_from_headers` on a running replica, for a user revoked on another one.
#[tokio::test]
async fn sessions_user_from_headers_refuses_a_user_revoked_on_another_replica() {
    let prefix = Prefix::new("adv-sessions-other");
    let key = SessionKey::generate();
    let dingtalk = support::dingtalk().await;
    let a = replica_on(&dingtalk, &prefix, |c| c, |l| l.session(session(&key))).await;
    let b = replica_on(&dingtalk, &prefix, |c| c, |l| l.session(session(&key))).await;
    let cookie = cookie_of(&a.get(&dingtalk.issue_code("staff01")).await);
    let sessions = a.layer.sessions().unwrap();
    let headers = headers_with_cookie(&cookie);
    assert!(sessions.user_from_headers(&headers).await.is_some());
    assert!(b.layer.client().revoke_user("staff01").await);
    let took = eventually(Duration::from_secs(1), || async {
        sessions.user_from_headers(&headers).await.is_none()
    })
    .await;
    assert!(
        took.is_some(),
        "still answered a second after the revocation"
    );
}

/// A bearer token refreshed on replica A in the window before B's revocation reaches A: the
/// refreshed token keeps the login's time and ends with it.
#[tokio::test]
async fn a_token_refreshed_in_the_window_before_the_revocation_arrives_ends_too() {
    let prefix = Prefix::new("adv-refresh-window");
    let key = SessionKey::generate();
    let dingtalk = support::dingtalk().await;
    let layer = |l: tower_dingtalk_auth::DingTalkAuthLayerBuilder| {
        l.session(session(&key)).token_login("/auth/login")
    };
    let a = replica_on(&dingtalk, &prefix, |c| c, layer).await;
    let b = replica_on(&dingtalk, &prefix, |c| c, layer).await;
    let base_a = format!("http://{}", a.addr);
    let token =
        json(token_for(&base_a, &a.http, &dingtalk.issue_code("staff01")).await).await["token"]
            .as_str()
            .unwrap()
            .to_owned();
    // A signs in the user just before B revokes them, too.
    let cookie = cookie_of(&a.get(&dingtalk.issue_code("staff01")).await);
    assert!(b.layer.client().revoke_user("staff01").await);
    // At once, on A, which has not read the log yet (or has: either way the token must end).
    let refreshed = a
        .http
        .post(format!("{base_a}/auth/login/refresh"))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    let refreshed_token = if refreshed.status() == 200 {
        Some(json(refreshed).await["token"].as_str().unwrap().to_owned())
    } else {
        assert_eq!(refreshed.status(), 401);
        None
    };
    tokio::time::sleep(Duration::from_millis(600)).await;
    for replica in [&a, &b] {
        let url = replica.url();
        assert_eq!(
            get_with_bearer(&replica.http, &url, &token).await.status(),
            401
        );
        if let Some(refreshed) = &refreshed_token {
            assert_eq!(
                get_with_bearer(&replica.http, &url, refreshed)
                    .await
                    .status(),
                401,
                "a token refreshed in the window outlived the revocation"
            );
        }
        assert_eq!(
            get_with_cookie(&replica.http, &url, &cookie).await.status(),
            401,
            "a session signed in just before the revocation"
        );
    }
}

/// Third-party apps: revoking `u1` of corp A leaves `u1` of corp B signed in.
#[tokio::test]
async fn revoke_corp_user_in_one_corp_leaves_the_same_userid_in_another() {
    const CORP_A: &str = "dingcorpa0001";
    const CORP_B: &str = "dingcorpb0002";
    let dingtalk = MockDingTalk::start().await;
    for corp in [CORP_A, CORP_B] {
        dingtalk.add_corp(corp);
        dingtalk.add_corp_user(
            corp,
            AuthenticatedDingTalkUser::builder("u1", format!("u1 of {corp}")).build(),
        );
    }
    let (suite, secret) = (dingtalk.suite_key(), dingtalk.suite_secret());
    let key = SessionKey::generate();
    let app = TestApp::with_client(
        dingtalk,
        move |c| c.third_party_app(suite, secret),
        |l| l.authorized_corps([CORP_A, CORP_B]).session(session(&key)),
    )
    .await;
    let mut cookies = Vec::new();
    for corp in [CORP_A, CORP_B] {
        let response = app
            .http
            .get(app.url("/me"))
            .header("x-dingtalk-code", app.dingtalk.issue_corp_code(corp, "u1"))
            .header("x-dingtalk-corp-id", corp)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        cookies.push(cookie_of(&response));
    }
    assert!(app.layer.client().revoke_corp_user(CORP_A, "u1").await);
    let in_a = get_with_cookie(&app.http, &app.url("/me"), &cookies[0]).await;
    support::assert_rejection(in_a, 401, "session_revoked", &[]).await;
    let in_b = get_with_cookie(&app.http, &app.url("/me"), &cookies[1]).await;
    assert_eq!(in_b.status(), 200, "u1 of corp B is another person");
    assert_eq!(json(in_b).await["corp_id"], CORP_B);
}

/// Userids no sane directory has: empty, spaces, unicode, control characters, 300 characters.
/// No panic, the store takes them, nobody else is touched, and the log stays readable for a
/// replica that starts afterwards.
#[tokio::test]
async fn odd_userids_in_revoke_user_neither_panic_nor_touch_anyone_else() {
    let prefix = Prefix::new("adv-odd-userids");
    let key = SessionKey::generate();
    let dingtalk = support::dingtalk().await;
    let long = "x".repeat(300);
    let odd_user = "张三 01";
    dingtalk.add_user(AuthenticatedDingTalkUser::builder(odd_user, "Zhang San").build());
    dingtalk.add_user(AuthenticatedDingTalkUser::builder(long.as_str(), "Long").build());
    let a = replica_on(&dingtalk, &prefix, |c| c, |l| l.session(session(&key))).await;
    let staff = cookie_of(&a.get(&dingtalk.issue_code("staff01")).await);
    let odd = cookie_of(&a.get(&dingtalk.issue_code(odd_user)).await);
    let long_cookie = cookie_of(&a.get(&dingtalk.issue_code(&long)).await);
    let client = a.layer.client();
    for userid in [
        "",
        " ",
        "staff01 ",
        "STAFF01",
        "staff01\n",
        "staff\u{0}01",
        "\u{202e}10ffats",
        "😀",
    ] {
        assert!(client.revoke_user(userid).await, "{userid:?}");
    }
    let still = get_with_cookie(&a.http, &a.url(), &staff).await;
    assert_eq!(still.status(), 200, "staff01 is none of those");
    assert!(client.revoke_user(odd_user).await);
    assert!(client.revoke_user(&long).await);
    for cookie in [&odd, &long_cookie] {
        let response = get_with_cookie(&a.http, &a.url(), cookie).await;
        assert_eq!(response.status(), 401);
    }
    // A replica that starts now reads every entry, odd ones included.
    let restarted = replica_on(&dingtalk, &prefix, |c| c, |l| l.session(session(&key))).await;
    for (cookie, status) in [(&staff, 200), (&odd, 401), (&long_cookie, 401)] {
        let response = get_with_cookie(&restarted.http, &restarted.url(), cookie).await;
        assert_eq!(response.status(), status);
    }
}

/// A revocation made while Redis is frozen (SIGSTOP): the revoking replica refuses at once; once
/// Redis answers again, the other replicas learn it, and a replica started afterwards refuses it.
#[tokio::test]
async fn a_revocation_made_while_redis_is_frozen_reaches_the_others_once_it_thaws() {
    let server = RedisServer::start();
    let prefix = Prefix::on("adv-frozen", server.url());
    let key = SessionKey::generate();
    let dingtalk = support::dingtalk().await;
    let timeout = |b: tower_dingtalk_auth::RedisStoreBuilder| b.timeout(Duration::from_millis(200));
    let mut replicas = Vec::new();
    for _ in 0..2 {
        let store = prefix.store(timeout).await;
        replicas.push(Replica::start(&dingtalk, store, |l| l.session(session(&key))).await);
    }
    let (a, b) = (&replicas[0], &replicas[1]);
    let cookie = cookie_of(&a.get(&dingtalk.issue_code("staff01")).await);
    assert_eq!(
        get_with_cookie(&b.http, &b.url(), &cookie).await.status(),
        200
    );

    server.freeze();
    let started = Instant::now();
    let took = a.layer.client().revoke_user("staff01").await;
    let revoke_took = started.elapsed();
    assert!(!took, "the frozen store cannot have taken it");
    assert!(revoke_took < Duration::from_secs(1), "{revoke_took:?}");
    assert_eq!(
        get_with_cookie(&a.http, &a.url(), &cookie).await.status(),
        401,
        "the revoking replica refuses at once"
    );
    tokio::time::sleep(Duration::from_millis(1000)).await;
    server.thaw();
    let learned = eventually(Duration::from_secs(5), || async {
        get_with_cookie(&b.http, &b.url(), &cookie).await.status() == 401
    })
    .await;
    assert!(
        learned.is_some(),
        "B never learned the revocation after Redis thawed"
    );
    let store = prefix.store(timeout).await;
    let restarted = Replica::start(&dingtalk, store, |l| l.session(session(&key))).await;
    let response = get_with_cookie(&restarted.http, &restarted.url(), &cookie).await;
    assert_eq!(response.status(), 401, "a replica started afterwards");
}

/// 3,000 revocations: quick to make, read by a running replica and by one that starts afterwards
/// (three 1,000-entry pages and more), and without slowing a request down.
#[tokio::test]
async fn thousands_of_revocations_are_made_and_read_quickly() {
    let prefix = Prefix::new("adv-thousands");
    let key = SessionKey::generate();
    let dingtalk = support::dingtalk().await;
    let a = replica_on(&dingtalk, &prefix, |c| c, |l| l.session(session(&key))).await;
    let b = replica_on(&dingtalk, &prefix, |c| c, |l| l.session(session(&key))).await;
    let first = cookie_of(&a.get(&dingtalk.issue_code("staff01")).await);
    let last = cookie_of(&a.get(&dingtalk.issue_code("boss01")).await);
    let kept = cookie_of(&a.get(&dingtalk.issue_code("sub01")).await);
    for replica in [&a, &b] {
        assert_eq!(
            get_with_cookie(&replica.http, &replica.url(), &kept)
                .await
                .status(),
            200
        );
    }
    let client = a.layer.client().clone();
    let started = Instant::now();
    assert!(client.revoke_user("staff01").await);
    let taken = futures_util::stream::iter(0..3000)
        .map(|i| {
            let client = client.clone();
            async move { client.revoke_user(&format!("gone-{i}")).await }
        })
        .buffer_unordered(32)
        .filter(|taken| std::future::ready(*taken))
        .count()
        .await;
    assert!(client.revoke_user("boss01").await);
    let made_in = started.elapsed();
    eprintln!("3,002 revocations in {made_in:?}; {taken} taken by the store");
    assert_eq!(taken, 3000);
    let learned = eventually(Duration::from_secs(2), || async {
        get_with_cookie(&b.http, &b.url(), &last).await.status() == 401
    })
    .await;
    eprintln!("the running replica learned the last one in {learned:?}");
    assert!(
        learned.is_some(),
        "B did not read past 3,000 entries within 2 s"
    );
    let restarted = replica_on(&dingtalk, &prefix, |c| c, |l| l.session(session(&key))).await;
    let started = Instant::now();
    for (cookie, status) in [(&first, 401), (&last, 401), (&kept, 200)] {
        let response = get_with_cookie(&restarted.http, &restarted.url(), cookie).await;
        assert_eq!(response.status(), status);
    }
    let first_requests = started.elapsed();
    eprintln!("a restarted replica's first three requests took {first_requests:?}");
    assert!(first_requests < Duration::from_secs(2));
    // A request that is no session at all stays fast with thousands of revocations held.
    let started = Instant::now();
    for _ in 0..50 {
        assert_eq!(
            get_with_cookie(&b.http, &b.url(), &kept).await.status(),
            200
        );
    }
    assert!(started.elapsed() < Duration::from_secs(2));
}

/// The store's log keeps its newest 100,000 entries (documented). A revocation followed by 99,999
/// more (mostly simulated by filling the log straight in Redis, as that many `revoke_user` calls
/// would) is still read by a replica that starts afterwards.
#[tokio::test]
async fn a_revocation_survives_a_restart_within_the_logs_newest_100k() {
    use redis::Commands;
    let prefix = Prefix::new("adv-100k");
    let key = SessionKey::generate();
    let dingtalk = support::dingtalk().await;
    let a = replica_on(&dingtalk, &prefix, |c| c, |l| l.session(session(&key))).await;
    let cookie = cookie_of(&a.get(&dingtalk.issue_code("staff01")).await);
    assert!(a.layer.client().revoke_user("staff01").await);
    // 100,000 later entries (records no replica opens: read past, as the reader does with any).
    let mut redis = support::store::inspector(&prefix.url);
    let log = format!("{}revocations", prefix.prefix);
    let position = format!("{}revocations:position", prefix.prefix);
    let start: u64 = redis.get(&position).unwrap();
    // The log keeps its newest 100,000 revocations (documented): 99,999 later ones (these and one
    // real one below) keep this one.
    for chunk in (start + 1..=start + 99_998)
        .collect::<Vec<_>>()
        .chunks(10_000)
    {
        let mut pipe = redis::pipe();
        for p in chunk {
            pipe.zadd(&log, format!("{p}:junk"), *p).ignore();
        }
        pipe.query::<()>(&mut redis).unwrap();
    }
    let _: () = redis.set(&position, start + 99_998).unwrap();
    // One more real revocation: the log is trimmed as every revocation trims it.
    assert!(a.layer.client().revoke_user("someone-else").await);
    let restarted = replica_on(&dingtalk, &prefix, |c| c, |l| l.session(session(&key))).await;
    let response = get_with_cookie(&restarted.http, &restarted.url(), &cookie).await;
    assert_eq!(
        response.status(),
        401,
        "a restarted replica serves a session revoked before 99,999 later revocations"
    );
}

// ------------------------------------------------------------------------------------------------
// Re-validation
// ------------------------------------------------------------------------------------------------

/// Four replicas, 20 concurrent requests each at the moment the interval ends, twice: at most one
/// `user/get` per interval.
#[tokio::test]
async fn re_validation_under_concurrent_load_on_four_replicas_costs_one_call_per_interval() {
    let prefix = Prefix::new("adv-reval-load");
    let key = SessionKey::generate();
    let dingtalk = support::dingtalk().await;
    let mut replicas = Vec::new();
    for _ in 0..4 {
        replicas.push(
            replica_on(
                &dingtalk,
                &prefix,
                |c| c.revalidate_after(Duration::from_secs(1)),
                |l| l.session(session(&key)),
            )
            .await,
        );
    }
    let cookie = cookie_of(&replicas[0].get(&dingtalk.issue_code("boss01")).await);
    for round in 1..=2u64 {
        tokio::time::sleep(Duration::from_millis(1050)).await;
        let urls: Vec<String> = replicas.iter().map(Replica::url).collect();
        let requests = replicas.iter().zip(&urls).flat_map(|(replica, url)| {
            (0..20).map(|_| get_with_cookie(&replica.http, url, &cookie))
        });
        let answers = join_all(requests).await;
        assert!(answers.iter().all(|r| r.status() == 200));
        let calls = dingtalk.calls(Endpoint::UserGet);
        assert!(
            calls <= round,
            "round {round}: {calls} user/get calls for one user (80 concurrent requests)"
        );
    }
}

/// A DingTalk that answers `user/get` after 6 s at re-validation: the request is kept (fail open)
/// and waits no longer than the upstream timeout (1 s here), not the 30 s answer timeout.
#[tokio::test]
async fn a_slow_dingtalk_at_re_validation_holds_the_request_no_longer_than_the_upstream_timeout() {
    let key = SessionKey::generate();
    let app = TestApp::with_client(
        support::dingtalk().await,
        |c| {
            c.revalidate_after(Duration::from_secs(1))
                .upstream_timeout(Duration::from_secs(1))
        },
        |l| l.session(session(&key)),
    )
    .await;
    let cookie = cookie_of(
        &app.get_with_code("/me", &app.dingtalk.issue_code("staff01"))
            .await,
    );
    app.dingtalk
        .fail_always(Endpoint::UserGet, Fault::Latency(Duration::from_secs(6)));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let started = Instant::now();
    let response = get_with_cookie(&app.http, &app.url("/me"), &cookie).await;
    let took = started.elapsed();
    assert_eq!(response.status(), 200, "fail open");
    assert!(
        took < Duration::from_millis(2500),
        "the request waited {took:?} for a re-validation (upstream timeout 1 s)"
    );
}

/// 90018 (throttled) at re-validation: the session is kept, quickly, DingTalk asked at most twice.
#[tokio::test]
async fn a_throttling_dingtalk_at_re_validation_keeps_the_session() {
    let key = SessionKey::generate();
    let app = TestApp::with_client(
        support::dingtalk().await,
        |c| c.revalidate_after(Duration::from_secs(1)),
        |l| l.session(session(&key)),
    )
    .await;
    let cookie = cookie_of(
        &app.get_with_code("/me", &app.dingtalk.issue_code("staff01"))
            .await,
    );
    app.dingtalk
        .fail_always(Endpoint::UserGet, Fault::Errcode(90018));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let started = Instant::now();
    for _ in 0..5 {
        let response = get_with_cookie(&app.http, &app.url("/me"), &cookie).await;
        assert_eq!(response.status(), 200);
    }
    let took = started.elapsed();
    let calls = app.dingtalk.calls(Endpoint::UserGet);
    assert!(
        calls <= 2,
        "{calls} user/get calls for one user in one interval"
    );
    assert!(took < Duration::from_secs(6), "{took:?}");
}

/// 60121 and 33012 both mean "left"; any other errcode (60011, no permission) keeps the session.
#[tokio::test]
async fn both_leaver_errcodes_end_the_session_and_others_do_not() {
    let key = SessionKey::generate();
    let app = TestApp::with_client(
        support::dingtalk().await,
        |c| c.revalidate_after(Duration::from_secs(1)),
        |l| l.session(session(&key)),
    )
    .await;
    let mut cookies = Vec::new();
    for user in ["staff01", "boss01", "sub01"] {
        let response = app
            .get_with_code("/me", &app.dingtalk.issue_code(user))
            .await;
        cookies.push(cookie_of(&response));
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut statuses = Vec::new();
    for (cookie, errcode) in cookies.iter().zip([60121, 33012, 60011]) {
        app.dingtalk
            .fail_next(Endpoint::UserGet, Fault::Errcode(errcode), 1);
        let response = get_with_cookie(&app.http, &app.url("/me"), cookie).await;
        statuses.push((errcode, response.status().as_u16()));
    }
    assert_eq!(statuses, [(60121, 401), (33012, 401), (60011, 200)]);
}

/// A user removed from the organisation loses the session; added back, they sign in again, and
/// their new session survives its next re-validation.
#[tokio::test]
async fn a_user_removed_then_added_back_signs_in_again() {
    let key = SessionKey::generate();
    let app = TestApp::with_client(
        support::dingtalk().await,
        |c| c.revalidate_after(Duration::from_secs(1)),
        |l| l.session(session(&key)),
    )
    .await;
    let old = cookie_of(
        &app.get_with_code("/me", &app.dingtalk.issue_code("staff01"))
            .await,
    );
    assert!(app.dingtalk.remove_user("staff01"));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        get_with_cookie(&app.http, &app.url("/me"), &old)
            .await
            .status(),
        401
    );
    let staff = support::known_users().into_iter().next().unwrap();
    app.dingtalk.add_user(staff);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let back = app
        .get_with_code("/me", &app.dingtalk.issue_code("staff01"))
        .await;
    assert_eq!(back.status(), 200);
    let new = cookie_of(&back);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        get_with_cookie(&app.http, &app.url("/me"), &new)
            .await
            .status(),
        200,
        "re-validated: DingTalk knows them again"
    );
    assert_eq!(
        get_with_cookie(&app.http, &app.url("/me"), &old)
            .await
            .status(),
        401,
        "the old session stays ended"
    );
}

/// `revalidate_after(None)`: a leaver keeps the session, and DingTalk is never asked.
#[tokio::test]
async fn revalidate_after_none_makes_no_calls() {
    let key = SessionKey::generate();
    let app = TestApp::with_client(
        support::dingtalk().await,
        |c| c.revalidate_after(None),
        |l| l.session(session(&key)),
    )
    .await;
    let cookie = cookie_of(
        &app.get_with_code("/me", &app.dingtalk.issue_code("staff01"))
            .await,
    );
    app.dingtalk.remove_user("staff01");
    for _ in 0..5 {
        assert_eq!(
            get_with_cookie(&app.http, &app.url("/me"), &cookie)
                .await
                .status(),
            200
        );
    }
    assert_eq!(app.dingtalk.calls(Endpoint::UserGet), 0);
}

/// Extreme intervals and TTLs: `build()` answers `Ok` or a `ConfigError`, never panics.
#[test]
fn extreme_intervals_and_ttls_never_panic_at_build() {
    let base = || {
        DingTalkClient::builder()
            .internal_app("key", "secret")
            .base_url("http://127.0.0.1:9")
    };
    type MakeBuilder = Box<dyn Fn() -> tower_dingtalk_auth::DingTalkClientBuilder>;
    let cases: Vec<(&str, MakeBuilder)> = vec![
        (
            "revalidate_after(ZERO)",
            Box::new(move || base().revalidate_after(Duration::ZERO)),
        ),
        (
            "revalidate_after(MAX)",
            Box::new(move || base().revalidate_after(Duration::MAX)),
        ),
        (
            "revalidate_after(2000 years)",
            Box::new(move || base().revalidate_after(Duration::from_secs(2000 * 365 * 86_400))),
        ),
        (
            "profile_ttl(MAX)",
            Box::new(move || {
                base()
                    .profile(ProfileFields::DEPARTMENTS)
                    .profile_ttl(Duration::MAX)
            }),
        ),
        (
            "profile_ttl(ZERO)",
            Box::new(move || {
                base()
                    .profile(ProfileFields::DEPARTMENTS)
                    .profile_ttl(Duration::ZERO)
            }),
        ),
    ];
    let mut panicked = Vec::new();
    for (name, make) in &cases {
        let built = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| make().build()));
        match built {
            Ok(answer) => eprintln!("{name}: {:?}", answer.map(|_| "a client")),
            Err(_) => panicked.push(*name),
        }
    }
    assert!(panicked.is_empty(), "build() panicked for {panicked:?}");
}

/// `revalidate_after(Duration::ZERO)` (if it builds): every answer is a documented status, the
/// layer keeps working.
#[tokio::test]
async fn a_zero_interval_still_serves() {
    let key = SessionKey::generate();
    let app = TestApp::with_client(
        support::dingtalk().await,
        |c| c.revalidate_after(Duration::ZERO),
        |l| l.session(session(&key)),
    )
    .await;
    let cookie = cookie_of(
        &app.get_with_code("/me", &app.dingtalk.issue_code("staff01"))
            .await,
    );
    for _ in 0..5 {
        assert_eq!(
            get_with_cookie(&app.http, &app.url("/me"), &cookie)
                .await
                .status(),
            200
        );
    }
    eprintln!(
        "interval zero: {} user/get calls for 5 requests",
        app.dingtalk.calls(Endpoint::UserGet)
    );
}

/// A userid that is not a well-formed code (unicode, a space): re-validation is still "at most one
/// call per user per interval across replicas".
#[tokio::test]
async fn re_validating_a_unicode_userid_costs_one_call_per_interval_across_replicas() {
    let prefix = Prefix::new("adv-reval-unicode");
    let key = SessionKey::generate();
    let dingtalk = support::dingtalk().await;
    let userid = "张三 01";
    dingtalk.add_user(AuthenticatedDingTalkUser::builder(userid, "Zhang San").build());
    let mut replicas = Vec::new();
    for _ in 0..4 {
        replicas.push(
            replica_on(
                &dingtalk,
                &prefix,
                |c| c.revalidate_after(Duration::from_secs(1)),
                |l| l.session(session(&key)),
            )
            .await,
        );
    }
    let cookie = cookie_of(&replicas[0].get(&dingtalk.issue_code(userid)).await);
    tokio::time::sleep(Duration::from_millis(1050)).await;
    for replica in &replicas {
        let response = get_with_cookie(&replica.http, &replica.url(), &cookie).await;
        assert_eq!(response.status(), 200);
    }
    let calls = dingtalk.calls(Endpoint::UserGet);
    assert_eq!(
        calls, 1,
        "{calls} user/get calls for one user in one interval"
    );
}

// ------------------------------------------------------------------------------------------------
// The resolver
// ------------------------------------------------------------------------------------------------

#[derive(Clone)]
struct Member(String);

/// An app whose resolver counts its runs, waits `delay`, panics for `super01` and refuses `sub01`.
async fn resolver_app(
    interval: Duration,
    delay: Duration,
) -> (MockDingTalk, String, Arc<AtomicU64>) {
    let dingtalk = support::dingtalk().await;
    let runs = Arc::new(AtomicU64::new(0));
    let counted = runs.clone();
    let client = dingtalk
        .client_builder()
        .revalidate_after(interval)
        .build()
        .unwrap();
    let layer = DingTalkAuthLayer::builder()
        .client(client)
        .session(session(&SessionKey::generate()))
        .resolve_with(move |user: AuthenticatedDingTalkUser| {
            counted.fetch_add(1, Ordering::SeqCst);
            async move {
                tokio::time::sleep(delay).await;
                match user.userid() {
                    "super01" => panic!("the app's resolver panics"),
                    "sub01" => Err(AuthError::forbidden("not a member")),
                    userid => Ok(Member(format!("member {userid}"))),
                }
            }
        })
        .build()
        .unwrap();
    let guarded = Router::new()
        .route(
            "/guarded",
            get(|Extension(member): Extension<Member>| async move { member.0 }),
        )
        .route_layer(guard::require(|user: &AuthenticatedDingTalkUser| {
            user.userid() != "odd01"
        }));
    let app: Router = Router::new()
        .route(
            "/member",
            get(
                |user: AuthenticatedDingTalkUser, Extension(member): Extension<Member>| async move {
                    Json(serde_json::json!({ "userid": user.userid(), "member": member.0 }))
                },
            ),
        )
        .merge(guarded)
        .layer(layer);
    let (addr, _server) = support::serve(app).await;
    std::mem::forget(_server);
    (dingtalk, format!("http://{addr}"), runs)
}

/// Ten concurrent requests with one fresh code are one sign-in: the resolver runs once.
#[tokio::test]
async fn the_resolver_runs_once_for_ten_concurrent_requests_with_one_fresh_code() {
    let (dingtalk, base, runs) =
        resolver_app(Duration::from_secs(600), Duration::from_millis(50)).await;
    let http = reqwest::Client::new();
    let code = dingtalk.issue_code("boss01");
    let answers = join_all((0..10).map(|_| {
        http.get(format!("{base}/member"))
            .header("x-dingtalk-code", &code)
            .send()
    }))
    .await;
    for answer in answers {
        assert_eq!(answer.unwrap().status(), 200);
    }
    assert_eq!(dingtalk.userinfo_calls(), 1);
    let runs = runs.load(Ordering::SeqCst);
    assert_eq!(runs, 1, "the resolver ran {runs} times for one sign-in");
}

/// Twenty concurrent requests with one session when its interval ends are one re-validation: the
/// resolver runs once more, not twenty times.
#[tokio::test]
async fn the_resolver_runs_once_per_re_validation_under_concurrency() {
    let (dingtalk, base, runs) =
        resolver_app(Duration::from_secs(1), Duration::from_millis(50)).await;
    let http = reqwest::Client::new();
    let signed_in = http
        .get(format!("{base}/member"))
        .header("x-dingtalk-code", dingtalk.issue_code("boss01"))
        .send()
        .await
        .unwrap();
    let cookie = cookie_of(&signed_in);
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let answers = join_all((0..20).map(|_| {
        http.get(format!("{base}/member"))
            .header(COOKIE, &cookie)
            .send()
    }))
    .await;
    for answer in answers {
        assert_eq!(answer.unwrap().status(), 200);
    }
    assert_eq!(dingtalk.calls(Endpoint::UserGet), 1, "one re-validation");
    let runs = runs.load(Ordering::SeqCst);
    assert_eq!(
        runs, 2,
        "the sign-in and one re-validation ran the resolver {runs} times"
    );
}

/// A resolver that panics for one user: that request gets no answer (or a 500), and every other
/// user is served as before.
#[tokio::test]
async fn a_panicking_resolver_harms_no_other_user() {
    let (dingtalk, base, _runs) = resolver_app(Duration::from_secs(600), Duration::ZERO).await;
    let http = reqwest::Client::new();
    let panicked = http
        .get(format!("{base}/member"))
        .header("x-dingtalk-code", dingtalk.issue_code("super01"))
        .send()
        .await;
    match panicked {
        Err(error) => eprintln!("the panicking resolver's request: {error}"),
        Ok(response) => assert_eq!(response.status(), 500),
    }
    for user in ["boss01", "staff01"] {
        let response = http
            .get(format!("{base}/member"))
            .header("x-dingtalk-code", dingtalk.issue_code(user))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(json(response).await["member"], format!("member {user}"));
    }
}

/// A resolver that takes 3 s holds its own requests only.
#[tokio::test]
async fn a_slow_resolver_holds_only_its_own_requests() {
    let dingtalk = support::dingtalk().await;
    let slow = Arc::new(AtomicBool::new(true));
    let is_slow = slow.clone();
    let layer = dingtalk
        .layer_builder()
        .resolve_with(move |user: AuthenticatedDingTalkUser| {
            let wait = is_slow.load(Ordering::SeqCst) && user.userid() == "staff01";
            async move {
                if wait {
                    tokio::time::sleep(Duration::from_secs(3)).await;
                }
                Ok(Member(user.userid().to_owned()))
            }
        })
        .build()
        .unwrap();
    let app: Router = support::routes(Arc::new(AtomicU64::new(0))).layer(layer);
    let (addr, _server) = support::serve(app).await;
    let http = reqwest::Client::new();
    let url = format!("http://{addr}/me");
    let slow_request = tokio::spawn({
        let (http, url, code) = (http.clone(), url.clone(), dingtalk.issue_code("staff01"));
        async move {
            let started = Instant::now();
            let status = http
                .get(url)
                .header("x-dingtalk-code", code)
                .send()
                .await
                .unwrap()
                .status();
            (status, started.elapsed())
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    for user in ["boss01", "sub01", "odd01"] {
        let response = http
            .get(&url)
            .header("x-dingtalk-code", dingtalk.issue_code(user))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    let others = started.elapsed();
    assert!(
        others < Duration::from_secs(1),
        "other users waited {others:?}"
    );
    let (status, took) = slow_request.await.unwrap();
    assert_eq!(status, 200);
    assert!(took >= Duration::from_secs(3));
}

/// The resolver's value reaches a handler behind a `route_layer` guard, and a guard's refusal and
/// the resolver's refusal are the documented statuses.
#[tokio::test]
async fn the_resolved_value_reaches_handlers_behind_guards() {
    let (dingtalk, base, _runs) = resolver_app(Duration::from_secs(600), Duration::ZERO).await;
    let http = reqwest::Client::new();
    let get_as = |user: &str| {
        http.get(format!("{base}/guarded"))
            .header("x-dingtalk-code", dingtalk.issue_code(user))
            .send()
    };
    let boss = get_as("boss01").await.unwrap();
    assert_eq!(boss.status(), 200);
    assert_eq!(boss.text().await.unwrap(), "member boss01");
    let odd = get_as("odd01").await.unwrap();
    support::assert_rejection(odd, 403, "forbidden", &[]).await;
    let refused = get_as("sub01").await.unwrap();
    support::assert_rejection(refused, 403, "forbidden", &[]).await;
}

// ------------------------------------------------------------------------------------------------
// Profiles and guards
// ------------------------------------------------------------------------------------------------

/// Finance (10) with Payroll (11) under it, Sales (20); staff01 in Payroll with contact details.
async fn company() -> MockDingTalk {
    let dingtalk = support::dingtalk().await;
    dingtalk.add_department(10, 1, "Finance");
    dingtalk.add_department(11, 10, "Payroll");
    dingtalk.add_department(20, 1, "Sales");
    dingtalk.set_directory_entry(
        "staff01",
        DirectoryEntry::in_departments([11])
            .title("Payroll clerk")
            .mobile("13800000000")
            .email("li.si@example.com"),
    );
    dingtalk.set_directory_entry(
        "boss01",
        DirectoryEntry::in_departments([20]).leader_of([20]),
    );
    dingtalk
}

/// `/me` (the profile as JSON), `/reports` (department 10), `/approvals` (leaders), `/none`
/// (`require_department([])`).
async fn profile_app(client: DingTalkClient) -> String {
    let layer = DingTalkAuthLayer::builder()
        .client(client)
        .session(session(&SessionKey::generate()))
        .build()
        .unwrap();
    let route = |path: &'static str, guard: guard::GuardLayer| {
        Router::new()
            .route(path, get(|| async { "in" }))
            .route_layer(guard)
    };
    let app: Router = Router::new()
        .route(
            "/me",
            get(|user: AuthenticatedDingTalkUser| async move {
                let profile = user.profile();
                Json(serde_json::json!({
                    "has_profile": profile.is_some(),
                    "departments": profile.map(|p| p.departments().to_vec()),
                    "leads": profile.map(|p| p.leads().to_vec()),
                    "title": profile.and_then(|p| p.title()),
                    "job_number": profile.and_then(|p| p.job_number()),
                    "email": profile.and_then(|p| p.email()),
                    "avatar": profile.and_then(|p| p.avatar()),
                    "mobile": profile.and_then(|p| p.mobile()),
                    "debug": format!("{user:?}"),
                }))
            }),
        )
        .merge(route("/reports", guard::require_department([10])))
        .merge(route("/approvals", guard::require_leader()))
        .merge(route("/none", guard::require_department([])))
        .layer(layer);
    let (addr, server) = support::serve(app).await;
    std::mem::forget(server);
    format!("http://{addr}")
}

async fn get_code(base: &str, path: &str, code: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(format!("{base}{path}"))
        .header("x-dingtalk-code", code)
        .send()
        .await
        .unwrap()
}

/// A department guard on a client that was never given `profile(..)`: a configuration mistake,
/// to be said as one (500 `misconfigured`), not a 503 "try again in 5 s" retried forever.
#[tokio::test]
async fn a_department_guard_on_a_client_without_profiles_says_it_is_misconfigured() {
    let dingtalk = company().await;
    let base = profile_app(dingtalk.client_builder().build().unwrap()).await;
    let response = get_code(&base, "/reports", &dingtalk.issue_code("staff01")).await;
    let status = response.status();
    let retry_after = response.headers().get("retry-after").cloned();
    let body = response.text().await.unwrap();
    assert_eq!(
        dingtalk.calls(Endpoint::UserGet),
        0,
        "nobody asked DingTalk"
    );
    assert!(
        status == 500 && body.contains("misconfigured"),
        "a guard needing a profile that is never fetched answered {status} (Retry-After: \
         {retry_after:?}): {body}"
    );
}

/// `profile_ttl(..)` alone (no `profile(..)`): no field is asked for, so DingTalk is not asked.
#[tokio::test]
async fn profile_ttl_alone_costs_no_call() {
    let dingtalk = company().await;
    let client = dingtalk
        .client_builder()
        .profile_ttl(Duration::from_secs(60))
        .build()
        .unwrap();
    let base = profile_app(client).await;
    for user in ["staff01", "boss01", "sub01"] {
        assert_eq!(
            get_code(&base, "/me", &dingtalk.issue_code(user))
                .await
                .status(),
            200
        );
    }
    let calls = dingtalk.calls(Endpoint::UserGet) + dingtalk.calls(Endpoint::ListParentByUser);
    assert_eq!(
        calls, 0,
        "{calls} directory calls for profiles with no field"
    );
}

/// `require_department([])` lets nobody through (403), with no call of its own.
#[tokio::test]
async fn require_department_with_no_departments_refuses_everyone() {
    let dingtalk = company().await;
    let client = dingtalk
        .client_builder()
        .profile(ProfileFields::DEPARTMENTS)
        .build()
        .unwrap();
    let base = profile_app(client).await;
    for user in ["staff01", "boss01"] {
        let response = get_code(&base, "/none", &dingtalk.issue_code(user)).await;
        support::assert_rejection(response, 403, "forbidden", &[]).await;
    }
    assert_eq!(dingtalk.calls(Endpoint::UserGet), 2, "one profile per user");
}

/// Hostile `listparentbyuser` answers (a cycle, extreme and negative ids, 100,000 entries, strings,
/// null): no panic, every answer documented, the guard decided on what DingTalk said.
#[tokio::test]
async fn hostile_listparentbyuser_answers_are_survived() {
    let dingtalk = company().await;
    let client = dingtalk
        .client_builder()
        .profile(ProfileFields::DEPARTMENTS)
        .build()
        .unwrap();
    let base = profile_app(client).await;
    let huge: Vec<i64> = (0..100_000).collect();
    let cases: Vec<(&str, serde_json::Value, &[u16])> = vec![
        (
            "staff01",
            serde_json::json!([{ "parent_dept_id_list": [11, 10, 11, 10, 1] }]),
            &[200],
        ),
        (
            "boss01",
            serde_json::json!([{ "parent_dept_id_list": [i64::MAX, -1, i64::MIN, 0] }]),
            &[403],
        ),
        (
            "super01",
            serde_json::json!([{ "parent_dept_id_list": huge }]),
            &[200],
        ),
        (
            "sub01",
            serde_json::json!([{ "parent_dept_id_list": ["10", "x"] }]),
            &[503],
        ),
        ("odd01", serde_json::json!(null), &[503, 403]),
    ];
    for (user, parent_list, allowed) in cases {
        let body = serde_json::json!({
            "errcode": 0, "errmsg": "ok", "result": { "parent_list": parent_list }
        });
        dingtalk.fail_next(
            Endpoint::ListParentByUser,
            Fault::Raw(200, serde_json::to_vec(&body).unwrap()),
            1,
        );
        let started = Instant::now();
        let response = get_code(&base, "/reports", &dingtalk.issue_code(user)).await;
        let took = started.elapsed();
        let status = response.status().as_u16();
        assert!(
            allowed.contains(&status),
            "{user}: {status} (allowed {allowed:?}): {}",
            response.text().await.unwrap()
        );
        assert!(took < Duration::from_secs(3), "{user}: {took:?}");
    }
}

/// `user/get` answering `dept_id_list: null`, or strings: the login stands (no profile needed),
/// the guard answers a documented status, nothing panics.
#[tokio::test]
async fn odd_user_get_answers_fail_no_login() {
    let dingtalk = company().await;
    let client = dingtalk
        .client_builder()
        .profile(ProfileFields::DEPARTMENTS | ProfileFields::TITLE)
        .build()
        .unwrap();
    let base = profile_app(client).await;
    for (user, result) in [
        (
            "staff01",
            serde_json::json!({ "userid": "staff01", "dept_id_list": null }),
        ),
        (
            "boss01",
            serde_json::json!({ "userid": "boss01", "dept_id_list": ["10"], "title": 7 }),
        ),
    ] {
        let body = serde_json::json!({ "errcode": 0, "errmsg": "ok", "result": result });
        dingtalk.fail_next(
            Endpoint::UserGet,
            Fault::Raw(200, serde_json::to_vec(&body).unwrap()),
            1,
        );
        let code = dingtalk.issue_code(user);
        let me = get_code(&base, "/me", &code).await;
        assert_eq!(me.status(), 200, "{user}: a login that needs no profile");
        let guarded = get_code(&base, "/reports", &code).await;
        let status = guarded.status().as_u16();
        assert!([403, 503].contains(&status), "{user}: {status}");
    }
}

/// Fields not asked for never appear; the contact details asked for are in the profile, not in
/// `Debug`.
#[tokio::test]
async fn fields_not_asked_for_never_appear() {
    let dingtalk = company().await;
    dingtalk.set_directory_entry(
        "sub01",
        DirectoryEntry::in_departments([10])
            .title("Auditor")
            .job_number("A-7")
            .email("zhao@example.com")
            .avatar("https://img.example.com/zhao.png")
            .mobile("13900000000"),
    );
    let client = dingtalk
        .client_builder()
        .profile(ProfileFields::TITLE | ProfileFields::EMAIL | ProfileFields::MOBILE)
        .build()
        .unwrap();
    let base = profile_app(client).await;
    let me = json(get_code(&base, "/me", &dingtalk.issue_code("sub01")).await).await;
    assert_eq!(me["title"], "Auditor");
    assert_eq!(me["email"], "zhao@example.com");
    assert_eq!(me["mobile"], "13900000000");
    assert_eq!(me["job_number"], serde_json::Value::Null);
    assert_eq!(me["avatar"], serde_json::Value::Null);
    assert_eq!(me["departments"], serde_json::json!([]));
    assert_eq!(me["leads"], serde_json::json!([]));
    let debug = me["debug"].as_str().unwrap();
    assert!(
        !debug.contains("13900000000") && !debug.contains("zhao@"),
        "{debug}"
    );
    assert_eq!(
        dingtalk.calls(Endpoint::ListParentByUser),
        0,
        "no departments asked"
    );
}

/// While DingTalk fails the profile, 30 concurrent sign-ins of one user (and more within 5 s)
/// cost one `user/get`.
#[tokio::test]
async fn failing_profiles_cost_one_call_per_user_per_five_seconds_under_concurrency() {
    let dingtalk = company().await;
    let client = dingtalk
        .client_builder()
        .rate_limit(1_000)
        .profile(ProfileFields::DEPARTMENTS)
        .build()
        .unwrap();
    let base = profile_app(client).await;
    dingtalk.fail_always(Endpoint::UserGet, Fault::HttpStatus(502));
    let codes: Vec<String> = (0..30).map(|_| dingtalk.issue_code("staff01")).collect();
    let answers = join_all(codes.iter().map(|code| get_code(&base, "/reports", code))).await;
    for answer in answers {
        assert_eq!(answer.status(), 503);
        assert_eq!(answer.headers()["retry-after"], "5");
    }
    for _ in 0..10 {
        let response = get_code(&base, "/reports", &dingtalk.issue_code("staff01")).await;
        assert_eq!(response.status(), 503);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let calls = dingtalk.calls(Endpoint::UserGet);
    assert_eq!(calls, 1, "{calls} user/get calls for one user within 5 s");
}

/// A sign-in with profiles, against a DingTalk whose `user/get` takes 6 s: the login does not need
/// the profile, so it waits no longer than the upstream timeout (1 s here).
#[tokio::test]
async fn a_slow_profile_holds_a_sign_in_no_longer_than_the_upstream_timeout() {
    let dingtalk = company().await;
    let client = dingtalk
        .client_builder()
        .upstream_timeout(Duration::from_secs(1))
        .profile(ProfileFields::DEPARTMENTS)
        .build()
        .unwrap();
    let base = profile_app(client).await;
    dingtalk.fail_always(Endpoint::UserGet, Fault::Latency(Duration::from_secs(6)));
    let started = Instant::now();
    let response = get_code(&base, "/me", &dingtalk.issue_code("staff01")).await;
    let took = started.elapsed();
    assert_eq!(response.status(), 200);
    assert!(
        took < Duration::from_millis(2500),
        "a sign-in waited {took:?} for a profile (upstream timeout 1 s)"
    );
}

/// Mobile numbers and emails never reach the logs, whatever fails on the way.
#[test]
fn contact_details_never_reach_the_logs() {
    let (_guard, logs) = support::capture_logs();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dingtalk = company().await;
        let client = dingtalk
            .client_builder()
            .revalidate_after(Duration::from_secs(1))
            .profile(ProfileFields::ALL_BUT_MOBILE | ProfileFields::MOBILE)
            .build()
            .unwrap();
        let base = profile_app(client).await;
        // A normal sign-in, a user/get that answers someone else (with contact details), and one
        // that is not JSON, then a listparentbyuser that fails.
        assert_eq!(
            get_code(&base, "/me", &dingtalk.issue_code("staff01"))
                .await
                .status(),
            200
        );
        let other = serde_json::json!({ "errcode": 0, "errmsg": "ok", "result": {
            "userid": "someone", "mobile": "13800000000", "email": "li.si@example.com" } });
        dingtalk.fail_next(
            Endpoint::UserGet,
            Fault::Raw(200, serde_json::to_vec(&other).unwrap()),
            1,
        );
        assert_eq!(
            get_code(&base, "/me", &dingtalk.issue_code("boss01"))
                .await
                .status(),
            200
        );
        let truncated =
            br#"{"errcode":0,"result":{"userid":"sub01","mobile":"13800000000","email":"li.si@exa"#;
        dingtalk.fail_next(Endpoint::UserGet, Fault::Raw(200, truncated.to_vec()), 1);
        let _ = get_code(&base, "/me", &dingtalk.issue_code("sub01")).await;
        dingtalk.fail_next(Endpoint::ListParentByUser, Fault::HttpStatus(500), 1);
        let _ = get_code(&base, "/reports", &dingtalk.issue_code("odd01")).await;
    });
    let logged = logs.contents();
    assert!(!logged.is_empty());
    for secret in ["13800000000", "li.si@"] {
        assert!(
            !logged.contains(secret),
            "the logs hold {secret}:\n{logged}"
        );
    }
}

/// The mobile number, asked for, is kept in Redis for the other replicas: not in clear text.
#[tokio::test]
async fn the_mobile_number_is_not_written_to_redis_in_clear() {
    let dingtalk = company().await;
    let prefix = Prefix::new("adv-profile-privacy");
    let replica = replica_on(
        &dingtalk,
        &prefix,
        |c| c.profile(ProfileFields::ALL_BUT_MOBILE | ProfileFields::MOBILE),
        |l| l,
    )
    .await;
    replica
        .expect_user(&dingtalk.issue_code("staff01"), "staff01")
        .await;
    let leaked: Vec<String> = prefix
        .entries()
        .into_iter()
        .filter(|(_, value, _)| value.contains("13800000000") || value.contains("li.si@"))
        .map(|(key, value, _)| format!("{key} = {value}"))
        .collect();
    assert!(
        leaked.is_empty(),
        "contact details in clear in Redis: {leaked:?}"
    );
}

/// Bad input costs no call: a malformed code on a profile client asks DingTalk nothing, and a
/// revocation of nobody costs nothing either.
#[tokio::test]
async fn bad_input_costs_no_directory_call() {
    let dingtalk = company().await;
    let client = dingtalk
        .client_builder()
        .profile(ProfileFields::DEPARTMENTS)
        .revalidate_after(Duration::from_secs(1))
        .build()
        .unwrap();
    for userid in ["", "nobody", &"y".repeat(10_000)] {
        assert!(client.revoke_user(userid).await);
    }
    let base = profile_app(client).await;
    for code in ["", "a b", "\u{e9}", &"c".repeat(300)] {
        // In the query: a header could not even carry some of them.
        let mut url = reqwest::Url::parse(&format!("{base}/reports")).unwrap();
        url.query_pairs_mut().append_pair("code", code);
        let response = reqwest::Client::new().get(url).send().await.unwrap();
        assert!([400, 401].contains(&response.status().as_u16()), "{code:?}");
    }
    assert_eq!(dingtalk.total_calls(), 0);
}

// ------------------------------------------------------------------------------------------------
// DingTalk's web login
// ------------------------------------------------------------------------------------------------

const CALLBACK: &str = "/auth/dingtalk/callback";
const BROWSER: &str = "Mozilla/5.0 (X11; Linux x86_64) Chrome/156.0 Safari/537.36";

/// A web-login app as the web login docs set it up (the client knows its corp id, which the
/// login page needs), whose resolver refuses `sub01`: its base URL, its client, a client that
/// follows no redirects.
async fn web_login_app(dingtalk: &MockDingTalk) -> (String, DingTalkClient, reqwest::Client) {
    let client = dingtalk
        .client_builder()
        .corp_id(tower_dingtalk_auth::testing::MOCK_CORP_ID)
        .build()
        .unwrap();
    let layer = DingTalkAuthLayer::builder()
        .client(client.clone())
        .session(session(&SessionKey::generate()))
        .web_login(CALLBACK)
        .resolve_with(|user: AuthenticatedDingTalkUser| async move {
            match user.userid() {
                "sub01" => Err(AuthError::forbidden("not a member of this app")),
                userid => Ok(Member(userid.to_owned())),
            }
        })
        .build()
        .unwrap();
    let app: Router = support::routes(Arc::new(AtomicU64::new(0))).layer(layer);
    let (addr, server) = support::serve(app).await;
    std::mem::forget(server);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    (format!("http://{addr}"), client, http)
}

/// The whole web login of `unionid`: the callback's answer.
async fn web_login(base: &str, http: &reqwest::Client, unionid: &str) -> reqwest::Response {
    let start = http
        .get(format!("{base}/me"))
        .header("accept", support::PAGE_ACCEPT)
        .header("user-agent", BROWSER)
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), 302);
    let login = reqwest::Url::parse(start.headers()["location"].to_str().unwrap()).unwrap();
    let state_cookie = start.headers()[SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let mut approve = login.clone();
    approve.query_pairs_mut().append_pair("approve", unionid);
    let approved = http.get(approve).send().await.unwrap();
    assert_eq!(approved.status(), 302);
    let callback = approved.headers()["location"].to_str().unwrap().to_owned();
    http.get(callback)
        .header("accept", support::PAGE_ACCEPT)
        .header("user-agent", BROWSER)
        .header(COOKIE, state_cookie)
        .header("sec-fetch-site", "cross-site")
        .header("sec-fetch-mode", "navigate")
        .send()
        .await
        .unwrap()
}

fn session_cookie_set(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|value| value.to_str().unwrap())
        .filter(|cookie| !cookie.contains("Max-Age=0") && cookie.starts_with("dingtalk_session="))
        .map(|cookie| cookie.split(';').next().unwrap().to_owned())
        .next()
}

/// `revoke_user` after a web login (every web-login app has its corp id set): the session ends.
#[tokio::test]
async fn revoke_user_ends_a_web_login_session() {
    let dingtalk = support::dingtalk().await;
    let (base, client, http) = web_login_app(&dingtalk).await;
    let signed_in = web_login(&base, &http, "union-super01").await;
    assert_eq!(signed_in.status(), 303);
    let cookie = session_cookie_set(&signed_in).expect("a session");
    let page = get_with_cookie(&http, &format!("{base}/me"), &cookie).await;
    assert_eq!(page.status(), 200);
    assert!(client.revoke_user("super01").await);
    let page = http
        .get(format!("{base}/me"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    let status = page.status();
    assert!(
        status != 200,
        "a web login session of super01 is still served after revoke_user(\"super01\"): {}",
        page.text().await.unwrap()
    );
}

/// The resolver's refusal at a web login's callback: no session, a documented refusal.
#[tokio::test]
async fn a_resolver_refusal_at_the_web_login_starts_no_session() {
    let dingtalk = support::dingtalk().await;
    let (base, _client, http) = web_login_app(&dingtalk).await;
    let refused = web_login(&base, &http, "union-sub01").await;
    let status = refused.status().as_u16();
    assert!(
        session_cookie_set(&refused).is_none(),
        "the refused user got a session ({status})"
    );
    assert!([403, 303].contains(&status), "{status}");
    if status == 303 {
        // Sent back to the page: which must refuse them.
        let location = refused.headers()["location"].to_str().unwrap().to_owned();
        let page = http.get(format!("{base}{location}")).send().await.unwrap();
        assert_ne!(page.status(), 200);
    }
}
