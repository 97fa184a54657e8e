//! The queue for the right to send a new exchange: served fairly between clients, so that one
//! client's burst of junk codes cannot push another client's login past the queue timeout.
//!
//! Start-time fair queueing: each waiter gets a start tag, `max(virtual time, its client's last
//! finish tag)`, and the waiter with the smallest tag goes next. A client that sends twelve codes
//! at once gets tags 0..12; a client arriving meanwhile gets the tag of the waiter being served, so
//! it goes right after it. A client may have at most `max_pending` waiters; past that it is refused
//! at once, without waiting and without a call to DingTalk; requests whose client is unknown share
//! one place in the rotation and no cap (they may be many users).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::oneshot;
use tokio::time::Instant;

/// Who a request comes from, as [`client_key`](crate::DingTalkAuthLayerBuilder::client_key) says;
/// requests nobody can tell apart share [`CallerKey::unknown`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct CallerKey(Option<Arc<str>>);

impl CallerKey {
    /// A client the key function named: any string, the empty one included, is one client.
    pub(crate) fn new(key: impl Into<Arc<str>>) -> Self {
        Self(Some(key.into()))
    }

    /// Requests whose client is not known (the key function said `None`).
    pub(crate) fn unknown() -> Self {
        Self(None)
    }

    /// The key function's name for the client, if it named one.
    #[cfg(feature = "redis")]
    pub(crate) fn name(&self) -> Option<&str> {
        self.0.as_deref()
    }

    fn is_unknown(&self) -> bool {
        self.0.is_none()
    }
}

/// Why a caller did not get its turn.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The client has too many waiters already.
    TooManyPending,
    /// The turn did not come before the caller's deadline.
    TimedOut,
}

pub(crate) struct FairQueue {
    state: Mutex<State>,
    max_pending: usize,
}

#[derive(Default)]
struct State {
    /// Whether a caller holds the turn now.
    taken: bool,
    /// The start tag of the caller holding the turn (or that held it last).
    virtual_time: u64,
    /// Waiters by start tag, then arrival.
    waiters: BTreeMap<(u64, u64), oneshot::Sender<()>>,
    /// Clients with a caller in the queue or holding the turn.
    clients: HashMap<CallerKey, Client>,
    arrivals: u64,
}

#[derive(Default)]
struct Client {
    /// Callers of this client waiting or holding the turn.
    pending: usize,
    /// The finish tag of this client's last caller.
    finish: u64,
}

/// A caller in the queue; if it goes (timed out, or its future dropped) it leaves the queue, and
/// a turn handed to it meanwhile goes to the next waiter.
struct Waiting<'a> {
    queue: &'a FairQueue,
    caller: &'a CallerKey,
    tag: (u64, u64),
    receiver: oneshot::Receiver<()>,
    served: bool,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if self.served {
            return;
        }
        self.receiver.close();
        let handed = self.receiver.try_recv().is_ok();
        let mut state = self.queue.lock();
        state.leave(self.caller);
        if handed {
            state.hand_over();
        } else {
            state.waiters.remove(&self.tag);
        }
    }
}

/// The turn: held while waiting for the rate limiter, handed to the next waiter when dropped.
pub(crate) struct Turn<'a> {
    queue: &'a FairQueue,
    caller: CallerKey,
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let mut state = self.queue.lock();
        state.leave(&self.caller);
        state.hand_over();
    }
}

impl FairQueue {
    pub(crate) fn new(max_pending: usize) -> Self {
        Self {
            state: Mutex::new(State::default()),
            max_pending,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits for the turn until `give_up`.
    pub(crate) async fn turn(
        &self,
        caller: &CallerKey,
        give_up: Instant,
    ) -> Result<Turn<'_>, Refused> {
        let (tag, receiver) = {
            let mut state = self.lock();
            let virtual_time = state.virtual_time;
            let client = state.clients.entry(caller.clone()).or_default();
            // Requests nobody can tell apart are one client for fairness, but not capped: they
            // may be many users.
            if client.pending >= self.max_pending && !caller.is_unknown() {
                return Err(Refused::TooManyPending);
            }
            client.pending += 1;
            let start = client.finish.max(virtual_time);
            client.finish = start + 1;
            if !state.taken && state.waiters.is_empty() {
                state.taken = true;
                state.virtual_time = start;
                return Ok(self.holding(caller));
            }
            let (sender, receiver) = oneshot::channel();
            state.arrivals += 1;
            let tag = (start, state.arrivals);
            state.waiters.insert(tag, sender);
            (tag, receiver)
        };
        let mut waiting = Waiting {
            queue: self,
            caller,
            tag,
            receiver,
            served: false,
        };
        match tokio::time::timeout_at(give_up, &mut waiting.receiver).await {
            Ok(Ok(())) => {
                waiting.served = true;
                Ok(self.holding(caller))
            }
            // Dropping `waiting` cleans up, and passes on a turn that arrived as we gave up.
            Ok(Err(_)) | Err(_) => Err(Refused::TimedOut),
        }
    }

    fn holding(&self, caller: &CallerKey) -> Turn<'_> {
        Turn {
            queue: self,
            caller: caller.clone(),
        }
    }

    /// How many callers wait or hold the turn, and for how many clients: for tests.
    #[cfg(test)]
    fn load(&self) -> (usize, usize) {
        let state = self.lock();
        (state.waiters.len(), state.clients.len())
    }
}

impl State {
    /// A caller of `caller` is done with the queue (turn over, refused or gone).
    fn leave(&mut self, caller: &CallerKey) {
        if let Some(client) = self.clients.get_mut(caller) {
            client.pending = client.pending.saturating_sub(1);
            if client.pending == 0 {
                // An idle client keeps no credit nor debt: memory stays bounded by the waiters.
                self.clients.remove(caller);
            }
        }
    }

    /// Gives the turn to the waiter with the smallest start tag, skipping those that gave up.
    fn hand_over(&mut self) {
        while let Some(((start, _), sender)) = self.waiters.pop_first() {
            if sender.send(()).is_ok() {
                self.taken = true;
                self.virtual_time = start;
                return;
            }
        }
        self.taken = false;
    }
}

impl std::fmt::Debug for FairQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FairQueue")
            .field("max_pending", &self.max_pending)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn key(name: &str) -> CallerKey {
        CallerKey::new(name)
    }

    #[tokio::test(start_paused = true)]
    async fn a_newcomer_goes_right_after_the_turn_being_served() {
        let queue = Arc::new(FairQueue::new(100));
        let far = Instant::now() + Duration::from_secs(60);
        let first = queue.turn(&key("junk"), far).await.unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for i in 0..5 {
            let (queue, order) = (queue.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let _turn = queue.turn(&key("junk"), far).await.unwrap();
                order.lock().unwrap().push(format!("junk{i}"));
                tokio::time::sleep(Duration::from_millis(10)).await;
            }));
            tokio::task::yield_now().await;
        }
        let (queue2, order2) = (queue.clone(), order.clone());
        tasks.push(tokio::spawn(async move {
            let _turn = queue2.turn(&key("real"), far).await.unwrap();
            order2.lock().unwrap().push("real".to_owned());
        }));
        tokio::task::yield_now().await;
        drop(first);
        for task in tasks {
            task.await.unwrap();
        }
        let order = order.lock().unwrap().clone();
        assert_eq!(order[..2], ["real".to_owned(), "junk0".to_owned()]);
        assert_eq!(queue.load(), (0, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn past_its_pending_share_a_client_is_refused_at_once() {
        let queue = FairQueue::new(2);
        let far = Instant::now() + Duration::from_secs(60);
        let _held = queue.turn(&key("a"), far).await.unwrap();
        let soon = Instant::now() + Duration::from_millis(10);
        let a = key("a");
        let waiting = queue.turn(&a, soon);
        let refused = queue.turn(&a, soon);
        let (waiting, refused) = tokio::join!(waiting, refused);
        assert_eq!(waiting.err(), Some(Refused::TimedOut));
        assert_eq!(refused.err(), Some(Refused::TooManyPending));
        // Another client still queues.
        assert_eq!(
            queue.turn(&key("b"), soon).await.err(),
            Some(Refused::TimedOut)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_turn_handed_to_a_waiter_that_gave_up_is_passed_on() {
        let queue = Arc::new(FairQueue::new(10));
        let far = Instant::now() + Duration::from_secs(60);
        let held = queue.turn(&key("a"), far).await.unwrap();
        let soon = Instant::now() + Duration::from_millis(5);
        let b = key("b");
        let quitter = queue.turn(&b, soon);
        assert_eq!(quitter.await.err(), Some(Refused::TimedOut));
        drop(held);
        // The turn is free again.
        let next = queue.turn(&key("c"), soon + Duration::from_millis(1)).await;
        assert!(next.is_ok());
    }
}
