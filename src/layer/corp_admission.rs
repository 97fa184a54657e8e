//! A third-party layer's corp admission as the authenticator applies it: this layer's verdict,
//! remembered (decided before any await) or asked of its directory, for codes, cookies and tokens
//! alike; see [`CorpCheck`](super::corp_check::CorpCheck) for the verdicts themselves.

use std::sync::Arc;

use bytes::Bytes;
use http::Response;
use http::request::Parts;

use super::authenticator::{AfterLogin, Authenticator};
use crate::error::AuthError;
use crate::user::AuthenticatedDingTalkUser;

impl Authenticator {
    /// This layer's verdict on `corp_id` if it can be had without waiting: always yes for
    /// internal apps, remembered for third-party corps, `None` when the directory must be asked.
    pub(super) fn remembered_corp_verdict(&self, corp_id: Option<&str>) -> Option<bool> {
        match (&self.corps, corp_id) {
            (Some(corps), Some(corp_id)) => corps.remembered(corp_id),
            _ => Some(true),
        }
    }

    /// A session's user whose corp this layer has not asked about lately (ask the directory,
    /// within the upstream timeout, and remember the answer), or whose app value is not at hand.
    pub(crate) async fn check_corp(
        self: Arc<Self>,
        user: AuthenticatedDingTalkUser,
    ) -> Result<(AuthenticatedDingTalkUser, AfterLogin), Response<Bytes>> {
        self.admit_corp(user.corp_id())
            .await
            .map_err(|error| self.rejection(&error))?;
        self.resolve_then(user, AfterLogin::default(), false).await
    }

    /// The corp id a third-party app's request names; `None` for internal apps.
    pub(super) fn corp_of<'a>(
        &self,
        parts: &'a Parts,
    ) -> Result<Option<std::borrow::Cow<'a, str>>, AuthError> {
        let Some(corps) = &self.corps else {
            return Ok(None);
        };
        match corps.extractor.extract(parts)? {
            Some(found) => Ok(Some(found.value)),
            None => Err(AuthError::missing_corp_id()),
        }
    }

    /// `Ok` when this layer admits `corp_id` (always for internal apps).
    pub(crate) async fn admit_corp(&self, corp_id: Option<&str>) -> Result<(), AuthError> {
        match (&self.corps, corp_id) {
            (Some(corps), Some(corp_id)) => {
                corps.admit(corp_id, self.client.upstream_timeout()).await
            }
            _ => Ok(()),
        }
    }
}
