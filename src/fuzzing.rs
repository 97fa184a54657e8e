//! Entry points for the fuzz targets in `fuzz/` (feature `fuzzing`): the parsers behind the layer,
//! callable without a network. Not a stable API.

use http::StatusCode;
use http::request::Parts;

use crate::client::{read_access_token, read_userinfo};
use crate::error::AuthError;
use crate::extract::{CodeExtractor, CodeSource};
use crate::user::AuthenticatedDingTalkUser;

/// The code of a request, read from the default sources and a cookie named `code`.
pub fn extract_code(parts: &Parts) -> Result<Option<String>, AuthError> {
    let mut sources = CodeSource::defaults();
    sources.push(CodeSource::cookie("code"));
    Ok(CodeExtractor::new(sources)
        .extract(parts)?
        .map(|code| code.value.into_owned()))
}

/// What an answer of getuserinfo with this status and body means.
pub fn userinfo_answer(status: u16, body: &[u8]) -> Result<AuthenticatedDingTalkUser, String> {
    let status = StatusCode::from_u16(status).map_err(|error| error.to_string())?;
    read_userinfo(status, body)
}

/// What an answer of a token endpoint (`endpoint` picks which of the three) with this status and
/// body gives: how long the token is used, worked out as the token cache does.
pub fn access_token_answer(
    status: u16,
    body: &[u8],
    endpoint: u8,
) -> Result<std::time::Duration, AuthError> {
    let status = StatusCode::from_u16(status).map_err(|_| AuthError::missing_code())?;
    read_access_token(status, body, endpoint)
}
