//! [`RedisStoreError`]: why a Redis store could not be built, never quoting a password or the
//! secret.

use std::fmt;

use redis::RedisError;

use crate::store::digest::StoreSecret;

/// A [`RedisStore`](super::RedisStore) could not be built: a malformed URL, a missing or short
/// secret, a zero setting, TLS settings this build or this URL cannot honour, cluster nodes that
/// do not go together, one server's URL naming a node of a cluster with several masters (use
/// [`cluster_builder`](super::RedisStore::cluster_builder)), or Redis not answering (over TLS: a certificate that does not verify,
/// named in the message). Neither its message nor `Debug` holds a URL's password, a private key
/// or the secret.
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
    /// `rediss://...#insecure`: verification off, which is never offered.
    InsecureTls,
    /// A CA or client certificate for a plaintext URL.
    #[cfg(feature = "rustls")]
    CertificateWithoutTls,
    /// A CA or client certificate with no certificate in it: the setting named.
    #[cfg(feature = "rustls")]
    InvalidCertificate(&'static str),
    /// A CA, client certificate or key the TLS library cannot read.
    #[cfg(feature = "rustls")]
    UnusableCertificate,
    NoClusterNodes,
    InvalidClusterNodes,
    /// One server's URL names a node of a cluster with several masters.
    ClusterNode {
        address: String,
    },
    MissingSecret,
    SecretTooShort {
        len: usize,
    },
    ZeroSetting(&'static str),
    /// Where Redis is (without credentials), and whether over TLS.
    Unreachable {
        address: String,
        tls: bool,
    },
}

impl From<ErrorKind> for RedisStoreError {
    fn from(kind: ErrorKind) -> Self {
        Self { kind, source: None }
    }
}

impl RedisStoreError {
    /// Whether Redis did not answer (as opposed to a configuration mistake).
    pub fn is_unreachable(&self) -> bool {
        matches!(self.kind, ErrorKind::Unreachable { .. })
    }
}

impl fmt::Display for RedisStoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ErrorKind::InvalidUrl => f.write_str(
                "the Redis URL is not valid: redis://[:password@]host[:port][/db] or unix:///path",
            ),
            ErrorKind::TlsUnsupported => f.write_str(
                "rediss:// (Redis over TLS) needs tower-dingtalk-auth's feature `rustls` (a \
                 default feature), which this build does not have: enable it (it can sit next to \
                 `native-tls`, which then still serves DingTalk's HTTPS), or reach Redis over \
                 redis:// on a private network",
            ),
            ErrorKind::InsecureTls => f.write_str(
                "the Redis URL asks for TLS without certificate verification (#insecure), which \
                 is refused: give the CA that signs Redis's certificate instead \
                 (RedisStoreBuilder::tls_root_certificate)",
            ),
            #[cfg(feature = "rustls")]
            ErrorKind::CertificateWithoutTls => f.write_str(
                "TLS certificates were given to the Redis store, but its URL is plaintext \
                 redis://: use rediss:// (Redis's TLS port)",
            ),
            #[cfg(feature = "rustls")]
            ErrorKind::InvalidCertificate(setting) => write!(
                f,
                "the Redis store's `{setting}` holds no PEM certificate \
                 (-----BEGIN CERTIFICATE-----)"
            ),
            #[cfg(feature = "rustls")]
            ErrorKind::UnusableCertificate => f.write_str(
                "the Redis store's TLS certificates do not parse: the CA and the client \
                 certificate must be PEM certificates, the client key a PEM private key \
                 (PKCS#8, PKCS#1 or SEC1)",
            ),
            ErrorKind::NoClusterNodes => f.write_str(
                "the Redis Cluster store needs at least one node's URL: RedisStore::cluster_builder",
            ),
            ErrorKind::InvalidClusterNodes => f.write_str(
                "the Redis Cluster's node URLs must all be redis:// or all rediss:// \
                 (host:port, no unix sockets), with one password",
            ),
            ErrorKind::ClusterNode { address } => write!(
                f,
                "Redis at {address} is a node of a Redis Cluster with several masters, which \
                 would refuse the keys of the others' slots: build the store with \
                 RedisStore::cluster_builder"
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
            ErrorKind::Unreachable { address, tls: true } => match &self.source {
                Some(error) => write!(
                    f,
                    "Redis at {address} cannot be reached over TLS (a certificate that does not \
                     verify is refused, never bypassed; no plaintext is tried): {error}"
                ),
                None => write!(
                    f,
                    "Redis at {address} cannot be reached over TLS within the connect timeout \
                     (no plaintext is tried)"
                ),
            },
            ErrorKind::Unreachable { address, .. } => match &self.source {
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
