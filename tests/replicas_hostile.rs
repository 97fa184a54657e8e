//! Replicas under hostile timing and a hostile Redis: a lock's holder that keeps its lock while its
//! health flag says Redis is down, a rejection that does not hide another replica's user, a value
//! that does not open is a miss and not an outage, a waiter that takes over keeps its budget, and
//! nobody who can write to Redis can sign in as anyone.
//!
//! Like `replicas.rs`, these need Redis, found or started as `replicas.rs` says.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use redis::Commands;
use support::store::*;
use support::{assert_rejection, json};
use tower_dingtalk_auth::RedisStore;
use tower_dingtalk_auth::testing::{Endpoint, Fault};

/// A replica whose Redis is reached through a proxy that can hold answers back.
async fn slow_replica(
    dingtalk: &tower_dingtalk_auth::testing::MockDingTalk,
    prefix: &Prefix,
    slow: Arc<AtomicBool>,
    configure: impl FnOnce(
        tower_dingtalk_auth::RedisStoreBuilder,
    ) -> tower_dingtalk_auth::RedisStoreBuilder,
) -> Replica {
    let proxy = slow_answers_proxy(&prefix.url, Duration::from_millis(200), slow).await;
    let store = configure(
        RedisStore::builder(proxy.as_str())
            .secret(TEST_SECRET)
            .key_prefix(&prefix.prefix),
    )
    .connect()
    .await
    .unwrap_or_else(|error| no_redis(&proxy, &error));
    Replica::start(dingtalk, store, |b| b).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_holder_keeps_and_finishes_its_lock_while_its_health_flag_says_down() {
    let dingtalk = support::dingtalk().await;
    let prefix = Prefix::new("holder_health");
    let slow = Arc::new(AtomicBool::new(false));
    let lock_ttl = Duration::from_millis(900);
    let a = slow_replica(&dingtalk, &prefix, slow.clone(), |b| b.lock_ttl(lock_ttl)).await;
    let b = Replica::start(
        &dingtalk,
        prefix.store(|b| b.lock_ttl(lock_ttl)).await,
        |b| b,
    )
    .await;
    // Warm both replicas' tokens.
    a.expect_user(&dingtalk.issue_code("staff01"), "staff01")
        .await;
    b.expect_user(&dingtalk.issue_code("staff01"), "staff01")
        .await;
    let calls = dingtalk.userinfo_calls();

    // A holds the code's lock while DingTalk takes 1.5 s: almost two lock TTLs.
    dingtalk.fail_next(
        Endpoint::GetUserInfo,
        Fault::Latency(Duration::from_millis(1500)),
        1,
    );
    let code = dingtalk.issue_code("boss01");
    let holder = a.expect_user(&code, "boss01");
    let rest = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        // One slow answer on an unrelated request: A's health flag says Redis is down.
        slow.store(true, Ordering::SeqCst);
        a.expect_user(&dingtalk.issue_code("sub01"), "sub01").await;
        slow.store(false, Ordering::SeqCst);
        assert!(!a.store.is_available(), "A thinks Redis is down");
        // B asks for the code A holds: it must wait for A's user, not take over.
        b.expect_user(&code, "boss01").await
    };
    let (_, waited) = tokio::join!(holder, rest);
    assert!(waited >= Duration::from_millis(800), "{waited:?}");
    // One call for the code, one for the unrelated one: nobody spent the code twice.
    assert_eq!(dingtalk.userinfo_calls(), calls + 2);
    assert_eq!(b.handler_runs(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejection_redis_did_not_confirm_does_not_hide_the_user_redis_holds() {
    let dingtalk = support::dingtalk().await;
    let prefix = Prefix::new("unconfirmed_rejection");
    let slow = Arc::new(AtomicBool::new(false));
    let a = Replica::start(&dingtalk, prefix.store(|b| b).await, |b| b).await;
    let b = slow_replica(&dingtalk, &prefix, slow.clone(), |b| {
        b.retry_after(Duration::from_millis(100))
    })
    .await;
    b.expect_user(&dingtalk.issue_code("staff01"), "staff01")
        .await;

    // A exchanges the code and shares the user.
    let code = dingtalk.issue_code("super01");
    a.expect_user(&code, "super01").await;
    // B cannot reach Redis at that moment: it exchanges directly, and DingTalk says "used".
    slow.store(true, Ordering::SeqCst);
    assert_rejection(b.get(&code).await, 401, "code_rejected", &[&code]).await;
    slow.store(false, Ordering::SeqCst);
    let calls = dingtalk.userinfo_calls();
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Redis answers again: B finds A's user behind its own rejection, without calling DingTalk.
    b.expect_user(&code, "super01").await;
    b.expect_user(&code, "super01").await;
    assert_eq!(dingtalk.userinfo_calls(), calls);
}

// One thread, so that the logs of every task are captured.
#[tokio::test]
async fn a_value_that_does_not_open_is_a_miss_for_its_key_not_an_outage() {
    let (_guard, logs) = support::capture_logs();
    let dingtalk = support::dingtalk().await;
    let prefix = Prefix::new("garbage_value");
    let replica = Replica::start(&dingtalk, prefix.store(|b| b).await, |b| b).await;
    let code = dingtalk.issue_code("staff01");
    let key = prefix.key("id", &dingtalk.app_key(), &code);
    let mut redis = inspector(&prefix.url);
    let _: () = redis
        .set_ex(&key, "\u{0}not json at all\u{ff}", 60)
        .unwrap();

    replica.expect_user(&code, "staff01").await;
    assert!(replica.store.is_available(), "one bad value is no outage");
    // The user now stands in Redis, sealed, over the garbage.
    let stored: String = redis.get(&key).unwrap();
    let value = open(&digest(&dingtalk.app_key(), None, &code), &stored);
    assert!(value.contains(r#""userid":"staff01""#), "{value}");
    // Sharing goes on for other codes.
    let other = Replica::start(&dingtalk, prefix.store(|b| b).await, |b| b).await;
    let shared = dingtalk.issue_code("boss01");
    replica.expect_user(&shared, "boss01").await;
    let calls = dingtalk.userinfo_calls();
    other.expect_user(&shared, "boss01").await;
    assert_eq!(dingtalk.userinfo_calls(), calls);
    assert_eq!(logs.contents().matches("does not open").count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_that_takes_over_goes_on_with_what_is_left_of_its_budget() {
    let dingtalk = support::dingtalk().await;
    let prefix = Prefix::new("takeover_budget");
    let store = prefix
        .store(|b| b.lock_ttl(Duration::from_millis(500)))
        .await;
    let replica = Replica::start_with(
        &dingtalk,
        store,
        |c| c.upstream_timeout(Duration::from_secs(1)),
        |l| l,
    )
    .await;
    replica
        .expect_user(&dingtalk.issue_code("staff01"), "staff01")
        .await;
    let code = dingtalk.issue_code("boss01");
    // A holder that died: its lock lives 600 ms more.
    let lock = prefix.key("lock", &dingtalk.app_key(), &code);
    let mut redis = inspector(&prefix.url);
    let _: () = redis
        .set_options(
            &lock,
            "a-dead-replica",
            redis::SetOptions::default().with_expiration(redis::SetExpiry::PX(600)),
        )
        .unwrap();
    dingtalk.fail_next(
        Endpoint::GetUserInfo,
        Fault::Latency(Duration::from_millis(800)),
        1,
    );
    let started = Instant::now();
    let response = replica.get(&code).await;
    let took = started.elapsed();
    // It took the lock at ~600 ms and sent the code; DingTalk answers at ~1.4 s, past the 1 s
    // budget: the request gets its 504 at the budget, not later.
    assert_rejection(response, 504, "upstream_timeout", &[&code]).await;
    assert!(took >= Duration::from_millis(900), "{took:?}");
    assert!(took < Duration::from_millis(1300), "{took:?}");
    // The call ran to its answer: the retry is served with no second call.
    tokio::time::sleep(Duration::from_millis(600)).await;
    replica.expect_user(&code, "boss01").await;
    assert_eq!(dingtalk.userinfo_calls(), 2);
}

#[tokio::test]
async fn whoever_can_write_to_redis_cannot_sign_in_as_anyone() {
    let (_guard, logs) = support::capture_logs();
    let dingtalk = support::dingtalk().await;
    let prefix = Prefix::new("forged");
    let app_key = dingtalk.app_key();
    let first = Replica::start(&dingtalk, prefix.store(|b| b).await, |b| b).await;
    let second = Replica::start(&dingtalk, prefix.store(|b| b).await, |b| b).await;
    let mut redis = inspector(&prefix.url);
    let admin =
        r#"{"user":{"userid":"super01","name":"Zhang San","is_admin":true,"admin_level":1}}"#;

    // 1. The attacker picks a junk code and writes an administrator under the name it would have
    //    had before names were keyed (a plain SHA-256), and under every name it can see.
    let junk = "attacker-chosen-code-0001";
    let unkeyed = {
        use sha2::{Digest, Sha256};
        let mut hash = Sha256::new();
        hash.update(format!("tower-dingtalk-auth/v1\0{app_key}\0own\0\0{junk}"));
        hash.finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let _: () = redis
        .set_ex(format!("{}id:{{{unkeyed}}}", prefix.prefix), admin, 60)
        .unwrap();
    assert_rejection(first.get(junk).await, 401, "code_rejected", &[junk]).await;

    // 2. A real user's entry is overwritten: with plain JSON, with a value sealed under another
    //    secret, and with another entry's (validly sealed) value moved over.
    let staff = dingtalk.issue_code("staff01");
    let boss = dingtalk.issue_code("boss01");
    first.expect_user(&staff, "staff01").await;
    first.expect_user(&boss, "boss01").await;
    let staff_key = prefix.key("id", &app_key, &staff);
    let boss_value: String = redis.get(prefix.key("id", &app_key, &boss)).unwrap();
    let forged_elsewhere = seal(
        b"another service's secret, 32 bytes or more",
        &digest(&app_key, None, &staff),
        admin,
    );
    for forged in [admin.to_owned(), forged_elsewhere, boss_value] {
        let _: () = redis.set_ex(&staff_key, &forged, 60).unwrap();
        // The second replica has no local copy: it reads Redis, refuses the value, exchanges
        // (DingTalk says the code is used) and is told the truth.
        let response = second.get(&staff).await;
        let body = json(response).await;
        assert_ne!(body["userid"], "super01", "{body}");
        assert_ne!(body["userid"], "boss01", "{body}");
        assert_eq!(body["error"], "code_rejected", "{body}");
    }
    assert!(second.store.is_available());
    let logs = logs.contents();
    assert!(logs.contains("does not open"), "{logs}");
    // The store's secret is in no log line and no `Debug`.
    let secret = std::str::from_utf8(TEST_SECRET).unwrap();
    assert!(!logs.contains(secret));
    assert!(!format!("{:?}{:?}", second.store, second.layer).contains(secret));
    assert!(logs.matches("does not open").count() <= 2, "{logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_starts_one_session_across_replicas() {
    let dingtalk = support::dingtalk().await;
    let prefix = Prefix::new("one_session");
    let session = tower_dingtalk_auth::SessionConfig::new(
        tower_dingtalk_auth::SessionKey::from_bytes(TEST_SECRET).unwrap(),
    );
    let mut replicas = Vec::new();
    for _ in 0..2 {
        let session = session.clone();
        let store = prefix.store(|b| b).await;
        replicas.push(Replica::start(&dingtalk, store, move |b| b.session(session)).await);
    }
    let code = dingtalk.issue_code("staff01");
    let mut cookies = 0;
    for replica in replicas.iter().chain(replicas.iter()) {
        let response = replica.get(&code).await;
        assert_eq!(response.status(), 200);
        cookies += response.headers().get_all("set-cookie").iter().count();
    }
    assert_eq!(cookies, 1, "one code, one session");
    assert_eq!(dingtalk.userinfo_calls(), 1);
}

const LOGIN: &str = "/auth/login";

/// A replica with sessions and the token login, whose codes are reused for `window`.
async fn session_replica(
    dingtalk: &tower_dingtalk_auth::testing::MockDingTalk,
    prefix: &Prefix,
    window: Duration,
) -> Replica {
    let store = prefix.store(|b| b.timeout(SHARING_TEST_TIMEOUT)).await;
    let key = tower_dingtalk_auth::SessionKey::from_bytes(TEST_SECRET).unwrap();
    Replica::start_with(
        dingtalk,
        store,
        |c| c.code_reuse_window(window),
        |l| {
            l.session(tower_dingtalk_auth::SessionConfig::new(key).secure(false))
                .token_login(LOGIN)
        },
    )
    .await
}

async fn token_login(replica: &Replica, code: &str) -> reqwest::Response {
    replica
        .http
        .post(format!("http://{}{LOGIN}", replica.addr))
        .json(&serde_json::json!({ "code": code }))
        .send()
        .await
        .unwrap()
}

/// Sends a request with `code` to `replica` and hangs up without reading the answer.
async fn send_and_hang_up(replica: &Replica, code: &str) {
    use tokio::io::AsyncWriteExt;
    let mut stream = tokio::net::TcpStream::connect(replica.addr).await.unwrap();
    let request = format!(
        "GET /me HTTP/1.1\r\nhost: app\r\nx-dingtalk-code: {code}\r\naccept: text/html\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    drop(stream);
}

/// Sleeps until `at` after `start`.
async fn at(start: Instant, at: Duration) {
    tokio::time::sleep(at.saturating_sub(start.elapsed())).await;
}

/// A code starts one session, on every replica, for good: the mark that it did outlives every
/// replica's copy of the code's user, whatever the requests' interleaving and hang-ups.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_starts_one_session_on_every_replica_for_good() {
    let dingtalk = support::dingtalk().await;
    let prefix = Prefix::new("one_session_for_good");
    let window = Duration::from_secs(3);
    let a = session_replica(&dingtalk, &prefix, window).await;
    let b = session_replica(&dingtalk, &prefix, window).await;
    // Warm both replicas' tokens.
    a.expect_user(&dingtalk.issue_code("staff01"), "staff01")
        .await;
    b.expect_user(&dingtalk.issue_code("staff01"), "staff01")
        .await;
    let calls = dingtalk.userinfo_calls();

    let code = dingtalk.issue_code("boss01");
    let start = Instant::now();
    let first = token_login(&a, &code).await;
    assert_eq!(first.status(), 200);
    at(start, Duration::from_secs(2)).await;
    send_and_hang_up(&b, &code).await;
    // B, without hanging up, in the window: the user, but no second session.
    let seen = b.get(&code).await;
    assert_eq!(seen.status(), 200);
    assert!(!seen.headers().contains_key("set-cookie"));
    at(start, Duration::from_millis(3_500)).await;
    for replica in [&b, &a] {
        let again = token_login(replica, &code).await;
        assert_rejection(again, 401, "code_rejected", &[&code]).await;
        let page = replica.get(&code).await;
        assert!(!page.headers().contains_key("set-cookie"));
        assert_rejection(page, 401, "code_rejected", &[&code]).await;
    }
    // One exchange, then one call that found the code spent.
    assert_eq!(dingtalk.userinfo_calls(), calls + 2);

    // Replicas whose windows differ (a rolling deploy that changes it): the one with the long
    // window keeps its copy well past the other's window, and still starts no second session.
    let short = session_replica(&dingtalk, &prefix, Duration::from_secs(1)).await;
    let long = session_replica(&dingtalk, &prefix, Duration::from_secs(5)).await;
    short
        .expect_user(&dingtalk.issue_code("staff01"), "staff01")
        .await;
    let code = dingtalk.issue_code("sub01");
    let start = Instant::now();
    // The long window's replica exchanges (a handler's own call: its copy lives 5 s, and no
    // session starts), the short one starts the session.
    let user = long.layer.client().user_info(&code).await.unwrap();
    assert_eq!(user.userid(), "sub01");
    assert_eq!(token_login(&short, &code).await.status(), 200);
    at(start, Duration::from_millis(2_500)).await;
    let late = token_login(&long, &code).await;
    assert_rejection(late, 401, "code_rejected", &[&code]).await;
}

/// The reuse window is one window across replicas: a replica that reads a code's user from the
/// store late in the window keeps it only as long as the original lives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reuse_window_is_the_window_across_replicas() {
    let dingtalk = support::dingtalk().await;
    let prefix = Prefix::new("one_window");
    let mut replicas = Vec::new();
    for _ in 0..2 {
        let store = prefix.store(|b| b.timeout(SHARING_TEST_TIMEOUT)).await;
        replicas.push(
            Replica::start_with(
                &dingtalk,
                store,
                |c| c.code_reuse_window(Duration::from_secs(3)),
                |l| l,
            )
            .await,
        );
    }
    let (a, b) = (&replicas[0], &replicas[1]);
    a.expect_user(&dingtalk.issue_code("staff01"), "staff01")
        .await;
    b.expect_user(&dingtalk.issue_code("staff01"), "staff01")
        .await;
    let calls = dingtalk.userinfo_calls();

    let code = dingtalk.issue_code("boss01");
    let start = Instant::now();
    a.expect_user(&code, "boss01").await;
    at(start, Duration::from_secs(2)).await;
    // B reads the user from the store, late in the window, and serves it from its cache.
    b.expect_user(&code, "boss01").await;
    b.expect_user(&code, "boss01").await;
    assert_eq!(dingtalk.userinfo_calls(), calls + 1);
    at(start, Duration::from_millis(3_400)).await;
    for replica in [a, b] {
        assert_rejection(replica.get(&code).await, 401, "code_rejected", &[&code]).await;
    }
    // A's call found the code spent; B found that rejection in the store.
    assert_eq!(dingtalk.userinfo_calls(), calls + 2);
    let entries = prefix.entries();
    let id_key = prefix.key("id", support::MOCK_KEY, &code);
    let ttl = entries.iter().find(|(key, ..)| *key == id_key).map(|e| e.2);
    assert!(ttl.is_some(), "the rejection is shared");
}
