//! The call to getuserinfo, and what its answer means: a user, a token to refresh, a pause, or a
//! final error.

use std::time::Duration;

use http::StatusCode;

use super::token::AccessToken;
use super::wire::{self, OapiEnvelope, UserInfoRequest};
use super::{DingTalkClient, transport_error};
use crate::error::{AuthError, AuthErrorKind};
use crate::user::{AdminLevel, AuthenticatedDingTalkUser};

/// The longest IP ban honoured, in minutes: DingTalk's are 5.
const MAX_BAN_MINUTES: i64 = 60;

/// What a throttled answer without its own wait asks for.
pub(crate) const DEFAULT_THROTTLE_WAIT: Duration = Duration::from_secs(1);

/// Why one call to getuserinfo did not give a user, before the exchange decides what to do next.
pub(crate) enum CallFailure {
    /// DingTalk refused the access token: drop it, fetch another, try once more.
    TokenRejected(i64),
    /// DingTalk answered "system busy" (-1): pause and try again.
    Busy,
    /// Nothing to retry.
    Final(AuthError),
}

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
    // JSON is UTF-8 throughout; serde would skip invalid bytes inside fields it ignores.
    let parsed = std::str::from_utf8(body).map(serde_json::from_str::<OapiEnvelope>);
    let Ok(Ok(envelope)) = parsed else {
        tracing::warn!(%status, "getuserinfo answered something that is not JSON");
        return Err(CallFailure::Final(upstream_error(if status.is_success() {
            "DingTalk answered something that is not its JSON"
        } else {
            "DingTalk answered with an HTTP error"
        })));
    };
    let Some(errcode) = wire::effective_errcode(&envelope) else {
        if let (Some(_), Some(wait)) = (envelope.status, envelope.wait) {
            // DingTalk documents the ban's `wait` in minutes (5 for its per-IP limit): calling
            // again sooner, while the IP is still banned, can lengthen the ban.
            let minutes = wait.clamp(1, MAX_BAN_MINUTES).unsigned_abs();
            tracing::warn!(
                wait_minutes = minutes,
                "DingTalk's gateway is refusing this server's IP (too many calls); no call to \
                 DingTalk until the ban ends"
            );
            return Err(CallFailure::Final(AuthError::throttled(
                Duration::from_secs(minutes * 60),
                "DingTalk is refusing calls from this server for a while",
            )));
        }
        tracing::warn!(%status, "getuserinfo answered JSON without an errcode");
        return Err(CallFailure::Final(upstream_error(
            "DingTalk answered something that is not its JSON",
        )));
    };
    if !status.is_success() {
        tracing::warn!(%status, errcode, "getuserinfo answered with an HTTP error");
        return Err(CallFailure::Final(
            upstream_error("DingTalk answered with an HTTP error").with_errcode(errcode),
        ));
    }
    match errcode {
        0 => user_from(envelope, corp_id).map_err(CallFailure::Final),
        -1 => Err(CallFailure::Busy),
        // 88 without a sub code says "auth error" (in practice: an invalid access token).
        40001 | 40014 | 42001 | 33001 | 88 => Err(CallFailure::TokenRejected(errcode)),
        40078 | 42008 => Err(CallFailure::Final(
            AuthError::code_rejected().with_errcode(errcode),
        )),
        90001..=90018 => {
            tracing::warn!(errcode, "DingTalk is throttling this app");
            Err(CallFailure::Final(
                AuthError::throttled(DEFAULT_THROTTLE_WAIT, "DingTalk is throttling this app")
                    .with_errcode(errcode),
            ))
        }
        60011 => Err(CallFailure::Final(misconfigured(
            errcode,
            "the app lacks the permission qyapi_base; grant it in the DingTalk developer console",
        ))),
        60020 => {
            tracing::error!(
                errcode,
                errmsg = %envelope.errmsg,
                "this server's IP is not in the app's whitelist; add it in the DingTalk developer console"
            );
            Err(CallFailure::Final(
                AuthError::new(
                    AuthErrorKind::Misconfigured,
                    "DingTalk refused this server's IP address",
                )
                .with_errcode(errcode)
                .with_seen_ip(seen_ip(&envelope.errmsg)),
            ))
        }
        // 22: an unknown API path; 40000 (inside 88) and 41001: no access token sent.
        22 | 40000 | 41001 | 40035 | 43004 => {
            tracing::error!(
                errcode,
                "DingTalk rejected the form of getuserinfo: a bug in tower-dingtalk-auth, not \
                 your configuration; please report it"
            );
            Err(CallFailure::Final(
                AuthError::new(
                    AuthErrorKind::Internal,
                    "DingTalk rejected the request's form",
                )
                .with_errcode(errcode),
            ))
        }
        other => {
            tracing::warn!(errcode = other, "getuserinfo failed");
            Err(CallFailure::Final(
                upstream_error("DingTalk refused the exchange").with_errcode(other),
            ))
        }
    }
}

fn user_from(
    envelope: OapiEnvelope,
    corp_id: Option<&str>,
) -> Result<AuthenticatedDingTalkUser, AuthError> {
    let result = envelope
        .result
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

/// The address in a 60020 message (`...,request ip=120.230.136.230 appKey(...)`).
fn seen_ip(errmsg: &str) -> Option<String> {
    let start = errmsg.find("ip=")? + "ip=".len();
    let candidate: String = errmsg[start..]
        .chars()
        .take_while(|c| c.is_ascii_hexdigit() || *c == '.' || *c == ':')
        .collect();
    candidate.parse::<std::net::IpAddr>().ok()?;
    Some(candidate)
}

pub(crate) fn upstream_error(message: &'static str) -> AuthError {
    AuthError::new(AuthErrorKind::Upstream, message)
}

fn misconfigured(errcode: i64, fix: &'static str) -> AuthError {
    tracing::error!(errcode, "DingTalk refused the call: {fix}");
    AuthError::new(
        AuthErrorKind::Misconfigured,
        "DingTalk refused the app's configuration",
    )
    .with_errcode(errcode)
}
