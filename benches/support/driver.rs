//! A small loopback load generator, and the hello-world servers it drives.
//!
//! Each of `concurrency` keep-alive HTTP/1.1 connections sends its next request as soon as it has
//! read the previous answer (a closed loop, as wrk and oha do) until the time is up. Every latency
//! is kept, so percentiles are exact.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use axum::serve::ListenerExt;
use bytes::Bytes;
use http::header::HOST;
use http::{HeaderValue, Request};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

/// Makes the next request a connection sends.
pub type MakeRequest = Arc<dyn Fn() -> Request<Empty<Bytes>> + Send + Sync>;

/// Serves `GET /` → "Hello, World!" behind `app`'s layers on a free port of 127.0.0.1, on the
/// current runtime.
pub async fn serve(app: Router<()>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("a local address");
    // Small answers on keep-alive connections: Nagle's algorithm would only add delay.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    addr
}

/// The hello-world every server of the load bench runs, before its layer.
pub fn hello_router() -> Router<()> {
    Router::new().route("/", get(|| async { super::HELLO }))
}

/// What one run measured.
#[derive(Debug, Default)]
pub struct Stats {
    /// Answers with a 2xx status.
    pub ok: u64,
    /// From the first request sent to the last answer read.
    pub elapsed: Duration,
    /// CPU time the server's thread spent meanwhile, when the caller measured it.
    pub server_cpu: Duration,
    /// Every request's latency, in nanoseconds.
    latencies: Vec<u64>,
}

impl Stats {
    /// Answers of any status.
    pub fn requests(&self) -> u64 {
        self.latencies.len() as u64
    }

    /// Answers of any status per second.
    pub fn per_second(&self) -> f64 {
        self.requests() as f64 / self.elapsed.as_secs_f64()
    }

    /// The server's CPU time per answer.
    pub fn server_cpu_per_request(&self) -> Duration {
        self.server_cpu / u32::try_from(self.requests().max(1)).unwrap_or(u32::MAX)
    }

    /// The latency under which `quantile` (0 to 1) of the requests finished.
    pub fn latency(&mut self, quantile: f64) -> Duration {
        self.latencies.sort_unstable();
        let last = self.latencies.len().saturating_sub(1);
        let index = ((last as f64) * quantile).round() as usize;
        Duration::from_nanos(self.latencies.get(index).copied().unwrap_or(0))
    }

    /// Adds another run's answers and time to this one.
    pub fn merge(&mut self, other: Stats) {
        self.ok += other.ok;
        self.elapsed += other.elapsed;
        self.server_cpu += other.server_cpu;
        self.latencies.extend(other.latencies);
    }
}

/// Drives the server at `addr` with `concurrency` connections for `duration`, on the current
/// runtime. Panics if a connection fails: lost connections would flatter the figures.
pub async fn drive(
    addr: SocketAddr,
    concurrency: usize,
    duration: Duration,
    make_request: MakeRequest,
) -> Stats {
    // Connect everything first so that the handshakes are not timed.
    let mut senders = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        senders.push(connect(addr).await);
    }
    let host = HeaderValue::from_str(&addr.to_string()).expect("a valid host");
    let started = Instant::now();
    let deadline = started + duration;
    let connections: Vec<_> = senders
        .into_iter()
        .map(|sender| {
            let (make_request, host) = (make_request.clone(), host.clone());
            tokio::spawn(run_connection(sender, deadline, make_request, host))
        })
        .collect();
    let mut total = Stats::default();
    for connection in connections {
        total.merge(connection.await.expect("a connection task panicked"));
    }
    total.elapsed = started.elapsed();
    total
}

/// The CPU time the threads named `name` have run so far, from Linux's scheduler statistics.
pub fn thread_cpu(name: &str) -> Duration {
    let tasks = std::fs::read_dir("/proc/self/task").expect("Linux's /proc/self/task");
    let nanos: u64 = tasks
        .filter_map(|task| {
            let path = task.ok()?.path();
            let comm = std::fs::read_to_string(path.join("comm")).ok()?;
            if comm.trim_end() != name {
                return None;
            }
            let schedstat = std::fs::read_to_string(path.join("schedstat")).ok()?;
            schedstat.split_whitespace().next()?.parse::<u64>().ok()
        })
        .sum();
    Duration::from_nanos(nanos)
}

async fn connect(addr: SocketAddr) -> http1::SendRequest<Empty<Bytes>> {
    let stream = TcpStream::connect(addr)
        .await
        .expect("connect to the server");
    stream.set_nodelay(true).expect("TCP_NODELAY");
    let (sender, connection) = http1::handshake(TokioIo::new(stream))
        .await
        .expect("HTTP/1.1 handshake");
    tokio::spawn(connection);
    sender
}

async fn run_connection(
    mut sender: http1::SendRequest<Empty<Bytes>>,
    deadline: Instant,
    make_request: MakeRequest,
    host: HeaderValue,
) -> Stats {
    let mut stats = Stats::default();
    // At least one request per connection, so that a zero duration makes exactly one each.
    loop {
        let mut request = make_request();
        request.headers_mut().insert(HOST, host.clone());
        let sent = Instant::now();
        sender.ready().await.expect("the connection stays open");
        let response = sender.send_request(request).await.expect("an answer");
        let status = response.status();
        response.into_body().collect().await.expect("a whole body");
        stats.latencies.push(sent.elapsed().as_nanos() as u64);
        stats.ok += u64::from(status.is_success());
        if Instant::now() >= deadline {
            return stats;
        }
    }
}
