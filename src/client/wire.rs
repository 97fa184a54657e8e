//! The serde shapes of DingTalk's JSON, and the reading of a raw answer into a typed outcome.
//!
//! Everything here is lenient about extra or missing optional fields and strict about what makes a
//! success: an answer that is not the documented JSON is never taken for one.

use serde::{Deserialize, Serialize};

/// `POST {api}/v1.0/oauth2/accessToken` request body.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AccessTokenRequest<'a> {
    pub(crate) app_key: &'a str,
    pub(crate) app_secret: &'a str,
}

/// `POST {api}/v1.0/oauth2/{corpId}/token` request body (third-party apps, unified endpoint).
#[derive(Serialize)]
pub(crate) struct CorpTokenRequest<'a> {
    pub(crate) client_id: &'a str,
    pub(crate) client_secret: &'a str,
    pub(crate) grant_type: &'static str,
}

/// `POST {api}/v1.0/oauth2/corpAccessToken` request body (third-party apps, by suite ticket).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CorpAccessTokenRequest<'a> {
    pub(crate) suite_key: &'a str,
    pub(crate) suite_secret: &'a str,
    pub(crate) auth_corp_id: &'a str,
    pub(crate) suite_ticket: &'a str,
}

/// A token endpoint's success body: camelCase from `accessToken` and `corpAccessToken`,
/// snake_case from the unified `{corpId}/token`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AccessTokenResponse {
    #[serde(alias = "access_token")]
    pub(crate) access_token: String,
    /// Seconds; a number, a float or a numeral string are all read, and the client clamps it.
    #[serde(default, alias = "expires_in", deserialize_with = "lenient_seconds")]
    pub(crate) expire_in: Option<i64>,
}

/// The error body of the new "api" host, or an errcode where a wrong path reached a gateway.
#[derive(Deserialize)]
pub(crate) struct ApiError {
    #[serde(default, deserialize_with = "lenient_string")]
    pub(crate) code: Option<String>,
    #[serde(default, deserialize_with = "lenient_integer")]
    pub(crate) errcode: Option<i64>,
}

/// `POST {oapi}/topapi/v2/user/getuserinfo` request body.
#[derive(Serialize)]
pub(crate) struct UserInfoRequest<'a> {
    pub(crate) code: &'a str,
}

/// What every answer of the legacy "oapi" host looks like, plus the gateway's ban body.
#[derive(Deserialize)]
pub(crate) struct OapiEnvelope<R = UserInfoResult> {
    pub(crate) errcode: Option<i64>,
    #[serde(default)]
    pub(crate) errmsg: String,
    /// A string in DingTalk's answers; numbers are accepted too.
    #[serde(default, deserialize_with = "lenient_string")]
    pub(crate) sub_code: Option<String>,
    pub(crate) result: Option<R>,
    /// The per-IP ban body: `{"status":1111,"wait":5,"source":"x5","punish":"deny"}`.
    #[serde(default, deserialize_with = "lenient_integer")]
    pub(crate) status: Option<i64>,
    /// Minutes, as DingTalk documents it.
    #[serde(default, deserialize_with = "lenient_integer")]
    pub(crate) wait: Option<i64>,
}

/// `result` of a successful getuserinfo.
#[derive(Deserialize)]
pub(crate) struct UserInfoResult {
    #[serde(default)]
    pub(crate) userid: String,
    #[serde(default)]
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) unionid: String,
    #[serde(default)]
    pub(crate) associated_unionid: Option<String>,
    #[serde(default)]
    pub(crate) device_id: String,
    #[serde(default)]
    pub(crate) sys: bool,
    #[serde(default)]
    pub(crate) sys_level: i64,
}

/// `POST {api}/v1.0/oauth2/userAccessToken` request body: a web login's `authCode` for the
/// user's token.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UserTokenRequest<'a> {
    pub(crate) client_id: &'a str,
    pub(crate) client_secret: &'a str,
    pub(crate) code: &'a str,
    pub(crate) grant_type: &'static str,
}

/// Its success body; the refresh token is never read, so never held.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UserTokenResponse {
    pub(crate) access_token: String,
    #[serde(default, deserialize_with = "lenient_string")]
    pub(crate) corp_id: Option<String>,
}

/// `GET {api}/v1.0/contact/users/me`: the account behind a user token.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Me {
    #[serde(default)]
    pub(crate) union_id: String,
}

/// `POST {oapi}/topapi/user/getbyunionid` request body.
#[derive(Serialize)]
pub(crate) struct ByUnionIdRequest<'a> {
    pub(crate) unionid: &'a str,
}

/// Its `result`: the employee's userid in the token's organisation.
#[derive(Deserialize)]
pub(crate) struct ByUnionIdResult {
    #[serde(default)]
    pub(crate) userid: String,
}

/// `POST {oapi}/topapi/v2/user/get` request body.
#[derive(Serialize)]
pub(crate) struct UserGetRequest<'a> {
    pub(crate) userid: &'a str,
    pub(crate) language: &'static str,
}

/// Its `result`, the fields the layer reads.
#[derive(Deserialize)]
pub(crate) struct UserDetail {
    #[serde(default)]
    pub(crate) userid: String,
    #[serde(default)]
    pub(crate) unionid: String,
    #[serde(default)]
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) admin: bool,
    #[serde(default)]
    pub(crate) boss: bool,
    #[serde(default)]
    pub(crate) dept_id_list: Vec<i64>,
    #[serde(default)]
    pub(crate) leader_in_dept: Vec<LeaderInDept>,
    #[serde(default)]
    pub(crate) title: Option<String>,
    #[serde(default)]
    pub(crate) job_number: Option<String>,
    #[serde(default)]
    pub(crate) email: Option<String>,
    #[serde(default)]
    pub(crate) avatar: Option<String>,
    #[serde(default)]
    pub(crate) mobile: Option<String>,
}

/// One element of `leader_in_dept`: whether the user leads that department.
#[derive(Deserialize)]
pub(crate) struct LeaderInDept {
    #[serde(default)]
    pub(crate) dept_id: i64,
    #[serde(default)]
    pub(crate) leader: bool,
}

/// `POST {oapi}/topapi/v2/department/listparentbyuser`'s `result`.
#[derive(Deserialize)]
pub(crate) struct ParentsResult {
    #[serde(default)]
    pub(crate) parent_list: Vec<ParentChain>,
}

/// One of the user's departments with every department above it, nearest first.
#[derive(Deserialize)]
pub(crate) struct ParentChain {
    #[serde(default)]
    pub(crate) parent_dept_id_list: Vec<i64>,
}

/// One entry of `POST {oapi}/topapi/user/listadmin`'s `result`.
#[derive(Deserialize)]
pub(crate) struct AdminEntry {
    #[serde(default)]
    pub(crate) userid: String,
    #[serde(default, deserialize_with = "lenient_integer")]
    pub(crate) sys_level: Option<i64>,
}

fn lenient_seconds<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_u64().map(|_| i64::MAX))
            // `as` saturates: NaN is 0, huge values are i64::MAX.
            .or_else(|| n.as_f64().map(|f| f as i64)),
        serde_json::Value::String(s) => s.trim().parse::<f64>().ok().map(|f| f as i64),
        _ => None,
    })
}

fn lenient_integer<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::Number(n) => n.as_i64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    })
}

fn lenient_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) => Some(s),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

/// The effective errcode of an oapi answer: errcode 88 wraps the real one in `sub_code`, or only in
/// `errmsg` as `...[subcode=40014,submsg=...]`.
pub(crate) fn effective_errcode<R>(envelope: &OapiEnvelope<R>) -> Option<i64> {
    let errcode = envelope.errcode?;
    if errcode != 88 {
        return Some(errcode);
    }
    let from_sub_code = envelope
        .sub_code
        .as_deref()
        .and_then(|sub| sub.trim().parse().ok());
    let from_errmsg = || {
        let rest = &envelope.errmsg[envelope.errmsg.find("subcode=")? + "subcode=".len()..];
        let end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '-'))
            .unwrap_or(rest.len());
        rest[..end].parse().ok()
    };
    // An error never unwraps to success: a sub code of 0 leaves the answer as a plain 88.
    Some(
        from_sub_code
            .or_else(from_errmsg)
            .filter(|sub| *sub != 0)
            .unwrap_or(88),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(json: &str) -> OapiEnvelope {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn errcode_88_unwraps_sub_code_from_either_field() {
        let by_field = envelope(r#"{"errcode":88,"errmsg":"x","sub_code":"40014"}"#);
        assert_eq!(effective_errcode(&by_field), Some(40014));
        let by_number = envelope(r#"{"errcode":88,"sub_code":90018}"#);
        assert_eq!(effective_errcode(&by_number), Some(90018));
        let by_message =
            envelope(r#"{"errcode":88,"errmsg":"ding talk error[subcode=90018,submsg=busy]"}"#);
        assert_eq!(effective_errcode(&by_message), Some(90018));
        let bare = envelope(r#"{"errcode":88,"errmsg":"auth error"}"#);
        assert_eq!(effective_errcode(&bare), Some(88));
        let zero = envelope(r#"{"errcode":88,"sub_code":"0"}"#);
        assert_eq!(effective_errcode(&zero), Some(88));
        let plain = envelope(r#"{"errcode":40078}"#);
        assert_eq!(effective_errcode(&plain), Some(40078));
    }
}
