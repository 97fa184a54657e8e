//! Metrics (feature `metrics`): a known flow over real sockets gives exactly the expected counts,
//! histogram samples and gauges, with no secret in any label; a recorder that panics or sleeps
//! loses no login. Each test builds its client and layer under its own recorder (a thread-local
//! one, which handles resolved at build keep), so tests running at once do not mix counts.

#[path = "metrics/recorders.rs"]
mod recorders;
#[path = "metrics/snapshot.rs"]
mod snapshot;
mod support;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use axum::routing::{get, post};
use axum::{Json, Router};
use metrics::Recorder;
use metrics_util::debugging::DebuggingRecorder;
use serde_json::json;
use tower_dingtalk_auth::testing::MockDingTalk;

use recorders::{Mode, logins_under};
use snapshot::{counts, seen};
use tower_dingtalk_auth::{
    AuthenticatedDingTalkUser, DingTalkAuthLayer, DingTalkClient, RedisStore, SessionConfig,
    SessionKey,
};

const LOGIN: &str = "/auth/login";

/// `/me` behind a layer with sessions and token login; `/maybe` behind an optional layer on the
/// same client. Both built under `recorder`.
async fn app_under(recorder: &dyn Recorder, dingtalk: &MockDingTalk) -> std::net::SocketAddr {
    let (strict, optional) = metrics::with_local_recorder(recorder, || {
        let client: DingTalkClient = support::client_for(dingtalk).build().unwrap();
        let session = SessionConfig::new(SessionKey::generate()).secure(false);
        let strict = DingTalkAuthLayer::builder()
            .client(client.clone())
            .session(session)
            .token_login(LOGIN)
            .build()
            .unwrap();
        let optional = DingTalkAuthLayer::builder()
            .client(client)
            .optional()
            .build()
            .unwrap();
        (strict, optional)
    });
    let me = |user: AuthenticatedDingTalkUser| async move { Json(user) };
    let maybe = |user: Option<AuthenticatedDingTalkUser>| async move {
        user.map_or("anonymous".to_owned(), |user| user.userid().to_owned())
    };
    let app = Router::new()
        .route("/me", get(me))
        .route(LOGIN, post(|| async { "the layer answers" }))
        .layer(strict)
        .merge(Router::new().route("/maybe", get(maybe)).layer(optional));
    support::serve(app).await.0
}

#[tokio::test]
async fn a_known_flow_gives_exact_counts_and_no_secret_in_any_label() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let dingtalk = support::dingtalk().await;
    let addr = app_under(&recorder, &dingtalk).await;
    let http = reqwest::Client::new();
    let get = |path: &str| http.get(format!("http://{addr}{path}"));

    // One code three times: one exchange, then two hits; the first starts the session.
    let code = dingtalk.issue_code("staff01");
    let mut cookie = None;
    for _ in 0..3 {
        let response = get("/me")
            .header("x-dingtalk-code", &code)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        if let Some(set) = response.headers().get("set-cookie") {
            cookie = Some(set.to_str().unwrap().split(';').next().unwrap().to_owned());
        }
    }
    let cookie = cookie.expect("the code's first use starts a session");
    let response = get("/me").header("cookie", &cookie).send().await.unwrap();
    assert_eq!(response.status(), 200, "the session cookie");
    let bad = get("/me")
        .header("x-dingtalk-code", "not a code!")
        .send()
        .await
        .unwrap();
    support::assert_rejection(bad, 401, "invalid_code", &[]).await;
    let unknown = "0123456789abcdef0123456789abcdef";
    let refused = get("/me")
        .header("x-dingtalk-code", unknown)
        .send()
        .await
        .unwrap();
    support::assert_rejection(refused, 401, "code_rejected", &[unknown]).await;
    let anonymous = get("/me").send().await.unwrap();
    support::assert_rejection(anonymous, 401, "missing_code", &[]).await;
    let passed = get("/maybe").send().await.unwrap();
    assert_eq!(passed.status(), 200);
    assert_eq!(passed.text().await.unwrap(), "anonymous");
    // A token login, then the token.
    let token_code = dingtalk.issue_code("boss01");
    let login = http
        .post(format!("http://{addr}{LOGIN}"))
        .json(&json!({ "code": token_code }))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    let token = login.json::<serde_json::Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let response = get("/me").bearer_auth(&token).send().await.unwrap();
    assert_eq!(response.status(), 200, "the bearer token");
    // Three codes reached DingTalk: the first, the unknown one, the token login's.
    assert_eq!(dingtalk.userinfo_calls(), 3);
    assert_eq!(dingtalk.token_calls(), 1);

    let seen = seen(&snapshotter);
    assert_eq!(
        seen.non_zero("dingtalk_auth_requests_total"),
        counts(&[
            ("code", 3),
            ("session_cookie", 1),
            ("bearer_token", 1),
            ("token_login", 1),
            ("passed_through", 1),
            ("invalid_code", 1),
            ("code_rejected", 1),
            ("missing_code", 1),
        ])
    );
    assert_eq!(
        seen.non_zero("dingtalk_auth_exchanges_total"),
        counts(&[("ok", 2), ("rejected", 1)])
    );
    assert_eq!(
        seen.non_zero("dingtalk_auth_identity_cache_total"),
        counts(&[("hit", 2), ("miss", 3)])
    );
    assert_eq!(
        seen.non_zero("dingtalk_auth_token_fetches_total"),
        counts(&[("ok", 1)])
    );
    assert_eq!(
        seen.non_zero("dingtalk_auth_dingtalk_errors_total"),
        counts(&[("40078/invalid_code", 1)])
    );
    assert_eq!(seen.non_zero("dingtalk_auth_refusals_total"), counts(&[]));
    assert_eq!(
        seen.count("dingtalk_auth_refusals_total", &[("reason", "rate_limit")]),
        0
    );
    // Histograms: one sample per exchange and token fetch, one wait per call sent.
    assert_eq!(seen.histograms["dingtalk_auth_exchange_seconds"], 3);
    assert_eq!(seen.histograms["dingtalk_auth_token_fetch_seconds"], 1);
    assert_eq!(seen.histograms["dingtalk_auth_rate_limit_wait_seconds"], 3);
    // Gauges: the two users cached, nothing in flight.
    assert_eq!(seen.gauges["dingtalk_auth_cached_identities"], 2.0);
    assert_eq!(seen.gauges["dingtalk_auth_exchanges_in_flight"], 0.0);

    let cookie_value = cookie.split_once('=').unwrap().1.to_owned();
    let secrets = [
        "staff01".to_owned(),
        "boss01".to_owned(),
        code,
        token_code,
        unknown.to_owned(),
        token,
        cookie_value,
        dingtalk.app_key(),
        dingtalk.app_secret(),
    ]
    .into_iter()
    .chain(dingtalk.issued_tokens());
    for secret in secrets {
        for value in &seen.label_values {
            assert!(!value.contains(&secret), "{value:?} holds {secret:?}");
        }
    }
    let bounded: Vec<&String> = seen
        .label_values
        .iter()
        .filter(|value| {
            !value
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'_' || b.is_ascii_digit() || b == b'-')
        })
        .collect();
    assert!(
        bounded.is_empty(),
        "label values that are not names: {bounded:?}"
    );
}

#[tokio::test]
async fn cached_identities_go_down_as_codes_expire() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let dingtalk = support::dingtalk().await;
    let client = metrics::with_local_recorder(&recorder, || {
        let window = std::time::Duration::from_millis(300);
        support::client_for(&dingtalk)
            .code_reuse_window(window)
            .build()
            .unwrap()
    });
    for userid in ["staff01", "boss01"] {
        client
            .user_info(&dingtalk.issue_code(userid))
            .await
            .unwrap();
    }
    assert_eq!(
        seen(&snapshotter).gauges["dingtalk_auth_cached_identities"],
        2.0
    );
    // The cache's housekeeping (run by `cache_stats`) drops expired codes, on the next tick of
    // moka's timer wheel (about a second).
    let mut left = 2;
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        left = client.cache_stats().await.identities;
        if left == 0 {
            break;
        }
    }
    assert_eq!(left, 0, "the codes expired");
    assert_eq!(
        seen(&snapshotter).gauges["dingtalk_auth_cached_identities"],
        -2.0,
        "a snapshot of the debugging recorder sets its values back to 0: this one is the change"
    );
}

#[tokio::test]
async fn a_store_that_does_not_answer_counts_one_outage_and_logins_go_on() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let dingtalk = support::dingtalk().await;
    let layer = metrics::with_local_recorder(&recorder, || {
        // Nothing listens on port 1: every call to the store is refused.
        let store = RedisStore::builder("redis://127.0.0.1:1")
            .secret([7u8; 32])
            .key_prefix("metrics-test-outage:")
            .connect_lazy()
            .unwrap();
        let client = support::client_for(&dingtalk)
            .shared_store(store)
            .build()
            .unwrap();
        DingTalkAuthLayer::builder().client(client).build().unwrap()
    });
    // Not read before the requests: a snapshot of the debugging recorder sets its values back to
    // 0, and the 0 below must be the store's.

    let (addr, _server) =
        support::serve(support::routes(Arc::new(AtomicU64::new(0))).layer(layer)).await;
    for _ in 0..2 {
        let code = dingtalk.issue_code("staff01");
        let response = reqwest::Client::new()
            .get(format!("http://{addr}/me"))
            .header("x-dingtalk-code", &code)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "the layer serves alone");
    }
    assert_eq!(dingtalk.userinfo_calls(), 2);
    let after = seen(&snapshotter);
    assert_eq!(after.gauges["dingtalk_auth_store_available"], 0.0);
    assert_eq!(
        after.count("dingtalk_auth_store_outages_total", &[]),
        1,
        "one outage, not one per call"
    );
}

#[tokio::test]
async fn a_recorder_that_panics_when_registering_loses_no_login() {
    // The first panic blows each fuse: the client's, each layer's, the cache's, the limits'.
    let calls = logins_under(Mode::PanicOnRegister).await;
    assert!(calls > 0, "the recorder was asked");
}

#[tokio::test]
async fn a_recorder_whose_every_handle_panics_loses_no_login() {
    let calls = logins_under(Mode::PanicOnRecord).await;
    assert!(calls > 0, "the recorder was asked");
}

#[tokio::test]
async fn a_slow_recorder_only_slows() {
    let calls = logins_under(Mode::Sleep).await;
    // Registrations and descriptions, then the requests' own recordings.
    assert!(calls > 100, "the recorder was asked {calls} times");
}
