//! Hostile recorders: registrations that panic, handles that panic on every use, or every call
//! sleeping; each counts its calls.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};

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

/// The hostile recorder's own panics are expected: not printed (with their backtraces) by the
/// panic hook; any other panic is, as usual.
pub fn quiet_recorder_panics() {
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
