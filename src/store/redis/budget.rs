//! The shared DingTalk budget on Redis: GCRA and the promises to refused clients in one Lua
//! script, on Redis's own clock (`TIME`), so that the replicas' clocks never matter.

use std::sync::LazyLock;

use redis::{Script, Value};

use super::Inner;
use super::backend::boxed;
use crate::store::backend::{BackendError, BudgetKeys, RawBudget, RawBudgetAnswer, RawBudgetAsk};

/// One call from a budget. KEYS: the budget (a hash: `tat`, GCRA's theoretical arrival time, and
/// `promised`, the last slot promised to a refused client), the replicas seen lately (a sorted
/// set of ids by their last ask), a copy of `tat` (a string: a budget key deleted or evicted alone
/// starts again from it), and, for a budget that makes promises, the calling client's promises (a
/// sorted set of ids by slot). ARGV: the period, the horizon, this replica's id, how
/// long a replica counts as live, the id of a new promise, how long a promise is kept after its
/// slot, the fill horizon, the most promises a client may hold (0: no cap), how far ahead the
/// asking replica last saw the budget booked; times in microseconds.
///
/// A call is granted the slot at `tat` when it is within the horizon, and only if nobody is owed
/// a slot (the last promise is past), or the client holds a promise due now: refused callers are
/// served in the order they were refused, and a client that comes back when told finds its place.
/// While others are owed, a new caller still gets a slot within the fill horizon (a few slots): the
/// slots of promised clients that did not come back are used, not lost. A refused call is promised
/// the slot after the last promise; its client is told to come back then, unless it holds the most
/// promises a client may: then it is told its earliest, so that one client refused again and again
/// cannot push everyone else's slots back. A budget whose key was lost starts no earlier than where
/// the asking replica last saw it booked, and, when that replica says the key must be there (lost
/// while in use), past the horizon, so that calls already given slots are not doubled. ARGV 10:
/// `1` when the key must be there. Answers `{1, wait}` (send after `wait`), `{0, retry}` (come back after `retry`) or
/// `{-1, 0}` (a key holds another type: the budget cannot be used), then the number of replicas
/// seen lately and how far ahead the budget is booked after this ask (where a replica that finds
/// it gone starts its share). Every key expires once it says nothing any more.
static BUDGET: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local period, horizon = tonumber(ARGV[1]), tonumber(ARGV[2])
local live, late, fill = tonumber(ARGV[4]), tonumber(ARGV[6]), tonumber(ARGV[7])
local cap, booked, in_use = tonumber(ARGV[8]), tonumber(ARGV[9]), ARGV[10] == '1'
local broken = false
local function call(...)
  local answer = redis.pcall(...)
  if type(answer) == 'table' and answer.err then
    broken = true
    return false
  end
  return answer
end
local function us(n) return string.format('%.0f', n) end
local function expire(key, at)
  local ms = math.max(1, math.ceil((at - now + late) / 1000))
  local left = call('PTTL', key)
  if left and left < ms then call('PEXPIRE', key, ms) end
end
local replicas = 1
if call('ZADD', KEYS[2], us(now), ARGV[3]) then
  call('ZREMRANGEBYSCORE', KEYS[2], '-inf', us(now - live))
  call('PEXPIRE', KEYS[2], math.ceil(live / 1000))
  replicas = call('ZCARD', KEYS[2]) or 1
end
local state = call('HMGET', KEYS[1], 'tat', 'promised')
local mirror = call('GET', KEYS[3])
if broken or not state then return {-1, 0, replicas, 0} end
-- A budget key lost alone (deleted, evicted) starts again from its copy. Both lost (Redis
-- restarted empty), it starts where the asking replica last saw it booked, or, lost while in use,
-- past the horizon: the other replicas may hold slots up to that far ahead.
local tat = math.max(tonumber(state[1]) or 0, tonumber(mirror) or 0)
if tat == 0 then
  tat = now + booked
  if in_use then tat = math.max(tat, now + horizon + period) end
end
tat = math.max(tat, now)
-- Kept, so that the next ask, granted or refused, starts from it too.
if not tonumber(state[1]) then call('HSET', KEYS[1], 'tat', us(tat)) end
local promised = tonumber(state[2]) or 0
local owed = false
if KEYS[4] then
  call('ZREMRANGEBYSCORE', KEYS[4], '-inf', us(now - late))
  local due = call('ZRANGEBYSCORE', KEYS[4], '-inf', us(now + horizon), 'LIMIT', 0, 1)
  if broken or not due then return {-1, 0, replicas, 0} end
  owed = due[1] or false
end
local grant
if owed or not KEYS[4] or promised <= now then
  grant = tat - now <= horizon
else
  grant = tat - now <= fill
end
if grant then
  if owed then call('ZREM', KEYS[4], owed) end
  call('HSET', KEYS[1], 'tat', us(tat + period))
  call('SET', KEYS[3], us(tat + period))
  expire(KEYS[1], math.max(tat + period, promised))
  expire(KEYS[3], tat + period)
  if broken then return {-1, 0, replicas, 0} end
  return {1, tat - now, replicas, tat + period - now}
end
if not KEYS[4] then return {0, tat - horizon - now, replicas, tat - now} end
local slot
if owed then
  slot = tat
  call('ZADD', KEYS[4], us(slot), owed)
else
  if cap > 0 and (call('ZCARD', KEYS[4]) or 0) >= cap then
    local first = call('ZRANGE', KEYS[4], 0, 0, 'WITHSCORES')
    if broken or not first or not first[2] then return {-1, 0, replicas, 0} end
    return {0, math.max(tonumber(first[2]) - now, 0), replicas, math.max(tat - now, 0)}
  end
  slot = math.max(promised + period, tat)
  call('HSET', KEYS[1], 'promised', us(slot))
  call('ZADD', KEYS[4], us(slot), ARGV[5])
end
expire(KEYS[1], slot)
expire(KEYS[4], slot)
if broken then return {-1, 0, replicas, 0} end
return {0, slot - now, replicas, math.max(tat - now, 0)}",
    )
});

impl Inner {
    pub(super) async fn take_budget(
        &self,
        keys: &BudgetKeys,
        ask: &RawBudgetAsk<'_>,
    ) -> Result<RawBudgetAnswer, BackendError> {
        let mut invocation = BUDGET.prepare_invoke();
        invocation
            .key(format!("{}{}", self.key_prefix, keys.budget))
            .key(format!("{}{}", self.key_prefix, keys.replicas))
            .key(format!("{}{}", self.key_prefix, keys.mirror));
        if let Some(owed) = &keys.owed {
            invocation.key(format!("{}{owed}", self.key_prefix));
        }
        let answer: Value = invocation
            .arg(ask.period_us)
            .arg(ask.horizon_us)
            .arg(ask.replica)
            .arg(ask.live_us)
            .arg(ask.promise)
            .arg(ask.late_us)
            .arg(ask.fill_us)
            .arg(ask.max_promises)
            .arg(ask.booked_us)
            .arg(u8::from(ask.in_use))
            .invoke_async(&mut self.connection())
            .await
            .map_err(boxed)?;
        read(answer).ok_or_else(|| -> BackendError {
            Box::new("the budget script answered something that is not {verdict, micros, replicas, ahead}")
        })
    }
}

/// The script's `{verdict, micros, replicas, ahead}`; `None` for anything else.
fn read(answer: Value) -> Option<RawBudgetAnswer> {
    let Value::Array(parts) = answer else {
        return None;
    };
    let [
        Value::Int(verdict),
        Value::Int(micros),
        Value::Int(replicas),
        Value::Int(ahead),
    ] = parts.as_slice()
    else {
        return None;
    };
    let micros = u64::try_from(*micros).ok()?;
    let replicas = u32::try_from(*replicas).ok()?;
    let ahead = u64::try_from(*ahead).ok()?;
    let verdict = match verdict {
        1 => RawBudget::Send(micros),
        0 => RawBudget::Refused(micros),
        -1 => RawBudget::Broken,
        _ => return None,
    };
    Some((verdict, replicas, ahead))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_three_integers_of_known_meaning_are_read() {
        let ints = |a, b, c, d| Value::Array([a, b, c, d].map(Value::Int).to_vec());
        assert_eq!(read(ints(1, 500, 4, 9)), Some((RawBudget::Send(500), 4, 9)));
        assert_eq!(read(ints(0, 9, 1, 3)), Some((RawBudget::Refused(9), 1, 3)));
        assert_eq!(read(ints(-1, 0, 2, 0)), Some((RawBudget::Broken, 2, 0)));
        assert_eq!(read(ints(2, 0, 2, 0)), None);
        assert_eq!(read(ints(1, -5, 2, 0)), None);
        assert_eq!(read(ints(1, 5, 2, -1)), None);
        let three = Value::Array([1, 5, 2].map(Value::Int).to_vec());
        assert_eq!(read(three), None);
        assert_eq!(read(Value::Int(1)), None);
        assert_eq!(read(Value::Array(vec![Value::Int(1)])), None);
        assert_eq!(read(Value::Nil), None);
    }
}
