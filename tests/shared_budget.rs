//! One DingTalk budget for all replicas: four replicas, each its own client, layer and connection
//! to Redis under one key prefix, against one fake DingTalk that throttles past 20 calls a second
//! (as DingTalk does, per app and API). The morning rush is in `tests/morning_rush.rs`.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::Commands;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinSet;
use tower_dingtalk_auth::RedisStore;
use tower_dingtalk_auth::testing::MockDingTalk;

use support::budget::{RATE, Sampler, attempt, fleet, stores};
use support::budget_attack::budget_key;
use support::store::{Prefix, RedisServer, Replica, TEST_SECRET, inspector};

/// Sends `per_tick` new codes, each from a client of its own, to every replica every 100 ms for
/// `ticks` ticks; no client comes back. Answers every status with its `Retry-After`.
async fn bursts(
    dingtalk: &Arc<MockDingTalk>,
    replicas: &Arc<Vec<Replica>>,
    ticks: u64,
    per_tick: u64,
    first_client: u64,
) -> Vec<(u16, Option<u64>)> {
    let start = tokio::time::Instant::now();
    let mut tasks = JoinSet::new();
    for tick in 0..ticks {
        for r in 0..replicas.len() {
            for k in 0..per_tick {
                let i = first_client + (tick * replicas.len() as u64 + r as u64) * per_tick + k;
                let code = dingtalk.issue_code("staff01");
                let replicas = replicas.clone();
                tasks.spawn(async move { attempt(&replicas[r], i, &code).await });
            }
        }
        tokio::time::sleep_until(start + Duration::from_millis(100 * (tick + 1))).await;
    }
    tasks.join_all().await
}

/// Every replica logs in one client, `rounds` times, a second apart: each has asked the budget
/// since the others did, so each knows how many replicas there are.
async fn every_replica_asks(dingtalk: &MockDingTalk, replicas: &[Replica], rounds: u64) {
    for round in 0..rounds {
        if round > 0 {
            tokio::time::sleep(Duration::from_millis(1_100)).await;
        }
        for (r, replica) in replicas.iter().enumerate() {
            let code = dingtalk.issue_code("staff01");
            let (status, _) = attempt(replica, 900_000 + round * 10 + r as u64, &code).await;
            assert_eq!(status, 200, "replica {r} serves a lone login");
        }
    }
}

fn refused_honestly(answers: &[(u16, Option<u64>)]) -> usize {
    for (status, retry_after) in answers {
        assert!(
            [200, 503].contains(status),
            "a burst gets 200 or 503, got {status}"
        );
        if *status == 503 {
            assert!(
                retry_after.is_some_and(|s| s >= 1),
                "503 without Retry-After"
            );
        }
    }
    answers.iter().filter(|(status, _)| *status == 200).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bursts_of_new_codes_on_every_replica_draw_no_throttle_and_use_the_budget() {
    let dingtalk = Arc::new(support::dingtalk().await);
    dingtalk.set_qps_limit(Some(RATE));
    let prefix = Prefix::new("budget-bursts");
    let replicas = Arc::new(fleet(&dingtalk, stores(&prefix, 4).await).await);
    let sampler = Sampler::start(&dingtalk, Instant::now());
    // 4 replicas × 5 codes every 100 ms: 200 new logins a second, ten times the budget, for 5 s.
    let answers = bursts(&dingtalk, &replicas, 50, 5, 0).await;
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    sampler.stop();
    let served = refused_honestly(&answers);
    assert_eq!(dingtalk.throttled_calls(), 0, "DingTalk never throttled");
    assert_eq!(
        dingtalk.userinfo_calls(),
        served as u64,
        "one call per login"
    );
    // Demand lasted 5 s; from its first second on, the budget is used.
    let used = sampler.calls_between(Duration::from_secs(1), Duration::from_secs(5));
    eprintln!(
        "bursts: {served} of {} logins served, {used} calls in seconds 1..5 (budget {}), \
         busiest second {}",
        answers.len(),
        4 * RATE,
        sampler.busiest_second()
    );
    assert!(
        used * 10 >= 9 * 4 * u64::from(RATE),
        "at least 90% of the budget used while there is demand: {used} calls in 4 s"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_down_the_replicas_fall_back_to_their_share() {
    let mut redis = RedisServer::start();
    let dingtalk = Arc::new(support::dingtalk().await);
    dingtalk.set_qps_limit(Some(RATE));
    let prefix = Prefix::on("budget-down", redis.url());
    let replicas = Arc::new(fleet(&dingtalk, stores(&prefix, 4).await).await);
    every_replica_asks(&dingtalk, &replicas, 2).await;
    redis.kill();
    let before = dingtalk.userinfo_calls();
    let sampler = Sampler::start(&dingtalk, Instant::now());
    // 4 replicas × 3 codes every 100 ms for 4 s: six times the budget, each replica alone.
    let answers = bursts(&dingtalk, &replicas, 40, 3, 0).await;
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    sampler.stop();
    let served = refused_honestly(&answers);
    let used = sampler.calls_between(Duration::from_secs(1), Duration::from_secs(4));
    eprintln!(
        "redis down: {served} logins served, {used} calls in seconds 1..4, busiest second {}, \
         {} throttled, {} token calls",
        sampler.busiest_second(),
        dingtalk.throttled_calls(),
        dingtalk.token_calls(),
    );
    assert_eq!(
        dingtalk.throttled_calls(),
        0,
        "4 replicas × 5/s: no throttle"
    );
    assert_eq!(dingtalk.userinfo_calls() - before, served as u64);
    // Each replica at a quarter of the rate, spaced 5% and 25% wider: 15 a second together.
    assert!(
        used >= 3 * 10,
        "the replicas keep sending at their shares: {used} calls in 3 s"
    );
}

// One thread, so that the logs of every task are captured.
#[tokio::test]
async fn a_budget_key_of_the_wrong_type_leaves_each_replica_its_share_with_one_warning() {
    let (_guard, logs) = support::capture_logs();
    let dingtalk = Arc::new(support::dingtalk().await);
    dingtalk.set_qps_limit(Some(RATE));
    let prefix = Prefix::new("budget-wrong-type");
    let key = budget_key(&prefix.prefix, support::MOCK_KEY, "getuserinfo");
    let _: () = inspector(&prefix.url)
        .set(&key, "not a budget")
        .expect("SET");
    let replicas = Arc::new(fleet(&dingtalk, stores(&prefix, 4).await).await);
    every_replica_asks(&dingtalk, &replicas, 2).await;
    let answers = bursts(&dingtalk, &replicas, 30, 3, 0).await;
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let served = refused_honestly(&answers);
    assert!(served >= 30, "logins are served at the shares: {served}");
    assert_eq!(
        dingtalk.throttled_calls(),
        0,
        "the shares keep DingTalk's limit"
    );
    let planted: String = inspector(&prefix.url).get(&key).expect("GET");
    assert_eq!(planted, "not a budget", "the budget never writes over it");
    let logs = logs.contents();
    let warned = logs.matches("the shared DingTalk budget failed:").count();
    assert_eq!(warned, 4, "one warning per replica:\n{logs}");
    assert!(!logs.contains("panicked"), "{logs}");
}

/// A proxy in front of the tests' Redis that answers the budget's script (the one script with
/// twelve arguments or more) with nonsense, and relays everything else.
async fn nonsense_for_the_budget(redis_url: &str) -> String {
    let upstream = redis_url
        .trim_start_matches("redis://")
        .trim_end_matches('/')
        .to_owned();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let upstream = upstream.clone();
            tokio::spawn(async move {
                let Ok(mut redis) = tokio::net::TcpStream::connect(&upstream).await else {
                    return;
                };
                let (mut buffer, mut chunk) = (Vec::new(), [0u8; 4096]);
                while let Ok(read) = socket.read(&mut chunk).await {
                    if read == 0 {
                        return;
                    }
                    buffer.extend_from_slice(&chunk[..read]);
                    while let Some((args, used)) = parse_command(&buffer) {
                        let command: Vec<u8> = buffer.drain(..used).collect();
                        let answer = if args >= 12 {
                            b"*2\r\n$4\r\njunk\r\n:-7\r\n".to_vec()
                        } else {
                            match relay(&mut redis, &command).await {
                                Some(answer) => answer,
                                None => return,
                            }
                        };
                        if socket.write_all(&answer).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    format!("redis://{addr}")
}

/// Sends `command` to Redis and reads its whole reply.
async fn relay(redis: &mut tokio::net::TcpStream, command: &[u8]) -> Option<Vec<u8>> {
    redis.write_all(command).await.ok()?;
    let (mut reply, mut chunk) = (Vec::new(), [0u8; 4096]);
    loop {
        if let Some(length) = reply_length(&reply, 0) {
            return (length == reply.len()).then_some(reply);
        }
        let read = redis.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        reply.extend_from_slice(&chunk[..read]);
    }
}

fn resp_line(buffer: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let end = buffer.get(at..)?.windows(2).position(|w| w == b"\r\n")? + at;
    Some((&buffer[at..end], end + 2))
}

/// Where the RESP reply starting at `at` ends, once it is complete.
fn reply_length(buffer: &[u8], at: usize) -> Option<usize> {
    let (line, next) = resp_line(buffer, at)?;
    let number = || std::str::from_utf8(&line[1..]).ok()?.parse::<i64>().ok();
    match line.first()? {
        b'+' | b'-' | b':' => Some(next),
        b'$' => {
            let length = number()?;
            if length < 0 {
                return Some(next);
            }
            let end = next + usize::try_from(length).ok()? + 2;
            (buffer.len() >= end).then_some(end)
        }
        b'*' => {
            let mut at = next;
            for _ in 0..number()?.max(0) {
                at = reply_length(buffer, at)?;
            }
            Some(at)
        }
        _ => None,
    }
}

/// How many arguments the first RESP command in `buffer` has, and the bytes it takes, once it is
/// complete.
fn parse_command(buffer: &[u8]) -> Option<(usize, usize)> {
    let (header, mut at) = resp_line(buffer, 0)?;
    let count: usize = std::str::from_utf8(header.strip_prefix(b"*")?)
        .ok()?
        .parse()
        .ok()?;
    for _ in 0..count {
        let (length, start) = resp_line(buffer, at)?;
        let length: usize = std::str::from_utf8(length.strip_prefix(b"$")?)
            .ok()?
            .parse()
            .ok()?;
        if buffer.len() < start + length + 2 {
            return None;
        }
        at = start + length + 2;
    }
    Some((count, at))
}

// One thread, so that the logs of every task are captured.
#[tokio::test]
async fn a_budget_script_answered_with_nonsense_costs_one_warning_and_logins_are_served() {
    let (_guard, logs) = support::capture_logs();
    let dingtalk = Arc::new(support::dingtalk().await);
    dingtalk.set_qps_limit(Some(RATE));
    let prefix = Prefix::new("budget-nonsense");
    let url = nonsense_for_the_budget(&prefix.url).await;
    let store = RedisStore::builder(&url)
        .secret(TEST_SECRET)
        .key_prefix(&prefix.prefix)
        .timeout(support::store::SHARING_TEST_TIMEOUT)
        .connect()
        .await
        .expect("the proxy relays PING");
    let replicas = Arc::new(fleet(&dingtalk, vec![store]).await);
    // 10 new logins a second for 3 s: within the one replica's share, all are served.
    let answers = bursts(&dingtalk, &replicas, 30, 1, 0).await;
    let served = refused_honestly(&answers);
    assert_eq!(served, 30, "every login served: {answers:?}");
    assert_eq!(dingtalk.throttled_calls(), 0);
    let logs = logs.contents();
    assert_eq!(logs.matches(" WARN ").count(), 1, "one warning:\n{logs}");
    assert_eq!(
        logs.matches("the shared DingTalk budget failed:").count(),
        1,
        "{logs}"
    );
    assert!(!logs.contains("panicked"), "{logs}");
}
