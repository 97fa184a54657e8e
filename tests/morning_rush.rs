//! The morning rush: 3,000 people sign in for the first time within a minute, 2.5 times what
//! DingTalk allows (20 calls a second per app), through four replicas sharing one budget in Redis.
//! Each client does what the front-end helper does (docs/front_end.md): on 503 it waits
//! `Retry-After`, gets a fresh code and tries again. Every client has its own address, which the
//! proxy in front of the replicas writes in `X-Forwarded-For`.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use support::budget::{RATE, Sampler, attempt, fleet, stores};
use support::store::Prefix;

const USERS: u64 = 3_000;
const ARRIVALS: Duration = Duration::from_secs(60);

/// One client's sign-in: when it arrived, when it was served, how often it was refused, and how
/// long after its first promised return it was served.
struct SignIn {
    took: Duration,
    refused: u32,
    late: Option<Duration>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_thousand_first_logins_in_a_minute_are_all_served_in_turn() {
    let dingtalk = Arc::new(support::dingtalk().await);
    dingtalk.set_qps_limit(Some(RATE));
    let prefix = Prefix::new("morning-rush");
    let replicas = Arc::new(fleet(&dingtalk, stores(&prefix, 4).await).await);
    let start = Instant::now();
    let sampler = Sampler::start(&dingtalk, start);
    let mut clients = JoinSet::new();
    for i in 0..USERS {
        let (dingtalk, replicas) = (dingtalk.clone(), replicas.clone());
        // Evenly over the minute, each client at its own moment.
        let arrives = ARRIVALS.mul_f64(i as f64 / USERS as f64);
        clients.spawn(async move {
            tokio::time::sleep_until((start + arrives).into()).await;
            let arrived = Instant::now();
            let (mut refused, mut first_return) = (0, None);
            loop {
                let code = dingtalk.issue_code("staff01");
                // The load balancer sends each attempt to the next replica.
                let replica = &replicas[(i as usize + refused as usize) % replicas.len()];
                match attempt(replica, i, &code).await {
                    (200, _) => {
                        let served = Instant::now();
                        return SignIn {
                            took: served - arrived,
                            refused,
                            late: first_return
                                .map(|at: Instant| served.saturating_duration_since(at)),
                        };
                    }
                    (503, Some(seconds)) => {
                        refused += 1;
                        let back = Instant::now() + Duration::from_secs(seconds);
                        first_return.get_or_insert(back);
                        tokio::time::sleep_until(back.into()).await;
                    }
                    other => panic!("client {i}: {other:?}"),
                }
            }
        });
    }
    let sign_ins = clients.join_all().await;
    let end = start.elapsed();
    tokio::time::sleep(Duration::from_millis(300)).await;
    sampler.stop();

    assert_eq!(sign_ins.len() as u64, USERS, "every user signed in");
    assert_eq!(dingtalk.throttled_calls(), 0, "DingTalk never throttled");
    assert_eq!(dingtalk.userinfo_calls(), USERS, "one call per sign-in");
    let mut took: Vec<Duration> = sign_ins.iter().map(|s| s.took).collect();
    took.sort();
    let (p50, p99, max) = (
        took[took.len() / 2],
        took[took.len() * 99 / 100],
        took[took.len() - 1],
    );
    let max_refused = sign_ins.iter().map(|s| s.refused).max().unwrap();
    let mut late: Vec<Duration> = sign_ins.iter().filter_map(|s| s.late).collect();
    late.sort();
    let late_p99 = late[late.len() * 99 / 100];
    let late_max = late[late.len() - 1];
    // Demand lasts from the first second to the last sign-in.
    let used = sampler.calls_between(Duration::from_secs(1), end);
    let per_second = used as f64 / (end.as_secs_f64() - 1.0);
    eprintln!(
        "morning rush: {USERS} first logins in {:.0} s through 4 replicas: {per_second:.1} logins/s \
         served (DingTalk allows {RATE}); time to sign in p50 {:.1} s, p99 {:.1} s, max {:.1} s; \
         refused at most {max_refused} times; served after the first promised return: p99 \
         {:.1} s, max {:.1} s; busiest second {} calls",
        end.as_secs_f64(),
        p50.as_secs_f64(),
        p99.as_secs_f64(),
        max.as_secs_f64(),
        late_p99.as_secs_f64(),
        late_max.as_secs_f64(),
        sampler.busiest_second(),
    );
    assert!(
        per_second >= 0.9 * f64::from(RATE),
        "at least 90% of the budget used while demand lasts: {per_second:.1}/s"
    );
    // Retry-After is honest: a client that comes back when told is served within a few seconds.
    assert!(max_refused <= 6, "a client refused {max_refused} times");
    assert!(
        late_max <= Duration::from_secs(10),
        "served {late_max:?} after its return"
    );
    // Served in turn: the last of the minute waits about twice the median, nobody much longer.
    assert!(
        p99.as_secs_f64() <= 3.0 * p50.as_secs_f64(),
        "p99 {p99:?} against p50 {p50:?}"
    );
    assert!(
        max.as_secs_f64() <= 1.2 * p99.as_secs_f64() + 5.0,
        "a client starved: {max:?}"
    );
}
