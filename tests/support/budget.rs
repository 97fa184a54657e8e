//! A fleet of replicas sharing DingTalk's budget: each its own client, layer and connection to
//! Redis under one key prefix, one fake DingTalk limited to 20 calls a second, and each simulated
//! client its own key (the address a trusted proxy wrote in `X-Forwarded-For`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tower_dingtalk_auth::testing::MockDingTalk;
use tower_dingtalk_auth::{ClientKey, RedisStore};

use super::store::{Replica, SHARING_TEST_TIMEOUT};

/// DingTalk's limit per app and API, and the client's default rate.
pub const RATE: u32 = 20;

/// `n` replicas on `stores` (one each), at DingTalk's rate of 20, telling clients apart by the
/// address one trusted proxy saw.
pub async fn fleet(dingtalk: &MockDingTalk, stores: Vec<RedisStore>) -> Vec<Replica> {
    let mut replicas = Vec::new();
    for store in stores {
        replicas.push(
            Replica::start_with(
                dingtalk,
                store,
                |client| client.rate_limit(RATE),
                |layer| layer.client_key_from(ClientKey::forwarded_for(1)),
            )
            .await,
        );
    }
    replicas
}

/// `n` stores under `prefix`, with the sharing tests' timeout.
pub async fn stores(prefix: &super::store::Prefix, n: usize) -> Vec<RedisStore> {
    let mut stores = Vec::new();
    for _ in 0..n {
        stores.push(prefix.store(|b| b.timeout(SHARING_TEST_TIMEOUT)).await);
    }
    stores
}

/// The address of simulated client `i`, as the proxy in front of the replicas writes it.
pub fn client_ip(i: u64) -> String {
    format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255)
}

/// One login attempt of client `i` with `code` on `replica`: the status and the `Retry-After`.
pub async fn attempt(replica: &Replica, i: u64, code: &str) -> (u16, Option<u64>) {
    let response = replica
        .http
        .get(replica.url())
        .header("x-dingtalk-code", code)
        .header("x-forwarded-for", client_ip(i))
        .send()
        .await
        .expect("the replica answers");
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|value| value.to_str().ok()?.parse().ok());
    (response.status().as_u16(), retry_after)
}

/// The fake's getuserinfo calls, sampled every 100 ms from `start` until stopped.
#[derive(Clone)]
pub struct Sampler {
    samples: Arc<std::sync::Mutex<Vec<(Duration, u64)>>>,
    stop: Arc<AtomicU64>,
}

impl Sampler {
    pub fn start(dingtalk: &Arc<MockDingTalk>, start: Instant) -> Self {
        let sampler = Self {
            samples: Arc::default(),
            stop: Arc::default(),
        };
        let (samples, stop, dingtalk) = (
            sampler.samples.clone(),
            sampler.stop.clone(),
            dingtalk.clone(),
        );
        tokio::spawn(async move {
            while stop.load(Ordering::SeqCst) == 0 {
                let calls = dingtalk.userinfo_calls();
                samples.lock().unwrap().push((start.elapsed(), calls));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        sampler
    }

    pub fn stop(&self) {
        self.stop.store(1, Ordering::SeqCst);
    }

    /// The calls counted between `from` and `to` (since the start), from the samples nearest.
    pub fn calls_between(&self, from: Duration, to: Duration) -> u64 {
        let samples = self.samples.lock().unwrap();
        let at = |t: Duration| {
            samples
                .iter()
                .min_by_key(|(when, _)| when.abs_diff(t))
                .map(|(_, calls)| *calls)
                .expect("samples")
        };
        at(to) - at(from)
    }

    /// The most calls counted in any one second (between samples a second apart).
    pub fn busiest_second(&self) -> u64 {
        let samples = self.samples.lock().unwrap();
        samples
            .iter()
            .filter_map(|(when, calls)| {
                let later = samples
                    .iter()
                    .find(|(then, _)| *then >= *when + Duration::from_secs(1))?;
                Some(later.1 - calls)
            })
            .max()
            .unwrap_or(0)
    }
}
