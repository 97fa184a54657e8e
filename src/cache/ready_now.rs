//! [`ready_now`]: a moka lookup without waiting, for hot paths that cannot box a future.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

/// A moka lookup polled once: `None` when it would have to wait. moka's lookups are async only to
/// take its housekeeping lock now and then, and are almost always ready at once; a lookup dropped
/// here is cancel-safe.
pub(crate) fn ready_now<T>(lookup: impl Future<Output = T>) -> Option<T> {
    let lookup = pin!(lookup);
    match lookup.poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(value) => Some(value),
        Poll::Pending => None,
    }
}
