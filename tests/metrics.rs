//! Metrics (feature `metrics`): a known flow over real sockets gives exactly the expected counts,
//! histogram samples and gauges, with no secret in any label; a recorder that panics or sleeps
//! loses no login. Each test builds its client and layer under its own recorder (a thread-local
//! one, which handles resolved at build keep), so tests running at once do not mix counts.

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::routing::{get, post};
use axum::{Json, Router};
use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};
use metrics_util::MetricKind;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use serde_json::json;
use tower_dingtalk_auth::testing::MockDingTalk;
use tower_dingtalk_auth::{
    AuthenticatedDingTalkUser, DingTalkAuthLayer, DingTalkClient, SessionConfig, SessionKey,
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

/// Counters by (name, labels), the last value of gauges, and the samples of histograms.
#[derive(Default)]
struct Seen {
    counters: HashMap<(String, Vec<(String, String)>), u64>,
    gauges: HashMap<String, f64>,
    histograms: HashMap<String, usize>,
    label_values: Vec<String>,
}

fn seen(snapshotter: &Snapshotter) -> Seen {
    let mut seen = Seen::default();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let (kind, key) = key.into_parts();
        let name = key.name().to_owned();
        let labels: Vec<(String, String)> = key
            .labels()
            .map(|label| (label.key().to_owned(), label.value().to_owned()))
            .collect();
        seen.label_values
            .extend(labels.iter().map(|(_, value)| value.clone()));
        match (kind, value) {
            (MetricKind::Counter, DebugValue::Counter(count)) => {
                seen.counters.insert((name, labels), count);
            }
            (MetricKind::Gauge, DebugValue::Gauge(value)) => {
                seen.gauges.insert(name, value.into_inner());
            }
            (MetricKind::Histogram, DebugValue::Histogram(samples)) => {
                seen.histograms.insert(name, samples.len());
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    seen
}

impl Seen {
    fn count(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        let labels: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        *self
            .counters
            .get(&(name.to_owned(), labels.clone()))
            .unwrap_or_else(|| panic!("{name} {labels:?} was not registered"))
    }

    /// Every counter of `name` that is not zero, with its one label's value.
    fn non_zero(&self, name: &str) -> HashMap<String, u64> {
        self.counters
            .iter()
            .filter(|((n, _), count)| n == name && **count > 0)
            .map(|((_, labels), count)| {
                let values: Vec<&str> = labels.iter().map(|(_, v)| v.as_str()).collect();
                (values.join("/"), *count)
            })
            .collect()
    }
}

fn counts(pairs: &[(&str, u64)]) -> HashMap<String, u64> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
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
        let response = get("/me").header("x-dingtalk-code", &code).send().await.unwrap();
        assert_eq!(response.status(), 200);
        if let Some(set) = response.headers().get("set-cookie") {
            cookie = Some(set.to_str().unwrap().split(';').next().unwrap().to_owned());
        }
    }
    let cookie = cookie.expect("the code's first use starts a session");
    let response = get("/me").header("cookie", &cookie).send().await.unwrap();
    assert_eq!(response.status(), 200, "the session cookie");
    let bad = get("/me").header("x-dingtalk-code", "not a code!").send().await.unwrap();
    support::assert_rejection(bad, 401, "invalid_code", &[]).await;
    let unknown = "0123456789abcdef0123456789abcdef";
    let refused = get("/me").header("x-dingtalk-code", unknown).send().await.unwrap();
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
    assert_eq!(seen.count("dingtalk_auth_refusals_total", &[("reason", "rate_limit")]), 0);
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
        .filter(|value| !value.bytes().all(|b| b.is_ascii_lowercase() || b == b'_' || b.is_ascii_digit() || b == b'-'))
        .collect();
    assert!(bounded.is_empty(), "label values that are not names: {bounded:?}");
}

/// A recorder whose registrations panic, or whose handles panic on every use; or whose every
/// call sleeps. It counts its calls.
struct Hostile {
    mode: Mode,
    calls: Arc<AtomicU64>,
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    PanicOnRegister,
    PanicOnRecord,
    Sleep,
}

struct Handle {
    mode: Mode,
    calls: Arc<AtomicU64>,
}

impl Handle {
    fn called(&self) {
        self.calls.fetch_add(1, Ordering::SeqCst);
        match self.mode {
            Mode::Sleep => std::thread::sleep(Duration::from_millis(2)),
            _ => panic!("a recorder that panics"),
        }
    }
}

impl CounterFn for Handle {
    fn increment(&self, _: u64) {
        self.called();
    }
    fn absolute(&self, _: u64) {
        self.called();
    }
}

impl GaugeFn for Handle {
    fn increment(&self, _: f64) {
        self.called();
    }
    fn decrement(&self, _: f64) {
        self.called();
    }
    fn set(&self, _: f64) {
        self.called();
    }
}

impl HistogramFn for Handle {
    fn record(&self, _: f64) {
        self.called();
    }
}

impl Hostile {
    fn handle(&self) -> Arc<Handle> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        match self.mode {
            Mode::PanicOnRegister => panic!("a recorder that panics"),
            Mode::Sleep => std::thread::sleep(Duration::from_millis(2)),
            Mode::PanicOnRecord => {}
        }
        Arc::new(Handle {
            mode: self.mode,
            calls: self.calls.clone(),
        })
    }

    fn described(&self) {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.mode != Mode::Sleep {
            panic!("a recorder that panics");
        }
    }
}

impl Recorder for Hostile {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {
        self.described();
    }
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {
        self.described();
    }
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {
        self.described();
    }
    fn register_counter(&self, _: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(self.handle())
    }
    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(self.handle())
    }
    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(self.handle())
    }
}

/// Codes (exchanged, then hit), a cookie and a token all sign in under `recorder`; returns how
/// many times it was called.
async fn logins_under(mode: Mode) -> u64 {
    quiet_recorder_panics();
    let calls = Arc::new(AtomicU64::new(0));
    let recorder = Hostile {
        mode,
        calls: calls.clone(),
    };
    let dingtalk = support::dingtalk().await;
    let addr = app_under(&recorder, &dingtalk).await;
    let http = reqwest::Client::new();
    for userid in ["staff01", "boss01"] {
        let code = dingtalk.issue_code(userid);
        for attempt in 0..2 {
            let response = http
                .get(format!("http://{addr}/me"))
                .header("x-dingtalk-code", &code)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "{userid}, attempt {attempt}");
            if let Some(set) = response.headers().get("set-cookie") {
                let cookie = set.to_str().unwrap().split(';').next().unwrap().to_owned();
                let again = http
                    .get(format!("http://{addr}/me"))
                    .header("cookie", cookie)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(again.status(), 200, "{userid}'s cookie");
            }
        }
    }
    let login = http
        .post(format!("http://{addr}{LOGIN}"))
        .json(&json!({ "code": dingtalk.issue_code("super01") }))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200, "token login");
    let token = login.json::<serde_json::Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let response = http
        .get(format!("http://{addr}/me"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "bearer token");
    let anonymous = http.get(format!("http://{addr}/maybe")).send().await.unwrap();
    assert_eq!(anonymous.status(), 200, "passed through");
    assert_eq!(dingtalk.userinfo_calls(), 3);
    calls.load(Ordering::SeqCst)
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

/// The hostile recorder's own panics are expected: not printed (with their backtraces) by the
/// panic hook; any other panic is, as usual.
fn quiet_recorder_panics() {
    static QUIET: std::sync::Once = std::sync::Once::new();
    QUIET.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if info.payload().downcast_ref::<&str>() != Some(&"a recorder that panics") {
                default(info);
            }
        }));
    });
}
