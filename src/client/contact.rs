//! DingTalk's user-detail calls on the legacy host, with the app's (or the corp's) token: an
//! account's userid in the organisation, the user's record, and the administrators' levels
//! (cached per organisation).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::oapi::{self, CallFailure};
use super::token::AccessToken;
use super::wire::{
    AdminEntry, ByUnionIdRequest, ByUnionIdResult, ParentsResult, UserDetail, UserGetRequest,
};
use super::{DingTalkClient, ExchangeBudget, transport_error};
use crate::error::AuthError;
use crate::user::AdminLevel;

/// How long the administrators' levels of an organisation are kept.
pub(crate) const ADMIN_LEVELS_TTL: Duration = Duration::from_secs(10 * 60);

/// The administrators' levels per organisation (`None`: the internal app's own).
pub(crate) type AdminLevels = moka::future::Cache<Option<Arc<str>>, Arc<HashMap<Box<str>, i64>>>;

pub(crate) fn admin_levels_cache() -> AdminLevels {
    moka::future::Cache::builder()
        .max_capacity(10_000)
        .time_to_live(ADMIN_LEVELS_TTL)
        .build()
}

/// Where the user-detail calls go, resolved when the client is built.
pub(crate) struct ContactUrls {
    pub(crate) by_unionid: reqwest::Url,
    pub(crate) user_get: reqwest::Url,
    pub(crate) list_admin: reqwest::Url,
    pub(crate) parents: reqwest::Url,
}

/// 60121 "no such user", 33012 "invalid userid": an account outside the organisation, or a user
/// who left it.
fn not_a_member(errcode: i64) -> Option<AuthError> {
    matches!(errcode, 60121 | 33012).then(|| AuthError::not_a_member().with_errcode(errcode))
}

impl DingTalkClient {
    /// `POST {oapi}/topapi/user/getbyunionid`: the account's userid in the organisation.
    pub(crate) async fn userid_by_unionid(
        &self,
        corp_id: Option<&str>,
        unionid: &str,
        budget: &ExchangeBudget,
    ) -> Result<String, AuthError> {
        let url = &self.inner.contact.by_unionid;
        let body = ByUnionIdRequest { unionid };
        let found: ByUnionIdResult = self
            .with_token(corp_id, budget, |token| {
                self.post_oapi(url, token, &body, "getbyunionid", not_a_member)
            })
            .await?;
        if found.userid.is_empty() {
            return Err(super::oapi::upstream_error(
                "DingTalk answered a success without a user",
            ));
        }
        Ok(found.userid)
    }

    /// `POST {oapi}/topapi/v2/user/get`: the user's record.
    pub(crate) async fn user_detail(
        &self,
        corp_id: Option<&str>,
        userid: &str,
        budget: &ExchangeBudget,
    ) -> Result<UserDetail, AuthError> {
        let url = &self.inner.contact.user_get;
        let body = UserGetRequest {
            userid,
            language: "zh_CN",
        };
        let detail: UserDetail = self
            .with_token(corp_id, budget, |token| {
                self.post_oapi(url, token, &body, "user/get", not_a_member)
            })
            .await?;
        if detail.userid != userid {
            tracing::warn!("user/get answered another user than asked for");
            return Err(super::oapi::upstream_error(
                "DingTalk answered another user than asked for",
            ));
        }
        Ok(detail)
    }

    /// `POST {oapi}/topapi/v2/department/listparentbyuser`: each of the user's departments with
    /// every department above it.
    pub(crate) async fn department_chains(
        &self,
        corp_id: Option<&str>,
        userid: &str,
        budget: &ExchangeBudget,
    ) -> Result<Vec<Vec<i64>>, AuthError> {
        let url = &self.inner.contact.parents;
        let body = serde_json::json!({ "userid": userid });
        let found: ParentsResult = self
            .with_token(corp_id, budget, |token| {
                self.post_oapi(url, token, &body, "listparentbyuser", not_a_member)
            })
            .await?;
        Ok(found
            .parent_list
            .into_iter()
            .map(|chain| chain.parent_dept_id_list)
            .collect())
    }

    /// The user's administrator level: `boss` is 100; an administrator's level comes from
    /// `listadmin` (1 super, 2 sub), read once per organisation for [`ADMIN_LEVELS_TTL`];
    /// everyone else is 0, with no call.
    pub(crate) async fn admin_level(
        &self,
        corp_id: Option<&str>,
        userid: &str,
        detail: &UserDetail,
        budget: &ExchangeBudget,
    ) -> Result<AdminLevel, AuthError> {
        if detail.boss {
            return Ok(AdminLevel::Boss);
        }
        if !detail.admin {
            return Ok(AdminLevel::Other);
        }
        let list = async {
            let url = &self.inner.contact.list_admin;
            let empty = serde_json::json!({});
            let entries: Vec<AdminEntry> = self
                .with_token(corp_id, budget, |token| {
                    self.post_oapi(url, token, &empty, "listadmin", |_| None)
                })
                .await?;
            let levels = entries
                .into_iter()
                .filter_map(|entry| Some((entry.userid.into_boxed_str(), entry.sys_level?)))
                .collect::<HashMap<_, _>>();
            Ok::<_, AuthError>(Arc::new(levels))
        };
        let levels = self
            .inner
            .admin_levels
            .try_get_with(corp_id.map(Arc::from), list)
            .await
            .map_err(|error: Arc<AuthError>| (*error).clone())?;
        // An administrator DingTalk lists without a level (or made since the list was read) is
        // an administrator of unknown rank: the flag holds, the level says nothing more.
        Ok(levels.get(userid).map_or(AdminLevel::Other, |level| {
            AdminLevel::from_sys_level(*level)
        }))
    }

    /// One `POST` to an oapi endpoint with `token`, read as every oapi answer is; `specific`
    /// names the errcodes that mean something for this endpoint alone.
    async fn post_oapi<R: serde::de::DeserializeOwned>(
        &self,
        url: &reqwest::Url,
        token: AccessToken,
        body: &(impl serde::Serialize + Sync),
        endpoint: &'static str,
        specific: fn(i64) -> Option<AuthError>,
    ) -> Result<R, CallFailure> {
        let mut url = url.clone();
        url.query_pairs_mut()
            .append_pair("access_token", token.secret());
        let response = self
            .inner
            .http
            .post(url)
            .timeout(self.inner.answer_timeout)
            .json(body)
            .send()
            .await
            .map_err(|error| CallFailure::Final(transport_error(endpoint, error)))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|error| CallFailure::Final(transport_error(endpoint, error)))?;
        let envelope = oapi::read::<R>(status, &bytes, endpoint, specific)?;
        envelope.result.ok_or_else(|| {
            tracing::warn!(endpoint, "DingTalk answered a success without a result");
            CallFailure::Final(super::oapi::upstream_error(
                "DingTalk answered a success without a result",
            ))
        })
    }
}
