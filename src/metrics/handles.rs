//! The handles every recording goes through. With the feature: a `::metrics` handle resolved
//! once, behind a fuse that the recorder's first panic blows; without it: empty types whose
//! methods do nothing, so that callers need no `cfg`.

#[cfg(not(feature = "metrics"))]
pub(crate) use self::off::{Counter, Fuse, Gauge, Histogram};
#[cfg(feature = "metrics")]
pub(crate) use self::on::{Counter, Fuse, Gauge, Histogram};

/// What a described metric is, for its help text.
#[derive(Clone, Copy)]
pub(crate) enum Kind {
    Counter,
    Gauge,
    /// A histogram of durations, in seconds.
    Seconds,
}

#[cfg(feature = "metrics")]
mod on {
    use std::panic::{AssertUnwindSafe, catch_unwind};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use ::metrics::{Key, Label, Level, Metadata, Recorder, Unit};

    use super::Kind;

    static METADATA: Metadata<'static> =
        Metadata::new("tower_dingtalk_auth", Level::INFO, Some(module_path!()));

    /// Shared by the handles of one client, layer or store; blown by the recorder's first panic,
    /// after which they record nothing. Checking it is one relaxed load; `catch_unwind` costs
    /// nothing while nothing panics.
    #[derive(Clone, Default)]
    pub(crate) struct Fuse(Arc<AtomicBool>);

    impl Fuse {
        pub(crate) fn new() -> Self {
            Self::default()
        }

        #[inline]
        fn run(&self, record: impl FnOnce()) {
            if self.0.load(Ordering::Relaxed) {
                return;
            }
            if catch_unwind(AssertUnwindSafe(record)).is_err() {
                self.blow();
            }
        }

        #[cold]
        fn blow(&self) {
            if !self.0.swap(true, Ordering::Relaxed) {
                tracing::error!(
                    "the metrics recorder panicked: tower-dingtalk-auth records no more metrics \
                     for this client, layer or store; logins go on"
                );
            }
        }

        /// A handle from the recorder installed now (the thread's local one, else the global
        /// one), or one that records nothing if the recorder panics.
        fn register<T>(&self, noop: T, register: impl FnOnce(&dyn Recorder) -> T) -> T {
            let mut handle = None;
            self.run(|| handle = Some(::metrics::with_recorder(register)));
            handle.unwrap_or(noop)
        }

        pub(crate) fn counter(
            &self,
            name: &'static str,
            labels: &[(&'static str, &'static str)],
        ) -> Counter {
            let key = key(name, labels);
            let handle = self.register(::metrics::Counter::noop(), |recorder| {
                recorder.register_counter(&key, &METADATA)
            });
            Counter(handle, self.clone())
        }

        pub(crate) fn gauge(&self, name: &'static str) -> Gauge {
            let key = key(name, &[]);
            let handle = self.register(::metrics::Gauge::noop(), |recorder| {
                recorder.register_gauge(&key, &METADATA)
            });
            Gauge(handle, self.clone())
        }

        pub(crate) fn histogram(&self, name: &'static str) -> Histogram {
            let key = key(name, &[]);
            let handle = self.register(::metrics::Histogram::noop(), |recorder| {
                recorder.register_histogram(&key, &METADATA)
            });
            Histogram(handle, self.clone())
        }

        /// The help text exporters show beside `name`.
        pub(crate) fn describe(&self, name: &'static str, kind: Kind, help: &'static str) {
            self.run(|| {
                ::metrics::with_recorder(|recorder| match kind {
                    Kind::Counter => recorder.describe_counter(name.into(), None, help.into()),
                    Kind::Gauge => recorder.describe_gauge(name.into(), None, help.into()),
                    Kind::Seconds => {
                        recorder.describe_histogram(name.into(), Some(Unit::Seconds), help.into())
                    }
                });
            });
        }
    }

    /// Static names and values: no label allocates a string.
    fn key(name: &'static str, labels: &[(&'static str, &'static str)]) -> Key {
        let labels: Vec<Label> = labels
            .iter()
            .map(|&(label, value)| Label::from_static_parts(label, value))
            .collect();
        Key::from_parts(name, labels)
    }

    #[derive(Clone)]
    pub(crate) struct Counter(::metrics::Counter, Fuse);

    impl Counter {
        #[inline]
        pub(crate) fn increment(&self) {
            self.1.run(|| self.0.increment(1));
        }
    }

    #[derive(Clone)]
    pub(crate) struct Gauge(::metrics::Gauge, Fuse);

    impl Gauge {
        pub(crate) fn increment(&self) {
            self.1.run(|| self.0.increment(1.0));
        }

        pub(crate) fn decrement(&self) {
            self.1.run(|| self.0.decrement(1.0));
        }

        #[cfg(feature = "redis")]
        pub(crate) fn set(&self, value: f64) {
            self.1.run(|| self.0.set(value));
        }
    }

    #[derive(Clone)]
    pub(crate) struct Histogram(::metrics::Histogram, Fuse);

    impl Histogram {
        pub(crate) fn record(&self, elapsed: Duration) {
            self.1.run(|| self.0.record(elapsed.as_secs_f64()));
        }
    }
}

#[cfg(not(feature = "metrics"))]
mod off {
    use std::time::Duration;

    use super::Kind;

    #[derive(Clone)]
    pub(crate) struct Fuse;

    impl Fuse {
        pub(crate) fn new() -> Self {
            Self
        }

        pub(crate) fn counter(
            &self,
            _name: &'static str,
            _labels: &[(&'static str, &'static str)],
        ) -> Counter {
            Counter
        }

        pub(crate) fn gauge(&self, _name: &'static str) -> Gauge {
            Gauge
        }

        pub(crate) fn histogram(&self, _name: &'static str) -> Histogram {
            Histogram
        }

        pub(crate) fn describe(&self, _name: &'static str, _kind: Kind, _help: &'static str) {}
    }

    #[derive(Clone)]
    pub(crate) struct Counter;

    impl Counter {
        #[inline(always)]
        pub(crate) fn increment(&self) {}
    }

    #[derive(Clone)]
    pub(crate) struct Gauge;

    impl Gauge {
        #[inline(always)]
        pub(crate) fn increment(&self) {}

        #[inline(always)]
        pub(crate) fn decrement(&self) {}

        #[cfg(feature = "redis")]
        #[inline(always)]
        pub(crate) fn set(&self, _value: f64) {}
    }

    #[derive(Clone)]
    pub(crate) struct Histogram;

    impl Histogram {
        #[inline(always)]
        pub(crate) fn record(&self, _elapsed: Duration) {}
    }
}
