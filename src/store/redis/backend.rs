//! The protocol's steps on Redis: each one Lua script (or one command), so that each is atomic.

use std::sync::LazyLock;
use std::time::Duration;

use redis::{RedisError, Script, Value};

use super::Inner;
use super::connection::Connection;
use crate::store::backend::{
    Backend, BackendError, BoxFuture, BudgetKeys, LogEntries, REVOCATION_PAGE, RawBudgetAnswer,
    RawBudgetAsk, RawClaim, RawFinish, RawValue,
};
use crate::store::digest::CodeDigest;

/// Returns the code's result if the store holds one (unless told to ignore it), else takes the
/// code's lock. KEYS: result, lock. ARGV: this attempt's token, the lock TTL in ms, `1` to ignore
/// the result. Answers the result with its remaining life in ms (an array), 1 (lock taken) or 0
/// (lock held by another attempt).
static CLAIM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"if ARGV[3] ~= '1' then
  local found = redis.call('GET', KEYS[1])
  if found then return {found, redis.call('PTTL', KEYS[1])} end
end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return 0",
    )
});

/// Writes the holder's result and releases its lock if it is still the holder's.
/// KEYS: result, lock. ARGV: token, mode (`overwrite`, `if_absent` or `none`), value, TTL in ms.
/// With `if_absent` the value is written only where no result is stored, and the stored result
/// is answered with its remaining life in ms.
static FINISH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"local existing = false
if ARGV[2] == 'overwrite' then
  redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4])
elseif ARGV[2] == 'if_absent' then
  local found = redis.call('GET', KEYS[1])
  if found then
    existing = {found, redis.call('PTTL', KEYS[1])}
  else
    redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4])
  end
end
if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
return existing",
    )
});

/// The code's result with its remaining life in ms, or nil. KEYS: result.
static PEEK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"local found = redis.call('GET', KEYS[1])
if found then return {found, redis.call('PTTL', KEYS[1])} end
return false",
    )
});

/// Extends the lock if it is still the holder's. KEYS: lock. ARGV: token, lock TTL in ms.
static RENEW: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0",
    )
});

/// Appends a revocation to the log. KEYS: the log's counter, the log. ARGV: the sealed record,
/// the log's TTL in ms. The log keeps its newest 100,000 entries; answers the new entry's
/// position.
static REVOKE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"local position = redis.call('INCR', KEYS[1])
redis.call('ZADD', KEYS[2], position, position .. ':' .. ARGV[1])
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -100001)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return position",
    )
});

impl Inner {
    /// A code's (or a user's) key of `kind`. The digest is the hash tag, so that a Redis Cluster
    /// keeps one code's result, lock and mark in one slot: each script touches one slot.
    fn key(&self, kind: &str, digest: &CodeDigest) -> String {
        format!("{}{kind}:{{{}}}", self.key_prefix, digest.as_str())
    }

    /// The revocation log and its counter, which one script writes together. On one server they
    /// keep the names they always had: renaming them would hide a month of revocations from
    /// upgraded replicas. A cluster needs them in one slot, so there they share a hash tag.
    fn revocation_keys(&self) -> (String, String) {
        let prefix = &self.key_prefix;
        match self.connection {
            Connection::Single(_) => (
                format!("{prefix}revocations"),
                format!("{prefix}revocations:position"),
            ),
            Connection::Cluster(_) => (
                format!("{prefix}{{revocations}}"),
                format!("{prefix}{{revocations}}:position"),
            ),
        }
    }
}

impl Backend for Inner {
    fn claim<'a>(
        &'a self,
        digest: &'a CodeDigest,
        token: &'a str,
        lock_ttl: Duration,
        ignore_result: bool,
    ) -> BoxFuture<'a, Result<RawClaim, BackendError>> {
        Box::pin(async move {
            let answer: Value = CLAIM
                .key(self.key("id", digest))
                .key(self.key("lock", digest))
                .arg(token)
                .arg(millis(lock_ttl))
                .arg(if ignore_result { "1" } else { "0" })
                .invoke_async(&mut self.connection())
                .await
                .map_err(boxed)?;
            match answer {
                Value::Int(1) => Ok(RawClaim::Acquired),
                Value::Int(0) => Ok(RawClaim::Held),
                found @ Value::Array(_) => raw_value(found).map(RawClaim::Found),
                other => Err(unexpected(&other)),
            }
        })
    }

    fn finish<'a>(
        &'a self,
        digest: &'a CodeDigest,
        token: &'a str,
        finish: RawFinish<'a>,
    ) -> BoxFuture<'a, Result<Option<RawValue>, BackendError>> {
        Box::pin(async move {
            let (mode, value, ttl): (_, &[u8], _) = match finish {
                RawFinish::Overwrite { value, ttl } => ("overwrite", value, ttl),
                RawFinish::IfAbsent { value, ttl } => ("if_absent", value, ttl),
                RawFinish::Nothing => ("none", b"", Duration::ZERO),
            };
            FINISH
                .key(self.key("id", digest))
                .key(self.key("lock", digest))
                .arg(token)
                .arg(mode)
                .arg(value)
                .arg(millis(ttl))
                .invoke_async(&mut self.connection())
                .await
                .map_err(boxed)
                .and_then(maybe_raw_value)
        })
    }

    fn renew<'a>(
        &'a self,
        digest: &'a CodeDigest,
        token: &'a str,
        lock_ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, BackendError>> {
        Box::pin(async move {
            let renewed: i64 = RENEW
                .key(self.key("lock", digest))
                .arg(token)
                .arg(millis(lock_ttl))
                .invoke_async(&mut self.connection())
                .await
                .map_err(boxed)?;
            Ok(renewed == 1)
        })
    }

    fn peek<'a>(
        &'a self,
        digest: &'a CodeDigest,
    ) -> BoxFuture<'a, Result<Option<RawValue>, BackendError>> {
        Box::pin(async move {
            PEEK.key(self.key("id", digest))
                .invoke_async(&mut self.connection())
                .await
                .map_err(boxed)
                .and_then(maybe_raw_value)
        })
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), BackendError>> {
        Box::pin(async move {
            let mut connection = self.connection();
            redis::cmd("PING")
                .query_async::<String>(&mut connection)
                .await
                .map_err(boxed)?;
            // A cluster that lost a slot range with no replica (`cluster_state:fail`) still
            // answers PING on its live masters, but refuses every key: ask for one.
            if let Connection::Cluster(_) = self.connection {
                redis::cmd("EXISTS")
                    .arg(self.revocation_keys().1)
                    .query_async::<i64>(&mut connection)
                    .await
                    .map_err(boxed)?;
            }
            Ok(())
        })
    }

    fn revoke<'a>(
        &'a self,
        record: &'a [u8],
        log_ttl: Duration,
    ) -> BoxFuture<'a, Result<u64, BackendError>> {
        Box::pin(async move {
            let (log, position) = self.revocation_keys();
            REVOKE
                .key(position)
                .key(log)
                .arg(record)
                .arg(millis(log_ttl))
                .invoke_async(&mut self.connection())
                .await
                .map_err(boxed)
        })
    }

    fn revocations_since(&self, after: u64) -> BoxFuture<'_, Result<LogEntries, BackendError>> {
        Box::pin(async move {
            let (log, _) = self.revocation_keys();
            let entries: Vec<(Vec<u8>, u64)> = redis::cmd("ZRANGEBYSCORE")
                .arg(log)
                .arg(format!("({after}"))
                .arg("+inf")
                .arg("WITHSCORES")
                .arg("LIMIT")
                .arg(0)
                .arg(REVOCATION_PAGE)
                .query_async(&mut self.connection())
                .await
                .map_err(boxed)?;
            // Each member is `<position>:<record>`, unique even when one record is revoked twice.
            Ok(entries
                .into_iter()
                .filter_map(|(member, position)| {
                    let colon = member.iter().position(|b| *b == b':')?;
                    Some((member[colon + 1..].to_vec(), position))
                })
                .collect())
        })
    }

    fn budget<'a>(
        &'a self,
        keys: &'a BudgetKeys,
        ask: &'a RawBudgetAsk<'a>,
    ) -> BoxFuture<'a, Result<RawBudgetAnswer, BackendError>> {
        // The script is in `budget.rs`.
        Box::pin(self.take_budget(keys, ask))
    }

    fn mark_session<'a>(
        &'a self,
        digest: &'a CodeDigest,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, BackendError>> {
        Box::pin(async move {
            let set: Option<String> = redis::cmd("SET")
                .arg(self.key("session", digest))
                .arg("1")
                .arg("NX")
                .arg("PX")
                .arg(millis(ttl))
                .query_async(&mut self.connection())
                .await
                .map_err(boxed)?;
            Ok(set.is_some())
        })
    }
}

/// A script's `{value, PTTL}`: the value, and its remaining life (none for a key without expiry).
fn raw_value(answer: Value) -> Result<RawValue, BackendError> {
    let Value::Array(mut parts) = answer else {
        return Err(unexpected(&answer));
    };
    match (parts.pop(), parts.pop(), parts.is_empty()) {
        (Some(Value::Int(ttl)), Some(Value::BulkString(bytes)), true) => Ok(RawValue {
            bytes,
            ttl: u64::try_from(ttl).ok().map(Duration::from_millis),
        }),
        _ => Err(Box::new(
            "a store script answered an array that is not {value, PTTL}",
        )),
    }
}

/// A script's `{value, PTTL}`, or nil (`false` in Lua) for nothing stored.
fn maybe_raw_value(answer: Value) -> Result<Option<RawValue>, BackendError> {
    match answer {
        Value::Nil => Ok(None),
        found => raw_value(found).map(Some),
    }
}

/// Redis takes whole milliseconds, and at least one.
fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

pub(super) fn boxed(error: RedisError) -> BackendError {
    Box::new(error)
}

fn unexpected(value: &Value) -> BackendError {
    let what = match value {
        Value::Nil => "nil",
        Value::Okay | Value::SimpleString(_) => "a status",
        Value::Array(_) => "an array",
        _ => "another type",
    };
    Box::new(format!(
        "a store script answered something unexpected: {what}"
    ))
}
