//! What a `DebuggingRecorder` was given, in maps a test can compare.

use std::collections::HashMap;

use metrics_util::MetricKind;
use metrics_util::debugging::{DebugValue, Snapshotter};

/// Counters by (name, labels), the last value of gauges, and the samples of histograms.
#[derive(Default)]
pub struct Seen {
    pub counters: HashMap<(String, Vec<(String, String)>), u64>,
    pub gauges: HashMap<String, f64>,
    pub histograms: HashMap<String, usize>,
    pub label_values: Vec<String>,
}

pub fn seen(snapshotter: &Snapshotter) -> Seen {
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
    pub fn count(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
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
    pub fn non_zero(&self, name: &str) -> HashMap<String, u64> {
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

pub fn counts(pairs: &[(&str, u64)]) -> HashMap<String, u64> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}
