//! Redis plumbing for the tests of replicas: a prefix of keys per test, a look into Redis, the
//! digests and sealed values a replica writes, replicas behind axum, a `redis-server` of a test's
//! own that it can freeze and kill, and a proxy that holds Redis's answers back.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use redis::Commands;
use sha2::Sha256;
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;
use tower_dingtalk_auth::testing::MockDingTalk;
use tower_dingtalk_auth::{
    DingTalkAuthLayer, DingTalkAuthLayerBuilder, DingTalkClientBuilder, RedisStore,
    RedisStoreBuilder,
};

use super::{client_for, json, routes, serve};

pub const INSTALL_REDIS: &str = "apt-get install redis-server";

/// The users of the fake DingTalk, by userid.
pub const USERS: [&str; 5] = ["staff01", "boss01", "super01", "sub01", "odd01"];

/// The Redis the tests share: `REDIS_URL` when it is set; else 127.0.0.1:6379 when something answers
/// there; else a `redis-server` of this test binary's own on a free port, started once and stopped
/// when the binary exits. So a fresh clone passes with one command wherever `redis-server` is
/// installed.
pub fn redis_url() -> String {
    static URL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    URL.get_or_init(|| {
        if let Ok(url) = std::env::var("REDIS_URL") {
            return url;
        }
        let default = "redis://127.0.0.1:6379".to_owned();
        if ping(&default).is_ok() {
            return default;
        }
        OwnRedis::start()
    })
    .clone()
}

fn ping(url: &str) -> redis::RedisResult<String> {
    redis::Client::open(url)
        .and_then(|client| client.get_connection_with_timeout(Duration::from_millis(300)))
        .and_then(|mut redis| redis::cmd("PING").query::<String>(&mut redis))
}

/// A `redis-server` that lives as long as the test binary: a shell starts it and kills it when its
/// standard input closes, which happens when this process exits, however it exits.
struct OwnRedis;

impl OwnRedis {
    fn start() -> String {
        let port = free_port();
        let script = format!(
            "redis-server --port {port} --bind 127.0.0.1 --save '' --appendonly no \
             >/dev/null 2>&1 & pid=$!; cat >/dev/null; kill $pid"
        );
        if Command::new("redis-server")
            .arg("--version")
            .output()
            .is_err()
        {
            panic!(
                "nothing answers at redis://127.0.0.1:6379 and `redis-server` is not installed: \
                 install it (`{INSTALL_REDIS}`) or set REDIS_URL to a Redis"
            );
        }
        let child = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sh");
        // The pipe to the shell's standard input stays open until the process exits.
        std::mem::forget(child);
        let url = format!("redis://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(5);
        while let Err(error) = ping(&url) {
            assert!(
                Instant::now() < deadline,
                "the tests' own redis-server on port {port} did not start: {error}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        url
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

pub fn no_redis(url: &str, error: &dyn std::fmt::Display) -> ! {
    panic!(
        "Redis is not reachable at {url} ({error}). Unset REDIS_URL to let the tests start their \
         own `redis-server` (install it with `{INSTALL_REDIS}`), or point REDIS_URL at one."
    )
}

/// A plain connection for looking into Redis from the test.
pub fn inspector(url: &str) -> redis::Connection {
    redis::Client::open(url)
        .and_then(|client| client.get_connection_with_timeout(Duration::from_secs(2)))
        .unwrap_or_else(|error| no_redis(url, &error))
}

/// A key prefix of its own for each test run, so that parallel tests and leftovers of earlier runs
/// never meet; its keys are deleted when it is dropped.
pub struct Prefix {
    pub prefix: String,
    pub url: String,
}

impl Prefix {
    pub fn new(test: &str) -> Self {
        Self::on(test, redis_url())
    }

    pub fn on(test: &str, url: String) -> Self {
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
    pub async fn store(
        &self,
        configure: impl FnOnce(RedisStoreBuilder) -> RedisStoreBuilder,
    ) -> RedisStore {
        configure(
            RedisStore::builder(&self.url)
                .secret(TEST_SECRET)
                .key_prefix(&self.prefix),
        )
        .connect()
        .await
        .unwrap_or_else(|error| no_redis(&self.url, &error))
    }

    /// Every key under the prefix, with its value and its remaining life in milliseconds.
    pub fn entries(&self) -> Vec<(String, String, i64)> {
        let mut redis = inspector(&self.url);
        let keys: Vec<String> = redis
            .scan_match::<_, String>(format!("{}*", self.prefix))
            .expect("SCAN")
            .collect::<Result<_, _>>()
            .expect("SCAN");
        keys.into_iter()
            .map(|key| {
                let kind: String = redis::cmd("TYPE")
                    .arg(&key)
                    .query(&mut redis)
                    .expect("TYPE");
                // The budget's keys are a hash and sorted sets: their fields and members, joined.
                let value: String = match kind.as_str() {
                    "hash" => {
                        let fields: Vec<String> = redis.hgetall(&key).expect("HGETALL");
                        fields.join(" ")
                    }
                    "zset" => {
                        let members: Vec<String> =
                            redis.zrange_withscores(&key, 0, -1).expect("ZRANGE");
                        members.join(" ")
                    }
                    _ => redis.get(&key).expect("GET"),
                };
                let ttl: i64 = redis.pttl(&key).expect("PTTL");
                (key, value, ttl)
            })
            .collect()
    }

    /// [`entries`](Self::entries) without the shared DingTalk budget's keys: what the codes left.
    pub fn code_entries(&self) -> Vec<(String, String, i64)> {
        let budget = format!("{}budget", self.prefix);
        self.entries()
            .into_iter()
            .filter(|(key, ..)| !key.starts_with(&budget))
            .collect()
    }

    /// A code's key of `kind`, as the store's rustdoc documents it: the digest is the key's hash
    /// tag, `<prefix><kind>:{<digest>}`.
    pub fn key(&self, kind: &str, app_key: &str, code: &str) -> String {
        format!("{}{kind}:{{{}}}", self.prefix, digest(app_key, None, code))
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

/// The secret every test replica shares.
pub const TEST_SECRET: &[u8] = b"the replicas' shared secret, for tests only!";

fn mac(secret: &[u8], parts: &[&[u8]]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
    for part in parts {
        mac.update(&(part.len() as u64).to_be_bytes());
        mac.update(part);
    }
    mac
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The digest that names a code in Redis, as the README documents it: HMAC-SHA256 under the
/// replicas' secret of length-prefixed parts.
pub fn digest(app_key: &str, corp_id: Option<&str>, code: &str) -> String {
    let own: &[u8] = if corp_id.is_some() { b"corp" } else { b"own" };
    let parts: [&[u8]; 5] = [
        b"tower-dingtalk-auth/code/v2",
        app_key.as_bytes(),
        own,
        corp_id.unwrap_or_default().as_bytes(),
        code.as_bytes(),
    ];
    hex(&mac(TEST_SECRET, &parts).finalize().into_bytes())
}

/// `value` sealed for `digest` as a replica with `secret` writes it: `<mac>.<value>`.
pub fn seal(secret: &[u8], digest: &str, value: &str) -> String {
    let parts: [&[u8]; 3] = [
        b"tower-dingtalk-auth/value/v2",
        digest.as_bytes(),
        value.as_bytes(),
    ];
    format!(
        "{}.{value}",
        hex(&mac(secret, &parts).finalize().into_bytes())
    )
}

/// The JSON inside a stored value, after checking its MAC against `digest`.
pub fn open(digest: &str, stored: &str) -> String {
    let (_, value) = stored.split_once('.').expect("<mac>.<value>");
    assert_eq!(
        seal(TEST_SECRET, digest, value),
        stored,
        "the MAC authenticates the value"
    );
    value.to_owned()
}

/// One replica of a service: its own layer, local cache and connection to Redis, behind an axum
/// app on a loopback port.
pub struct Replica {
    pub layer: DingTalkAuthLayer,
    pub store: RedisStore,
    pub addr: SocketAddr,
    pub handler_runs: Arc<AtomicU64>,
    pub http: reqwest::Client,
    server: JoinHandle<()>,
}

impl Replica {
    pub async fn start(
        dingtalk: &MockDingTalk,
        store: RedisStore,
        configure: impl FnOnce(DingTalkAuthLayerBuilder) -> DingTalkAuthLayerBuilder,
    ) -> Self {
        Self::start_with(dingtalk, store, |client| client, configure).await
    }

    /// A replica whose client is configured by `configure_client` (after the rate limit and the
    /// store) and whose layer by `configure_layer`.
    pub async fn start_with(
        dingtalk: &MockDingTalk,
        store: RedisStore,
        configure_client: impl FnOnce(DingTalkClientBuilder) -> DingTalkClientBuilder,
        configure_layer: impl FnOnce(DingTalkAuthLayerBuilder) -> DingTalkAuthLayerBuilder,
    ) -> Self {
        // New logins come in bursts here: DingTalk's 20 a second is not what these tests are about.
        let client = client_for(dingtalk)
            .rate_limit(1_000)
            .shared_store(store.clone());
        let client = configure_client(client).build().expect("a client");
        let layer = configure_layer(DingTalkAuthLayer::builder().client(client))
            .build()
            .expect("a layer");
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

    pub fn url(&self) -> String {
        format!("http://{}/me", self.addr)
    }

    pub async fn get(&self, code: &str) -> reqwest::Response {
        self.http
            .get(self.url())
            .header("x-dingtalk-code", code)
            .send()
            .await
            .expect("the replica answers")
    }

    /// GETs `/me` with `code` and checks that it is `userid`'s 200; returns how long it took.
    pub async fn expect_user(&self, code: &str, userid: &str) -> Duration {
        let started = Instant::now();
        let response = self.get(code).await;
        let took = started.elapsed();
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
        assert_eq!(json(response).await["userid"], userid);
        took
    }

    pub fn handler_runs(&self) -> u64 {
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
pub const SHARING_TEST_TIMEOUT: Duration = Duration::from_millis(500);

pub async fn replicas(dingtalk: &MockDingTalk, prefix: &Prefix, n: usize) -> Vec<Replica> {
    let mut replicas = Vec::with_capacity(n);
    for _ in 0..n {
        let store = prefix.store(|b| b.timeout(SHARING_TEST_TIMEOUT)).await;
        replicas.push(Replica::start(dingtalk, store, |b| b).await);
    }
    replicas
}

pub fn all_codes_absent(entries: &[(String, String, i64)], codes: &[String]) {
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

pub fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
}

/// A `redis-server` of the test's own on a free port, which it can freeze, kill and restart.
pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
}

impl RedisServer {
    pub fn start() -> Self {
        let port = free_port();
        let mut server = Self { port, child: None };
        server.restart();
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn restart(&mut self) {
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
                     it with `{INSTALL_REDIS}`"
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

    pub fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        let status = Command::new("kill").args([signal, &pid]).status().unwrap();
        assert!(status.success(), "kill {signal} {pid}");
    }

    /// Redis stops answering, with its connections open: every call times out.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    /// Redis dies: connections are reset, new ones refused.
    pub fn kill(&mut self) {
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

/// A TCP proxy in front of Redis that forwards requests at once and, once `slow` is set, holds
/// every answer back for `delay`: Redis runs each command, and the replica behind the proxy hears
/// of it too late.
pub async fn slow_answers_proxy(redis: &str, delay: Duration, slow: Arc<AtomicBool>) -> String {
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

pub const DOWN: &str = "the shared store is unreachable or too slow";
pub const BACK: &str = "the shared store answers again";

/// While Redis is out: cached codes are served from each replica's cache, new codes are exchanged
/// directly (each sent to one replica, as sharing is off), and no request waits on Redis.
pub async fn serve_through_outage(
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
pub async fn until_shared_again(dingtalk: &MockDingTalk, replicas: &[Replica]) -> Vec<String> {
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
