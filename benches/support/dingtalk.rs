//! The fake DingTalk the benches exchange codes with, our layer pointed at it, and filling the
//! layer's identity cache.

use std::time::Duration;

use bytes::Bytes;
use futures_util::{StreamExt, stream};
use http::StatusCode;
use http_body_util::Empty;
use tower::{Layer, ServiceExt};
use tower_dingtalk_auth::testing::MockDingTalk;
use tower_dingtalk_auth::{
    AuthenticatedDingTalkUser, DingTalkAuthLayer, DingTalkAuthLayerBuilder, DingTalkClient,
    DingTalkClientBuilder,
};

/// The header our layer reads the code from by default.
pub const CODE_HEADER: &str = "x-dingtalk-code";

/// The one user the fake DingTalk knows; every code is issued to them.
pub const USERID: &str = "bench01";

/// Lifetime of codes and cached identities: long enough that filling a million of them and
/// measuring the hits never races an expiry (the defaults are 300 s).
const LONG_LIFE: Duration = Duration::from_secs(3600);

/// A local rate limit no bench reaches: filling caches and timing exchanges measure the exchange,
/// not DingTalk's 20 calls a second, which the cold-path bench puts back.
const NO_RATE_LIMIT: u32 = 1_000_000;

/// How many exchanges run at once while filling a cache: a busy front end, enough to keep both
/// cores busy. (Driving 128 at once from one thread leaves glibc's arena of that thread fragmented,
/// which would inflate the memory bench's RSS reading about 5x with no more live data.)
const FILL_CONCURRENCY: usize = 16;

/// A fake DingTalk on loopback with a user whose fields are as long as real ones.
pub async fn dingtalk() -> MockDingTalk {
    MockDingTalk::builder()
        .code_ttl(LONG_LIFE)
        .user(bench_user())
        .start()
        .await
}

/// Our client pointed at `dingtalk`, keeping identities long enough for any bench, without a local
/// rate limit.
pub fn client_for(dingtalk: &MockDingTalk) -> DingTalkClientBuilder {
    DingTalkClient::builder()
        .internal_app(dingtalk.app_key(), dingtalk.app_secret())
        .base_url(dingtalk.base_url())
        .code_reuse_window(tower_dingtalk_auth::MAX_CODE_REUSE_WINDOW)
        .rate_limit(NO_RATE_LIMIT)
}

/// Our layer over the client `client` builds.
pub fn layer_with(client: DingTalkClientBuilder) -> DingTalkAuthLayerBuilder {
    DingTalkAuthLayer::builder().client(client.build().expect("a client"))
}

/// Our layer over [`client_for`]`(dingtalk)`.
pub fn layer_for(dingtalk: &MockDingTalk) -> DingTalkAuthLayerBuilder {
    layer_with(client_for(dingtalk))
}

/// Issues `n` codes and exchanges each through `layer`, so that they are cached; returns them.
pub async fn cache_codes(
    layer: &DingTalkAuthLayer,
    dingtalk: &MockDingTalk,
    n: usize,
) -> Vec<String> {
    let codes = issue_codes(dingtalk, n);
    cache(layer, &codes).await;
    codes
}

/// `n` fresh codes of the bench's user.
pub fn issue_codes(dingtalk: &MockDingTalk, n: usize) -> Vec<String> {
    (0..n).map(|_| dingtalk.issue_code(USERID)).collect()
}

/// Exchanges each code through `layer`, so that it is cached.
///
/// The exchanges go through the layer in front of a trivial service, concurrently, as a busy
/// front end would make them. Panics unless every exchange succeeds.
pub async fn cache(layer: &DingTalkAuthLayer, codes: &[String]) {
    let service = layer.layer(super::hello_service());
    stream::iter(codes)
        .map(|code| {
            let request = super::get_with::<Empty<Bytes>>(Some((CODE_HEADER, code)));
            service.clone().oneshot(request)
        })
        .buffer_unordered(FILL_CONCURRENCY)
        .for_each(|response| async move {
            let status = response.expect("infallible").status();
            assert_eq!(
                status,
                StatusCode::OK,
                "an exchange failed while filling the cache"
            );
        })
        .await;
}

/// The session key of the session benches.
const SESSION_SECRET: &[u8] = b"the benches' session key, 32 bytes or more";

/// The session key of the session benches.
pub fn session_key() -> tower_dingtalk_auth::SessionKey {
    tower_dingtalk_auth::SessionKey::from_bytes(SESSION_SECRET).expect("a key")
}

/// Our layer over [`client_for`]`(dingtalk)` with sessions, as cookies and as bearer tokens.
pub fn session_layer(dingtalk: &MockDingTalk) -> DingTalkAuthLayer {
    layer_for(dingtalk)
        .session(tower_dingtalk_auth::SessionConfig::new(session_key()))
        .token_login("/login")
        .build()
        .expect("a layer")
}

/// A valid session of the bench's user for `layer`: the `Cookie` pair, and a bearer token of the
/// same user (a session's kind is sealed in: a cookie is no token).
pub fn session_of(layer: &DingTalkAuthLayer) -> (String, String) {
    let sessions = layer.sessions().expect("a layer with sessions");
    let user = bench_user();
    let pair = sessions
        .cookie_header(&user)
        .to_str()
        .expect("ASCII")
        .to_owned();
    (pair, format!("Bearer {}", sessions.issue_token(&user)))
}

/// The bench's one user, with fields as long as real ones.
pub fn bench_user() -> AuthenticatedDingTalkUser {
    AuthenticatedDingTalkUser::builder(USERID, "张三")
        .unionid("gliiW0piiii02zU0iiiiiiiiiiiiiiiiiiiE")
        .device_id("a6e1a5b2c4d8e0f7a3b9c1d2e4f6a8b0")
        .build()
}

/// A store on the machine's Redis, under a key prefix of this run's own (its keys expire with the
/// codes' 300 s).
pub async fn redis_store() -> tower_dingtalk_auth::RedisStore {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    tower_dingtalk_auth::RedisStore::builder(url.as_str())
        .secret(b"the load bench's store secret, 32 bytes or more")
        .key_prefix(format!("bench-load:{}:", std::process::id()))
        .connect()
        .await
        .unwrap_or_else(|error| {
            panic!(
                "the Redis path needs Redis: {error}; start one with `redis-server --daemonize yes` \
                 or set REDIS_URL"
            )
        })
}
