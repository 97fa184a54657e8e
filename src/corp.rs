//! Which organisations (corps) may use a third-party app: [`CorpDirectory`], and the fixed list
//! [`AuthorizedCorps`].
//!
//! The corp id of a request comes from the client and is untrusted: a code is exchanged only for a
//! corp the directory knows, so no request can make the layer use a corp that never installed the
//! app.

use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::pin::Pin;

/// Answers whether a corp has authorised (installed) the app; the layer asks it before exchanging a
/// code for that corp (never for codes already cached), and for sessions of third-party apps at
/// least every [`corp_recheck_interval`](crate::DingTalkAuthLayerBuilder::corp_recheck_interval).
///
/// Answer from what you know: the corps whose installation events (`org_suite_auth`) your app
/// received, not a pattern. A directory that accepts any corp id lets anyone make the layer ask
/// DingTalk for tokens of corps that never installed the app.
///
/// ```
/// use std::collections::HashSet;
/// use std::future::Future;
/// use std::pin::Pin;
/// use std::sync::{Arc, RwLock};
/// use tower_dingtalk_auth::CorpDirectory;
///
/// /// The corps that installed the app, kept up to date by the app's callback handler (a
/// /// stand-in for its database).
/// #[derive(Clone, Default)]
/// struct Installations(Arc<RwLock<HashSet<String>>>);
///
/// impl CorpDirectory for Installations {
///     fn is_authorized<'a>(
///         &'a self,
///         corp_id: &'a str,
///     ) -> Pin<Box<dyn Future<Output = bool> + Send + 'a>> {
///         let known = self.0.read().unwrap().contains(corp_id);
///         Box::pin(async move { known })
///     }
/// }
/// ```
pub trait CorpDirectory: Send + Sync + 'static {
    /// Whether `corp_id` installed the app and may log users in.
    fn is_authorized<'a>(
        &'a self,
        corp_id: &'a str,
    ) -> Pin<Box<dyn Future<Output = bool> + Send + 'a>>;
}

/// A fixed set of authorised corps; see
/// [`authorized_corps`](crate::DingTalkAuthLayerBuilder::authorized_corps).
#[derive(Clone, Default)]
pub struct AuthorizedCorps {
    corps: HashSet<Box<str>>,
}

impl AuthorizedCorps {
    /// The corps given.
    pub fn new<I, C>(corps: I) -> Self
    where
        I: IntoIterator<Item = C>,
        C: Into<Box<str>>,
    {
        Self {
            corps: corps.into_iter().map(Into::into).collect(),
        }
    }

    /// Whether `corp_id` is one of them.
    pub fn contains(&self, corp_id: &str) -> bool {
        self.corps.contains(corp_id)
    }
}

impl CorpDirectory for AuthorizedCorps {
    fn is_authorized<'a>(
        &'a self,
        corp_id: &'a str,
    ) -> Pin<Box<dyn Future<Output = bool> + Send + 'a>> {
        Box::pin(std::future::ready(self.contains(corp_id)))
    }
}

impl fmt::Debug for AuthorizedCorps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(&self.corps).finish()
    }
}
