//! Loopback load: axum hello-world servers — bare, tower-http's header compare, a JWT layer, ours
//! with 1,000 cached codes spread over the requests, ours signed in by a session cookie and by the
//! same session as a bearer token, ours as a replica that finds those identities in Redis
//! (local miss, Redis hit), and axum-login over tower-sessions signed in (its memory and Redis
//! stores) — driven in one run by one load generator over keep-alive connections
//! at concurrency 1, 16 and 128.
//!
//! `cargo bench --bench load`; `LOAD_SECS` sets the seconds per cell (default 3). The Redis path
//! needs Redis at `REDIS_URL` (default `redis://127.0.0.1:6379`).

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::runtime::Runtime;
use tower_dingtalk_auth::testing::MockDingTalk;

use support::dingtalk::{
    CODE_HEADER, cache_codes, client_for, dingtalk, layer_for, layer_with, redis_store,
    session_layer, session_of,
};
use support::driver::{MakeRequest, Stats, drive, hello_router, serve, thread_cpu};
use support::pages::{axum_login_cookie, axum_login_redis_router, axum_login_router};
use support::rivals::{bearer_authorization, bearer_layer, jwt_authorization, jwt_layer};
use support::{get_with, wanted};

const CONCURRENCIES: [usize; 3] = [1, 16, 128];
/// Codes cached in our layer, spread over the requests.
const CACHED_CODES: usize = 1_000;
/// Each cell's time is cut in slices taken in turn across the servers, so that any drift of the
/// machine during the run weighs on every server alike.
const SLICES: u32 = 6;
/// The name of the servers' thread, whose CPU time is measured.
const SERVER_THREAD: &str = "server";
/// Load before each slice that is not counted: fresh connections, warm caches.
const WARM_UP: Duration = Duration::from_millis(100);

const BARE: &str = "bare axum";
// Bare again, sent the very requests our session paths get: the difference is the layer's work.
const BARE_COOKIE: &str = "bare axum, session cookie sent";
const BARE_TOKEN: &str = "bare axum, bearer token sent";
const BEARER: &str = "tower-http bearer (constant-time)";
const JWT: &str = "JWT HS256 (jsonwebtoken)";
const DINGTALK: &str = "dingtalk, 1,000 cached codes";
const SESSION_COOKIE: &str = "dingtalk, session cookie";
const SESSION_TOKEN: &str = "dingtalk, session bearer token";
const REDIS: &str = "dingtalk, local miss + Redis hit";
const AXUM_LOGIN: &str = "axum-login over tower-sessions (MemoryStore), signed in";
const AXUM_LOGIN_REDIS: &str = "axum-login over tower-sessions (RedisStore), signed in";
// The same three hot paths with a metrics recorder installed (`--features metrics`).
#[cfg(feature = "metrics")]
const METRICS_CODES: &str = "dingtalk, 1,000 cached codes, metrics on";
#[cfg(feature = "metrics")]
const METRICS_COOKIE: &str = "dingtalk, session cookie, metrics on";
#[cfg(feature = "metrics")]
const METRICS_TOKEN: &str = "dingtalk, session bearer token, metrics on";
/// The servers with an auth layer, by name.
const LAYERED: [&str; 8] = [
    BEARER,
    JWT,
    DINGTALK,
    SESSION_COOKIE,
    SESSION_TOKEN,
    REDIS,
    AXUM_LOGIN,
    AXUM_LOGIN_REDIS,
];

/// One server under test and the requests it accepts: one header, its values in turn.
struct Target {
    name: &'static str,
    addr: SocketAddr,
    header: &'static str,
    values: Arc<Vec<String>>,
}

impl Target {
    fn new(
        name: &'static str,
        addr: SocketAddr,
        header: &'static str,
        values: Vec<String>,
    ) -> Self {
        Self {
            name,
            addr,
            header,
            values: Arc::new(values),
        }
    }

    fn is_bare(&self) -> bool {
        self.name.starts_with(BARE)
    }

    /// Where in `targets` the bare server sent the same header is: what this one is compared with.
    fn baseline(&self, targets: &[Target]) -> usize {
        let same = |t: &Target| t.is_bare() && t.header == self.header;
        targets.iter().position(same).unwrap_or(0)
    }

    /// Requests carrying the header with each value in turn.
    fn requests(&self) -> MakeRequest {
        let (header, values) = (self.header, self.values.clone());
        let next = AtomicUsize::new(0);
        Arc::new(move || {
            let value = &values[next.fetch_add(1, Ordering::Relaxed) % values.len()];
            get_with(Some((header, value)))
        })
    }
}

/// Starts every server on `runtime`, bare first. The fake DingTalk is returned so that it outlives
/// them.
fn start(runtime: &Runtime) -> (MockDingTalk, Vec<Target>) {
    runtime.block_on(async {
        let dingtalk = dingtalk().await;
        let layer = layer_for(&dingtalk).build().expect("a layer");
        let codes = cache_codes(&layer, &dingtalk, CACHED_CODES).await;
        // One replica exchanges the codes and shares them through Redis; the measured replica
        // keeps one identity locally, so that nearly every request misses locally and hits Redis.
        let store = redis_store().await;
        let exchanging = layer_with(client_for(&dingtalk).shared_store(store.clone()));
        let exchanging = exchanging.build().expect("a layer");
        let shared_codes = cache_codes(&exchanging, &dingtalk, CACHED_CODES).await;
        let replica = layer_with(client_for(&dingtalk).shared_store(store).cache_capacity(1));
        let replica = replica.build().expect("a layer");
        let sessions = session_layer(&dingtalk);
        let (cookie, bearer) = session_of(&sessions);
        let bare = serve(hello_router()).await;
        let pages = axum_login_router();
        let pages_cookie = axum_login_cookie(&pages).await;
        let pages_redis = axum_login_redis_router().await;
        let pages_redis_cookie = axum_login_cookie(&pages_redis).await;
        #[allow(unused_mut)] // the metrics rows are pushed with `--features metrics`
        let mut targets = vec![
            // Bare gets the very requests ours gets, so the difference is the layer's work alone.
            Target::new(BARE, bare, CODE_HEADER, codes.clone()),
            Target::new(BARE_COOKIE, bare, "cookie", vec![cookie.clone()]),
            Target::new(BARE_TOKEN, bare, "authorization", vec![bearer.clone()]),
            Target::new(
                BEARER,
                serve(hello_router().layer(bearer_layer())).await,
                "authorization",
                vec![bearer_authorization()],
            ),
            Target::new(
                JWT,
                serve(hello_router().layer(jwt_layer())).await,
                "authorization",
                vec![jwt_authorization()],
            ),
            Target::new(
                DINGTALK,
                serve(hello_router().layer(layer)).await,
                CODE_HEADER,
                codes,
            ),
            Target::new(
                SESSION_COOKIE,
                serve(hello_router().layer(sessions.clone())).await,
                "cookie",
                vec![cookie],
            ),
            Target::new(
                SESSION_TOKEN,
                serve(hello_router().layer(sessions)).await,
                "authorization",
                vec![bearer],
            ),
            Target::new(
                REDIS,
                serve(hello_router().layer(replica)).await,
                CODE_HEADER,
                shared_codes,
            ),
            Target::new(AXUM_LOGIN, serve(pages).await, "cookie", vec![pages_cookie]),
            Target::new(
                AXUM_LOGIN_REDIS,
                serve(pages_redis).await,
                "cookie",
                vec![pages_redis_cookie],
            ),
        ];
        #[cfg(feature = "metrics")]
        {
            // Built under Prometheus' recorder: their handles record; the layers above were
            // built with none and record nothing.
            let recorder = Box::leak(Box::new(
                metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder(),
            ));
            let (layer, sessions) = ::metrics::with_local_recorder(recorder, || {
                let layer = layer_for(&dingtalk).build().expect("a layer");
                (layer, session_layer(&dingtalk))
            });
            let codes = cache_codes(&layer, &dingtalk, CACHED_CODES).await;
            let (cookie, bearer) = session_of(&sessions);
            let layered = [
                (
                    METRICS_CODES,
                    hello_router().layer(layer),
                    CODE_HEADER,
                    codes,
                ),
                (
                    METRICS_COOKIE,
                    hello_router().layer(sessions.clone()),
                    "cookie",
                    vec![cookie],
                ),
                (
                    METRICS_TOKEN,
                    hello_router().layer(sessions),
                    "authorization",
                    vec![bearer],
                ),
            ];
            for (name, router, header, values) in layered {
                targets.push(Target::new(name, serve(router).await, header, values));
            }
        }
        (dingtalk, targets)
    })
}

/// For `benches/wrk.sh`: starts the servers, writes where they are and what they accept to `dir`
/// (`targets.tsv`: name, address, header, values file; one value a line), and serves until killed.
fn serve_for_wrk(dir: &str) {
    let servers = runtime(SERVER_THREAD);
    let (_dingtalk, targets) = start(&servers);
    let mut table = String::new();
    for (index, target) in targets.iter().enumerate() {
        let values = format!("{dir}/{index}.values");
        std::fs::write(&values, target.values.join("\n") + "\n").expect("write the values");
        table += &format!(
            "{}\t{}\t{}\t{values}\n",
            target.name, target.addr, target.header
        );
    }
    // Written last, whole: its appearance tells the script that every server listens.
    std::fs::write(format!("{dir}/targets.tmp"), table).expect("write the targets");
    std::fs::rename(format!("{dir}/targets.tmp"), format!("{dir}/targets.tsv")).expect("rename");
    servers.block_on(std::future::pending::<()>());
}

fn main() {
    if let Ok(dir) = std::env::var("LOAD_SERVE_FOR_WRK") {
        return serve_for_wrk(&dir);
    }
    if !LAYERED.iter().any(|name| wanted(&format!("load/{name}"))) {
        return;
    }
    let seconds: f64 = std::env::var("LOAD_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    let slice = Duration::from_secs_f64(seconds / f64::from(SLICES));
    // One worker for the servers and one for the load generator: on a two-core machine each gets
    // a core of its own, neither queues behind the other, and a server's own work sets its rate.
    let servers = runtime(SERVER_THREAD);
    let client = runtime("load");
    let (_dingtalk, mut targets) = start(&servers);
    // Bare always runs: the others' figures are ratios to it.
    targets.retain(|target| target.is_bare() || wanted(&format!("load/{}", target.name)));
    let baselines: Vec<usize> = targets.iter().map(|t| t.baseline(&targets)).collect();

    println!(
        "| concurrency | server | req/s | vs bare | p50 | p99 | p99 vs bare \
         | server CPU per request (over bare) | non-2xx |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|");
    // The Redis path against the local hit path, per concurrency: (req/s, p50, p99) ratios.
    let mut redis_vs_local = Vec::new();
    for concurrency in CONCURRENCIES {
        let mut cells: Vec<Stats> = targets.iter().map(|_| Stats::default()).collect();
        for _ in 0..SLICES {
            for (target, cell) in targets.iter().zip(&mut cells) {
                let run = |time| drive(target.addr, concurrency, time, target.requests());
                client.block_on(run(WARM_UP));
                let cpu_before = thread_cpu(SERVER_THREAD);
                let mut stats = client.block_on(run(slice));
                stats.server_cpu = thread_cpu(SERVER_THREAD) - cpu_before;
                cell.merge(stats);
            }
        }
        let bare: Vec<_> = (0..cells.len())
            .map(|at| {
                let cell = &mut cells[baselines[at]];
                let cpu = micros_f64(cell.server_cpu_per_request());
                (cell.per_second(), cell.latency(0.99), cpu)
            })
            .collect();
        for ((target, cell), (bare_rps, bare_p99, bare_cpu)) in
            targets.iter().zip(&mut cells).zip(bare)
        {
            let (p50, p99) = (cell.latency(0.50), cell.latency(0.99));
            println!(
                "| {concurrency} | {} | {:.0} | {:.3} | {} | {} | {:.2} | {:.2} µs ({:+.2}) | {} |",
                target.name,
                cell.per_second(),
                cell.per_second() / bare_rps,
                micros(p50),
                micros(p99),
                p99.as_secs_f64() / bare_p99.as_secs_f64(),
                micros_f64(cell.server_cpu_per_request()),
                micros_f64(cell.server_cpu_per_request()) - bare_cpu,
                cell.requests() - cell.ok,
            );
        }
        let position = |name| targets.iter().position(|target| target.name == name);
        if let (Some(local), Some(redis)) = (position(DINGTALK), position(REDIS)) {
            let mut figures = |at: usize| {
                let cell = &mut cells[at];
                (cell.per_second(), cell.latency(0.50), cell.latency(0.99))
            };
            let (local, redis) = (figures(local), figures(redis));
            let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
            redis_vs_local.push((
                concurrency,
                redis.0 / local.0,
                ratio(redis.1, local.1),
                ratio(redis.2, local.2),
            ));
        }
    }
    if !redis_vs_local.is_empty() {
        println!();
        println!(
            "| concurrency | Redis path req/s vs local hit | p50 vs local hit | p99 vs local hit |"
        );
        println!("|---:|---:|---:|---:|");
        for (concurrency, rps, p50, p99) in redis_vs_local {
            println!("| {concurrency} | {rps:.3} | {p50:.2} | {p99:.2} |");
        }
    }
}

/// A runtime of one worker; its thread's name tells a profile which side did what.
fn runtime(name: &str) -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(name)
        .enable_all()
        .build()
        .expect("a runtime")
}

fn micros(latency: Duration) -> String {
    format!("{:.0} µs", micros_f64(latency))
}

fn micros_f64(time: Duration) -> f64 {
    time.as_secs_f64() * 1e6
}
