//! The web login's page requests, `GET /oauth2/auth` and the fake's `GET /oauth2/approve`: their
//! parameters checked as DingTalk checks them, who may sign in, and what approving does (an auth
//! code, handed to the app's callback).

use http::StatusCode;

use super::accounts::{Corp, corp_of};
use super::answers::Answer;
use super::call::Call;
use super::login_page::{self, Page};
use super::state::DingTalkState;

type Query = [(String, String)];

fn param<'a>(query: &'a Query, name: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

/// A login request whose parameters passed DingTalk's checks.
pub(crate) struct LoginRequest {
    pub(crate) client_id: String,
    pub(crate) redirect_uri: String,
    /// Optional for DingTalk; handed back untouched.
    pub(crate) state: Option<String>,
    /// The `exclusiveCorpId` of an `exclusiveLogin=true` request.
    pub(crate) exclusive_corp_id: Option<String>,
}

impl LoginRequest {
    /// The organisation whose members alone may sign in, if the request is exclusive.
    fn only(&self) -> Option<Corp> {
        self.exclusive_corp_id.as_deref().map(corp_of)
    }

    /// `redirect_uri` with these parameters and `state` added to its query.
    pub(crate) fn callback(&self, params: &[(&str, &str)]) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        query.extend_pairs(params);
        if let Some(state) = &self.state {
            query.append_pair("state", state);
        }
        let separator = if self.redirect_uri.contains('?') {
            '&'
        } else {
            '?'
        };
        format!("{}{separator}{}", self.redirect_uri, query.finish())
    }

    /// The fake's approve link for `unionid`: the same request, with the account chosen.
    pub(crate) fn approve_href(&self, unionid: &str) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        query.append_pair("redirect_uri", &self.redirect_uri);
        query.append_pair("response_type", "code");
        query.append_pair("client_id", &self.client_id);
        query.append_pair("scope", "openid");
        if let Some(state) = &self.state {
            query.append_pair("state", state);
        }
        query.append_pair("prompt", "consent");
        if let Some(corp_id) = &self.exclusive_corp_id {
            query.append_pair("exclusiveLogin", "true");
            query.append_pair("exclusiveCorpId", corp_id);
        }
        query.append_pair("account", unionid);
        format!("/oauth2/approve?{}", query.finish())
    }
}

/// Whether `uri` is an absolute http(s) URL, as DingTalk requires of `redirect_uri`.
fn is_absolute_http(uri: &str) -> bool {
    uri.parse::<http::Uri>().is_ok_and(|parsed| {
        matches!(parsed.scheme_str(), Some("http" | "https"))
            && parsed
                .authority()
                .is_some_and(|authority| !authority.host().is_empty())
    })
}

fn bad_parameter(name: &str) -> Answer {
    let message = format!("The parameter {name} is missing or wrong.");
    login_page::error_page(StatusCode::BAD_REQUEST, &message)
}

impl DingTalkState {
    /// The request, or the 400 page naming its first wrong parameter.
    fn login_request(&self, query: &Query) -> Result<LoginRequest, Answer> {
        let client_id = param(query, "client_id").unwrap_or_default();
        if !self.is_client(client_id, None) {
            return Err(bad_parameter("client_id"));
        }
        if param(query, "response_type") != Some("code") {
            return Err(bad_parameter("response_type"));
        }
        if param(query, "scope") != Some("openid") {
            return Err(bad_parameter("scope"));
        }
        let redirect_uri = param(query, "redirect_uri").unwrap_or_default();
        if !is_absolute_http(redirect_uri) {
            return Err(bad_parameter("redirect_uri"));
        }
        let exclusive_corp_id = match param(query, "exclusiveLogin") {
            Some("true") => match param(query, "exclusiveCorpId") {
                Some(corp_id) if !corp_id.is_empty() => Some(corp_id.to_owned()),
                _ => return Err(bad_parameter("exclusiveCorpId")),
            },
            _ => None,
        };
        Ok(LoginRequest {
            client_id: client_id.to_owned(),
            redirect_uri: redirect_uri.to_owned(),
            state: param(query, "state").map(str::to_owned),
            exclusive_corp_id,
        })
    }

    /// Signs `unionid` in: the callback URL with a fresh auth code, or the page refusing it.
    fn approve(&mut self, request: &LoginRequest, unionid: &str) -> Result<String, Answer> {
        let only = request.only();
        let Some(account) = self.account(unionid, only.as_ref()) else {
            if only.is_some() && self.account(unionid, None).is_some() {
                let message = "This account is not a member of this organisation.";
                return Err(login_page::error_page(StatusCode::FORBIDDEN, message));
            }
            return Err(bad_parameter("account"));
        };
        let code = self.issue_auth_code(&account, &request.client_id);
        Ok(request.callback(&[("authCode", &code)]))
    }

    /// `GET /oauth2/auth`: the account chooser, or with `approve=<unionid>` (for tests without a
    /// browser) a `302` to the callback with the account's auth code.
    pub(super) fn login_page(&mut self, call: &Call) -> Answer {
        let request = match self.login_request(&call.query) {
            Ok(request) => request,
            Err(answer) => return answer,
        };
        if let Some(unionid) = param(&call.query, "approve") {
            return match self.approve(&request, unionid) {
                Ok(callback) => Answer::Redirect(callback),
                Err(answer) => answer,
            };
        }
        let accounts = self.accounts(request.only().as_ref());
        let accounts: Vec<_> = accounts
            .into_iter()
            .map(|account| {
                let href = request.approve_href(&account.unionid);
                (account, href)
            })
            .collect();
        login_page::account_chooser(&accounts, &request.callback(&[("error", "access_denied")]))
    }

    /// The fake's own pages beside the login page: the approve button's target, which hands the
    /// code over by script as DingTalk's page does, and the JSAPI shim.
    pub(crate) fn page(&mut self, page: Page, query: &Query) -> Answer {
        match page {
            Page::Script => login_page::jsapi_script(),
            Page::Approve => {
                let request = match self.login_request(query) {
                    Ok(request) => request,
                    Err(answer) => return answer,
                };
                let unionid = param(query, "account").unwrap_or_default();
                match self.approve(&request, unionid) {
                    Ok(callback) => login_page::approved(&callback),
                    Err(answer) => answer,
                }
            }
        }
    }
}
