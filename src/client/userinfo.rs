//! The call to getuserinfo, and what its answer means: a user, or why not (read as every oapi
//! answer is, in `oapi.rs`).

use http::StatusCode;

use super::oapi::{self, CallFailure, upstream_error};
use super::token::AccessToken;
use super::wire::{UserInfoRequest, UserInfoResult};
use super::{DingTalkClient, transport_error};
use crate::error::AuthError;
use crate::user::{AdminLevel, AuthenticatedDingTalkUser};

/// One call to getuserinfo. It is not bounded by the caller's budget, only by the client's
/// answer timeout: once sent, DingTalk spends the code whether or not anyone waits for the answer.
pub(crate) async fn call(
    client: &DingTalkClient,
    token: &AccessToken,
    corp_id: Option<&str>,
    code: &str,
) -> Result<AuthenticatedDingTalkUser, CallFailure> {
    let inner = &client.inner;
    let mut url = inner.getuserinfo_url.clone();
    url.query_pairs_mut()
        .append_pair("access_token", token.secret());
    let response = inner
        .http
        .post(url)
        .timeout(inner.answer_timeout)
        .json(&UserInfoRequest { code })
        .send()
        .await
        .map_err(|error| CallFailure::Final(transport_error("getuserinfo", error)))?;
    let status = response.status();
    let bytes = response
        .bytes()
        .await
        .map_err(|error| CallFailure::Final(transport_error("getuserinfo", error)))?;
    // The user's organisation: the corp of a third-party exchange, or the configured one.
    let corp_id = corp_id.or(inner.corp_id.as_deref());
    read(status, &bytes, corp_id)
}

/// What an answer of getuserinfo means: a user, or why not.
pub(crate) fn read(
    status: StatusCode,
    body: &[u8],
    corp_id: Option<&str>,
) -> Result<AuthenticatedDingTalkUser, CallFailure> {
    let envelope = oapi::read::<UserInfoResult>(status, body, "getuserinfo", |errcode| {
        matches!(errcode, 40078 | 42008).then(|| AuthError::code_rejected().with_errcode(errcode))
    })?;
    user_from(envelope.result, corp_id).map_err(CallFailure::Final)
}

fn user_from(
    result: Option<UserInfoResult>,
    corp_id: Option<&str>,
) -> Result<AuthenticatedDingTalkUser, AuthError> {
    let result = result
        .filter(|result| !result.userid.is_empty())
        .ok_or_else(|| {
            tracing::warn!("getuserinfo succeeded without a userid");
            upstream_error("DingTalk answered a success without a user")
        })?;
    let mut user = AuthenticatedDingTalkUser::builder(result.userid, result.name)
        .unionid(result.unionid)
        .device_id(result.device_id)
        .admin_level(AdminLevel::from_sys_level(result.sys_level))
        .admin(result.sys);
    if let Some(associated) = result.associated_unionid {
        user = user.associated_unionid(associated);
    }
    if let Some(corp_id) = corp_id {
        user = user.corp_id(corp_id);
    }
    Ok(user.build())
}
