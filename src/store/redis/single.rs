//! [`Single`]: one server's connection, replaced when it has gone silent. The redis crate's
//! manager reconnects by itself only when the socket reports an error; a connection whose peer
//! went silent (a blackholed network, a proxy or NAT that lost its state) reports none for many
//! minutes, and every call on it would time out until then.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, RedisError, RedisResult};

/// How long a connection may go without answering any command before it is replaced: long
/// enough that a Redis that is merely slow keeps its connection (commands it was sent still
/// reach it, answered late), short enough that a silent one is left within seconds.
fn silent_for(timeout: Duration) -> Duration {
    (timeout * 4).max(Duration::from_secs(1))
}

pub(super) struct Single {
    client: Client,
    config: ConnectionManagerConfig,
    timeout: Duration,
    current: Mutex<ConnectionManager>,
    epoch: Instant,
    /// Milliseconds since `epoch` (plus one) of the first command left unanswered since the last
    /// answer; 0 while the connection answers.
    stalled_since: AtomicU64,
}

impl Single {
    pub(super) fn new(
        client: Client,
        config: ConnectionManagerConfig,
        timeout: Duration,
    ) -> RedisResult<Self> {
        let current = ConnectionManager::new_lazy_with_config(client.clone(), config.clone())?;
        Ok(Self {
            client,
            config,
            timeout,
            current: Mutex::new(current),
            epoch: Instant::now(),
            stalled_since: AtomicU64::new(0),
        })
    }

    pub(super) fn manager(&self) -> ConnectionManager {
        self.current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn millis(&self, at: Instant) -> u64 {
        u64::try_from(at.duration_since(self.epoch).as_millis())
            .unwrap_or(u64::MAX - 1)
            .saturating_add(1)
    }

    /// A command sent at `sent` got no answer within the timeout: once nothing has been answered
    /// for [`silent_for`], the next commands get a fresh connection (the silent one is dropped
    /// with its last user).
    fn stalled(&self, sent: Instant) {
        let since = self.millis(sent);
        let first =
            match self
                .stalled_since
                .compare_exchange(0, since, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => since,
                Err(first) => first,
            };
        if self.millis(Instant::now()).saturating_sub(first)
            < u64::try_from(silent_for(self.timeout).as_millis()).unwrap_or(u64::MAX)
        {
            return;
        }
        if let Ok(fresh) =
            ConnectionManager::new_lazy_with_config(self.client.clone(), self.config.clone())
        {
            *self
                .current
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = fresh;
            self.stalled_since.store(0, Ordering::Release);
        }
    }

    /// `command`, watched: an answer (an error too, but for the manager's own timeout) says the
    /// connection lives; no answer within the timeout (the caller dropped it, or the manager's
    /// timeout) says it may not.
    pub(super) async fn watched<T>(
        &self,
        command: impl Future<Output = Result<T, RedisError>>,
    ) -> Result<T, RedisError> {
        let mut watch = Watch {
            single: self,
            sent: Instant::now(),
            answered: false,
        };
        let answer = command.await;
        watch.answered = !matches!(&answer, Err(error) if error.is_timeout());
        if watch.answered {
            self.stalled_since.store(0, Ordering::Release);
        }
        answer
    }
}

/// Dropped unanswered at least half a timeout after its command was sent (half: the caller's
/// timeout started a moment before the command did): a stall. A caller that gives up early (a
/// request cancelled) says nothing about the connection.
struct Watch<'a> {
    single: &'a Single,
    sent: Instant,
    answered: bool,
}

impl Drop for Watch<'_> {
    fn drop(&mut self) {
        if !self.answered && self.sent.elapsed() >= self.single.timeout / 2 {
            self.single.stalled(self.sent);
        }
    }
}
