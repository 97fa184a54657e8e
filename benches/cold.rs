//! The cold path: every request brings a new code. The fake DingTalk answers getuserinfo after
//! 20 ms and allows 20 calls a second, as DingTalk does; our layer limits itself to 20 a second
//! (and, for contrast, does not). Reports throughput, the latency of queued requests, calls to
//! DingTalk against codes, and how many calls DingTalk throttled (errcode 88, sub_code 90018).
//!
//! `cargo bench --bench cold`; `COLD_SECS` sets the seconds per cell (default 5).

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tower_dingtalk_auth::DingTalkClientBuilder;
use tower_dingtalk_auth::testing::{Endpoint, Fault, MockDingTalk};

use support::dingtalk::{CODE_HEADER, USERID, client_for, dingtalk, layer_with};
use support::driver::{MakeRequest, drive, hello_router, serve};
use support::{get_with, wanted};

/// DingTalk's limit per app and API, which the fake enforces, and our layer's own limit.
const RATE: u32 = 20;
/// How long the fake DingTalk takes to answer getuserinfo.
const LATENCY: Duration = Duration::from_millis(20);
const CONCURRENCIES: [usize; 3] = [1, 16, 64];
/// A pause between cells longer than DingTalk's one-second window, so that no cell inherits the
/// calls of the one before.
const WINDOW: Duration = Duration::from_millis(1100);

type Configure = fn(&MockDingTalk) -> DingTalkClientBuilder;

/// Our client with the local rate limit on, as the cold path should run it, and with it off (what
/// the limit saves DingTalk from).
const CONFIGURATIONS: [(&str, Configure); 2] = [
    ("20/s", |dingtalk| client_for(dingtalk).rate_limit(RATE)),
    ("off", client_for),
];

/// Requests with a fresh code each, counting the codes handed out.
fn fresh_codes(dingtalk: Arc<MockDingTalk>, issued: Arc<AtomicU64>) -> MakeRequest {
    Arc::new(move || {
        issued.fetch_add(1, Ordering::Relaxed);
        get_with(Some((CODE_HEADER, &dingtalk.issue_code(USERID))))
    })
}

fn main() {
    if !wanted("cold") {
        return;
    }
    let seconds: f64 = std::env::var("COLD_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5.0);
    let runtime = support::runtime();
    runtime.block_on(async {
        let dingtalk = Arc::new(dingtalk().await);
        dingtalk.fail_always(Endpoint::GetUserInfo, Fault::Latency(LATENCY));
        dingtalk.set_qps_limit(Some(RATE));
        let issued = Arc::new(AtomicU64::new(0));
        let requests = fresh_codes(dingtalk.clone(), issued.clone());

        println!(
            "| local limit | concurrency | codes sent | getuserinfo calls | 200 \
             | throttled by DingTalk (90018) | refused locally (no call) | req/s | 200/s \
             | p50 | p99 | max |"
        );
        println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        for (limit, configure) in CONFIGURATIONS {
            let layer = layer_with(configure(&dingtalk)).build().expect("a layer");
            let addr = serve(hello_router().layer(layer)).await;
            // One exchange first, so that the access token is fetched outside the measurements.
            tokio::time::sleep(WINDOW).await;
            let warm = drive(addr, 1, Duration::ZERO, requests.clone()).await;
            assert_eq!(warm.ok, 1, "the warm-up exchange succeeds");
            for concurrency in CONCURRENCIES {
                tokio::time::sleep(WINDOW).await;
                let codes_before = issued.load(Ordering::Relaxed);
                let calls_before = dingtalk.userinfo_calls();
                let time = Duration::from_secs_f64(seconds);
                let mut stats = drive(addr, concurrency, time, requests.clone()).await;
                let codes = issued.load(Ordering::Relaxed) - codes_before;
                let calls = dingtalk.userinfo_calls() - calls_before;
                // Every call DingTalk did not throttle spent its code and answered 200; every
                // other answer made no call.
                let throttled = calls.saturating_sub(stats.ok);
                let refused = stats.requests() - stats.ok - throttled;
                let (p50, p99) = (stats.latency(0.50), stats.latency(0.99));
                let max = stats.latency(1.0);
                let ok_per_second = stats.ok as f64 / stats.elapsed.as_secs_f64();
                println!(
                    "| {limit} | {concurrency} | {codes} | {calls} | {} | {throttled} | {refused} \
                     | {:.1} | {ok_per_second:.1} | {} | {} | {} |",
                    stats.ok,
                    stats.per_second(),
                    millis(p50),
                    millis(p99),
                    millis(max),
                );
            }
        }
    });
}

fn millis(latency: Duration) -> String {
    format!("{:.0} ms", latency.as_secs_f64() * 1e3)
}
