//! For pages, in process: our session cookie against axum-login over tower-sessions (its
//! in-memory store, and its Redis store on the machine's Redis), each signed in, each the same hello-world route of an axum `Router`; bare is
//! the same `Router` sent each one's cookie. The same servers under load are in `benches/load.rs`
//! and `benches/wrk.sh`.
//!
//! `cargo bench --bench pages`; it ends with a table of this run's medians.

mod support;

use std::time::{Duration, SystemTime};

use axum::Router;
use bytes::Bytes;
use criterion::{BatchSize, Criterion, criterion_group};
use http::Request;
use http_body_util::Empty;
use tower::ServiceExt;

use support::dingtalk::{dingtalk, session_layer, session_of};
use support::driver::hello_router;
use support::get_with;
use support::medians::{median, show};
use support::pages::{axum_login_cookie, axum_login_redis_router, axum_login_router};

/// The rows: our layer and the rival, each with the bare router sent its cookie.
const ROWS: [(&str, &str); 3] = [
    ("dingtalk_session_cookie", "bare_sent_dingtalk_cookie"),
    ("axum_login", "bare_sent_axum_login_cookie"),
    ("axum_login_redis", "bare_sent_axum_login_redis_cookie"),
];

fn pages(c: &mut Criterion) {
    let runtime = support::runtime();
    let (ours, ours_cookie, rival, rival_cookie, redis, redis_cookie) = runtime.block_on(async {
        let dingtalk = dingtalk().await;
        let sessions = session_layer(&dingtalk);
        let (cookie, _) = session_of(&sessions);
        let rival = axum_login_router();
        let rival_cookie = axum_login_cookie(&rival).await;
        let redis = axum_login_redis_router().await;
        let redis_cookie = axum_login_cookie(&redis).await;
        let ours = hello_router().layer(sessions);
        (ours, cookie, rival, rival_cookie, redis, redis_cookie)
    });
    let mut group = c.benchmark_group("pages");
    let cases: [(&str, Router, &str); 6] = [
        (ROWS[0].1, hello_router(), &ours_cookie),
        (ROWS[0].0, ours, &ours_cookie),
        (ROWS[1].1, hello_router(), &rival_cookie),
        (ROWS[1].0, rival, &rival_cookie),
        (ROWS[2].1, hello_router(), &redis_cookie),
        (ROWS[2].0, redis, &redis_cookie),
    ];
    for (id, router, cookie) in cases {
        let request = || get_with::<Empty<Bytes>>(Some(("cookie", cookie)));
        let response = runtime.block_on(router.clone().oneshot(request()));
        assert_eq!(response.expect("an answer").status(), 200, "{id} rejects");
        group.bench_function(id, |b| {
            b.to_async(&runtime).iter_batched(
                request,
                |request: Request<Empty<Bytes>>| router.clone().oneshot(request),
                BatchSize::SmallInput,
            );
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50);
    targets = pages
}

fn main() {
    let started = SystemTime::now();
    benches();
    Criterion::default().configure_from_args().final_summary();
    let nanos = |time: Duration| time.as_secs_f64() * 1e9;
    println!("\n| signed in, in process | median | over bare sent its cookie |\n|---|---:|---:|");
    for (layered, bare) in ROWS {
        if let (Some(time), Some(bare)) = (
            median("pages", layered, started),
            median("pages", bare, started),
        ) {
            let over = nanos(time) - nanos(bare);
            println!("| {layered} | {} | {over:+.0} ns |", show(time));
        }
    }
}
