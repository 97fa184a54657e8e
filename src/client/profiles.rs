//! Users' profiles from the company's directory, when the client asks for them: fetched once per
//! user (`v2/user/get`, and `listparentbyuser` for departments), kept for a while, and shared
//! between replicas through the store.

use std::sync::Arc;
use std::time::Duration;

use super::{CallerKey, DingTalkClient, ExchangeBudget};
use crate::access::{UserName, is_user};
use crate::hot_slots::HotSlots;
use crate::log_gate::LogGate;
use crate::profile::{Profile, ProfileFields};
use crate::session::{millis, now_millis};
use crate::user::AuthenticatedDingTalkUser;

/// How long a profile is kept unless configured.
pub const DEFAULT_PROFILE_TTL: Duration = Duration::from_secs(10 * 60);

/// How many users' profiles the hot path holds; past them, the moka cache answers.
const SLOTS: usize = 4096;

/// The warning that a profile could not be read, at most once a minute.
static UNAVAILABLE: std::sync::LazyLock<LogGate> =
    std::sync::LazyLock::new(|| LogGate::new(Duration::from_secs(60)));

/// The profiles a client keeps.
pub(crate) struct Profiles {
    pub(crate) fields: ProfileFields,
    ttl: Duration,
    /// The profiles read lately, for the hot path (until when each holds, ms since the epoch).
    hot: HotSlots<UserName, (Arc<Profile>, u64)>,
    /// Every profile kept, one fetch per user at a time.
    kept: moka::future::Cache<UserName, Arc<Profile>>,
    /// Users whose profile DingTalk did not give lately: not asked again before [`FAILURE_HOLD`].
    failed: moka::future::Cache<UserName, ()>,
}

/// How long a user whose profile could not be read goes without one before DingTalk is asked
/// again: the `Retry-After` of a guard that needs it.
const FAILURE_HOLD: Duration = crate::profile::PROFILE_FAILURE_HOLD;

impl Profiles {
    pub(crate) fn new(fields: ProfileFields, ttl: Duration) -> Self {
        Self {
            fields,
            ttl,
            hot: HotSlots::new(SLOTS),
            kept: moka::future::Cache::builder()
                .max_capacity(1_000_000)
                .time_to_live(ttl)
                .build(),
            failed: moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(FAILURE_HOLD)
                .build(),
        }
    }
}

impl DingTalkClient {
    /// Whether the client gives users a profile.
    pub(crate) fn has_profiles(&self) -> bool {
        self.inner.profiles.is_some()
    }

    /// `user` with their profile when it can be had without waiting: `Ok` (unchanged when the
    /// client asks for none), or `Err(user)` when it must be fetched.
    pub(crate) fn profile_now(
        &self,
        user: AuthenticatedDingTalkUser,
    ) -> Result<AuthenticatedDingTalkUser, AuthenticatedDingTalkUser> {
        let Some(profiles) = &self.inner.profiles else {
            return Ok(user);
        };
        if user.profile().is_some() {
            return Ok(user);
        }
        let (corp, userid) = (user.corp_id(), user.userid());
        let held = profiles.hot.get((corp, userid), is_user(corp, userid));
        match held {
            Some((profile, until)) if now_millis() < until => Ok(user.with_profile(profile)),
            _ => Err(user),
        }
    }

    /// `user` with their profile: kept, or fetched (once per user at a time). A failure leaves
    /// the user without one (logged): a login that needs no profile does not fail for it.
    pub(crate) async fn with_profile(
        &self,
        user: AuthenticatedDingTalkUser,
    ) -> AuthenticatedDingTalkUser {
        let user = match self.profile_now(user) {
            Ok(user) => return user,
            Err(user) => user,
        };
        let Some(profiles) = &self.inner.profiles else {
            return user;
        };
        let (corp, userid) = (user.corp_id(), user.userid());
        let key: UserName = (corp.map(Box::from), Box::from(userid));
        if profiles.failed.contains_key(&key) {
            return user;
        }
        let fetched = profiles
            .kept
            .try_get_with(
                key.clone(),
                self.fetch_profile(corp, userid, profiles.fields),
            )
            .await;
        match fetched {
            Ok(profile) => {
                let until = now_millis().saturating_add(millis(profiles.ttl));
                let now = now_millis();
                let entry = (profile.clone(), until);
                profiles
                    .hot
                    .insert((corp, userid), || (key, entry), |held| now < held.1);
                user.with_profile(profile)
            }
            Err(error) => {
                profiles.failed.insert(key, ()).await;
                if UNAVAILABLE.allow() {
                    tracing::warn!(error = %error, "a user's profile could not be read from DingTalk");
                }
                user
            }
        }
    }

    /// One user's profile from DingTalk: the fields asked for.
    async fn fetch_profile(
        &self,
        corp: Option<&str>,
        userid: &str,
        fields: ProfileFields,
    ) -> Result<Arc<Profile>, crate::error::AuthError> {
        // Another replica may have read it lately.
        // Contact details (email, mobile) are personal data: never written to Redis, where values
        // are signed, not encrypted; a profile with them is read by each replica itself.
        let shareable =
            !fields.contains(ProfileFields::EMAIL) && !fields.contains(ProfileFields::MOBILE);
        let shared = self
            .identities()
            .store()
            .filter(|_| shareable)
            .zip(super::revocation::user_key("profile", corp, userid));
        if let Some((store, key)) = &shared
            && let Some(kept) = store.kept_profile(self.app_key(), key).await
            && let Ok(profile) = serde_json::from_slice::<Profile>(&kept)
        {
            return Ok(Arc::new(profile));
        }
        let budget = ExchangeBudget {
            send_by: tokio::time::Instant::now() + self.upstream_timeout(),
            caller: CallerKey::unknown(),
        };
        let detail =
            tokio::time::timeout_at(budget.send_by, self.user_detail(corp, userid, &budget))
                .await
                .map_err(|_elapsed| self.too_slow())??;
        let keep = |field, value: Option<String>| {
            value.filter(|value| fields.contains(field) && !value.is_empty())
        };
        let mut profile = Profile {
            title: keep(ProfileFields::TITLE, detail.title),
            job_number: keep(ProfileFields::JOB_NUMBER, detail.job_number),
            email: keep(ProfileFields::EMAIL, detail.email),
            avatar: keep(ProfileFields::AVATAR, detail.avatar),
            mobile: keep(ProfileFields::MOBILE, detail.mobile),
            ..Profile::default()
        };
        if fields.contains(ProfileFields::DEPARTMENTS) {
            profile.departments = detail.dept_id_list;
            profile.leads = detail
                .leader_in_dept
                .iter()
                .filter(|dept| dept.leader)
                .map(|dept| dept.dept_id)
                .collect();
            let chains = self.department_chains(corp, userid, &budget);
            let mut within: Vec<i64> = tokio::time::timeout_at(budget.send_by, chains)
                .await
                .map_err(|_elapsed| self.too_slow())??
                .into_iter()
                .flatten()
                .collect();
            within.sort_unstable();
            within.dedup();
            profile.within = within;
        }
        if let Some((store, key)) = &shared
            && let Ok(bytes) = serde_json::to_vec(&profile)
        {
            let ttl = self.inner.profiles.as_ref().map_or(FAILURE_HOLD, |p| p.ttl);
            store.keep_profile(self.app_key(), key, &bytes, ttl).await;
        }
        Ok(Arc::new(profile))
    }
}
