//! A corp directory whose answer a test changes: the corp is installed, then removed.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tower_dingtalk_auth::CorpDirectory;

/// Answers every corp with what the flag says when asked.
#[derive(Clone)]
pub struct Switch(pub Arc<AtomicBool>);

impl Switch {
    /// A directory that authorises every corp until [`remove`](Self::remove).
    pub fn installed() -> Self {
        Self(Arc::new(AtomicBool::new(true)))
    }

    /// From now on, no corp is authorised.
    pub fn remove(&self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

impl CorpDirectory for Switch {
    fn is_authorized<'a>(
        &'a self,
        _corp_id: &'a str,
    ) -> Pin<Box<dyn Future<Output = bool> + Send + 'a>> {
        let installed = self.0.load(Ordering::SeqCst);
        Box::pin(async move { installed })
    }
}
