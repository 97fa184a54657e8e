//! Sessions at company scale: requests of 1,000 and of 100,000 distinct signed-in users, by
//! session cookie and by bearer token, spread uniformly or Zipf-distributed (s = 1: a few users
//! make most requests), through a layer whose opened-session cache has room for 100,000; bare is
//! sent the same requests. Memory per opened session is in `benches/memory.rs`.
//!
//! `cargo bench --bench sessions`; it ends with a table of this run's medians.

mod support;

use std::cell::LazyCell;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use criterion::{BatchSize, BenchmarkGroup, Criterion, criterion_group, measurement::WallTime};
use http::Request;
use http_body_util::Empty;
use tokio::runtime::Runtime;
use tower::{Layer, Service, ServiceExt};
use tower_dingtalk_auth::{AuthenticatedDingTalkUser, DingTalkAuthLayer};

use support::dingtalk::{client_for, dingtalk, layer_with, session_key};
use support::medians::{median, show};
use support::{get_with, hello_service, runtime};

/// How many users are signed in: a team, and a company.
const USERS: [usize; 2] = [1_000, 100_000];
/// The layers' opened-session cache: room for the company (rounded up to a power of two).
const OPENED_SESSION_CACHE: usize = 131_072;
/// How many requests a sequence holds before it repeats.
const SEQUENCE: usize = 1 << 20;

type Req = Request<Empty<Bytes>>;

/// How a session is sent.
#[derive(Clone, Copy)]
enum Kind {
    Cookie,
    Bearer,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Self::Cookie => "cookie",
            Self::Bearer => "bearer",
        }
    }
}

/// A layer with sessions, and `users` signed-in users' cookies and bearer headers.
struct SignedIn {
    layer: DingTalkAuthLayer,
    cookies: Vec<String>,
    bearers: Vec<String>,
}

impl SignedIn {
    fn new(runtime: &Runtime, users: usize) -> Self {
        let dingtalk = runtime.block_on(dingtalk());
        let session = tower_dingtalk_auth::SessionConfig::new(session_key())
            .opened_session_cache(OPENED_SESSION_CACHE);
        let layer = layer_with(client_for(&dingtalk))
            .session(session)
            .token_login("/login")
            .build()
            .expect("a layer");
        let sessions = layer.sessions().expect("a layer with sessions");
        let (mut cookies, mut bearers) = (Vec::new(), Vec::new());
        for i in 0..users {
            // Fields as long as real ones, and a userid of each user's own.
            let user = AuthenticatedDingTalkUser::builder(format!("user{i:06}"), "张三")
                .unionid("gliiW0piiii02zU0iiiiiiiiiiiiiiiiiiiE")
                .device_id("a6e1a5b2c4d8e0f7a3b9c1d2e4f6a8b0")
                .build();
            let cookie = sessions.cookie_header(&user);
            cookies.push(cookie.to_str().expect("ASCII").to_owned());
            bearers.push(format!("Bearer {}", sessions.issue_token(&user)));
        }
        // Dropped here: the fake DingTalk is not asked anything by a session.
        drop(dingtalk);
        Self {
            layer,
            cookies,
            bearers,
        }
    }

    fn headers(&self, kind: Kind) -> &[String] {
        match kind {
            Kind::Cookie => &self.cookies,
            Kind::Bearer => &self.bearers,
        }
    }
}

/// SplitMix64: the same sequences every run, with no dependency.
fn random_numbers(mut state: u64) -> impl FnMut() -> u64 {
    move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// Which user sends each request: uniformly spread over `users`.
fn uniform(users: usize) -> Vec<u32> {
    let mut next = random_numbers(7);
    (0..SEQUENCE)
        .map(|_| (next() % users as u64) as u32)
        .collect()
}

/// Which user sends each request: the `k`-th user about `1 / k` as often as the first.
fn zipf(users: usize) -> Vec<u32> {
    let mut total = 0.0;
    let cumulative: Vec<f64> = (1..=users)
        .map(|rank| {
            total += 1.0 / rank as f64;
            total
        })
        .collect();
    let mut next = random_numbers(11);
    (0..SEQUENCE)
        .map(|_| {
            let point = (next() >> 11) as f64 / (1u64 << 53) as f64 * total;
            cumulative
                .partition_point(|&sum| sum < point)
                .min(users - 1) as u32
        })
        .collect()
}

/// Requests carrying `headers` in the order `sequence` gives.
fn requests<'a>(
    kind: Kind,
    headers: &'a [String],
    sequence: &'a [u32],
) -> impl FnMut() -> Req + 'a {
    let name = match kind {
        Kind::Cookie => "cookie",
        Kind::Bearer => "authorization",
    };
    let mut order = sequence.iter().cycle();
    move || {
        let user = *order.next().expect("a sequence") as usize;
        get_with(Some((name, &headers[user])))
    }
}

/// Times `service` answering the requests `next` gives, built outside the timing. Every user's
/// request is sent once first (the cache then holds what it holds in a steady state) and must be
/// answered 200.
fn bench<'a, S, B>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    id: &str,
    runtime: &Runtime,
    make: impl FnOnce() -> (S, &'a [String], Box<dyn FnMut() -> Req + 'a>),
) where
    S: Service<Req, Response = http::Response<B>> + Clone,
    S::Error: std::fmt::Debug,
{
    let mut make = Some(make);
    let mut fixture = None;
    group.bench_function(id, |b| {
        let (service, next) = fixture.get_or_insert_with(|| {
            let (service, headers, next) = make.take().expect("made once")();
            let name = if headers[0].starts_with("Bearer ") {
                "authorization"
            } else {
                "cookie"
            };
            runtime.block_on(async {
                for header in headers {
                    let response = service
                        .clone()
                        .oneshot(get_with(Some((name, header))))
                        .await;
                    assert_eq!(response.expect("an answer").status(), 200, "{id} rejects");
                }
            });
            (service, next)
        });
        b.to_async(runtime).iter_batched(
            &mut *next,
            |request| service.clone().oneshot(request),
            BatchSize::SmallInput,
        );
    });
}

/// Each path with 1,000 and 100,000 users, both spreads, and bare sent the company's requests.
fn scale(c: &mut Criterion) {
    let runtime = runtime();
    let on = &runtime;
    let signed_in = USERS.map(|users| LazyCell::new(move || SignedIn::new(on, users)));
    let spreads = USERS.map(|users| LazyCell::new(move || (uniform(users), zipf(users))));
    let mut group = c.benchmark_group("sessions");
    for kind in [Kind::Cookie, Kind::Bearer] {
        let company = (&signed_in[1], &spreads[1]);
        bench(
            &mut group,
            &format!("{}/bare", kind.name()),
            &runtime,
            || {
                let headers = company.0.headers(kind);
                let next = requests(kind, headers, &company.1.0);
                (
                    hello_service(),
                    headers,
                    Box::new(next) as Box<dyn FnMut() -> Req>,
                )
            },
        );
        for (index, users) in USERS.iter().enumerate() {
            let (signed_in, spread) = (&signed_in[index], &spreads[index]);
            for (spread_name, zipf) in [("uniform", false), ("zipf", true)] {
                let id = format!("{}/{spread_name}/{users}", kind.name());
                bench(&mut group, &id, &runtime, || {
                    let headers = signed_in.headers(kind);
                    let sequence = if zipf { &spread.1 } else { &spread.0 };
                    let next = requests(kind, headers, sequence);
                    let service = signed_in.layer.layer(hello_service());
                    (service, headers, Box::new(next) as Box<dyn FnMut() -> Req>)
                });
            }
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50);
    targets = scale
}

fn main() {
    let started = SystemTime::now();
    benches();
    Criterion::default().configure_from_args().final_summary();
    summarize(started);
}

/// This run's medians: each path and spread with 1,000 and 100,000 users, the company's cost
/// against the team's, and each over bare sent the company's requests.
fn summarize(since: SystemTime) {
    let nanos = |time: Duration| time.as_secs_f64() * 1e9;
    let rows: Vec<_> = [Kind::Cookie, Kind::Bearer]
        .into_iter()
        .flat_map(|kind| ["uniform", "zipf"].map(move |spread| (kind, spread)))
        .collect();
    println!(
        "\n| path | spread | 1,000 users | 100,000 users | 100,000 / 1,000 | over bare (1,000 / 100,000) |\n\
         |---|---|---:|---:|---:|---:|"
    );
    for (kind, spread) in rows {
        let time = |users: usize| {
            median(
                "sessions",
                &format!("{}/{spread}/{users}", kind.name()),
                since,
            )
        };
        let bare = median("sessions", &format!("{}/bare", kind.name()), since);
        let (Some(team), Some(company)) = (time(USERS[0]), time(USERS[1])) else {
            continue;
        };
        let over = bare.map_or_else(
            || "–".to_owned(),
            |bare| {
                format!(
                    "{:+.0} / {:+.0} ns",
                    nanos(team) - nanos(bare),
                    nanos(company) - nanos(bare)
                )
            },
        );
        println!(
            "| {} | {spread} | {} | {} | {:.2}x | {over} |",
            kind.name(),
            show(team),
            show(company),
            nanos(company) / nanos(team),
        );
    }
}
