//! The fake DingTalk's web login (OAuth2 outside the DingTalk client): DingTalk accounts, the
//! one-time auth codes the login page issues, the user access tokens they are exchanged for, and
//! the answers of `userAccessToken`, `users/me` and the JSAPI shim's code endpoint. The legacy
//! host's contact answers (getbyunionid, user/get, listadmin) are in `contact.rs`.

use http::StatusCode;
use serde_json::json;
use tokio::time::Instant;

use super::accounts::{Account, AuthCode, Corp, Membership, UserToken, employee_unionid};
use super::answers::{Answer, api_error_message};
use super::call::Call;
use super::state::DingTalkState;

impl DingTalkState {
    /// Every account that may sign in, one per unionid: with `only`, that organisation's
    /// employees; else the internal employees, then each corp's users (by corp id), then outsiders.
    /// An account in several organisations signs in to the first.
    pub(crate) fn accounts(&self, only: Option<&Corp>) -> Vec<Account> {
        let mut employees: Vec<_> = self
            .users
            .iter()
            .filter(|((corp, _), _)| only.is_none_or(|only| only == corp))
            .collect();
        employees.sort_by_key(|(key, _)| *key);
        let employees = employees.into_iter().map(|((corp, userid), user)| Account {
            unionid: employee_unionid(user),
            name: user.name().to_owned(),
            membership: Membership::Employee(corp.clone(), userid.clone()),
        });
        let outsiders =
            self.web
                .outsiders
                .iter()
                .filter(|_| only.is_none())
                .map(|(unionid, nick)| Account {
                    unionid: unionid.clone(),
                    name: nick.clone(),
                    membership: Membership::Outsider,
                });
        let mut accounts: Vec<Account> = Vec::new();
        for account in employees.chain(outsiders) {
            if !accounts.iter().any(|seen| seen.unionid == account.unionid) {
                accounts.push(account);
            }
        }
        accounts
    }

    /// The account with `unionid`, among those [`accounts`](Self::accounts) lists for `only`.
    pub(crate) fn account(&self, unionid: &str, only: Option<&Corp>) -> Option<Account> {
        self.accounts(only)
            .into_iter()
            .find(|account| account.unionid == unionid)
    }

    /// Issues a one-time auth code signing `account` in, for the app `client_id`.
    pub(crate) fn issue_auth_code(&mut self, account: &Account, client_id: &str) -> String {
        let code = self.fresh_secret();
        let issued = AuthCode {
            unionid: account.unionid.clone(),
            nick: account.name.clone(),
            corp_id: account.corp_id(),
            client_id: client_id.to_owned(),
            expires_at: Instant::now() + self.code_ttl,
            spent: false,
        };
        self.web.auth_codes.insert(code.clone(), issued);
        code
    }

    /// Whether `client_id` and `secret` are the internal app's or the suite's.
    pub(crate) fn is_client(&self, client_id: &str, secret: Option<&str>) -> bool {
        let app = client_id == self.app_key && secret.is_none_or(|s| s == self.app_secret);
        let suite = client_id == self.suite_key && secret.is_none_or(|s| s == self.suite_secret);
        app || suite
    }

    /// `POST /v1.0/oauth2/userAccessToken`. The error shapes are reconstructed from DingTalk's
    /// documentation and peers' code (DingTalk cannot be reached from here), not captured live.
    pub(super) fn user_access_token(&mut self, call: &Call) -> Answer {
        let request_id = self.fresh_secret();
        let client_id = call.field("clientId").unwrap_or_default();
        if !self.is_client(
            &client_id,
            Some(&call.field("clientSecret").unwrap_or_default()),
        ) {
            let message = "无效的clientId或者clientSecret";
            return api_error_message(
                StatusCode::BAD_REQUEST,
                "invalidClientIdOrSecret",
                message,
                &request_id,
            );
        }
        if call.field("grantType").as_deref() != Some("authorization_code") {
            let message = "不支持的grantType";
            return api_error_message(
                StatusCode::BAD_REQUEST,
                "unsupported.grant.type",
                message,
                &request_id,
            );
        }
        let now = Instant::now();
        let code = call.field("code").unwrap_or_default();
        // Spent the moment the call arrives, as getuserinfo's codes are; a code issued to another
        // app does not exist for this one.
        let issued = self
            .web
            .auth_codes
            .get_mut(&code)
            .filter(|issued| issued.client_id == client_id);
        let Some(issued) = issued.filter(|issued| !issued.spent && now < issued.expires_at) else {
            let message = "不合法的临时授权码";
            return api_error_message(
                StatusCode::BAD_REQUEST,
                "invalidAuthCode",
                message,
                &request_id,
            );
        };
        issued.spent = true;
        let (unionid, nick, corp_id) = (
            issued.unionid.clone(),
            issued.nick.clone(),
            issued.corp_id.clone(),
        );
        let access_token = self.fresh_secret();
        let refresh_token = self.fresh_secret();
        self.issued_tokens.push(access_token.clone());
        self.issued_tokens.push(refresh_token.clone());
        let expires_at = now + self.token_ttl;
        let token = UserToken {
            unionid,
            nick,
            expires_at,
        };
        self.web.user_tokens.insert(access_token.clone(), token);
        Answer::Json(
            StatusCode::OK,
            json!({ "accessToken": access_token, "refreshToken": refresh_token,
                    "expireIn": self.token_ttl.as_secs(), "corpId": corp_id }),
        )
    }

    /// `GET /v1.0/contact/users/me`: the account behind the user token in
    /// `x-acs-dingtalk-access-token`. Its contact details are made up, and nobody's.
    pub(super) fn users_me(&mut self, call: &Call) -> Answer {
        let request_id = self.fresh_secret();
        let token = call
            .header("x-acs-dingtalk-access-token")
            .unwrap_or_default();
        let now = Instant::now();
        let Some(token) = self
            .web
            .user_tokens
            .get(token)
            .filter(|token| now < token.expires_at)
        else {
            let message = "不合法的access_token";
            return api_error_message(
                StatusCode::UNAUTHORIZED,
                "InvalidAuthentication",
                message,
                &request_id,
            );
        };
        let local: String = token
            .unionid
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect();
        Answer::Json(
            StatusCode::OK,
            json!({
                "nick": token.nick,
                "avatarUrl": "",
                // "100" starts no Chinese mobile number; example.com is reserved for examples.
                "mobile": "10000000000",
                "openId": format!("openid-{}", token.unionid),
                "unionId": token.unionid,
                "email": format!("{local}@example.com"),
                "stateCode": "86",
            }),
        )
    }

    /// `GET /jsapi/requestAuthCode`: a code for the user signed in to the fake DingTalk client, the
    /// same code getuserinfo exchanges, in the JSAPI's own shapes.
    pub(super) fn jsapi_code(&mut self, _call: &Call) -> Answer {
        let Some((corp, userid)) = self.web.jsapi_user.clone() else {
            return Answer::Json(
                StatusCode::OK,
                json!({ "errorCode": "7",
                        "errorMessage": "not signed in to the DingTalk client (fake)" }),
            );
        };
        let code = self.issue_code(corp, &userid);
        Answer::Json(StatusCode::OK, json!({ "code": code }))
    }
}
