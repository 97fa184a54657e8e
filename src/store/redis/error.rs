//! [`RedisStoreError`]: why a Redis store could not be built, never quoting a password or the
//! secret.

use std::fmt;

use redis::RedisError;

use super::RedisStore;
use crate::store::digest::StoreSecret;

/// A [`RedisStore`] could not be built: a malformed URL, a missing or short secret, a zero
/// setting, or Redis not answering. Neither its message nor `Debug` holds the URL's password or
/// the secret.
#[derive(Debug)]
pub struct RedisStoreError {
    pub(super) kind: ErrorKind,
    pub(super) source: Option<RedisError>,
}

#[derive(Debug)]
pub(super) enum ErrorKind {
    InvalidUrl,
    /// `rediss://` in a build whose Redis client has no TLS.
    TlsUnsupported,
    MissingSecret,
    SecretTooShort {
        len: usize,
    },
    ZeroSetting(&'static str),
    Unreachable(String),
}

impl From<ErrorKind> for RedisStoreError {
    fn from(kind: ErrorKind) -> Self {
        Self { kind, source: None }
    }
}

impl RedisStoreError {
    pub(super) fn unreachable(store: &RedisStore, source: Option<RedisError>) -> Self {
        Self {
            kind: ErrorKind::Unreachable(store.inner.address.clone()),
            source,
        }
    }

    /// Whether Redis did not answer (as opposed to a configuration mistake).
    pub fn is_unreachable(&self) -> bool {
        matches!(self.kind, ErrorKind::Unreachable(_))
    }
}

impl fmt::Display for RedisStoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ErrorKind::InvalidUrl => f.write_str(
                "the Redis URL is not valid: redis://[:password@]host[:port][/db] or unix:///path",
            ),
            ErrorKind::TlsUnsupported => f.write_str(
                "rediss:// (Redis over TLS) is not supported by this build of tower-dingtalk-auth: \
                 its Redis client has no TLS. Reach Redis over redis:// on a private network, or \
                 through a TLS tunnel (stunnel, spiped) listening on localhost",
            ),
            ErrorKind::MissingSecret => f.write_str(
                "the Redis store needs the replicas' shared secret: RedisStoreBuilder::secret",
            ),
            ErrorKind::SecretTooShort { len } => write!(
                f,
                "the Redis store's secret needs at least {} bytes, this one has {len}",
                StoreSecret::MIN_LEN
            ),
            ErrorKind::ZeroSetting(name) => {
                write!(f, "the Redis store's `{name}` must be above zero")
            }
            ErrorKind::Unreachable(address) => match &self.source {
                Some(error) => write!(f, "Redis at {address} does not answer: {error}"),
                None => write!(
                    f,
                    "Redis at {address} does not answer within the connect timeout"
                ),
            },
        }
    }
}

impl std::error::Error for RedisStoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_ref().map(|error| error as _)
    }
}
