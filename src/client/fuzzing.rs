//! For the fuzz targets (feature `fuzzing`): DingTalk's answers read as the client reads them.

use std::time::Duration;

use super::oapi::CallFailure;
use super::{token, token_answer, userinfo};
use crate::error::AuthError;
use crate::user::AuthenticatedDingTalkUser;

/// For the fuzz targets: getuserinfo's answer read as the client reads it.
pub(crate) fn read_userinfo(
    status: http::StatusCode,
    body: &[u8],
) -> Result<AuthenticatedDingTalkUser, String> {
    match userinfo::read(status, body, None) {
        Ok(user) => Ok(user),
        Err(CallFailure::Final(error)) => Err(error.to_string()),
        Err(CallFailure::Busy) => Err("busy".to_owned()),
        Err(CallFailure::TokenRejected(errcode)) => Err(format!("token rejected: {errcode}")),
    }
}

/// For the fuzz targets: an access token endpoint's answer read as the client reads it, and the
/// token's refresh and expiry worked out from it as the cache does.
pub(crate) fn read_access_token(
    status: http::StatusCode,
    body: &[u8],
    endpoint: u8,
) -> Result<Duration, AuthError> {
    let endpoint = match endpoint % 3 {
        0 => token_answer::TokenEndpoint::App,
        1 => token_answer::TokenEndpoint::CorpUnified,
        _ => token_answer::TokenEndpoint::CorpBySuiteTicket,
    };
    let fetched = token_answer::read(status, body, endpoint).map_err(|refusal| refusal.error)?;
    Ok(token::TokenCache::lifetime_of(&fetched))
}
