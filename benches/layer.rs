//! What the layer costs in process: one trivial service called through `ServiceExt::oneshot`,
//! bare and behind each auth layer; what a cache miss (a full exchange) costs; and how the hit
//! path grows with the number of cached identities.
//!
//! `cargo bench --bench layer`; it ends with tables of this run's medians.
//! Fixtures are built when a benchmark first runs, so a filter such as `-- hit` skips the others'
//! setup.

mod support;

use std::cell::LazyCell;
use std::fmt::Debug;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use criterion::measurement::WallTime;
use criterion::{BatchSize, BenchmarkGroup, Criterion, criterion_group};
use http::Request;
use http_body_util::Empty;
use tokio::runtime::Runtime;
use tower::{Layer, Service, ServiceExt};
use tower_dingtalk_auth::DingTalkAuthLayer;
use tower_dingtalk_auth::testing::MockDingTalk;

use support::dingtalk::{
    CODE_HEADER, USERID, cache_codes, client_for, dingtalk, layer_for, layer_with, session_layer,
    session_of,
};
use support::medians::{median, show};
use support::rivals::{
    bearer_authorization, bearer_layer, bearer_user_layer, jwt_authorization, jwt_layer,
};
use support::{get_with, hello_service, runtime};

/// Codes cached for the comparison, as in the load bench.
const CACHED_CODES: usize = 1_000;
/// Cache sizes of the scaling bench: the comparison's, and the most codes DingTalk's limits let an
/// app have live at once (20 logins a second over the longest reuse window, 300 s). Signed-in
/// users at company scale are in `benches/sessions.rs`.
const SCALES: [usize; 2] = [1_000, 6_000];
/// The working set of the scaling bench's hot series.
const HOT_CODES: usize = 1_000;

type Req = Request<Empty<Bytes>>;

/// A fake DingTalk and a layer with `size` identities cached.
struct Cached {
    dingtalk: MockDingTalk,
    layer: DingTalkAuthLayer,
    codes: Vec<String>,
}

impl Cached {
    fn new(runtime: &Runtime, size: usize) -> Self {
        runtime.block_on(async {
            let dingtalk = dingtalk().await;
            let layer = layer_with(client_for(&dingtalk).cache_capacity(size as u64))
                .build()
                .expect("a layer");
            let codes = cache_codes(&layer, &dingtalk, size).await;
            let cached = layer.cached_identities().await;
            assert_eq!(cached, size as u64, "every identity stays cached");
            Self {
                dingtalk,
                layer,
                codes,
            }
        })
    }
}

/// Requests carrying the given codes in turn.
fn cycling(codes: &[String]) -> impl FnMut() -> Req + '_ {
    let mut next = codes.iter().cycle();
    move || get_with(Some((CODE_HEADER, next.next().expect("some codes"))))
}

/// Times a service answering requests, both made by `make` when the benchmark first runs; the
/// requests are built outside the timing. Checks first that the service answers 200, so that no
/// variant is timed on its rejection path.
fn bench<S, B, R>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    id: &str,
    runtime: &Runtime,
    make: impl FnOnce() -> (S, R),
) where
    S: Service<Req, Response = http::Response<B>> + Clone,
    S::Error: Debug,
    R: FnMut() -> Req,
{
    let mut make = Some(make);
    let mut fixture = None;
    group.bench_function(id, |b| {
        let (service, request) = fixture.get_or_insert_with(|| {
            let (service, mut request) = make.take().expect("made once")();
            let response = runtime.block_on(service.clone().oneshot(request()));
            assert_eq!(response.expect("an answer").status(), 200, "{id} rejects");
            (service, request)
        });
        b.to_async(runtime).iter_batched(
            &mut *request,
            |request| service.clone().oneshot(request),
            BatchSize::SmallInput,
        );
    });
}

/// The hit path next to bare and the rival layers, each with the request it accepts.
fn compare(c: &mut Criterion) {
    let runtime = runtime();
    let cached = LazyCell::new(|| Cached::new(&runtime, CACHED_CODES));
    let (bearer, jwt) = (bearer_authorization(), jwt_authorization());
    let mut group = c.benchmark_group("hit");
    // Bare gets the very requests the hit path gets, so the difference is the layer's work alone.
    bench(&mut group, "bare", &runtime, || {
        (hello_service(), cycling(&cached.codes))
    });
    bench(&mut group, "bearer", &runtime, || {
        let service = bearer_layer().layer(hello_service());
        (service, || get_with(Some(("authorization", &bearer))))
    });
    bench(&mut group, "bearer_then_user", &runtime, || {
        let service = bearer_user_layer().layer(hello_service());
        (service, || get_with(Some(("authorization", &bearer))))
    });
    bench(&mut group, "jwt", &runtime, || {
        let service = jwt_layer().layer(hello_service());
        (service, || get_with(Some(("authorization", &jwt))))
    });
    bench(&mut group, "dingtalk", &runtime, || {
        (cached.layer.layer(hello_service()), cycling(&cached.codes))
    });
    bench(&mut group, "dingtalk_session_cookie", &runtime, || {
        let layer = session_layer(&cached.dingtalk);
        let (cookie, _) = session_of(&layer);
        (layer.layer(hello_service()), move || {
            get_with(Some(("cookie", &cookie)))
        })
    });
    bench(&mut group, "dingtalk_session_bearer", &runtime, || {
        let layer = session_layer(&cached.dingtalk);
        let (_, bearer) = session_of(&layer);
        (layer.layer(hello_service()), move || {
            get_with(Some(("authorization", &bearer)))
        })
    });
    bench(&mut group, "dingtalk_optional_no_code", &runtime, || {
        let optional = layer_for(&cached.dingtalk)
            .optional()
            .build()
            .expect("a layer");
        (optional.layer(hello_service()), || get_with(None))
    });
    group.finish();
}

/// The hot paths with metrics recorded (Prometheus' recorder, thread-local while the layers are
/// built, which is what their handles keep) beside the same paths without a recorder. Needs
/// `--features metrics`; without it the group is empty.
fn metrics(c: &mut Criterion) {
    #[cfg(feature = "metrics")]
    {
        let runtime = runtime();
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let recorder = &recorder;
        fn under<T>(recorder: Option<&dyn ::metrics::Recorder>, build: impl FnOnce() -> T) -> T {
            match recorder {
                Some(recorder) => ::metrics::with_local_recorder(recorder, build),
                None => build(),
            }
        }
        let cached = [false, true].map(|on| {
            let runtime = &runtime;
            let recorder = on.then_some(recorder as &dyn ::metrics::Recorder);
            LazyCell::new(move || under(recorder, || Cached::new(runtime, CACHED_CODES)))
        });
        let mut group = c.benchmark_group("metrics");
        for (on, cached) in [false, true].into_iter().zip(&cached) {
            let state = if on { "on" } else { "off" };
            bench(&mut group, &format!("code_hit/{state}"), &runtime, || {
                (cached.layer.layer(hello_service()), cycling(&cached.codes))
            });
            let recorder = on.then_some(recorder as &dyn ::metrics::Recorder);
            let session = || under(recorder, || session_layer(&cached.dingtalk));
            bench(
                &mut group,
                &format!("session_cookie/{state}"),
                &runtime,
                || {
                    let layer = session();
                    let (cookie, _) = session_of(&layer);
                    (layer.layer(hello_service()), move || {
                        get_with(Some(("cookie", &cookie)))
                    })
                },
            );
            bench(
                &mut group,
                &format!("bearer_token/{state}"),
                &runtime,
                || {
                    let layer = session();
                    let (_, bearer) = session_of(&layer);
                    (layer.layer(hello_service()), move || {
                        get_with(Some(("authorization", &bearer)))
                    })
                },
            );
        }
        group.finish();
    }
    #[cfg(not(feature = "metrics"))]
    let _ = c;
}

/// A cache miss: a fresh code each time, exchanged with the fake DingTalk over loopback.
fn cache_miss(c: &mut Criterion) {
    let runtime = runtime();
    let mut group = c.benchmark_group("miss");
    bench(&mut group, "dingtalk_exchange", &runtime, || {
        let dingtalk = runtime.block_on(dingtalk());
        let layer = layer_for(&dingtalk).build().expect("a layer");
        let fresh_code = move || get_with(Some((CODE_HEADER, &dingtalk.issue_code(USERID))));
        (layer.layer(hello_service()), fresh_code)
    });
    group.finish();
}

/// The hit path with more and more identities cached, each size in a layer of its own sized to
/// it: requests spread over every cached code (each lookup lands anywhere in the table), and
/// requests spread over 1,000 of them (a hot set in a big cache).
fn scale(c: &mut Criterion) {
    let runtime = runtime();
    let mut group = c.benchmark_group("scale");
    for size in SCALES {
        let cached = LazyCell::new(|| Cached::new(&runtime, size));
        bench(&mut group, &format!("spread/{size}"), &runtime, || {
            (cached.layer.layer(hello_service()), cycling(&cached.codes))
        });
        bench(
            &mut group,
            &format!("hot{HOT_CODES}/{size}"),
            &runtime,
            || {
                let hot = &cached.codes[..HOT_CODES];
                (cached.layer.layer(hello_service()), cycling(hot))
            },
        );
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50);
    targets = compare, metrics, cache_miss, scale
}
fn main() {
    let started = SystemTime::now();
    benches();
    Criterion::default().configure_from_args().final_summary();
    summarize(started);
}

/// This run's medians as tables: the hit path against bare, the miss, and the hit path's growth
/// with the cache. Benchmarks left out by a filter are left out here too.
fn summarize(since: SystemTime) {
    let nanos = |time: Duration| time.as_secs_f64() * 1e9;
    if let Some(bare) = median("hit", "bare", since) {
        println!("\n| in process | median | over bare |\n|---|---:|---:|");
        for id in [
            "bare",
            "bearer",
            "bearer_then_user",
            "jwt",
            "dingtalk",
            "dingtalk_session_cookie",
            "dingtalk_session_bearer",
            "dingtalk_optional_no_code",
        ] {
            if let Some(time) = median("hit", id, since) {
                let over = nanos(time) - nanos(bare);
                println!("| {id} | {} | {over:+.0} ns |", show(time));
            }
        }
    }
    let paths = ["code_hit", "session_cookie", "bearer_token"];
    if paths
        .iter()
        .any(|path| median("metrics", &format!("{path}/off"), since).is_some())
    {
        println!("\n| with metrics | off | on | on - off |\n|---|---:|---:|---:|");
        for path in paths {
            let off = median("metrics", &format!("{path}/off"), since);
            let on = median("metrics", &format!("{path}/on"), since);
            if let (Some(off), Some(on)) = (off, on) {
                let over = nanos(on) - nanos(off);
                println!("| {path} | {} | {} | {over:+.0} ns |", show(off), show(on));
            }
        }
    }
    if let Some(time) = median("miss", "dingtalk_exchange", since) {
        println!("\n| cache miss, per exchange | median |\n|---|---:|");
        println!("| dingtalk_exchange | {} |", show(time));
    }
    let series = |name: &str| SCALES.map(|size| median("scale", &format!("{name}/{size}"), since));
    let (spread, hot) = (series("spread"), series(&format!("hot{HOT_CODES}")));
    if let (Some(spread_base), Some(hot_base)) = (spread[0], hot[0]) {
        println!(
            "\n| cached identities | spread over all | vs 1,000 | hot {HOT_CODES} | vs 1,000 |\n\
             |---:|---:|---:|---:|---:|"
        );
        for ((size, spread), hot) in SCALES.iter().zip(spread).zip(hot) {
            let cell = |time: Option<Duration>, base: Duration| {
                time.map_or_else(
                    || "– | –".to_owned(),
                    |time| format!("{} | {:.2}x", show(time), nanos(time) / nanos(base)),
                )
            };
            println!(
                "| {size} | {} | {} |",
                cell(spread, spread_base),
                cell(hot, hot_base)
            );
        }
    }
}
