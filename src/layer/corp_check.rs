//! [`CorpCheck`]: a third-party app layer's own word on which corps may sign in. Identities are
//! shared by every layer on a client (and every replica on a store), but each layer has its own
//! directory: its verdict on a corp is asked for codes found in the cache, for sessions and for
//! tokens alike, and remembered per layer so that a hit costs no directory call.

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::future::Cache;

use crate::cache::ready_now;
use crate::corp::CorpDirectory;
use crate::error::{AuthError, AuthErrorKind};
use crate::extract::CodeExtractor;
use crate::log_gate::LogGate;

/// How many corps' verdicts a layer remembers.
const MAX_CORPS: u64 = 10_000;

/// How long a refusal is remembered: short, so that a corp that installs the app minutes after a
/// refused attempt is not kept out for a whole recheck interval.
const REFUSAL_TTL: Duration = Duration::from_secs(5);

/// A slow directory is logged at most once a minute.
const SLOW_LOG_PERIOD: Duration = Duration::from_secs(60);

pub(crate) struct CorpCheck {
    /// Where the corp id comes from, like the code.
    pub(crate) extractor: CodeExtractor,
    directory: Arc<dyn CorpDirectory>,
    /// The directory's verdicts: `true` for the recheck interval, `false` for a few seconds.
    verdicts: Cache<String, bool>,
    slow_log: LogGate,
}

/// Keeps a verdict for as long as its kind is trusted.
struct VerdictExpiry {
    recheck: Duration,
}

impl moka::Expiry<String, bool> for VerdictExpiry {
    fn expire_after_create(
        &self,
        _corp_id: &String,
        authorized: &bool,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(if *authorized {
            self.recheck
        } else {
            self.recheck.min(REFUSAL_TTL)
        })
    }
}

impl CorpCheck {
    pub(crate) fn new(
        extractor: CodeExtractor,
        directory: Arc<dyn CorpDirectory>,
        recheck: Duration,
    ) -> Self {
        Self {
            extractor,
            directory,
            verdicts: Cache::builder()
                .name("dingtalk-corp-verdicts")
                .max_capacity(MAX_CORPS)
                .expire_after(VerdictExpiry { recheck })
                .build(),
            slow_log: LogGate::new(SLOW_LOG_PERIOD),
        }
    }

    /// The verdict on `corp_id` remembered by this layer, if it can be read without waiting.
    pub(crate) fn remembered(&self, corp_id: &str) -> Option<bool> {
        ready_now(self.verdicts.get(corp_id)).flatten()
    }

    /// This layer's verdict on `corp_id`: remembered, else asked of the directory once for all
    /// the requests that want it at that moment (within `timeout`: a directory that does not
    /// answer in time is a 504, logged once a minute, and nothing is remembered).
    pub(crate) async fn verdict(
        &self,
        corp_id: &str,
        timeout: Duration,
    ) -> Result<bool, AuthError> {
        self.verdicts
            .try_get_with_by_ref(corp_id, self.ask(corp_id, timeout))
            .await
            .map_err(|shared| AuthError::clone(&shared))
    }

    /// The directory's answer now, remembered by nobody (a token refresh asks every time).
    pub(crate) async fn ask(&self, corp_id: &str, timeout: Duration) -> Result<bool, AuthError> {
        match tokio::time::timeout(timeout, self.directory.is_authorized(corp_id)).await {
            Ok(authorized) => Ok(authorized),
            Err(_elapsed) => {
                if self.slow_log.allow() {
                    tracing::warn!(
                        timeout_ms = timeout.as_millis(),
                        "the CorpDirectory did not answer within the upstream timeout: requests \
                         that need it are answered 504 (logged at most once a minute)"
                    );
                } else {
                    tracing::debug!("the CorpDirectory did not answer in time");
                }
                Err(AuthError::new(
                    AuthErrorKind::UpstreamTimeout,
                    "the directory of authorised corps did not answer in time",
                ))
            }
        }
    }

    /// `Ok` when `corp_id` may sign in here, the rejection otherwise.
    pub(crate) async fn admit(&self, corp_id: &str, timeout: Duration) -> Result<(), AuthError> {
        if self.verdict(corp_id, timeout).await? {
            Ok(())
        } else {
            tracing::debug!(corp_id, "a corp this layer's directory does not admit");
            Err(AuthError::corp_not_authorized())
        }
    }
}
