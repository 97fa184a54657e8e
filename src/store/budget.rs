//! DingTalk's budget shared by replicas: one ask of it per call, through the store. The budget is
//! GCRA on the store's own clock (one script, atomic: see `redis/budget.rs`), so that the
//! replicas together send no more than DingTalk's rate, whatever their number; each ask also
//! records the replica as live, and the answer says how many replicas asked lately, which is what
//! a replica divides the rate by while the store cannot answer.
//!
//! The budget's keys are named by HMAC under the replicas' secret: the store shows neither the
//! app key nor a client's address. A budget that fails (the store down, slow, or its keys
//! unusable) is logged once, asked again at most once a second, and the caller goes by its share.

use std::time::Duration;

use super::backend::{BudgetKeys, RawBudget, RawBudgetAsk};
use super::protocol::SharedStore;

/// How long a replica counts as live after its last ask of a budget.
pub(crate) const LIVE_WINDOW: Duration = Duration::from_secs(5);
/// How long after its slot a refused client's promise is kept for it.
pub(crate) const PROMISE_KEPT: Duration = Duration::from_secs(10);
/// While refused clients are owed slots, how far ahead a new caller may still be given one, so
/// that the slots of promised clients who never come back are not lost: short enough that the
/// clients who do come back are rarely pushed past the horizon (a simulation of the morning rush
/// refused none more than 4 times), long enough to keep DingTalk busy if none comes back.
const FILL_HORIZON: Duration = Duration::from_millis(150);
/// One ask of a shared budget.
#[derive(Debug)]
pub(crate) struct BudgetAsk<'a> {
    /// The API whose budget it is (`getuserinfo`, `token`): part of the budget's name.
    pub(crate) api: &'static str,
    /// The spacing of calls, headroom included.
    pub(crate) period: Duration,
    /// How far ahead a call may be given a slot to wait for.
    pub(crate) horizon: Duration,
    /// This replica's random id.
    pub(crate) replica: &'a str,
    /// Where refused callers are promised a slot: the calling client (`None` for a client nobody
    /// can tell apart). `None` for a budget without promises.
    pub(crate) client: Option<Option<&'a str>>,
    /// A fresh id for the promise made if the ask is refused.
    pub(crate) promise: &'a str,
    /// How many promises the calling client may hold at once (0: no cap).
    pub(crate) max_promises: u32,
    /// How far ahead this replica last saw the budget booked.
    pub(crate) booked: Duration,
    /// Whether this replica saw a slot of the budget recently enough that its key must be there.
    pub(crate) in_use: bool,
}

/// What one ask came to.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Budget {
    /// Send after `wait`; the budget is booked `ahead` from now.
    Send {
        wait: Duration,
        replicas: u32,
        ahead: Duration,
    },
    /// Refused; a slot is promised to the client `retry_after` from now (where the budget makes
    /// promises); the budget is booked `ahead` from now.
    Refused {
        retry_after: Duration,
        replicas: u32,
        ahead: Duration,
    },
    /// The store cannot say now: the replica goes by its share of the rate. `replicas`, when the
    /// store answered with them.
    Local { replicas: Option<u32> },
}

impl SharedStore {
    /// Asks the budget of `ask.api` for one call of the app `app_key`: skipped while the store is
    /// down, within the store's timeout.
    pub(crate) async fn budget(&self, app_key: &str, ask: &BudgetAsk<'_>) -> Budget {
        let inner = &self.inner;
        if !inner.health.is_up() || !inner.budget_health.may_ask() {
            return Budget::Local { replicas: None };
        }
        let secret = &inner.secret;
        let app = app_key.as_bytes();
        let api = ask.api.as_bytes();
        // One app's keys share a hash tag: on a Redis Cluster the script's keys are on one node.
        let tag = secret.label(&[b"tower-dingtalk-auth/replicas/v1", app]);
        let budget = secret.label(&[b"tower-dingtalk-auth/budget/v1", app, api]);
        let keys = BudgetKeys {
            budget: format!("budget:{{{tag}}}:{budget}"),
            mirror: format!("budget-booked:{{{tag}}}:{budget}"),
            replicas: format!("budget-replicas:{{{tag}}}"),
            owed: ask.client.map(|client| {
                let (kind, name): (&[u8], _) = match client {
                    Some(name) => (b"client", name),
                    None => (b"unknown", ""),
                };
                let label: [&[u8]; 5] = [
                    b"tower-dingtalk-auth/owed/v1",
                    app,
                    api,
                    kind,
                    name.as_bytes(),
                ];
                format!("budget-owed:{{{tag}}}:{}", secret.label(&label))
            }),
        };
        let raw = RawBudgetAsk {
            period_us: micros(ask.period),
            horizon_us: micros(ask.horizon),
            replica: ask.replica,
            live_us: micros(LIVE_WINDOW),
            promise: ask.promise,
            late_us: micros(PROMISE_KEPT),
            fill_us: micros(FILL_HORIZON.min(ask.horizon)),
            max_promises: u64::from(ask.max_promises),
            booked_us: micros(ask.booked),
            in_use: ask.in_use,
        };
        let timeout = inner.settings.timeout;
        let answer = tokio::time::timeout(timeout, inner.backend.budget(&keys, &raw)).await;
        let health = &inner.budget_health;
        match answer {
            Ok(Ok((verdict, replicas, ahead))) => {
                let replicas = replicas.max(1);
                let ahead = Duration::from_micros(ahead);
                match verdict {
                    RawBudget::Send(wait) => {
                        health.worked();
                        Budget::Send {
                            wait: Duration::from_micros(wait),
                            replicas,
                            ahead,
                        }
                    }
                    RawBudget::Refused(retry) => {
                        health.worked();
                        Budget::Refused {
                            retry_after: Duration::from_micros(retry),
                            replicas,
                            ahead,
                        }
                    }
                    RawBudget::Broken => {
                        let why = "a key of the budget holds another type of value";
                        health.failed(&inner.describe, &why);
                        Budget::Local {
                            replicas: Some(replicas),
                        }
                    }
                }
            }
            Ok(Err(error)) => {
                health.failed(&inner.describe, &error);
                Budget::Local { replicas: None }
            }
            Err(_elapsed) => {
                let why = format!("no answer within {} ms", timeout.as_millis());
                health.failed(&inner.describe, &why);
                Budget::Local { replicas: None }
            }
        }
    }
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}
