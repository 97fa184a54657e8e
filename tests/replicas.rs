//! Many replicas, one login: layers that share a Redis exchange each code once whichever replicas
//! its requests reach, keep serving while Redis is frozen or dead and share again when it is back,
//! take over from a replica that died holding a code, and never put a code into Redis.
//!
//! These tests need a real Redis: the one at `REDIS_URL` when it is set, else the one on
//! 127.0.0.1:6379, else a `redis-server` they start on a free port (the outage test always runs its
//! own). Without `redis-server` they fail, saying how to install it; they never skip.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use redis::Commands;
use support::store::*;
use support::{assert_rejection, client_for, json, layer_for, routes, serve};
use tokio::runtime::Runtime;
use tower_dingtalk_auth::testing::{Endpoint, Fault, MockDingTalk};
use tower_dingtalk_auth::{ConfigError, DingTalkAuthLayer, RedisStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_replicas_answer_400_requests_over_20_codes_with_20_exchanges() {
    let dingtalk = support::dingtalk().await;
    let prefix = Prefix::new("four_replicas");
    let replicas = replicas(&dingtalk, &prefix, 4).await;
    let codes: Vec<(String, &str)> = (0..20)
        .map(|i| {
            let userid = USERS[i % USERS.len()];
            (dingtalk.issue_code(userid), userid)
        })
        .collect();

    // Each code 20 times, each time to the next replica, all 400 at once.
    let all = &replicas;
    let requests = (0..20).flat_map(|round| {
        codes
            .iter()
            .enumerate()
            .map(move |(i, (code, userid))| (&all[(i + round) % 4], code, *userid))
    });
    let answers = join_all(requests.map(|(replica, code, userid)| async move {
        let response = replica.get(code).await;
        let status = response.status().as_u16();
        let body = json(response).await;
        (status, body, userid)
    }))
    .await;

    let ok = answers.iter().filter(|(status, ..)| *status == 200).count();
    let exchanges = dingtalk.userinfo_calls();
    println!(
        "4 replicas: {ok} of {} requests answered 200, {exchanges} exchanges with DingTalk for {} codes",
        answers.len(),
        codes.len()
    );
    // A replica whose Redis calls timed out exchanged directly, which is what would turn users away.
    let available: Vec<bool> = replicas.iter().map(|r| r.store.is_available()).collect();
    for (status, body, userid) in &answers {
        assert_eq!(
            *status, 200,
            "{body}; Redis available per replica: {available:?}"
        );
        assert_eq!(body["userid"], *userid);
    }
    assert_eq!(answers.len(), 400);
    assert_eq!(exchanges, 20);
    assert_eq!(dingtalk.faults_served(), 0);
    assert_eq!(replicas.iter().map(Replica::handler_runs).sum::<u64>(), 400);
    for replica in &replicas {
        // Every replica got every code, and keeps each in its own cache from now on.
        assert_eq!(replica.layer.cached_identities().await, 20);
    }
    let codes: Vec<String> = codes.into_iter().map(|(code, _)| code).collect();
    all_codes_absent(&prefix.entries(), &codes);
    let entries = prefix.code_entries();
    // One identity per code, and every lock released.
    assert_eq!(entries.len(), 20, "{entries:?}");
    assert!(entries.iter().all(|(key, ..)| key.contains(":id:{")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_shared_store_replicas_turn_valid_users_away() {
    // The problem the store solves: each replica spends the code on its own, and DingTalk answers
    // only the first.
    let dingtalk = support::dingtalk().await;
    let layers: Vec<DingTalkAuthLayer> = (0..4)
        .map(|_| layer_for(&dingtalk).build().expect("a layer"))
        .collect();
    let mut addrs = Vec::new();
    for layer in &layers {
        addrs.push(serve(routes(Arc::default()).layer(layer.clone())).await.0);
    }
    let http = reqwest::Client::new();
    let code = dingtalk.issue_code("staff01");
    let statuses = join_all(addrs.iter().map(|addr| {
        http.get(format!("http://{addr}/me"))
            .header("x-dingtalk-code", &code)
            .send()
    }))
    .await
    .into_iter()
    .map(|response| response.unwrap().status().as_u16())
    .collect::<Vec<_>>();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count(),
        3,
        "{statuses:?}"
    );
    assert_eq!(dingtalk.userinfo_calls(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_holds_no_code_only_digests_with_bounded_lives() {
    let dingtalk = support::dingtalk().await;
    let prefix = Prefix::new("no_code");
    let replicas = replicas(&dingtalk, &prefix, 2).await;
    let app_key = dingtalk.app_key();
    let good: Vec<String> = USERS.iter().map(|u| dingtalk.issue_code(u)).collect();
    for (code, userid) in good.iter().zip(USERS) {
        replicas[0].expect_user(code, userid).await;
    }
    let bogus = "never-issued-code-0123456789".to_owned();
    assert_rejection(
        replicas[0].get(&bogus).await,
        401,
        "code_rejected",
        &[&bogus],
    )
    .await;

    let mut codes = good.clone();
    codes.push(bogus.clone());
    all_codes_absent(&prefix.entries(), &codes);
    // DingTalk's budget (`tests/shared_budget.rs`): names keyed like digests, bounded lives, and
    // neither the app key nor a code in them.
    for (key, value, ttl) in prefix.entries() {
        let Some(name) = key.strip_prefix(&prefix.prefix) else {
            continue;
        };
        if let Some((kind, names)) = name.split_once(':')
            && kind.starts_with("budget")
        {
            // `{<app>}` (the app's hash tag), then the budget's or the client's name.
            for hmac in names.split(':') {
                let hmac = hmac.trim_start_matches('{').trim_end_matches('}');
                assert!(
                    hmac.len() == 64 && hmac.bytes().all(|b| b.is_ascii_hexdigit()),
                    "{key}"
                );
            }
            assert!(ttl > 0, "{key} lives for ever");
            assert!(!key.contains(app_key.as_str()) && !value.contains(app_key.as_str()));
        }
    }
    let entries = prefix.code_entries();
    assert_eq!(entries.len(), 6, "{entries:?}");
    for (key, value, ttl) in &entries {
        let digest = key
            .strip_prefix(&format!("{}id:{{", prefix.prefix))
            .and_then(|tagged| tagged.strip_suffix('}'))
            .unwrap_or_else(|| panic!("only identities are left, named id:{{<digest>}}: {key}"));
        assert!(
            digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit()),
            "an HMAC-SHA256 in hex: {key}"
        );
        // Every value is authenticated under the replicas' secret, bound to its key.
        let value = &open(digest, value);
        if *value == r#""rejected""# {
            // The rejected-code TTL, 60 s by default.
            assert!((1..=60_000).contains(ttl), "{ttl}");
        } else {
            // At most a code's 5 minutes.
            assert!((1..=300_000).contains(ttl), "{ttl}");
            assert!(value.starts_with(r#"{"user":{"userid":"#), "{value}");
        }
    }
    // The layout the README documents: the prefix, `id:` and the keyed digest of app key and code.
    let mut redis = inspector(&prefix.url);
    for (code, userid) in good.iter().zip(USERS) {
        let stored: String = redis.get(prefix.key("id", &app_key, code)).unwrap();
        let value = open(&digest(&app_key, None, code), &stored);
        assert!(
            value.contains(&format!(r#""userid":"{userid}""#)),
            "{value}"
        );
    }
    let stored: String = redis.get(prefix.key("id", &app_key, &bogus)).unwrap();
    assert_eq!(
        open(&digest(&app_key, None, &bogus), &stored),
        r#""rejected""#
    );

    // The other replica reads both from Redis: the user, and the rejection, with no call.
    let calls = dingtalk.userinfo_calls();
    replicas[1].expect_user(&good[1], USERS[1]).await;
    assert_rejection(
        replicas[1].get(&bogus).await,
        401,
        "code_rejected",
        &[&bogus],
    )
    .await;
    assert_eq!(dingtalk.userinfo_calls(), calls);
    // The shared rejection is remembered locally as well.
    assert_eq!(replicas[1].layer.cache_stats().await.rejected_codes, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_holder_slower_than_the_lock_ttl_keeps_its_lock() {
    let dingtalk = support::dingtalk().await;
    let prefix = Prefix::new("slow_holder");
    let lock_ttl = Duration::from_millis(300);
    let mut replicas = Vec::new();
    for _ in 0..2 {
        let store = prefix.store(|b| b.lock_ttl(lock_ttl)).await;
        replicas.push(Replica::start(&dingtalk, store, |b| b).await);
    }
    // DingTalk takes four lock TTLs to answer the first exchange.
    dingtalk.fail_next(
        Endpoint::GetUserInfo,
        Fault::Latency(Duration::from_millis(1200)),
        1,
    );
    let code = dingtalk.issue_code("boss01");
    let first = replicas[0].expect_user(&code, "boss01");
    let second = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        replicas[1].expect_user(&code, "boss01").await
    };
    let (first, second) = tokio::join!(first, second);
    assert!(first >= Duration::from_millis(1200), "{first:?}");
    assert!(second >= Duration::from_millis(1000), "{second:?}");
    // The holder renewed its lock: the waiter never took over.
    assert_eq!(dingtalk.userinfo_calls(), 1);
}

/// Replica A takes a code's lock and hangs at `hang_at` (on its own runtime, which the test then
/// shuts down to kill A); replica B gets the same code after A died. Returns B's response, how
/// long it took, and the lock's key.
fn replica_dies_holding_a_code(
    dingtalk_endpoint: Endpoint,
    test: &str,
) -> (u16, serde_json::Value, Duration, MockDingTalk) {
    let (main, doomed) = (runtime(), runtime());
    let dingtalk = main.block_on(support::dingtalk());
    let prefix = Prefix::new(test);
    let lock_ttl = Duration::from_millis(600);
    let store = |runtime: &Runtime| runtime.block_on(prefix.store(|b| b.lock_ttl(lock_ttl)));
    let replica_a = {
        let store = store(&doomed);
        doomed.block_on(Replica::start(&dingtalk, store, |b| b))
    };
    let replica_b = {
        let store = store(&main);
        main.block_on(Replica::start(&dingtalk, store, |b| b))
    };
    dingtalk.fail_next(
        dingtalk_endpoint,
        Fault::Latency(Duration::from_secs(30)),
        1,
    );
    let code = dingtalk.issue_code("super01");
    let (http, url, sent) = (replica_a.http.clone(), replica_a.url(), code.clone());
    doomed.spawn(async move {
        let _ = http.get(url).header("x-dingtalk-code", sent).send().await;
    });
    main.block_on(async {
        while dingtalk.calls(dingtalk_endpoint) == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    let lock = prefix.key("lock", &dingtalk.app_key(), &code);
    let ttl: i64 = inspector(&prefix.url).pttl(&lock).unwrap();
    assert!(ttl > 0, "A holds the code's lock: {ttl}");

    // A dies: nothing renews or releases its lock any more.
    doomed.shutdown_background();
    drop(replica_a);
    let started = Instant::now();
    let response = main.block_on(replica_b.get(&code));
    let took = started.elapsed();
    let status = response.status().as_u16();
    let body = main.block_on(json(response));
    let ttl: i64 = inspector(&prefix.url).pttl(&lock).unwrap();
    assert_eq!(ttl, -2, "B released the lock it took");
    drop(replica_b);
    drop(main);
    (status, body, took, dingtalk)
}

#[test]
fn a_replica_that_dies_before_sending_the_code_is_taken_over_when_its_lock_expires() {
    // A dies while fetching its access token: the code never reached DingTalk.
    let (status, body, took, dingtalk) =
        replica_dies_holding_a_code(Endpoint::AccessToken, "dead_before_send");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["userid"], "super01");
    // B waited for the lock to expire, took it and exchanged, well within its 5 s budget.
    assert!(took >= Duration::from_millis(100), "{took:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert_eq!(dingtalk.userinfo_calls(), 1);
}

#[test]
fn a_replica_that_dies_after_sending_the_code_took_the_user_with_it() {
    // A dies while DingTalk answers it: DingTalk spent the code when A's call arrived, and the
    // user died with A. B takes over after the lock expires and is told the truth: 401, once.
    let (status, body, took, dingtalk) =
        replica_dies_holding_a_code(Endpoint::GetUserInfo, "dead_after_send");
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"], "code_rejected");
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert_eq!(dingtalk.userinfo_calls(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_gives_up_at_its_budget_while_the_lock_is_held() {
    let dingtalk = support::dingtalk().await;
    let prefix = Prefix::new("stuck_lock");
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
    let code = dingtalk.issue_code("staff01");
    // A holder with another configuration: its lock outlives this replica's budget.
    let lock = prefix.key("lock", &dingtalk.app_key(), &code);
    let mut redis = inspector(&prefix.url);
    let _: () = redis
        .set_options(
            &lock,
            "someone-else",
            redis::SetOptions::default().with_expiration(redis::SetExpiry::PX(10_000)),
        )
        .unwrap();

    let started = Instant::now();
    let response = replica.get(&code).await;
    let took = started.elapsed();
    assert_rejection(response, 504, "upstream_timeout", &[&code]).await;
    assert!(took >= Duration::from_millis(900), "{took:?}");
    assert!(took < Duration::from_millis(2000), "{took:?}");
    assert_eq!(dingtalk.userinfo_calls(), 0);
    // Its lock untouched; once it is gone, the code is exchanged.
    let owner: String = redis.get(&lock).unwrap();
    assert_eq!(owner, "someone-else");
    let _: i64 = redis.del(&lock).unwrap();
    replica.expect_user(&code, "staff01").await;
    assert_eq!(dingtalk.userinfo_calls(), 1);
}

// One thread, so that the logs of every task are captured.
#[tokio::test]
async fn with_redis_frozen_then_killed_mid_run_replicas_keep_serving_and_share_again() {
    let (_guard, logs) = support::capture_logs();
    let mut redis = RedisServer::start();
    let dingtalk = support::dingtalk().await;
    let prefix = Prefix::on("outage", redis.url());
    let mut replicas = Vec::new();
    for _ in 0..2 {
        let store = prefix
            .store(|b| {
                b.retry_after(Duration::from_millis(200))
                    .lock_ttl(Duration::from_secs(1))
            })
            .await;
        replicas.push(
            Replica::start_with(
                &dingtalk,
                store,
                |c| c.upstream_timeout(Duration::from_secs(2)),
                |l| l,
            )
            .await,
        );
    }
    let mut codes = Vec::new();
    let shared = dingtalk.issue_code("staff01");
    for replica in &replicas {
        replica.expect_user(&shared, "staff01").await;
    }
    assert_eq!(dingtalk.userinfo_calls(), 1);
    codes.push(shared.clone());

    redis.freeze();
    codes.extend(serve_through_outage(&dingtalk, &replicas, &shared).await);
    redis.thaw();
    codes.extend(until_shared_again(&dingtalk, &replicas).await);

    redis.kill();
    codes.extend(serve_through_outage(&dingtalk, &replicas, &shared).await);
    redis.restart();
    codes.extend(until_shared_again(&dingtalk, &replicas).await);

    let logs = logs.contents();
    // One warning per replica per outage, one note when each is back; never a code.
    assert_eq!(logs.matches(DOWN).count(), 4, "{logs}");
    assert_eq!(logs.matches(BACK).count(), 4, "{logs}");
    for code in &codes {
        assert!(!logs.contains(code.as_str()), "a log holds a code");
    }
    let requests: u64 = replicas.iter().map(Replica::handler_runs).sum();
    println!(
        "outage: {requests} requests answered 200 through a freeze and a kill of Redis, \
         {} exchanges",
        dingtalk.userinfo_calls()
    );
}

#[tokio::test]
async fn a_replica_starts_and_serves_while_redis_is_down() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("redis://:s3cret-password@127.0.0.1:{closed}");
    let error = RedisStore::connect(url.as_str(), TEST_SECRET)
        .await
        .unwrap_err();
    assert!(error.is_unreachable());
    for text in [error.to_string(), format!("{error:?}")] {
        assert!(!text.contains("s3cret-password"), "{text}");
    }
    let error = RedisStore::connect("no-such-scheme://x", TEST_SECRET)
        .await
        .unwrap_err();
    assert!(!error.is_unreachable());

    let store = RedisStore::builder(url.as_str())
        .secret(TEST_SECRET)
        .connect_lazy()
        .unwrap();
    assert!(!format!("{store:?}").contains("s3cret-password"));
    let dingtalk = support::dingtalk().await;
    let replica = Replica::start(&dingtalk, store, |b| b).await;
    let code = dingtalk.issue_code("staff01");
    for _ in 0..3 {
        let took = replica.expect_user(&code, "staff01").await;
        assert!(took < Duration::from_millis(1000), "{took:?}");
    }
    assert_eq!(dingtalk.userinfo_calls(), 1);
    assert!(!replica.store.is_available());
}

#[tokio::test]
async fn a_lock_that_outlives_the_budget_is_refused() {
    let prefix = Prefix::new("config");
    let dingtalk = support::dingtalk().await;
    let store = prefix.store(|b| b.lock_ttl(Duration::from_secs(5))).await;
    let error = client_for(&dingtalk)
        .shared_store(store.clone())
        .build()
        .unwrap_err();
    assert!(
        matches!(error, ConfigError::LockOutlivesBudget { .. }),
        "{error}"
    );
    client_for(&dingtalk)
        .shared_store(store)
        .upstream_timeout(Duration::from_secs(10))
        .build()
        .expect("a lock shorter than the budget");
    let error = RedisStore::builder(redis_url())
        .secret(TEST_SECRET)
        .timeout(Duration::ZERO)
        .connect()
        .await
        .unwrap_err();
    assert!(error.to_string().contains("timeout"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_whose_claim_timed_out_still_shares_the_user_it_got() {
    // Replica A's claim reaches Redis and takes the code's lock, but the answer comes too late: A
    // counts Redis as down and exchanges directly. Replica B, which finds A's lock, must get A's
    // user rather than wait for the lock to expire and spend the code a second time (401).
    let dingtalk = support::dingtalk().await;
    let prefix = Prefix::new("late_claim");
    let slow = Arc::new(AtomicBool::new(false));
    let proxy = slow_answers_proxy(&prefix.url, Duration::from_millis(200), slow.clone()).await;
    let slow_store = RedisStore::builder(proxy.as_str())
        .secret(TEST_SECRET)
        .key_prefix(&prefix.prefix)
        .connect()
        .await
        .unwrap_or_else(|error| no_redis(&proxy, &error));
    let a = Replica::start(&dingtalk, slow_store, |b| b).await;
    let b = Replica::start(&dingtalk, prefix.store(|b| b).await, |b| b).await;

    let code = dingtalk.issue_code("staff01");
    slow.store(true, Ordering::SeqCst);
    a.expect_user(&code, "staff01").await;
    assert!(!a.store.is_available(), "A's claim timed out");
    assert_eq!(dingtalk.userinfo_calls(), 1);
    let took = b.expect_user(&code, "staff01").await;
    assert_eq!(dingtalk.userinfo_calls(), 1, "the code was exchanged once");
    // B found the user in Redis, well before A's lock (2 s) would have expired.
    assert!(took < Duration::from_millis(1000), "{took:?}");
    all_codes_absent(&prefix.entries(), &[code]);
}
