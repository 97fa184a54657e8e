//! Third-party enterprise apps (第三方企业应用): one access token per corp that installed the app,
//! fetched with the unified endpoint or with the latest suite ticket.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};

use std::time::Duration;

use moka::future::Cache;
use tokio::time::Instant;

use super::token::{FetchedToken, TokenCache};
use super::token_answer::TokenRefusal;
use crate::error::AuthError;
use crate::log_gate::LogGate;

/// The default number of corps whose tokens are kept.
pub const DEFAULT_MAX_CORPS: u64 = 10_000;

/// Where a third-party app keeps the latest suite ticket DingTalk pushed to its callback.
///
/// With a store, corp tokens come from `POST /v1.0/oauth2/corpAccessToken`, which needs the ticket;
/// without one, from the unified `POST /v1.0/oauth2/{corpId}/token`, which does not. Implement it
/// over your database, or use [`MemorySuiteTicketStore`].
pub trait SuiteTicketStore: Send + Sync + 'static {
    /// The latest ticket, or `None` when none has arrived yet.
    fn latest_ticket(&self) -> Pin<Box<dyn Future<Output = Option<String>> + Send + '_>>;
}

/// A [`SuiteTicketStore`] in memory: the app's callback handler calls
/// [`update`](Self::update) with each ticket DingTalk pushes. Clones share the ticket.
///
/// ```
/// use tower_dingtalk_auth::{DingTalkAuthLayer, DingTalkClient, MemorySuiteTicketStore};
///
/// let tickets = MemorySuiteTicketStore::new();
/// let client = DingTalkClient::builder()
///     .third_party_app("SUITE_KEY", "SUITE_SECRET")
///     .suite_ticket_store(tickets.clone())
///     .build()
///     .unwrap();
/// let layer = DingTalkAuthLayer::builder()
///     .client(client)
///     .authorized_corps(["ding0123456789abcdef"])
///     .build()
///     .unwrap();
/// // In the handler of DingTalk's `suite_ticket` callback event:
/// tickets.update("the ticket from the event");
/// # drop(layer);
/// ```
#[derive(Clone, Default)]
pub struct MemorySuiteTicketStore {
    ticket: Arc<RwLock<Option<String>>>,
}

impl MemorySuiteTicketStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps `ticket` as the latest; the previous one stops working at DingTalk anyway.
    pub fn update(&self, ticket: impl Into<String>) {
        *self.ticket.write().unwrap_or_else(|p| p.into_inner()) = Some(ticket.into());
    }

    fn latest(&self) -> Option<String> {
        self.ticket
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl SuiteTicketStore for MemorySuiteTicketStore {
    fn latest_ticket(&self) -> Pin<Box<dyn Future<Output = Option<String>> + Send + '_>> {
        Box::pin(std::future::ready(self.latest()))
    }
}

impl fmt::Debug for MemorySuiteTicketStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = if self.latest().is_some() {
            "<redacted>"
        } else {
            "none"
        };
        f.debug_struct("MemorySuiteTicketStore")
            .field("ticket", &state)
            .finish()
    }
}

/// How long a corp DingTalk refused (not installed, or no such corp) is answered from memory.
const REFUSED_CORP_TTL: Duration = Duration::from_secs(30);
/// How long any other failure of a corp's first token fetch is answered from memory.
const FAILURE_HOLD: Duration = Duration::from_secs(1);

/// Why a corp has no token yet: what DingTalk or the limits said, and whether DingTalk refused the
/// corp itself.
pub(crate) struct TokenFailure {
    pub(crate) error: AuthError,
    pub(crate) corp_refused: bool,
}

impl From<AuthError> for TokenFailure {
    fn from(error: AuthError) -> Self {
        Self {
            error,
            corp_refused: false,
        }
    }
}

#[derive(Clone)]
struct Failed {
    at: Instant,
    error: AuthError,
    corp_refused: bool,
}
/// How often a refused corp is logged at error level; the rest go to debug.
const REFUSAL_LOG_PERIOD: Duration = Duration::from_secs(60);

/// One token cache per corp, bounded; each refreshes on its own, so a failing corp never touches
/// another corp's token. A corp enters only once DingTalk gave it a token, so corp ids nobody
/// installed the app in cannot push real corps out; those DingTalk refused are remembered briefly.
pub(crate) struct CorpTokens {
    caches: Cache<String, Arc<TokenCache>>,
    failed: Cache<String, Failed>,
    refusal_log: LogGate,
}

impl CorpTokens {
    pub(crate) fn new(max_corps: u64) -> Self {
        Self {
            caches: Cache::builder()
                .name("dingtalk-corp-tokens")
                .max_capacity(max_corps)
                .build(),
            // Bounded on its own: a flood of invented corps must not evict real corps' tokens,
            // and the corps it evicts here can only be asked again under the rate limit.
            failed: Cache::builder()
                .name("dingtalk-failed-corps")
                .max_capacity(DEFAULT_MAX_CORPS)
                .time_to_live(REFUSED_CORP_TTL)
                .build(),
            refusal_log: LogGate::new(REFUSAL_LOG_PERIOD),
        }
    }

    /// The token cache of `corp_id`; a corp without one gets its first token from `first_fetch`
    /// (one fetch at a time per corp). A failed first fetch is answered from memory for a second,
    /// or for half a minute when DingTalk refused the corp.
    pub(crate) async fn for_corp<F, Fut>(
        &self,
        corp_id: &str,
        first_fetch: F,
    ) -> Result<Arc<TokenCache>, AuthError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<FetchedToken, TokenFailure>>,
    {
        if let Some(cache) = self.caches.get(corp_id).await {
            return Ok(cache);
        }
        if let Some(failed) = self.failed.get(corp_id).await {
            let hold = if failed.corp_refused {
                REFUSED_CORP_TTL
            } else {
                FAILURE_HOLD
            };
            if failed.at.elapsed() < hold {
                return Err(failed.error);
            }
        }
        let first = async {
            let started = Instant::now();
            match first_fetch().await {
                Ok(fetched) => Ok(Arc::new(TokenCache::with_token(fetched, started))),
                Err(failure) => {
                    let failed = Failed {
                        at: Instant::now(),
                        error: failure.error.clone(),
                        corp_refused: failure.corp_refused,
                    };
                    self.failed.insert(corp_id.to_owned(), failed).await;
                    Err(failure.error)
                }
            }
        };
        self.caches
            .try_get_with_by_ref(corp_id, first)
            .await
            .map_err(|shared| AuthError::clone(&shared))
    }

    /// Logs why DingTalk gave `corp_id` no token: at most one error line a minute for refused
    /// corps, whatever their number.
    pub(crate) fn log_refusal(&self, corp_id: &str, refusal: &TokenRefusal, whose: &str) {
        if !refusal.refuses_corp() || self.refusal_log.allow() {
            refusal.log(whose);
        } else {
            tracing::debug!(corp_id, "DingTalk refused a token for another corp");
        }
    }
}
