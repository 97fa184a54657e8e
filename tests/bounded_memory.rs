//! Memory stays bounded under a flood of distinct codes: the identity cache and the remembered
//! rejections never hold more than their configured capacities.

mod support;

use std::convert::Infallible;
use std::time::Duration;

use futures_util::StreamExt;
use http::{Request, Response};
use tower::ServiceExt;
use tower_dingtalk_auth::DingTalkAuthLayer;

const BOGUS_CODES: usize = 100_000;
const VALID_CODES: usize = 2_000;
const CAPACITY: u64 = 1_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_thousand_bogus_codes_stay_within_the_capacities() {
    let dingtalk = support::dingtalk().await;
    let client = support::client_for(&dingtalk)
        // This test is about memory, not about pacing calls to DingTalk.
        .rate_limit(1_000_000)
        .queue_timeout(Duration::from_secs(30))
        .cache_capacity(CAPACITY)
        // The run takes longer than the default 30 s window: the bounds are what is tested.
        .code_reuse_window(Duration::from_secs(300))
        .rejected_code_capacity(CAPACITY)
        .build()
        .unwrap();
    let layer = DingTalkAuthLayer::builder().client(client).build().unwrap();
    let service = tower::ServiceBuilder::new()
        .layer(layer.clone())
        .service(tower::service_fn(|_: Request<String>| async {
            Ok::<_, Infallible>(Response::new(String::new()))
        }));

    let valid: Vec<String> = (0..VALID_CODES)
        .map(|_| dingtalk.issue_code("staff01"))
        .collect();
    let bogus = (0..BOGUS_CODES).map(|i| format!("bogus-code-{i:08}"));
    let codes = valid
        .iter()
        .cloned()
        .map(|c| (c, 200))
        .chain(bogus.map(|c| (c, 401)));
    let mismatches = futures_util::stream::iter(codes)
        .map(|(code, expected)| {
            let service = service.clone();
            async move {
                let request = Request::builder()
                    .header("x-dingtalk-code", code)
                    .body(String::new())
                    .unwrap();
                let status = service.oneshot(request).await.unwrap().status().as_u16();
                u64::from(status != expected)
            }
        })
        .buffer_unordered(64)
        .fold(0, |sum, mismatch| async move { sum + mismatch })
        .await;
    assert_eq!(mismatches, 0);
    assert_eq!(
        dingtalk.userinfo_calls(),
        (VALID_CODES + BOGUS_CODES) as u64
    );

    let stats = layer.cache_stats().await;
    assert!(stats.identities <= CAPACITY, "{stats:?}");
    assert!(stats.rejected_codes <= CAPACITY, "{stats:?}");
    // Full, not empty: the bounds were reached and held.
    assert!(stats.identities >= CAPACITY / 2, "{stats:?}");
    assert!(stats.rejected_codes >= CAPACITY / 2, "{stats:?}");
}
