//! The attacks on the shared DingTalk budget (`tests/budget_adversarial.rs`): bursts of new
//! logins, honest refusals, a flood beside honest clients, a proxy that cuts Redis off.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::task::JoinSet;
use tower_dingtalk_auth::testing::MockDingTalk;

use super::budget::attempt;
use super::store::{Replica, TEST_SECRET};

/// One slot of the budget: 20 a second spaced 5% wider.
pub const SLOT: Duration = Duration::from_micros(52_500);

/// Sends `per_tick` new codes every 100 ms for `ticks` ticks, spread over `replicas`, each from a
/// client of its own (from `first_client` on) whom `corp` (if any) names the corp of; nobody
/// comes back. Answers each status with its `Retry-After`, in the order sent.
pub async fn burst(
    dingtalk: &Arc<MockDingTalk>,
    replicas: &Arc<Vec<Replica>>,
    ticks: u64,
    per_tick: u64,
    first_client: u64,
) -> Vec<(u16, Option<u64>)> {
    let start = tokio::time::Instant::now();
    let mut tasks = JoinSet::new();
    for tick in 0..ticks {
        for k in 0..per_tick {
            let i = first_client + tick * per_tick + k;
            let (code, replicas) = (dingtalk.issue_code("staff01"), replicas.clone());
            let r = (i as usize) % replicas.len();
            tasks.spawn(async move { (i, attempt(&replicas[r], i, &code).await) });
        }
        tokio::time::sleep_until(start + Duration::from_millis(100 * (tick + 1))).await;
    }
    let mut answers = tasks.join_all().await;
    answers.sort_by_key(|(i, _)| *i);
    answers.into_iter().map(|(_, answer)| answer).collect()
}

/// Every answer is 200 or an honest 503: `Retry-After` a whole number of seconds, at least 1, and
/// no further than the slots of every refusal so far (plus 2 s): never hours. Answers the served.
pub fn honest(answers: &[(u16, Option<u64>)]) -> usize {
    let mut refused = 0u32;
    for (status, retry_after) in answers {
        assert!([200, 503].contains(status), "200 or 503, got {status}");
        if *status == 503 {
            refused += 1;
            let bound = (SLOT * refused + Duration::from_secs(2)).as_secs();
            let seconds = retry_after.expect("503 with a whole-second Retry-After");
            assert!(
                (1..=bound).contains(&seconds),
                "Retry-After {seconds} s after {refused} refusals"
            );
        }
    }
    answers.iter().filter(|(status, _)| *status == 200).count()
}

/// Every replica logs in one client, `rounds` times, a second apart: each learns the replicas.
pub async fn every_replica_asks(dingtalk: &MockDingTalk, replicas: &[Replica], rounds: u64) {
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

/// The name of the budget of `app_key`'s `api` in Redis, as docs/replicas.md gives it.
pub fn budget_key(prefix: &str, app_key: &str, api: &str) -> String {
    let parts: [&[u8]; 3] = [
        b"tower-dingtalk-auth/budget/v1",
        app_key.as_bytes(),
        api.as_bytes(),
    ];
    let tag = label(&[b"tower-dingtalk-auth/replicas/v1", app_key.as_bytes()]);
    format!("{prefix}budget:{{{tag}}}:{}", label(&parts))
}

/// The name of the promises made to the client `client` for getuserinfo, as docs/replicas.md
/// gives it.
pub fn owed_key(prefix: &str, app_key: &str, client: &str) -> String {
    let parts: [&[u8]; 5] = [
        b"tower-dingtalk-auth/owed/v1",
        app_key.as_bytes(),
        b"getuserinfo",
        b"client",
        client.as_bytes(),
    ];
    // One app's budget keys share its hash tag (a Redis Cluster keeps them on one slot).
    let tag = label(&[b"tower-dingtalk-auth/replicas/v1", app_key.as_bytes()]);
    format!("{prefix}budget-owed:{{{tag}}}:{}", label(&parts))
}

fn label(parts: &[&[u8]]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(TEST_SECRET).unwrap();
    for part in parts {
        mac.update(&(part.len() as u64).to_be_bytes());
        mac.update(part);
    }
    let bytes = mac.finalize().into_bytes();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One login of a client whose request carries `forwarded` as `X-Forwarded-For`, sent by `http`.
pub async fn login(
    http: &reqwest::Client,
    url: &str,
    forwarded: &str,
    code: &str,
) -> (u16, Option<u64>) {
    let response = http
        .get(url)
        .header("x-dingtalk-code", code)
        .header("x-forwarded-for", forwarded)
        .send()
        .await
        .expect("the replica answers");
    let retry_after = response.headers().get("retry-after");
    let retry_after = retry_after.and_then(|value| value.to_str().ok()?.parse().ok());
    (response.status().as_u16(), retry_after)
}

/// For `flood`: an attacker at `urls` with 16 concurrent loops of fresh codes, each from `attacker`
/// (with the `X-Forwarded-For` it picks); after 3 s, 20 honest clients (`honest(i)`) arrive and do
/// as the front-end helper does. Answers each honest client's first `Retry-After` (0 when served
/// at once) and how long it took to be served.
pub async fn flood(
    dingtalk: &Arc<MockDingTalk>,
    urls: &[String],
    attacker: impl Fn(u64) -> (reqwest::Client, String) + Send + Sync + 'static,
    honest: impl Fn(u64) -> (reqwest::Client, String) + Send + Sync + 'static,
) -> Vec<(u64, Duration)> {
    let stop = Arc::new(AtomicBool::new(false));
    // The honest clients are made before the flood: making a client loads the system's roots,
    // which holds a runtime thread (replicas and fake alike) for a while each time.
    let mut honest: Vec<_> = (0..20u64).map(&honest).collect();
    let attacker = Arc::new(attacker);
    let mut attackers = JoinSet::new();
    for n in 0..16u64 {
        let (dingtalk, stop, attacker) = (dingtalk.clone(), stop.clone(), attacker.clone());
        let url = urls[n as usize % urls.len()].clone();
        attackers.spawn(async move {
            let mut seen = std::collections::BTreeMap::new();
            let mut sent = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let (http, forwarded) = attacker(n * 1_000_000 + sent);
                let code = dingtalk.issue_code("staff01");
                let answer = login(&http, &url, &forwarded, &code).await;
                *seen.entry(answer).or_insert(0u64) += 1;
                sent += 1;
            }
            seen
        });
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut clients = JoinSet::new();
    for (i, (http, forwarded)) in honest.drain(..).enumerate() {
        let dingtalk = dingtalk.clone();
        let url = urls[i % urls.len()].clone();
        clients.spawn(async move {
            let arrived = Instant::now();
            let mut first = None;
            loop {
                let code = dingtalk.issue_code("staff01");
                match login(&http, &url, &forwarded, &code).await {
                    (200, _) => return (first.unwrap_or(0), arrived.elapsed()),
                    (503, Some(seconds)) => {
                        first.get_or_insert(seconds);
                        assert!(seconds <= 60, "client {i} told to come back in {seconds} s");
                        tokio::time::sleep(Duration::from_secs(seconds)).await;
                    }
                    other => panic!("honest client {i}: {other:?}"),
                }
            }
        });
    }
    let served = clients.join_all().await;
    stop.store(true, Ordering::SeqCst);
    let mut seen = std::collections::BTreeMap::new();
    for answers in attackers.join_all().await {
        for (answer, count) in answers {
            *seen.entry(answer).or_insert(0u64) += count;
        }
    }
    eprintln!("flood: the attacker got {seen:?}; honest clients: {served:?}");
    served
}

pub fn not_starved(served: &[(u64, Duration)]) {
    for (i, (first_retry, took)) in served.iter().enumerate() {
        assert!(*first_retry <= 5, "client {i} was told {first_retry} s");
        assert!(
            *took <= Duration::from_secs(8),
            "client {i} served after {took:?}"
        );
    }
}

/// Bursts at three times the budget on `replicas` for 6 s while `blink` runs beside them.
pub async fn burst_while(
    dingtalk: &Arc<MockDingTalk>,
    replicas: &Arc<Vec<Replica>>,
    blink: impl Future<Output = ()>,
) -> usize {
    let (answers, ()) = tokio::join!(burst(dingtalk, replicas, 60, 6, 0), blink);
    let mut histogram = std::collections::BTreeMap::new();
    for answer in &answers {
        *histogram.entry(*answer).or_insert(0) += 1;
    }
    eprintln!("answers: {histogram:?}");
    let served = honest(&answers);
    eprintln!(
        "{served} of {} served, {} getuserinfo calls, {} throttled",
        answers.len(),
        dingtalk.userinfo_calls(),
        dingtalk.throttled_calls()
    );
    served
}

/// A TCP proxy in front of `redis` that, while `cut` is set, drops every connection it holds and
/// every new one.
pub async fn cutting_proxy(redis: &str, cut: Arc<AtomicBool>) -> String {
    let upstream = redis
        .trim_start_matches("redis://")
        .trim_end_matches('/')
        .to_owned();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            if cut.load(Ordering::SeqCst) {
                continue;
            }
            let (upstream, cut) = (upstream.clone(), cut.clone());
            tokio::spawn(async move {
                let Ok(mut redis) = tokio::net::TcpStream::connect(&upstream).await else {
                    return;
                };
                let relay = tokio::io::copy_bidirectional(&mut client, &mut redis);
                let cut = async {
                    while !cut.load(Ordering::SeqCst) {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                };
                tokio::select! { _ = relay => {}, () = cut => {} }
            });
        }
    });
    format!("redis://{addr}")
}
