//! The client's settings for its limits: the rate of calls, how long a new exchange may queue,
//! the calls in flight, and each client's share of the queue.

use std::time::Duration;

use super::builder::DingTalkClientBuilder;

impl DingTalkClientBuilder {
    /// The most calls to getuserinfo per second, shared by every clone of the client and, with a
    /// [shared store](Self::shared_store), by every replica (and the same for the token
    /// endpoint): set DingTalk's limit, not a share of it. DingTalk allows 20 per app and API and
    /// throttles beyond. Default: 20.
    pub fn rate_limit(mut self, per_second: u32) -> Self {
        self.rate_limit = Some(per_second);
        self
    }

    /// How long a new exchange may wait for its turn under the rate limit (and the in-flight cap);
    /// past it the request gets 503 `rate_limited`. Default: 1 s.
    pub fn queue_timeout(mut self, timeout: Duration) -> Self {
        self.queue_timeout = Some(timeout);
        self
    }

    /// The most calls to getuserinfo in flight at once. Default: 64.
    pub fn max_in_flight(mut self, max: usize) -> Self {
        self.max_in_flight = Some(max);
        self
    }

    /// The most new exchanges of one client (see
    /// [`client_key`](crate::DingTalkAuthLayerBuilder::client_key)) waiting for their turn at
    /// once; past it the request gets 429 `too_many_attempts` at once, with no call to DingTalk.
    /// Waiters are served fairly between clients whatever this is. Default: 8.
    pub fn max_pending_per_client(mut self, max: usize) -> Self {
        self.max_pending_per_client = Some(max);
        self
    }
}
