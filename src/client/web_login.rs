//! DingTalk's web login (OAuth2, in any browser) as client calls: the authorize URL, a web
//! login's `authCode` for the user's token, and that token for the company's employee, read
//! through the user-detail calls in `contact.rs`.

use std::fmt;

use reqwest::Url;

use super::token_answer::{self, TokenEndpoint};
use super::wire::{Me, UserTokenRequest, UserTokenResponse};
use super::{DingTalkClient, ExchangeBudget, transport_error};
use crate::error::AuthError;
use crate::key::{IdentityKeyRef, validate_corp_id};
use crate::login_method::LoginMethod;
use crate::session::LOGIN_STATE_LIFETIME;
use crate::user::AuthenticatedDingTalkUser;

/// The corp id under which login states are marked in the shared store, apart from codes.
const LOGIN_STATE_NAMESPACE: &str = "web-login-state";

/// The largest answer read from the api host's user endpoints.
const MAX_ANSWER: usize = 64 * 1024;

/// Where the web login's calls go, resolved when the client is built.
pub(crate) struct WebLoginUrls {
    pub(crate) authorize: Url,
    pub(crate) user_token: Url,
    pub(crate) me: Url,
}

/// A user's token from a web login, and the organisation the account signed in to. The token is a
/// secret: `Debug` never shows it, and it is dropped once the employee is read.
pub(crate) struct UserToken {
    secret: String,
    /// The organisation DingTalk names; required (and checked) for third-party apps.
    pub(crate) corp_id: Option<String>,
}

impl fmt::Debug for UserToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserToken")
            .field("secret", &"<redacted>")
            .field("corp_id", &self.corp_id)
            .finish()
    }
}

impl DingTalkClient {
    /// DingTalk's login page for this app: back to `redirect_uri` with `authCode` and `state`.
    /// With `exclusive_corp`, only that organisation's accounts may sign in.
    pub(crate) fn authorize_url(
        &self,
        redirect_uri: &str,
        state: &str,
        exclusive_corp: Option<&str>,
    ) -> Url {
        let mut url = self.inner.web.authorize.clone();
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("redirect_uri", redirect_uri)
                .append_pair("response_type", "code")
                .append_pair("client_id", self.app_key())
                .append_pair("scope", "openid")
                .append_pair("state", state)
                .append_pair("prompt", "consent");
            if let Some(corp) = exclusive_corp {
                query
                    .append_pair("exclusiveLogin", "true")
                    .append_pair("exclusiveCorpId", corp);
            }
        }
        url
    }

    /// Whether a web login's `state` comes back for the first time: across every layer on this
    /// client and, with a shared store, every replica (a replayed callback is refused before
    /// DingTalk, even if DingTalk were kind). The states seen are kept for their lifetime.
    pub(crate) async fn first_use_of_state(&self, state: &str) -> bool {
        let fresh = self
            .inner
            .login_states
            .entry_by_ref(state)
            .or_insert(())
            .await
            .is_fresh();
        if !fresh {
            return false;
        }
        let (Some(store), Ok(key)) = (
            self.identities().store(),
            IdentityKeyRef::checked(Some(LOGIN_STATE_NAMESPACE), state),
        ) else {
            return true;
        };
        let first = store
            .first_login_state(self.app_key(), &key.to_owned(), LOGIN_STATE_LIFETIME)
            .await;
        // The store did not answer: this replica decides alone.
        first.unwrap_or(true)
    }

    /// The organisation an internal app's web login is limited to: the configured corp id.
    pub(crate) fn own_corp_id(&self) -> Option<&str> {
        self.inner.corp_id.as_deref()
    }

    /// `POST {api}/v1.0/oauth2/userAccessToken`: a web login's `authCode` for the user's token,
    /// under the client's limits. DingTalk spends the `authCode` when the call arrives: a second
    /// try with it is refused (401 `code_rejected`), so the call runs to its answer.
    pub(crate) async fn user_token(
        &self,
        auth_code: &str,
        budget: &ExchangeBudget,
    ) -> Result<UserToken, AuthError> {
        let (key, secret) = self.inner.app.credentials();
        let in_flight = self.turn(budget).await?;
        let response = self
            .inner
            .http
            .post(self.inner.web.user_token.clone())
            .timeout(self.inner.answer_timeout)
            .json(&UserTokenRequest {
                client_id: key,
                client_secret: secret,
                code: auth_code,
                grant_type: "authorization_code",
            })
            .send()
            .await
            .map_err(|error| transport_error("userAccessToken", error))?;
        let status = response.status();
        let bytes = read_limited(response, "userAccessToken").await?;
        drop(in_flight);
        if status.is_success()
            && let Ok(token) = serde_json::from_slice::<UserTokenResponse>(&bytes)
            && !token.access_token.is_empty()
        {
            let corp_id = token.corp_id.filter(|corp| validate_corp_id(corp).is_ok());
            return Ok(UserToken {
                secret: token.access_token,
                corp_id,
            });
        }
        // Errors are read as the token endpoints' are (credentials, throttles, bugs); anything
        // else DingTalk refuses on the client's side is the `authCode`: spent, expired or forged.
        let refusal = token_answer::read(status, &bytes, TokenEndpoint::User)
            .err()
            .ok_or_else(|| super::oapi::upstream_error("DingTalk answered an empty token"))?;
        if status.is_client_error() && refusal.is_only_upstream() && !refusal.is_dingtalks_own() {
            tracing::debug!(%status, "DingTalk refused a web login's authCode");
            return Err(AuthError::code_rejected());
        }
        refusal.log(&format!("web login of app key {:?}", self.app_key()));
        self.pause_if_throttled(&refusal.error);
        Err(refusal.error)
    }

    /// The company's employee behind a user token: the account's unionid (`users/me`), its
    /// userid in the organisation (`getbyunionid`: an account outside it is 403 `not_a_member`),
    /// then name and administrator rights (`v2/user/get`, `listadmin` cached).
    pub(crate) async fn employee(
        &self,
        token: UserToken,
        budget: &ExchangeBudget,
    ) -> Result<AuthenticatedDingTalkUser, AuthError> {
        let corp_id = match (self.is_third_party(), token.corp_id.clone()) {
            (false, _) => None,
            (true, Some(corp_id)) => Some(corp_id),
            (true, None) => {
                tracing::warn!("DingTalk's user token named no organisation");
                return Err(AuthError::missing_corp_id());
            }
        };
        let unionid = self.me(&token, budget).await?;
        drop(token);
        let corp_id = corp_id.as_deref();
        let userid = self.userid_by_unionid(corp_id, &unionid, budget).await?;
        let detail = self.user_detail(corp_id, &userid, budget).await?;
        // The user DingTalk describes must be the account that signed in.
        if !detail.unionid.is_empty() && detail.unionid != unionid {
            tracing::warn!("user/get answered another account than the one that signed in");
            return Err(super::oapi::upstream_error(
                "DingTalk answered another account than the one that signed in",
            ));
        }
        let level = self.admin_level(corp_id, &userid, &detail, budget).await?;
        let mut user = AuthenticatedDingTalkUser::builder(userid, detail.name)
            .unionid(unionid)
            .admin_level(level)
            .admin(detail.admin || detail.boss)
            .login_method(LoginMethod::WebLogin);
        if let Some(corp_id) = corp_id.or(self.inner.corp_id.as_deref()) {
            user = user.corp_id(corp_id);
        }
        Ok(user.build())
    }

    /// `GET {api}/v1.0/contact/users/me`: the account's unionid.
    async fn me(&self, token: &UserToken, budget: &ExchangeBudget) -> Result<String, AuthError> {
        let in_flight = self.turn(budget).await?;
        let response = self
            .inner
            .http
            .get(self.inner.web.me.clone())
            .timeout(self.inner.answer_timeout)
            .header("x-acs-dingtalk-access-token", &token.secret)
            .send()
            .await
            .map_err(|error| transport_error("users/me", error))?;
        let status = response.status();
        let bytes = read_limited(response, "users/me").await?;
        drop(in_flight);
        if status.is_success()
            && let Ok(me) = serde_json::from_slice::<Me>(&bytes)
            && !me.union_id.is_empty()
        {
            return Ok(me.union_id);
        }
        // The api host's errors (a throttle is a 403 with its `code`) read as its token
        // endpoints' are; anything else is DingTalk failing on a token it just issued.
        let error = match token_answer::read(status, &bytes, TokenEndpoint::User) {
            Err(refusal) if refusal.error.kind() == crate::error::AuthErrorKind::Throttled => {
                refusal.log("users/me");
                refusal.error
            }
            _ => {
                tracing::warn!(%status, "users/me gave no unionId for a token DingTalk just issued");
                super::oapi::upstream_error("DingTalk did not say who signed in")
            }
        };
        self.pause_if_throttled(&error);
        Err(error)
    }

    /// A turn under the client's limits, within the budget.
    pub(crate) async fn turn(
        &self,
        budget: &ExchangeBudget,
    ) -> Result<tokio::sync::SemaphorePermit<'_>, AuthError> {
        // A turn that is free at once must not send a call past the budget either.
        if tokio::time::Instant::now() >= budget.send_by {
            return Err(self.too_slow());
        }
        tokio::time::timeout_at(budget.send_by, self.inner.limits.admit(&budget.caller))
            .await
            .map_err(|_elapsed| self.too_slow())?
    }
}

/// An answer's body, at most [`MAX_ANSWER`] bytes.
async fn read_limited(
    response: reqwest::Response,
    endpoint: &'static str,
) -> Result<bytes::Bytes, AuthError> {
    if response
        .content_length()
        .is_some_and(|len| len > MAX_ANSWER as u64)
    {
        return Err(super::oapi::upstream_error(
            "DingTalk answered more than a user",
        ));
    }
    let bytes = response
        .bytes()
        .await
        .map_err(|error| transport_error(endpoint, error))?;
    if bytes.len() > MAX_ANSWER {
        return Err(super::oapi::upstream_error(
            "DingTalk answered more than a user",
        ));
    }
    Ok(bytes)
}
