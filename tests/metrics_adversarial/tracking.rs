//! A recorder that keeps gauges' current and lowest values, counts its calls, and can be told to
//! panic on histograms only, on gauges only, or on every call after the first N.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};

pub const PANIC: &str = "a recorder that panics";

#[derive(Clone, Copy, PartialEq)]
pub enum Mode {
    Calm,
    PanicOnHistograms,
    PanicOnGauges,
    PanicAfter(u64),
}

/// A gauge's value now and the lowest it ever was.
#[derive(Clone, Copy, Default, Debug)]
pub struct Level {
    pub now: f64,
    pub lowest: f64,
}

#[derive(Clone)]
pub struct Tracking {
    mode: Mode,
    calls: Arc<AtomicU64>,
    gauges: Arc<Mutex<HashMap<String, Level>>>,
}

impl Tracking {
    pub fn new(mode: Mode) -> Self {
        quiet_recorder_panics();
        Self {
            mode,
            calls: Arc::default(),
            gauges: Arc::default(),
        }
    }

    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }

    pub fn gauge(&self, name: &str) -> Level {
        self.gauges
            .lock()
            .unwrap()
            .get(name)
            .copied()
            .unwrap_or_default()
    }

    fn called(&self) {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if let Mode::PanicAfter(limit) = self.mode
            && n > limit
        {
            panic!("{}", PANIC);
        }
    }
}

struct Handle {
    recorder: Tracking,
    name: String,
}

impl CounterFn for Handle {
    fn increment(&self, _: u64) {
        self.recorder.called();
    }
    fn absolute(&self, _: u64) {
        self.recorder.called();
    }
}

impl Handle {
    fn gauge(&self, change: impl FnOnce(f64) -> f64) {
        self.recorder.called();
        if self.recorder.mode == Mode::PanicOnGauges {
            panic!("{}", PANIC);
        }
        let mut gauges = self.recorder.gauges.lock().unwrap();
        let level = gauges.entry(self.name.clone()).or_default();
        level.now = change(level.now);
        level.lowest = level.lowest.min(level.now);
    }
}

impl GaugeFn for Handle {
    fn increment(&self, by: f64) {
        self.gauge(|now| now + by);
    }
    fn decrement(&self, by: f64) {
        self.gauge(|now| now - by);
    }
    fn set(&self, value: f64) {
        self.gauge(|_| value);
    }
}

impl HistogramFn for Handle {
    fn record(&self, _: f64) {
        self.recorder.called();
        if self.recorder.mode == Mode::PanicOnHistograms {
            panic!("{}", PANIC);
        }
    }
}

impl Recorder for Tracking {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {
        self.called();
    }
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {
        self.called();
    }
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {
        self.called();
    }
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        self.called();
        Counter::from_arc(self.handle(key))
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        self.called();
        Gauge::from_arc(self.handle(key))
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        self.called();
        Histogram::from_arc(self.handle(key))
    }
}

impl Tracking {
    fn handle(&self, key: &Key) -> Arc<Handle> {
        Arc::new(Handle {
            recorder: self.clone(),
            name: key.name().to_owned(),
        })
    }
}

/// The recorder's own panics are expected: not printed by the panic hook; any other panic is.
fn quiet_recorder_panics() {
    static QUIET: std::sync::Once = std::sync::Once::new();
    QUIET.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let message = info
                .payload()
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| info.payload().downcast_ref::<&str>().copied());
            if message != Some(PANIC) {
                default(info);
            }
        }));
    });
}
