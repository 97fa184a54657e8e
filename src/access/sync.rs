//! Revocations across replicas: each replica reads the store's revocation log from the start
//! (so a revocation survives a restart), then every [`POLL`], in the background.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use super::{Access, Revocation};
use crate::store::SharedStore;

/// How often a replica reads the revocations it has not seen: a revocation reaches every
/// replica within about this.
pub(crate) const POLL: Duration = Duration::from_millis(250);

impl Access {
    /// Starts reading the store's revocations, once, from a task that ends with the client.
    pub(crate) fn sync_with(self: &Arc<Self>, store: &SharedStore, app_key: &str) {
        // A load first: the hot path asks on every request, and a swap would write each time.
        if self.syncing.load(Ordering::Acquire) || self.syncing.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // Outside a runtime (a client used from blocking code): the next use inside one.
            self.syncing.store(false, Ordering::Release);
            return;
        };
        let access = Arc::downgrade(self);
        let store = store.clone();
        let app_key = app_key.to_owned();
        runtime.spawn(read_log(access, store, app_key));
    }
}

async fn read_log(access: Weak<Access>, store: SharedStore, app_key: String) {
    let mut after = 0;
    loop {
        if access.strong_count() == 0 {
            return;
        }
        let read = store.revocations_since(&app_key, after).await;
        let Some(access) = access.upgrade() else {
            return;
        };
        if let Some(entries) = read {
            let full = entries.len() >= crate::store::REVOCATION_PAGE;
            for (record, position) in entries {
                after = after.max(position);
                let revocation = record
                    .as_deref()
                    .and_then(|record| serde_json::from_slice::<Revocation>(record).ok());
                match revocation {
                    Some(revocation) => access.record(&revocation),
                    None => tracing::debug!("a revocation that is not this app's, or not ours"),
                }
            }
            if full {
                // More to read: no pause.
                continue;
            }
        }
        // Read once, or the store did not answer (sessions are served meanwhile).
        access.set_ready();
        drop(access);
        tokio::time::sleep(POLL).await;
    }
}
