//! Access that ends when employment ends: a user DingTalk no longer knows loses their sessions
//! within the re-validation interval, `revoke_user` ends a user's sessions on every replica
//! within a second and across restarts, and re-validation costs one call per user per interval
//! across replicas.

mod support;

use std::time::{Duration, Instant};

use reqwest::header::{COOKIE, SET_COOKIE};
use support::store::{Prefix, Replica, SHARING_TEST_TIMEOUT};
use support::{TestApp, json};
use tower_dingtalk_auth::testing::Endpoint;
use tower_dingtalk_auth::{SessionConfig, SessionKey};

fn session(key: &SessionKey) -> SessionConfig {
    SessionConfig::new(key.clone()).secure(false)
}

/// The `name=value` of the session cookie a response sets.
fn cookie_of(response: &reqwest::Response) -> String {
    let set = response.headers()[SET_COOKIE].to_str().unwrap();
    set.split(';').next().unwrap().to_owned()
}

async fn get_with_cookie(http: &reqwest::Client, url: &str, cookie: &str) -> reqwest::Response {
    http.get(url).header(COOKIE, cookie).send().await.unwrap()
}

#[tokio::test]
async fn a_user_who_left_loses_their_sessions_within_the_interval() {
    let key = SessionKey::generate();
    let app = TestApp::with_client(
        support::dingtalk().await,
        |client| client.revalidate_after(Duration::from_secs(1)),
        |layer| layer.session(session(&key)).token_login("/auth/login"),
    )
    .await;
    let signed_in = app
        .get_with_code("/me", &app.dingtalk.issue_code("staff01"))
        .await;
    let leaver = cookie_of(&signed_in);
    let stays = cookie_of(
        &app.get_with_code("/me", &app.dingtalk.issue_code("boss01"))
            .await,
    );
    let token: serde_json::Value = app
        .http
        .post(app.url("/auth/login"))
        .json(&serde_json::json!({ "code": app.dingtalk.issue_code("staff01") }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["token"].as_str().unwrap().to_owned();
    assert_eq!(
        app.dingtalk.calls(Endpoint::UserGet),
        0,
        "a sign-in is a validation"
    );

    assert!(app.dingtalk.remove_user("staff01"));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let refused = get_with_cookie(&app.http, &app.url("/me"), &leaver).await;
    let cleared = refused.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    assert!(
        cleared.contains("Max-Age=0"),
        "the cookie is cleared: {cleared}"
    );
    support::assert_rejection(refused, 401, "session_revoked", &[]).await;
    let still = get_with_cookie(&app.http, &app.url("/me"), &stays).await;
    assert_eq!(still.status(), 200, "an employee who stays is unaffected");
    assert_eq!(
        app.dingtalk.calls(Endpoint::UserGet),
        2,
        "one call per user"
    );

    // The token of the user who left: refused, and it cannot be refreshed.
    let bearer = format!("Bearer {token}");
    let api = app
        .http
        .get(app.url("/me"))
        .header("authorization", &bearer)
        .send()
        .await
        .unwrap();
    support::assert_rejection(api, 401, "invalid_token", &[]).await;
    let refresh = app
        .http
        .post(app.url("/auth/login/refresh"))
        .header("authorization", &bearer)
        .send()
        .await
        .unwrap();
    support::assert_rejection(refresh, 401, "invalid_token", &[]).await;

    // Within the next interval: no more calls, and the leaver stays out.
    for _ in 0..5 {
        assert_eq!(
            get_with_cookie(&app.http, &app.url("/me"), &stays)
                .await
                .status(),
            200
        );
        assert_eq!(
            get_with_cookie(&app.http, &app.url("/me"), &leaver)
                .await
                .status(),
            401
        );
    }
    assert_eq!(app.dingtalk.calls(Endpoint::UserGet), 2);
    assert_eq!(
        app.handler_runs(),
        3 + 5,
        "the handler never ran for the leaver"
    );
}

#[tokio::test]
async fn a_failing_dingtalk_keeps_sessions_for_one_more_interval() {
    let key = SessionKey::generate();
    let app = TestApp::with_client(
        support::dingtalk().await,
        |client| client.revalidate_after(Duration::from_secs(1)),
        |layer| layer.session(session(&key)),
    )
    .await;
    let cookie = cookie_of(
        &app.get_with_code("/me", &app.dingtalk.issue_code("staff01"))
            .await,
    );
    app.dingtalk.fail_always(
        Endpoint::UserGet,
        tower_dingtalk_auth::testing::Fault::HttpStatus(502),
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for _ in 0..3 {
        let response = get_with_cookie(&app.http, &app.url("/me"), &cookie).await;
        assert_eq!(response.status(), 200, "fail open");
    }
    assert_eq!(
        app.dingtalk.calls(Endpoint::UserGet),
        1,
        "asked once this interval"
    );
    app.dingtalk.clear_faults();
    app.dingtalk.remove_user("staff01");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let response = get_with_cookie(&app.http, &app.url("/me"), &cookie).await;
    assert_eq!(response.status(), 401, "the next interval's answer holds");
}

async fn four_replicas(
    prefix: &Prefix,
    key: &SessionKey,
    interval: Duration,
) -> (tower_dingtalk_auth::testing::MockDingTalk, Vec<Replica>) {
    let dingtalk = support::dingtalk().await;
    let mut replicas = Vec::new();
    for _ in 0..4 {
        let store = prefix.store(|b| b.timeout(SHARING_TEST_TIMEOUT)).await;
        replicas.push(
            Replica::start_with(
                &dingtalk,
                store,
                |client| client.revalidate_after(interval),
                |layer| layer.session(session(key)),
            )
            .await,
        );
    }
    (dingtalk, replicas)
}

#[tokio::test]
async fn re_validation_costs_one_call_per_user_per_interval_across_four_replicas() {
    let prefix = Prefix::new("revalidate");
    let key = SessionKey::generate();
    let (dingtalk, replicas) = four_replicas(&prefix, &key, Duration::from_secs(1)).await;
    let cookie = cookie_of(&replicas[0].get(&dingtalk.issue_code("boss01")).await);
    let started = Instant::now();
    let mut served = 0;
    while started.elapsed() < Duration::from_millis(3500) {
        for replica in &replicas {
            let response = get_with_cookie(&replica.http, &replica.url(), &cookie).await;
            assert_eq!(response.status(), 200);
            served += 1;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let calls = dingtalk.calls(Endpoint::UserGet);
    eprintln!("{served} requests over 3.5 s on 4 replicas: {calls} user/get calls");
    assert!(
        (2..=4).contains(&calls),
        "one call per interval across replicas: {calls}"
    );
}

#[tokio::test]
async fn revoke_user_on_one_replica_ends_the_sessions_on_all_four_within_a_second() {
    let prefix = Prefix::new("revoke");
    let key = SessionKey::generate();
    let (dingtalk, replicas) = four_replicas(&prefix, &key, Duration::from_secs(600)).await;
    let revoked = cookie_of(&replicas[0].get(&dingtalk.issue_code("staff01")).await);
    let kept = cookie_of(&replicas[1].get(&dingtalk.issue_code("boss01")).await);
    for replica in &replicas {
        // Each replica has opened both sessions: its fast path holds them.
        for cookie in [&revoked, &kept] {
            let response = get_with_cookie(&replica.http, &replica.url(), cookie).await;
            assert_eq!(response.status(), 200);
        }
    }
    let client = replicas[2].layer.client();
    assert!(client.revoke_user("staff01").await, "the store took it");
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    for replica in &replicas {
        loop {
            let response = get_with_cookie(&replica.http, &replica.url(), &revoked).await;
            if response.status() == 401 {
                assert_eq!(json(response).await["error"], "session_revoked");
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(1),
                "still served after 1 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        slowest = slowest.max(started.elapsed());
        let response = get_with_cookie(&replica.http, &replica.url(), &kept).await;
        assert_eq!(response.status(), 200, "another user is unaffected");
    }
    eprintln!("every replica refused the revoked session within {slowest:?}");

    // A replica started afterwards (a restart) refuses it from its first request.
    let store = prefix.store(|b| b.timeout(SHARING_TEST_TIMEOUT)).await;
    let restarted = Replica::start(&dingtalk, store, |layer| layer.session(session(&key))).await;
    let response = get_with_cookie(&restarted.http, &restarted.url(), &revoked).await;
    assert_eq!(response.status(), 401, "a revocation survives a restart");
    let response = get_with_cookie(&restarted.http, &restarted.url(), &kept).await;
    assert_eq!(response.status(), 200);

    // The user signs in again, a second later: a new session.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let again = replicas[3].get(&dingtalk.issue_code("staff01")).await;
    assert_eq!(again.status(), 200, "a new login after the revocation");
    assert_eq!(
        dingtalk.calls(Endpoint::UserGet),
        0,
        "revocation costs DingTalk nothing"
    );
}

#[tokio::test]
async fn revoke_user_ends_cached_codes_too() {
    let app = TestApp::with(support::dingtalk().await, |layer| layer).await;
    let code = app.dingtalk.issue_code("staff01");
    assert_eq!(app.get_with_code("/me", &code).await.status(), 200);
    app.layer.client().revoke_user("staff01").await;
    let replay = app.get_with_code("/me", &code).await;
    support::assert_rejection(replay, 401, "session_revoked", &[]).await;
    assert_eq!(app.dingtalk.userinfo_calls(), 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let fresh = app
        .get_with_code("/me", &app.dingtalk.issue_code("staff01"))
        .await;
    assert_eq!(fresh.status(), 200, "a fresh code signs in again");
}
