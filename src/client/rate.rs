//! The spacing of calls to DingTalk: the rate with its headroom, a local limiter at a share of
//! it, and the answer to a caller who cannot be given a turn.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter, clock::Clock};
use tokio::time::Instant;

use crate::error::{AuthError, AuthErrorKind};

/// Calls are spaced 5% wider than the configured rate, so that network jitter cannot push
/// `rate + 1` calls into one of DingTalk's one-second windows.
const JITTER_HEADROOM: f64 = 1.05;

/// The spacing of calls for one replica of `share` sending at most `per_second` together.
pub(crate) fn period(per_second: NonZeroU32, share: u32) -> Duration {
    let per_replica = f64::from(per_second.get()) / f64::from(share.max(1));
    Duration::from_secs(1).div_f64(per_replica / JITTER_HEADROOM)
}

/// A local limiter sending one call per `period`, never a burst.
pub(crate) fn limiter(period: Duration) -> DefaultDirectRateLimiter {
    // A period of zero is impossible: the rate is finite and the share at least 1.
    let quota = Quota::with_period(period.max(Duration::from_nanos(1))).expect("a positive period");
    RateLimiter::direct(quota)
}

/// Waits for `limiter`'s next call, unless that is later than `give_up`.
pub(crate) async fn wait_for(
    limiter: &DefaultDirectRateLimiter,
    give_up: Instant,
) -> Result<(), AuthError> {
    loop {
        match limiter.check() {
            Ok(()) => return Ok(()),
            Err(not_until) => {
                let wait = not_until.wait_time_from(limiter.clock().now());
                if Instant::now() + wait > give_up {
                    return Err(overloaded(Duration::from_secs(1)));
                }
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// 503 `rate_limited`: come back after `retry_after`.
pub(crate) fn overloaded(retry_after: Duration) -> AuthError {
    AuthError::new(
        AuthErrorKind::Overloaded,
        "too many new logins at once; try again shortly",
    )
    .with_retry_after(retry_after)
}
