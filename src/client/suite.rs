//! Third-party enterprise apps (第三方企业应用): one access token per corp that installed the app,
//! fetched with the unified endpoint or with the latest suite ticket.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};

use moka::future::Cache;

use super::token::TokenCache;

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
/// use tower_dingtalk_auth::{DingTalkAuthLayer, MemorySuiteTicketStore};
///
/// let tickets = MemorySuiteTicketStore::new();
/// let layer = DingTalkAuthLayer::builder()
///     .third_party_app("SUITE_KEY", "SUITE_SECRET")
///     .suite_ticket_store(tickets.clone())
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

/// One token cache per corp, bounded; each refreshes on its own, so a failing corp never touches
/// another corp's token.
pub(crate) struct CorpTokens {
    caches: Cache<String, Arc<TokenCache>>,
}

impl CorpTokens {
    pub(crate) fn new(max_corps: u64) -> Self {
        Self {
            caches: Cache::builder()
                .name("dingtalk-corp-tokens")
                .max_capacity(max_corps)
                .build(),
        }
    }

    pub(crate) async fn for_corp(&self, corp_id: &str) -> Arc<TokenCache> {
        self.caches
            .get_with_by_ref(corp_id, async { Arc::new(TokenCache::new()) })
            .await
    }
}
