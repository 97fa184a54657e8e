//! Many replicas, one login: layers that share a Redis exchange each code once whichever replicas
//! its requests reach, keep serving while Redis is frozen or dead and share again when it is back,
//! take over from a replica that died holding a code, and never put a code into Redis.
//!
//! These tests need a real Redis on 127.0.0.1:6379 (or at `REDIS_URL`), and `redis-server` on the
//! PATH for the outage test, which runs its own on a free port. Without them they fail, saying how
//! to start one; they never skip.

mod support;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::future::join_all;
use redis::Commands;
use sha2::{Digest, Sha256};
use support::{assert_rejection, json, layer_for, routes, serve};
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;
use tower_dingtalk_auth::testing::{Endpoint, Fault, MockDingTalk};
use tower_dingtalk_auth::{
    ConfigError, DingTalkAuthLayer, DingTalkAuthLayerBuilder, RedisStore, RedisStoreBuilder,
};

const START_REDIS: &str = r#"redis-server --daemonize yes --port 6379 --save "" --appendonly no"#;

/// The users of the fake DingTalk, by userid.
const USERS: [&str; 5] = ["staff01", "boss01", "super01", "sub01", "odd01"];

fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

fn no_redis(url: &str, error: &dyn std::fmt::Display) -> ! {
    panic!(
        "Redis is not reachable at {url} ({error}). These tests need a real Redis: start one with \
         `{START_REDIS}`, or set REDIS_URL to one."
    )
}

/// A plain connection for looking into Redis from the test.
fn inspector(url: &str) -> redis::Connection {
    redis::Client::open(url)
        .and_then(|client| client.get_connection_with_timeout(Duration::from_secs(2)))
        .unwrap_or_else(|error| no_redis(url, &error))
}

/// A key prefix of its own for each test run, so that parallel tests and leftovers of earlier runs
/// never meet; its keys are deleted when it is dropped.
struct Prefix {
    prefix: String,
    url: String,
}

impl Prefix {
    fn new(test: &str) -> Self {
        Self::on(test, redis_url())
    }

    fn on(test: &str, url: String) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let prefix = format!(
            "tda-test:{test}:{}-{nanos:x}-{}:",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        Self { prefix, url }
    }

    /// A store on the shared Redis under this prefix.
    async fn store(
        &self,
        configure: impl FnOnce(RedisStoreBuilder) -> RedisStoreBuilder,
    ) -> RedisStore {
        configure(RedisStore::builder(&self.url).key_prefix(&self.prefix))
            .connect()
            .await
            .unwrap_or_else(|error| no_redis(&self.url, &error))
    }

    /// Every key under the prefix, with its value and its remaining life in milliseconds.
    fn entries(&self) -> Vec<(String, String, i64)> {
        let mut redis = inspector(&self.url);
        let keys: Vec<String> = redis
            .scan_match::<_, String>(format!("{}*", self.prefix))
            .expect("SCAN")
            .collect::<Result<_, _>>()
            .expect("SCAN");
        keys.into_iter()
            .map(|key| {
                let value: String = redis.get(&key).expect("GET");
                let ttl: i64 = redis.pttl(&key).expect("PTTL");
                (key, value, ttl)
            })
            .collect()
    }

    fn key(&self, kind: &str, app_key: &str, code: &str) -> String {
        format!("{}{kind}:{}", self.prefix, digest(app_key, None, code))
    }
}

impl Drop for Prefix {
    fn drop(&mut self) {
        let Ok(client) = redis::Client::open(self.url.as_str()) else {
            return;
        };
        let Ok(mut redis) = client.get_connection_with_timeout(Duration::from_secs(1)) else {
            return;
        };
        let keys: Vec<String> = match redis.scan_match::<_, String>(format!("{}*", self.prefix)) {
            Ok(keys) => keys.filter_map(Result::ok).collect(),
            Err(_) => return,
        };
        if !keys.is_empty() {
            let _: Result<i64, _> = redis.del(keys);
        }
    }
}

/// The digest that names a code in Redis, as the README documents it.
fn digest(app_key: &str, corp_id: Option<&str>, code: &str) -> String {
    let mut hash = Sha256::new();
    hash.update(b"tower-dingtalk-auth/v1\0");
    hash.update(app_key.as_bytes());
    hash.update(b"\0");
    match corp_id {
        Some(corp_id) => {
            hash.update(b"corp\0");
            hash.update(corp_id.as_bytes());
        }
        None => hash.update(b"own\0"),
    }
    hash.update(b"\0");
    hash.update(code.as_bytes());
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// One replica of a service: its own layer, local cache and connection to Redis, behind an axum
/// app on a loopback port.
struct Replica {
    layer: DingTalkAuthLayer,
    store: RedisStore,
    addr: SocketAddr,
    handler_runs: Arc<AtomicU64>,
    http: reqwest::Client,
    server: JoinHandle<()>,
}

impl Replica {
    async fn start(
        dingtalk: &MockDingTalk,
        store: RedisStore,
        configure: impl FnOnce(DingTalkAuthLayerBuilder) -> DingTalkAuthLayerBuilder,
    ) -> Self {
        // New logins come in bursts here: DingTalk's 20 a second is not what these tests are about.
        let builder = layer_for(dingtalk)
            .rate_limit(1_000)
            .shared_store(store.clone());
        let layer = configure(builder).build().expect("a layer");
        let handler_runs = Arc::new(AtomicU64::new(0));
        let (addr, server) = serve(routes(handler_runs.clone()).layer(layer.clone())).await;
        Self {
            layer,
            store,
            addr,
            handler_runs,
            http: reqwest::Client::new(),
            server,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/me", self.addr)
    }

    async fn get(&self, code: &str) -> reqwest::Response {
        self.http
            .get(self.url())
            .header("x-dingtalk-code", code)
            .send()
            .await
            .expect("the replica answers")
    }

    /// GETs `/me` with `code` and checks that it is `userid`'s 200; returns how long it took.
    async fn expect_user(&self, code: &str, userid: &str) -> Duration {
        let started = Instant::now();
        let response = self.get(code).await;
        let took = started.elapsed();
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
        assert_eq!(json(response).await["userid"], userid);
        took
    }

    fn handler_runs(&self) -> u64 {
        self.handler_runs.load(Ordering::SeqCst)
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// The Redis call timeout of the tests about sharing. They send hundreds of requests at once through
/// a debug build on two cores, alongside the other tests; the 50 ms default is then exceeded now and
/// then, and a replica whose call times out exchanges directly, as it must while Redis is slow. The
/// timeouts have tests of their own (the outage and waiter tests).
const SHARING_TEST_TIMEOUT: Duration = Duration::from_millis(500);

async fn replicas(dingtalk: &MockDingTalk, prefix: &Prefix, n: usize) -> Vec<Replica> {
    let mut replicas = Vec::with_capacity(n);
    for _ in 0..n {
        let store = prefix.store(|b| b.timeout(SHARING_TEST_TIMEOUT)).await;
        replicas.push(Replica::start(dingtalk, store, |b| b).await);
    }
    replicas
}

fn all_codes_absent(entries: &[(String, String, i64)], codes: &[String]) {
    for (key, value, _) in entries {
        for code in codes {
            assert!(!key.contains(code.as_str()), "a key holds a code: {key}");
            assert!(
                !value.contains(code.as_str()),
                "a value holds a code: {value}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_replicas_answer_400_requests_over_20_codes_with_20_exchanges() {
    let dingtalk = support::dingtalk().await;
    let prefix = Prefix::new("four_replicas");
    let replicas = replicas(&dingtalk, &prefix, 4).await;
    let codes: Vec<(String, &str)> = (0..20)
        .map(|i| {
            let userid = USERS[i % USERS.len()];
            (dingtalk.issue_code(userid), userid)
        })
        .collect();

    // Each code 20 times, each time to the next replica, all 400 at once.
    let all = &replicas;
    let requests = (0..20).flat_map(|round| {
        codes
            .iter()
            .enumerate()
            .map(move |(i, (code, userid))| (&all[(i + round) % 4], code, *userid))
    });
    let answers = join_all(requests.map(|(replica, code, userid)| async move {
        let response = replica.get(code).await;
        let status = response.status().as_u16();
        let body = json(response).await;
        (status, body, userid)
    }))
    .await;

    let ok = answers.iter().filter(|(status, ..)| *status == 200).count();
    let exchanges = dingtalk.userinfo_calls();
    println!(
        "4 replicas: {ok} of {} requests answered 200, {exchanges} exchanges with DingTalk for {} codes",
        answers.len(),
        codes.len()
    );
    // A replica whose Redis calls timed out exchanged directly, which is what would turn users away.
    let available: Vec<bool> = replicas.iter().map(|r| r.store.is_available()).collect();
    for (status, body, userid) in &answers {
        assert_eq!(
            *status, 200,
            "{body}; Redis available per replica: {available:?}"
        );
        assert_eq!(body["userid"], *userid);
    }
    assert_eq!(answers.len(), 400);
    assert_eq!(exchanges, 20);
    assert_eq!(dingtalk.faults_served(), 0);
    assert_eq!(replicas.iter().map(Replica::handler_runs).sum::<u64>(), 400);
    for replica in &replicas {
        // Every replica got every code, and keeps each in its own cache from now on.
        assert_eq!(replica.layer.cached_identities().await, 20);
    }
    let entries = prefix.entries();
    let codes: Vec<String> = codes.into_iter().map(|(code, _)| code).collect();
    all_codes_absent(&entries, &codes);
    // One identity per code, and every lock released.
    assert_eq!(entries.len(), 20, "{entries:?}");
    assert!(entries.iter().all(|(key, ..)| key.contains(":id:")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_shared_store_replicas_turn_valid_users_away() {
    // The problem the store solves: each replica spends the code on its own, and DingTalk answers
    // only the first.
    let dingtalk = support::dingtalk().await;
    let layers: Vec<DingTalkAuthLayer> = (0..4)
        .map(|_| layer_for(&dingtalk).build().expect("a layer"))
        .collect();
    let mut addrs = Vec::new();
    for layer in &layers {
        addrs.push(serve(routes(Arc::default()).layer(layer.clone())).await.0);
    }
    let http = reqwest::Client::new();
    let code = dingtalk.issue_code("staff01");
    let statuses = join_all(addrs.iter().map(|addr| {
        http.get(format!("http://{addr}/me"))
            .header("x-dingtalk-code", &code)
            .send()
    }))
    .await
    .into_iter()
    .map(|response| response.unwrap().status().as_u16())
    .collect::<Vec<_>>();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count(),
        3,
        "{statuses:?}"
    );
    assert_eq!(dingtalk.userinfo_calls(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_holds_no_code_only_digests_with_bounded_lives() {
    let dingtalk = support::dingtalk().await;
    let prefix = Prefix::new("no_code");
    let replicas = replicas(&dingtalk, &prefix, 2).await;
    let app_key = dingtalk.app_key();
    let good: Vec<String> = USERS.iter().map(|u| dingtalk.issue_code(u)).collect();
    for (code, userid) in good.iter().zip(USERS) {
        replicas[0].expect_user(code, userid).await;
    }
    let bogus = "never-issued-code-0123456789".to_owned();
    assert_rejection(
        replicas[0].get(&bogus).await,
        401,
        "code_rejected",
        &[&bogus],
    )
    .await;

    let entries = prefix.entries();
    let mut codes = good.clone();
    codes.push(bogus.clone());
    all_codes_absent(&entries, &codes);
    assert_eq!(entries.len(), 6, "{entries:?}");
    for (key, value, ttl) in &entries {
        let digest = key
            .strip_prefix(&format!("{}id:", prefix.prefix))
            .unwrap_or_else(|| panic!("only identities are left: {key}"));
        assert!(
            digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit()),
            "a SHA-256 in hex: {key}"
        );
        if *value == r#""rejected""# {
            // The rejected-code TTL, 60 s by default.
            assert!((1..=60_000).contains(ttl), "{ttl}");
        } else {
            // At most a code's 5 minutes.
            assert!((1..=300_000).contains(ttl), "{ttl}");
            assert!(value.starts_with(r#"{"user":{"userid":"#), "{value}");
        }
    }
    // The layout the README documents: the prefix, `id:` and the digest of app key and code.
    let mut redis = inspector(&prefix.url);
    for (code, userid) in good.iter().zip(USERS) {
        let value: String = redis.get(prefix.key("id", &app_key, code)).unwrap();
        assert!(
            value.contains(&format!(r#""userid":"{userid}""#)),
            "{value}"
        );
    }
    let value: String = redis.get(prefix.key("id", &app_key, &bogus)).unwrap();
    assert_eq!(value, r#""rejected""#);

    // The other replica reads both from Redis: the user, and the rejection, with no call.
    let calls = dingtalk.userinfo_calls();
    replicas[1].expect_user(&good[1], USERS[1]).await;
    assert_rejection(
        replicas[1].get(&bogus).await,
        401,
        "code_rejected",
        &[&bogus],
    )
    .await;
    assert_eq!(dingtalk.userinfo_calls(), calls);
    // The shared rejection is remembered locally as well.
    assert_eq!(replicas[1].layer.cache_stats().await.rejected_codes, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_holder_slower_than_the_lock_ttl_keeps_its_lock() {
    let dingtalk = support::dingtalk().await;
    let prefix = Prefix::new("slow_holder");
    let lock_ttl = Duration::from_millis(300);
    let mut replicas = Vec::new();
    for _ in 0..2 {
        let store = prefix.store(|b| b.lock_ttl(lock_ttl)).await;
        replicas.push(Replica::start(&dingtalk, store, |b| b).await);
    }
    // DingTalk takes four lock TTLs to answer the first exchange.
    dingtalk.fail_next(
        Endpoint::GetUserInfo,
        Fault::Latency(Duration::from_millis(1200)),
        1,
    );
    let code = dingtalk.issue_code("boss01");
    let first = replicas[0].expect_user(&code, "boss01");
    let second = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        replicas[1].expect_user(&code, "boss01").await
    };
    let (first, second) = tokio::join!(first, second);
    assert!(first >= Duration::from_millis(1200), "{first:?}");
    assert!(second >= Duration::from_millis(1000), "{second:?}");
    // The holder renewed its lock: the waiter never took over.
    assert_eq!(dingtalk.userinfo_calls(), 1);
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
}

#[test]
fn a_replica_that_dies_holding_a_code_is_taken_over_when_its_lock_expires() {
    let (main, doomed) = (runtime(), runtime());
    let dingtalk = main.block_on(support::dingtalk());
    let prefix = Prefix::new("dead_holder");
    let lock_ttl = Duration::from_millis(600);
    let store = |runtime: &Runtime| runtime.block_on(prefix.store(|b| b.lock_ttl(lock_ttl)));
    // Replica A lives on a runtime of its own, which the test shuts down to kill it.
    let replica_a = {
        let store = store(&doomed);
        doomed.block_on(Replica::start(&dingtalk, store, |b| b))
    };
    let replica_b = {
        let store = store(&main);
        main.block_on(Replica::start(&dingtalk, store, |b| b))
    };
    // A's exchange hangs at DingTalk.
    dingtalk.fail_next(
        Endpoint::GetUserInfo,
        Fault::Latency(Duration::from_secs(30)),
        1,
    );
    let code = dingtalk.issue_code("super01");
    let (http, url, sent) = (replica_a.http.clone(), replica_a.url(), code.clone());
    doomed.spawn(async move {
        let _ = http.get(url).header("x-dingtalk-code", sent).send().await;
    });
    main.block_on(async {
        while dingtalk.userinfo_calls() == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    let lock = prefix.key("lock", &dingtalk.app_key(), &code);
    let ttl: i64 = inspector(&prefix.url).pttl(&lock).unwrap();
    assert!(
        ttl > 0,
        "A holds the code's lock while DingTalk answers: {ttl}"
    );

    // A dies: nothing renews or releases its lock any more.
    doomed.shutdown_background();
    drop(replica_a);
    let took = main.block_on(replica_b.expect_user(&code, "super01"));
    // B waited for the lock to expire, took it and exchanged, well within its 5 s budget.
    assert!(took >= Duration::from_millis(100), "{took:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert_eq!(dingtalk.userinfo_calls(), 2);
    let ttl: i64 = inspector(&prefix.url).pttl(&lock).unwrap();
    assert_eq!(ttl, -2, "B released the lock it took");
    drop(replica_b);
    drop(dingtalk);
    drop(main);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_gives_up_at_its_budget_while_the_lock_is_held() {
    let dingtalk = support::dingtalk().await;
    let prefix = Prefix::new("stuck_lock");
    let store = prefix
        .store(|b| b.lock_ttl(Duration::from_millis(500)))
        .await;
    let replica = Replica::start(&dingtalk, store, |b| {
        b.upstream_timeout(Duration::from_secs(1))
    })
    .await;
    let code = dingtalk.issue_code("staff01");
    // A holder with another configuration: its lock outlives this replica's budget.
    let lock = prefix.key("lock", &dingtalk.app_key(), &code);
    let mut redis = inspector(&prefix.url);
    let _: () = redis
        .set_options(
            &lock,
            "someone-else",
            redis::SetOptions::default().with_expiration(redis::SetExpiry::PX(10_000)),
        )
        .unwrap();

    let started = Instant::now();
    let response = replica.get(&code).await;
    let took = started.elapsed();
    assert_rejection(response, 504, "upstream_timeout", &[&code]).await;
    assert!(took >= Duration::from_millis(900), "{took:?}");
    assert!(took < Duration::from_millis(2000), "{took:?}");
    assert_eq!(dingtalk.userinfo_calls(), 0);
    // Its lock untouched; once it is gone, the code is exchanged.
    let owner: String = redis.get(&lock).unwrap();
    assert_eq!(owner, "someone-else");
    let _: i64 = redis.del(&lock).unwrap();
    replica.expect_user(&code, "staff01").await;
    assert_eq!(dingtalk.userinfo_calls(), 1);
}

/// A `redis-server` of the test's own on a free port, which it can freeze, kill and restart.
struct RedisServer {
    port: u16,
    child: Option<Child>,
}

impl RedisServer {
    fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let mut server = Self { port, child: None };
        server.restart();
        server
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn restart(&mut self) {
        let port = self.port.to_string();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port,
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| {
                panic!(
                    "cannot run redis-server ({error}): the outage test starts its own; install \
                     Redis so that `redis-server` is on the PATH"
                )
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let ping = redis::Client::open(self.url())
                .and_then(|client| client.get_connection_with_timeout(Duration::from_millis(200)))
                .and_then(|mut redis| redis::cmd("PING").query::<String>(&mut redis));
            match ping {
                Ok(_) => return,
                Err(error) if Instant::now() > deadline => {
                    panic!("redis-server on port {port} did not start: {error}")
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        let status = Command::new("kill").args([signal, &pid]).status().unwrap();
        assert!(status.success(), "kill {signal} {pid}");
    }

    /// Redis stops answering, with its connections open: every call times out.
    fn freeze(&self) {
        self.signal("-STOP");
    }

    fn thaw(&self) {
        self.signal("-CONT");
    }

    /// Redis dies: connections are reset, new ones refused.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

const DOWN: &str = "the shared store is unreachable or too slow";
const BACK: &str = "the shared store answers again";

/// While Redis is out: cached codes are served from each replica's cache, new codes are exchanged
/// directly (each sent to one replica, as sharing is off), and no request waits on Redis.
async fn serve_through_outage(
    dingtalk: &MockDingTalk,
    replicas: &[Replica],
    cached: &str,
) -> Vec<String> {
    let calls = dingtalk.userinfo_calls();
    let mut slowest = Duration::ZERO;
    for replica in replicas {
        slowest = slowest.max(replica.expect_user(cached, "staff01").await);
    }
    assert_eq!(dingtalk.userinfo_calls(), calls, "cache hits never call");
    let codes: Vec<String> = (0..10).map(|_| dingtalk.issue_code("sub01")).collect();
    for (i, code) in codes.iter().enumerate() {
        let replica = &replicas[i % replicas.len()];
        for _ in 0..2 {
            slowest = slowest.max(replica.expect_user(code, "sub01").await);
        }
    }
    assert_eq!(dingtalk.userinfo_calls(), calls + 10);
    for replica in replicas {
        assert!(!replica.store.is_available());
    }
    // The first request of each replica paid one Redis timeout (50 ms); the others skipped Redis.
    assert!(slowest < Duration::from_millis(1000), "{slowest:?}");
    codes
}

/// Sends fresh codes until every replica's probe finds Redis again, then checks that they share.
async fn until_shared_again(dingtalk: &MockDingTalk, replicas: &[Replica]) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut codes = Vec::new();
    while replicas.iter().any(|replica| !replica.store.is_available()) {
        assert!(Instant::now() < deadline, "the replicas did not reconnect");
        for replica in replicas.iter().filter(|r| !r.store.is_available()) {
            let code = dingtalk.issue_code("odd01");
            replica.expect_user(&code, "odd01").await;
            codes.push(code);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let calls = dingtalk.userinfo_calls();
    let code = dingtalk.issue_code("boss01");
    for replica in replicas {
        replica.expect_user(&code, "boss01").await;
    }
    assert_eq!(dingtalk.userinfo_calls(), calls + 1, "shared again");
    codes.push(code);
    codes
}

// One thread, so that the logs of every task are captured.
#[tokio::test]
async fn with_redis_frozen_then_killed_mid_run_replicas_keep_serving_and_share_again() {
    let (_guard, logs) = support::capture_logs();
    let mut redis = RedisServer::start();
    let dingtalk = support::dingtalk().await;
    let prefix = Prefix::on("outage", redis.url());
    let mut replicas = Vec::new();
    for _ in 0..2 {
        let store = prefix
            .store(|b| {
                b.retry_after(Duration::from_millis(200))
                    .lock_ttl(Duration::from_secs(1))
            })
            .await;
        replicas.push(
            Replica::start(&dingtalk, store, |b| {
                b.upstream_timeout(Duration::from_secs(2))
            })
            .await,
        );
    }
    let mut codes = Vec::new();
    let shared = dingtalk.issue_code("staff01");
    for replica in &replicas {
        replica.expect_user(&shared, "staff01").await;
    }
    assert_eq!(dingtalk.userinfo_calls(), 1);
    codes.push(shared.clone());

    redis.freeze();
    codes.extend(serve_through_outage(&dingtalk, &replicas, &shared).await);
    redis.thaw();
    codes.extend(until_shared_again(&dingtalk, &replicas).await);

    redis.kill();
    codes.extend(serve_through_outage(&dingtalk, &replicas, &shared).await);
    redis.restart();
    codes.extend(until_shared_again(&dingtalk, &replicas).await);

    let logs = logs.contents();
    // One warning per replica per outage, one note when each is back; never a code.
    assert_eq!(logs.matches(DOWN).count(), 4, "{logs}");
    assert_eq!(logs.matches(BACK).count(), 4, "{logs}");
    for code in &codes {
        assert!(!logs.contains(code.as_str()), "a log holds a code");
    }
    let requests: u64 = replicas.iter().map(Replica::handler_runs).sum();
    println!(
        "outage: {requests} requests answered 200 through a freeze and a kill of Redis, \
         {} exchanges",
        dingtalk.userinfo_calls()
    );
}

#[tokio::test]
async fn a_replica_starts_and_serves_while_redis_is_down() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("redis://:s3cret-password@127.0.0.1:{closed}");
    let error = RedisStore::connect(url.as_str()).await.unwrap_err();
    assert!(error.is_unreachable());
    for text in [error.to_string(), format!("{error:?}")] {
        assert!(!text.contains("s3cret-password"), "{text}");
    }
    let error = RedisStore::connect("no-such-scheme://x").await.unwrap_err();
    assert!(!error.is_unreachable());

    let store = RedisStore::builder(url.as_str()).connect_lazy().unwrap();
    assert!(!format!("{store:?}").contains("s3cret-password"));
    let dingtalk = support::dingtalk().await;
    let replica = Replica::start(&dingtalk, store, |b| b).await;
    let code = dingtalk.issue_code("staff01");
    for _ in 0..3 {
        let took = replica.expect_user(&code, "staff01").await;
        assert!(took < Duration::from_millis(1000), "{took:?}");
    }
    assert_eq!(dingtalk.userinfo_calls(), 1);
    assert!(!replica.store.is_available());
}

#[tokio::test]
async fn a_lock_that_outlives_the_budget_is_refused() {
    let prefix = Prefix::new("config");
    let dingtalk = support::dingtalk().await;
    let store = prefix.store(|b| b.lock_ttl(Duration::from_secs(5))).await;
    let error = layer_for(&dingtalk)
        .shared_store(store.clone())
        .build()
        .unwrap_err();
    assert!(
        matches!(error, ConfigError::LockOutlivesBudget { .. }),
        "{error}"
    );
    layer_for(&dingtalk)
        .shared_store(store)
        .upstream_timeout(Duration::from_secs(10))
        .build()
        .expect("a lock shorter than the budget");
    let error = RedisStore::builder(redis_url())
        .timeout(Duration::ZERO)
        .connect()
        .await
        .unwrap_err();
    assert!(error.to_string().contains("timeout"), "{error}");
}

/// A TCP proxy in front of Redis that forwards requests at once and, once `slow` is set, holds
/// every answer back for `delay`: Redis runs each command, and the replica behind the proxy hears
/// of it too late.
async fn slow_answers_proxy(redis: &str, delay: Duration, slow: Arc<AtomicBool>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let upstream_addr = redis::Client::open(redis)
        .expect("a Redis URL")
        .get_connection_info()
        .addr()
        .to_string();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let upstream = tokio::net::TcpStream::connect(&upstream_addr)
                .await
                .unwrap();
            let (mut client_read, mut client_write) = client.into_split();
            let (mut upstream_read, mut upstream_write) = upstream.into_split();
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut client_read, &mut upstream_write).await;
            });
            let slow = slow.clone();
            tokio::spawn(async move {
                let mut buffer = vec![0; 64 * 1024];
                while let Ok(n) = upstream_read.read(&mut buffer).await {
                    if n == 0 {
                        break;
                    }
                    if slow.load(Ordering::SeqCst) {
                        tokio::time::sleep(delay).await;
                    }
                    if client_write.write_all(&buffer[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    format!("redis://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_whose_claim_timed_out_still_shares_the_user_it_got() {
    // Replica A's claim reaches Redis and takes the code's lock, but the answer comes too late: A
    // counts Redis as down and exchanges directly. Replica B, which finds A's lock, must get A's
    // user rather than wait for the lock to expire and spend the code a second time (401).
    let dingtalk = support::dingtalk().await;
    let prefix = Prefix::new("late_claim");
    let slow = Arc::new(AtomicBool::new(false));
    let proxy = slow_answers_proxy(&prefix.url, Duration::from_millis(200), slow.clone()).await;
    let slow_store = RedisStore::builder(proxy.as_str())
        .key_prefix(&prefix.prefix)
        .connect()
        .await
        .unwrap_or_else(|error| no_redis(&proxy, &error));
    let a = Replica::start(&dingtalk, slow_store, |b| b).await;
    let b = Replica::start(&dingtalk, prefix.store(|b| b).await, |b| b).await;

    let code = dingtalk.issue_code("staff01");
    slow.store(true, Ordering::SeqCst);
    a.expect_user(&code, "staff01").await;
    assert!(!a.store.is_available(), "A's claim timed out");
    assert_eq!(dingtalk.userinfo_calls(), 1);
    let took = b.expect_user(&code, "staff01").await;
    assert_eq!(dingtalk.userinfo_calls(), 1, "the code was exchanged once");
    // B found the user in Redis, well before A's lock (2 s) would have expired.
    assert!(took < Duration::from_millis(1000), "{took:?}");
    all_codes_absent(&prefix.entries(), &[code]);
}
