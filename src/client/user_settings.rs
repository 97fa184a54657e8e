//! The client's settings about users beyond the login: how often their sessions are re-validated
//! with DingTalk, and which directory fields they carry.

use std::time::Duration;

use super::builder::DingTalkClientBuilder;

/// The longest interval kept as given: longer ones (up to `Duration::MAX`) are a year.
const MAX_INTERVAL: Duration = Duration::from_secs(365 * 24 * 60 * 60);

impl DingTalkClientBuilder {
    /// How often a signed-in user's session (a cookie or a bearer token) is re-validated with
    /// DingTalk (`topapi/v2/user/get`, which needs the app's 通讯录只读 permission): a user
    /// DingTalk no longer knows (60121, 33012: they left) loses every session, with
    /// [`DingTalkClient::revoke_user`](crate::DingTalkClient::revoke_user). At most one call per user per interval across the
    /// client's layers and, with a shared store, its replicas; the first request after the
    /// interval waits for it. A failing DingTalk keeps the sessions (fail open, for one interval
    /// more, logged at most once a minute), rather than signing everyone out; the check is
    /// bounded by the [`upstream_timeout`](Self::upstream_timeout). Default: 10 minutes (at most
    /// a year); `None` never re-validates.
    pub fn revalidate_after(mut self, interval: impl Into<Option<Duration>>) -> Self {
        self.revalidate_after = Some(interval.into().map(|interval| interval.min(MAX_INTERVAL)));
        self
    }

    /// Gives every user the directory's `fields` ([`AuthenticatedDingTalkUser::profile`](crate::AuthenticatedDingTalkUser::profile)):
    /// read from `topapi/v2/user/get` (and `listparentbyuser` for departments) once per user,
    /// kept for [`DEFAULT_PROFILE_TTL`](crate::DEFAULT_PROFILE_TTL) (see
    /// [`profile_ttl`](Self::profile_ttl)), shared by every layer on the client. A profile DingTalk
    /// does not give leaves the user without one: a login that needs no profile never fails for
    /// it, and a guard that needs one answers 503 with `Retry-After`. Needs the app's 通讯录只读
    /// permission.
    pub fn profile(mut self, fields: crate::profile::ProfileFields) -> Self {
        let ttl = self
            .profile
            .map_or(super::profiles::DEFAULT_PROFILE_TTL, |(_, ttl)| ttl);
        self.profile = Some((fields, ttl));
        self
    }

    /// How long a user's profile is kept before it is read again. Default: 10 minutes.
    pub fn profile_ttl(mut self, ttl: Duration) -> Self {
        let ttl = ttl.min(MAX_INTERVAL);
        let fields = self.profile.map(|(fields, _)| fields).unwrap_or_default();
        self.profile = Some((fields, ttl));
        self
    }
}
