//! The token login endpoint: `POST <path>` with a code answers a bearer token (the sealed
//! session), `POST <path>/refresh` with a valid token answers a new one, without DingTalk.

use std::sync::Arc;

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderValue, Response, header};
use http_body_util::{BodyExt, Limited};
use serde::Deserialize;

use super::authenticator::{Authenticator, Login};
use super::token_route::TokenRoute;
use crate::error::AuthError;
use crate::key::IdentityKeyRef;
use crate::metrics::Outcome;
use crate::session::{IssuedToken, bearer_token};
use crate::user::AuthenticatedDingTalkUser;

/// The largest login body read: a code and a corp id fit many times over.
pub(crate) const MAX_LOGIN_BODY: usize = 4096;

/// What a login body may hold: the code and, for third-party apps, the corp id.
#[derive(Default, Deserialize)]
struct LoginBody {
    code: Option<String>,
    #[serde(alias = "corpId")]
    corp_id: Option<String>,
}

impl LoginBody {
    /// A JSON object or a form, by the `Content-Type`; an empty body is an empty login (the code
    /// may then come from the layer's usual sources).
    fn parse(parts: &Parts, body: &[u8]) -> Result<Self, AuthError> {
        if body.is_empty() {
            return Ok(Self::default());
        }
        let content_type = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default();
        let essence = content_type.split(';').next().unwrap_or_default().trim();
        if essence.eq_ignore_ascii_case("application/json") {
            serde_json::from_slice(body).map_err(|_| {
                AuthError::invalid_request(r#"the login body must be {"code": "..."}"#)
            })
        } else if essence.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
            let mut login = Self::default();
            for (key, value) in form_urlencoded::parse(body) {
                match &*key {
                    "code" => only_one(&mut login.code, value, AuthError::ambiguous_code)?,
                    "corpId" | "corp_id" => {
                        only_one(&mut login.corp_id, value, AuthError::ambiguous_corp_id)?;
                    }
                    _ => {}
                }
            }
            Ok(login)
        } else {
            Err(AuthError::invalid_request(
                "the login body must be application/json or application/x-www-form-urlencoded",
            ))
        }
    }
}

/// Keeps `value` in `slot`; a second, different value makes the login ambiguous (which of two
/// people would it sign in?), while an identical repeat is harmless.
fn only_one(
    slot: &mut Option<String>,
    value: std::borrow::Cow<'_, str>,
    ambiguous: fn() -> AuthError,
) -> Result<(), AuthError> {
    match slot {
        Some(held) if *held != value => Err(ambiguous()),
        Some(_) => Ok(()),
        None => {
            *slot = Some(value.into_owned());
            Ok(())
        }
    }
}

impl Authenticator {
    /// A login body, at most [`MAX_LOGIN_BODY`] bytes. A body that never finishes must not hold
    /// the request (and its connection) open: it has the upstream budget to arrive.
    pub(crate) async fn read_login_body<B>(&self, body: B) -> Result<Bytes, AuthError>
    where
        B: http_body::Body,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let deadline = self.client.upstream_timeout();
        let read = Limited::new(body, MAX_LOGIN_BODY).collect();
        match tokio::time::timeout(deadline, read).await {
            Ok(Ok(collected)) => Ok(collected.to_bytes()),
            Ok(Err(_)) => Err(AuthError::invalid_request(
                "the login body could not be read, or is larger than 4 KiB",
            )),
            Err(_elapsed) => Err(AuthError::new(
                crate::error::AuthErrorKind::RequestTimeout,
                "the login body did not arrive in time",
            )),
        }
    }

    /// Answers a request to the token endpoint whose body (at most [`MAX_LOGIN_BODY`] bytes) was
    /// read, or the error of reading it.
    pub(crate) async fn answer_token_route(
        self: Arc<Self>,
        route: TokenRoute,
        parts: Parts,
        body: Result<Bytes, AuthError>,
    ) -> Response<Bytes> {
        let answer = match (route, body) {
            (_, Err(error)) => Err(error),
            (TokenRoute::Login, Ok(body)) => self.clone().token_login(&parts, &body).await,
            (TokenRoute::Refresh, Ok(_)) => self.refresh_token(&parts).await,
        };
        answer.unwrap_or_else(|error| {
            tracing::debug!(error = %error, "token endpoint refused the request");
            self.rejection(&error)
        })
    }

    /// A code (from the body, else the usual sources) for a token. A code starts one session
    /// only, as a cookie or as a token: a second login with it is `code_rejected`.
    async fn token_login(
        self: Arc<Self>,
        parts: &Parts,
        body: &[u8],
    ) -> Result<Response<Bytes>, AuthError> {
        let session = self.session.clone().ok_or_else(internal)?;
        let login = LoginBody::parse(parts, body)?;
        // The body's code, else the usual sources'; a body code that any source contradicts is
        // ambiguous.
        let code = match login.code {
            Some(code) if self.extractor.any_other_than(parts, &code) => {
                return Err(AuthError::ambiguous_code());
            }
            Some(code) => code,
            None => match self.extractor.extract(parts)? {
                Some(found) => found.value.into_owned(),
                None => return Err(AuthError::missing_code()),
            },
        };
        let corp_id = match &self.corps {
            None => None,
            Some(corps) => match login.corp_id {
                Some(corp_id) if corps.extractor.any_other_than(parts, &corp_id) => {
                    return Err(AuthError::ambiguous_corp_id());
                }
                Some(corp_id) => Some(corp_id),
                None => match corps.extractor.extract(parts)? {
                    Some(found) => Some(found.value.into_owned()),
                    None => return Err(AuthError::missing_corp_id()),
                },
            },
        };
        let key = IdentityKeyRef::checked(corp_id.as_deref(), &code)?;
        let login = Login {
            key: key.to_owned(),
            caller: self.caller_of(parts),
            clean_url: None,
        };
        let (user, after) = match self.clone().authenticate(login).await {
            Ok(found) => found,
            // Already rendered: the layer's renderer made it.
            Err(response) => return Ok(response),
        };
        if !after.start_session {
            tracing::debug!("a code that already started a session: no second token");
            return Err(AuthError::code_rejected());
        }
        // A lifetime of at least a millisecond always leaves one.
        let issued = session.issue_token(&user).ok_or_else(internal)?;
        self.metrics.count(Outcome::TokenLogin);
        Ok(token_response(&user, &issued))
    }

    /// A valid token for a new one, with no call to DingTalk; a third-party app's corp is asked
    /// of the directory again first.
    async fn refresh_token(&self, parts: &Parts) -> Result<Response<Bytes>, AuthError> {
        let session = self.session.as_deref().ok_or_else(internal)?;
        let token = bearer_token(&parts.headers).ok_or_else(AuthError::invalid_token)?;
        let access = self.client.access();
        let revoked = |user: &AuthenticatedDingTalkUser, auth| {
            access.is_revoked(user.corp_id(), user.userid(), auth)
        };
        let (user, issued) = session
            .refresh_token(token, revoked)
            .ok_or_else(AuthError::invalid_token)?;
        if let (Some(corps), Some(corp_id)) = (&self.corps, user.corp_id())
            && !corps.ask(corp_id, self.client.upstream_timeout()).await?
        {
            return Err(AuthError::corp_not_authorized());
        }
        self.metrics.count(Outcome::TokenRefresh);
        Ok(token_response(&user, &issued))
    }
}

fn internal() -> AuthError {
    AuthError::new(
        crate::error::AuthErrorKind::Internal,
        "the token endpoint has no session configuration",
    )
}

/// `200 {"token", "token_type", "expires_in", "expires_at", "user"}`, never cached (RFC 6749,
/// section 5.1).
fn token_response(user: &AuthenticatedDingTalkUser, issued: &IssuedToken) -> Response<Bytes> {
    let body = serde_json::json!({
        "token": issued.token,
        "token_type": "Bearer",
        "expires_in": issued.expires_in,
        "expires_at": issued.expires_at,
        "user": user,
    });
    let mut response = Response::new(Bytes::from(body.to_string()));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}
