//! Criterion's medians of this run, read back from its estimates, for the summary tables.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Where criterion writes: `$CRITERION_HOME`, or `criterion/` in the target directory this bench
/// runs from (`target/release/deps/layer-…`).
fn criterion_home() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return home.into();
    }
    let exe = std::env::current_exe().expect("the bench's path");
    let target = exe
        .ancestors()
        .nth(3)
        .expect("target/<profile>/deps/<bench>");
    target.join("criterion")
}

/// The median of `group/id` if it was measured after `since`.
pub fn median(group: &str, id: &str, since: SystemTime) -> Option<Duration> {
    // Criterion keeps `/` inside an id as `_` in its directory names.
    let file = criterion_home()
        .join(group)
        .join(id.replace('/', "_"))
        .join(Path::new("new/estimates.json"));
    let fresh = std::fs::metadata(&file).ok()?.modified().ok()? >= since;
    let estimates: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).ok()?).ok()?;
    let nanos = estimates["median"]["point_estimate"].as_f64()?;
    fresh.then(|| Duration::from_secs_f64(nanos / 1e9))
}

/// Formats a time the way criterion does, to three significant figures.
pub fn show(time: Duration) -> String {
    let nanos = time.as_secs_f64() * 1e9;
    match nanos {
        n if n < 1e3 => format!("{n:.0} ns"),
        n if n < 1e6 => format!("{:.3} µs", n / 1e3),
        n => format!("{:.3} ms", n / 1e6),
    }
}
