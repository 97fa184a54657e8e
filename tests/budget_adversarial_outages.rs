//! Attacks on the shared DingTalk budget when Redis fails under it: killed and restarted, one
//! replica's connections cut, the budget's key deleted, each in the middle of a burst of new
//! logins at three times the budget. (The other attacks are in `tests/budget_adversarial.rs`.)

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use redis::Commands;
use tower_dingtalk_auth::RedisStore;

use support::budget::{RATE, Sampler, fleet, stores};
use support::budget_attack::{budget_key, burst_while, cutting_proxy, every_replica_asks};
use support::store::{Prefix, RedisServer, SHARING_TEST_TIMEOUT, TEST_SECRET, inspector};

// One thread, so that the logs of every task are captured.
#[ignore = "known defect: replicas leave and rejoin the budget at different moments; shares plus budget exceed 20/s: 90018s"]
#[tokio::test]
async fn redis_killed_and_restarted_mid_burst_draws_no_throttle_and_no_panic() {
    let (_guard, logs) = support::capture_logs();
    let mut redis = RedisServer::start();
    let dingtalk = Arc::new(support::dingtalk().await);
    dingtalk.set_qps_limit(Some(RATE));
    let prefix = Prefix::on("attack-blink", redis.url());
    let replicas = Arc::new(fleet(&dingtalk, stores(&prefix, 4).await).await);
    every_replica_asks(&dingtalk, &replicas, 2).await;
    let start = tokio::time::Instant::now();
    let blink = async {
        for (at, up) in [(1_500, false), (2_500, true), (3_500, false), (4_000, true)] {
            tokio::time::sleep_until(start + Duration::from_millis(at)).await;
            if up { redis.restart() } else { redis.kill() }
        }
    };
    let served = burst_while(&dingtalk, &replicas, blink).await;
    assert!(served >= 60, "logins served through the blinks: {served}");
    assert_eq!(dingtalk.throttled_calls(), 0, "DingTalk never throttled");
    assert!(!logs.contents().contains("panicked"), "{}", logs.contents());
}

#[ignore = "known defect: one replica at its share beside three at the whole budget sends 19 + 3.8 a second: 90018s"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_replicas_redis_connections_dropped_mid_burst_draw_no_throttle() {
    let dingtalk = Arc::new(support::dingtalk().await);
    dingtalk.set_qps_limit(Some(RATE));
    let prefix = Prefix::new("attack-cut");
    let cut = Arc::new(AtomicBool::new(false));
    let proxied = cutting_proxy(&prefix.url, cut.clone()).await;
    let mut all = vec![
        RedisStore::builder(&proxied)
            .secret(TEST_SECRET)
            .key_prefix(&prefix.prefix)
            .timeout(SHARING_TEST_TIMEOUT)
            .connect()
            .await
            .expect("the proxy relays"),
    ];
    all.extend(stores(&prefix, 3).await);
    let replicas = Arc::new(fleet(&dingtalk, all).await);
    every_replica_asks(&dingtalk, &replicas, 2).await;
    let start = tokio::time::Instant::now();
    let blink = async {
        for (at, down) in [(1_500, true), (3_500, false)] {
            tokio::time::sleep_until(start + Duration::from_millis(at)).await;
            cut.store(down, Ordering::SeqCst);
        }
    };
    let served = burst_while(&dingtalk, &replicas, blink).await;
    assert!(served >= 60, "logins served: {served}");
    assert_eq!(dingtalk.throttled_calls(), 0, "DingTalk never throttled");
}

#[ignore = "known defect: the replica that recreates a deleted budget knows only its own last slot, a few slots behind the others: 90018s"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_key_deleted_mid_burst_draws_no_throttle() {
    let dingtalk = Arc::new(support::dingtalk().await);
    dingtalk.set_qps_limit(Some(RATE));
    let prefix = Prefix::new("attack-deleted");
    let replicas = Arc::new(fleet(&dingtalk, stores(&prefix, 4).await).await);
    let key = budget_key(&prefix.prefix, support::MOCK_KEY, "getuserinfo");
    let start = tokio::time::Instant::now();
    let url = prefix.url.clone();
    let delete = async {
        for at in [1_500, 2_500, 3_500] {
            tokio::time::sleep_until(start + Duration::from_millis(at)).await;
            let deleted: i64 = inspector(&url).del(&key).expect("DEL");
            assert_eq!(deleted, 1, "the budget's key was there to delete");
        }
    };
    let sampler = Sampler::start(&dingtalk, Instant::now());
    let served = burst_while(&dingtalk, &replicas, delete).await;
    sampler.stop();
    let per_second: Vec<u64> = (0..7)
        .map(|s| sampler.calls_between(Duration::from_secs(s), Duration::from_secs(s + 1)))
        .collect();
    eprintln!("per second: {per_second:?}");
    assert!(served >= 60, "logins served: {served}");
    assert_eq!(dingtalk.throttled_calls(), 0, "DingTalk never throttled");
}
