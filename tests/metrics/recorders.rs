//! Hostile recorders (registrations that panic, handles that panic on every use, or every call
//! sleeping; each counts its calls), and the logins that must still succeed under them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};
use serde_json::json;

use super::{LOGIN, app_under, support};

/// A recorder whose registrations panic, or whose handles panic on every use; or whose every
/// call sleeps. It counts its calls.
pub struct Hostile {
    pub mode: Mode,
    pub calls: Arc<AtomicU64>,
}

#[derive(Clone, Copy, PartialEq)]
pub enum Mode {
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
pub async fn logins_under(mode: Mode) -> u64 {
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
    let anonymous = http
        .get(format!("http://{addr}/maybe"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 200, "passed through");
    assert_eq!(dingtalk.userinfo_calls(), 3);
    calls.load(Ordering::SeqCst)
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
