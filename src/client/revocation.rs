//! Access that ends: [`DingTalkClient::revoke_user`] ends a user's sessions, tokens and cached
//! identities on every layer of the client and every replica; a signed-in user is re-validated
//! with DingTalk (`v2/user/get`) at most once per interval across replicas, and one DingTalk no
//! longer knows is revoked.

use std::sync::Arc;
use std::time::Duration;

use super::{CallerKey, DingTalkClient, ExchangeBudget};
use crate::access::{Access, Revocation};
use crate::error::{AuthError, AuthErrorKind};
use crate::key::{IdentityKey, IdentityKeyRef};
use crate::log_gate::LogGate;

/// How long a revocation the store did not take is retried in the background.
const STORE_RETRY_FOR: Duration = Duration::from_secs(60);

/// The warning that re-validation failed and sessions are kept meanwhile, at most once a minute.
static FAIL_OPEN: std::sync::LazyLock<LogGate> =
    std::sync::LazyLock::new(|| LogGate::new(Duration::from_secs(60)));

impl DingTalkClient {
    /// Ends the sessions of `userid` (an internal app's user) everywhere at once: its session
    /// cookies and bearer tokens (refreshes included), the identities cached for its codes and
    /// the sessions layers opened lately, on every layer built on this client and, with a
    /// [shared store](crate::DingTalkClientBuilder::shared_store), on every replica within about
    /// a quarter of a second; the revocation is kept in the store, so a replica that restarts
    /// still refuses those sessions. The user can sign in again afterwards: a login more than a
    /// second after the revocation (the replicas' clocks may disagree by that much) is a new
    /// session. Without a shared store the revocation lives in this process only.
    ///
    /// For a third-party app's client it revokes nobody and answers `false` (userids are unique
    /// only within a corp): use [`revoke_corp_user`](Self::revoke_corp_user).
    ///
    /// Answers whether the shared store took it (always `true` without one); when it did not,
    /// this replica refuses the sessions at once and the store is tried again in the background
    /// for a minute.
    ///
    /// ```no_run
    /// # async fn run(client: tower_dingtalk_auth::DingTalkClient) {
    /// // An employee left: their cookies and tokens stop working now.
    /// client.revoke_user("user456").await;
    /// # }
    /// ```
    pub async fn revoke_user(&self, userid: &str) -> bool {
        if self.is_third_party() {
            tracing::error!(
                "revoke_user on a third-party app's client revokes nobody: userids are unique only \
                 within a corp; use revoke_corp_user"
            );
            return false;
        }
        // An internal app's users carry its configured corp id, when it has one.
        let corp = self.inner.corp_id.clone();
        self.revoke(corp.as_deref(), userid).await
    }

    /// [`revoke_user`](Self::revoke_user) for a user of `corp_id` (third-party apps).
    pub async fn revoke_corp_user(&self, corp_id: &str, userid: &str) -> bool {
        self.revoke(Some(corp_id), userid).await
    }

    async fn revoke(&self, corp_id: Option<&str>, userid: &str) -> bool {
        let revocation = Revocation {
            corp: corp_id.map(str::to_owned),
            userid: userid.to_owned(),
            at: crate::session::now_millis(),
        };
        self.inner.access.record(&revocation);
        tracing::info!(
            corp_id = corp_id.unwrap_or_default(),
            "a user's sessions were revoked"
        );
        let Some(store) = self.identities().store() else {
            return true;
        };
        self.inner.access.sync_with(store, self.app_key());
        let record = serde_json::to_vec(&revocation).expect("a revocation serializes");
        if store.revoke(self.app_key(), &record).await.is_some() {
            return true;
        }
        tracing::warn!("the shared store did not take a revocation; retrying in the background");
        let (store, app_key) = (store.clone(), self.app_key().to_owned());
        tokio::spawn(async move {
            let give_up = tokio::time::Instant::now() + STORE_RETRY_FOR;
            while tokio::time::Instant::now() < give_up {
                tokio::time::sleep(Duration::from_millis(500)).await;
                if store.revoke(&app_key, &record).await.is_some() {
                    return;
                }
            }
            tracing::error!(
                "a revocation never reached the shared store: other replicas keep the sessions"
            );
        });
        false
    }

    /// Who may still be signed in, for the layers' hot paths; starts reading the store's
    /// revocations on first use.
    pub(crate) fn access(&self) -> &Arc<Access> {
        if let Some(store) = self.identities().store() {
            self.inner.access.sync_with(store, self.app_key());
        }
        &self.inner.access
    }

    /// Re-validates a signed-in user with DingTalk unless it was lately (here or, with a shared
    /// store, on another replica): `Err` (`session_revoked`) when DingTalk no longer knows the
    /// user, who is then revoked everywhere. A failing DingTalk keeps the session (fail open for
    /// one interval more, logged).
    pub(crate) async fn revalidate(
        &self,
        corp_id: Option<&str>,
        userid: &str,
    ) -> Result<(), AuthError> {
        let access = self.access().clone();
        let Some(interval) = access.interval else {
            return Ok(());
        };
        let key = (corp_id.map(Box::from), Box::from(userid));
        let check = async {
            if let (Some(store), Some(user)) =
                (self.identities().store(), user_key("user", corp_id, userid))
            {
                // Another replica re-validates this user in this interval: its verdict reaches
                // every replica as a revocation.
                if store
                    .first_validation(self.app_key(), &user, interval)
                    .await
                    == Some(false)
                {
                    return Ok(());
                }
            }
            let budget = ExchangeBudget {
                send_by: tokio::time::Instant::now() + self.upstream_timeout(),
                caller: CallerKey::unknown(),
            };
            // Nothing is spent here: the check is bounded by the budget like the rest of a request.
            let detail =
                tokio::time::timeout_at(budget.send_by, self.user_detail(corp_id, userid, &budget))
                    .await
                    .unwrap_or_else(|_elapsed| Err(self.too_slow()));
            match detail {
                Ok(_) => Ok(()),
                Err(error) if error.kind() == AuthErrorKind::NotAMember => {
                    tracing::info!(
                        "DingTalk no longer knows a signed-in user: revoking their sessions"
                    );
                    self.revoke(corp_id, userid).await;
                    Err(AuthError::session_revoked())
                }
                Err(error) => {
                    if FAIL_OPEN.allow() {
                        tracing::warn!(
                            error = %error,
                            "re-validating a signed-in user with DingTalk failed; the session is kept \
                             until the next interval"
                        );
                    }
                    Ok(())
                }
            }
        };
        access
            .validated
            .try_get_with(key, check)
            .await
            .map_err(|error: Arc<AuthError>| (*error).clone())
    }
}

/// A user's name in the store's marks, in `namespace`: any userid (unicode, long) gives one.
pub(crate) fn user_key(
    namespace: &str,
    corp_id: Option<&str>,
    userid: &str,
) -> Option<IdentityKey> {
    use sha2::Digest;
    let hash = sha2::Sha256::digest(userid.as_bytes());
    let hex: String = hash.iter().map(|byte| format!("{byte:02x}")).collect();
    IdentityKeyRef::checked(corp_id, &format!("{namespace}:{hex}"))
        .ok()
        .map(|key| key.to_owned())
}
