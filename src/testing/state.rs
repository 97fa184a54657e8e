//! DingTalk's rules as the fake server keeps them: the internal app and the third-party suite,
//! users per organisation, one-time codes, expiring tokens, and the per-app rate limit. The corp
//! token endpoints' answers are in `corp_tokens.rs`, the web login's in `web_login.rs`, the
//! contact answers in `contact.rs` (from the directory of `directory.rs`).

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::time::Duration;

use http::StatusCode;
use serde_json::json;
use tokio::time::Instant;

use super::accounts::WebLoginState;
use super::answers::{Answer, api_error_message, auth_error, errcode, fault_answer};
use super::call::Call;
use super::directory::Directory;
use super::fault::{Endpoint, Fault, FaultPlan};
use crate::user::AuthenticatedDingTalkUser;

pub(crate) use super::accounts::Corp;

struct IssuedCode {
    corp: Corp,
    userid: String,
    expires_at: Instant,
    spent: bool,
}

pub(crate) struct DingTalkState {
    pub(crate) app_key: String,
    pub(crate) app_secret: String,
    pub(crate) token_ttl: Duration,
    pub(crate) code_ttl: Duration,
    pub(crate) qps_limit: Option<u32>,
    /// Calls answered with the throttle because they were past `qps_limit`.
    pub(crate) throttled: u64,
    pub(crate) faults: FaultPlan,
    pub(crate) suite_key: String,
    pub(crate) suite_secret: String,
    pub(crate) suite_ticket: String,
    pub(crate) authorized_corps: HashSet<String>,
    /// Corps whose token endpoints answer with a fault, whatever the endpoint.
    pub(crate) corp_faults: HashMap<String, Fault>,
    pub(crate) corp_token_calls: HashMap<String, u64>,
    pub(super) users: HashMap<(Corp, String), AuthenticatedDingTalkUser>,
    codes: HashMap<String, IssuedCode>,
    /// Every token ever issued, its organisation, and when it expires; revoked ones are removed.
    pub(super) tokens: HashMap<String, (Corp, Instant)>,
    /// Every token ever issued, revoked ones included, for tests that look for leaks.
    pub(crate) issued_tokens: Vec<String>,
    /// The web login's accounts, auth codes and user tokens, and the JSAPI's signed-in user.
    pub(crate) web: WebLoginState,
    /// Each organisation's departments and its employees' places in them.
    pub(crate) directory: Directory,
    current_token: Option<String>,
    recent_calls: [VecDeque<Instant>; Endpoint::ALL.len()],
    random: RandomState,
    serial: u64,
}

impl DingTalkState {
    pub(crate) fn new(app_key: String, app_secret: String) -> Self {
        Self {
            app_key,
            app_secret,
            suite_key: super::MOCK_SUITE_KEY.to_owned(),
            suite_secret: super::MOCK_SUITE_SECRET.to_owned(),
            suite_ticket: "mock-suite-ticket-1".to_owned(),
            authorized_corps: HashSet::new(),
            corp_faults: HashMap::new(),
            corp_token_calls: HashMap::new(),
            token_ttl: Duration::from_secs(7200),
            code_ttl: Duration::from_secs(300),
            qps_limit: None,
            throttled: 0,
            faults: FaultPlan::default(),
            users: HashMap::new(),
            codes: HashMap::new(),
            tokens: HashMap::new(),
            issued_tokens: Vec::new(),
            web: WebLoginState::default(),
            directory: Directory::default(),
            current_token: None,
            recent_calls: Default::default(),
            random: RandomState::new(),
            serial: 0,
        }
    }

    /// The gateway's answer to a bad or missing token, in each of DingTalk's shapes in turn.
    pub(super) fn auth_error(&mut self, sub_code: i64, sub_msg: &str) -> Answer {
        let request_id = self.fresh_secret();
        let shape = self.serial();
        auth_error(shape, sub_code, sub_msg, &request_id)
    }

    /// A number that grows with every value handed out.
    pub(crate) fn serial(&mut self) -> u64 {
        self.serial += 1;
        self.serial
    }

    /// A fresh unguessable-enough value of 32 hex digits.
    pub(super) fn fresh_secret(&mut self) -> String {
        self.serial += 1;
        let high = self.random.hash_one(self.serial);
        let low = self.random.hash_one((self.serial, high));
        format!("{high:016x}{low:016x}")
    }

    /// Removes a user from an organisation: DingTalk no longer knows them (60121).
    pub(crate) fn remove_user(&mut self, corp: &Corp, userid: &str) -> bool {
        self.directory.forget(corp, userid);
        self.users
            .remove(&(corp.clone(), userid.to_owned()))
            .is_some()
    }

    pub(crate) fn add_user(&mut self, corp: Corp, user: AuthenticatedDingTalkUser) {
        self.users.insert((corp, user.userid().to_owned()), user);
    }

    pub(crate) fn issue_code(&mut self, corp: Corp, userid: &str) -> String {
        let code = self.fresh_secret();
        let expires_at = Instant::now() + self.code_ttl;
        self.codes.insert(
            code.clone(),
            IssuedCode {
                corp,
                userid: userid.to_owned(),
                expires_at,
                spent: false,
            },
        );
        code
    }

    pub(crate) fn expire_tokens(&mut self) {
        let now = Instant::now();
        self.tokens
            .values_mut()
            .for_each(|(_, expiry)| *expiry = now);
        self.web.expire_tokens(now);
    }

    pub(crate) fn revoke_tokens(&mut self) {
        self.tokens.clear();
        self.web.revoke_tokens();
        self.current_token = None;
    }

    /// The per-app QPS limit, like DingTalk's 20 calls a second per app and API.
    fn over_limit(&mut self, endpoint: Endpoint) -> bool {
        let Some(limit) = self.qps_limit else {
            return false;
        };
        let now = Instant::now();
        let window = &mut self.recent_calls[endpoint.index()];
        while window
            .front()
            .is_some_and(|at| now.duration_since(*at) >= Duration::from_secs(1))
        {
            window.pop_front();
        }
        if window.len() >= limit as usize {
            return true;
        }
        window.push_back(now);
        false
    }

    pub(crate) fn answer(&mut self, call: &Call) -> Answer {
        if self.over_limit(call.endpoint) {
            self.throttled += 1;
            return if call.endpoint.on_api_host() {
                // The new host's throttle: HTTP 403 with its `code` (real-answers T11).
                api_error_message(
                    StatusCode::FORBIDDEN,
                    "Forbidden.AccessDenied.QpsLimitForAppkeyAndApi",
                    "API QPS limit exceeded",
                    "mock",
                )
            } else {
                fault_answer(&Fault::SubCode(90018))
            };
        }
        match call.endpoint {
            Endpoint::AccessToken => self.access_token(call),
            Endpoint::GetToken => self.gettoken(call),
            Endpoint::GetUserInfo => self.getuserinfo(call),
            Endpoint::CorpToken => self.corp_token(call),
            Endpoint::CorpAccessToken => self.corp_access_token(call),
            Endpoint::LoginPage => self.login_page(call),
            Endpoint::UserAccessToken => self.user_access_token(call),
            Endpoint::UsersMe => self.users_me(call),
            Endpoint::GetByUnionId => self.get_by_unionid(call),
            Endpoint::UserGet => self.user_get(call),
            Endpoint::ListAdmin => self.list_admin(call),
            Endpoint::JsApiCode => self.jsapi_code(call),
            Endpoint::ListParentByUser => self.list_parent_by_user(call),
        }
    }

    /// Within validity the same token comes back with its life extended, as DingTalk does for
    /// internal apps.
    fn token_for_app(&mut self) -> String {
        let now = Instant::now();
        let current = self.current_token.clone().filter(|token| {
            self.tokens
                .get(token)
                .is_some_and(|(_, expiry)| now < *expiry)
        });
        let token = current.unwrap_or_else(|| {
            let fresh = self.fresh_secret();
            self.issued_tokens.push(fresh.clone());
            fresh
        });
        self.tokens
            .insert(token.clone(), (None, now + self.token_ttl));
        self.current_token = Some(token.clone());
        token
    }

    fn access_token(&mut self, call: &Call) -> Answer {
        let valid = call.field("appKey").as_deref() == Some(self.app_key.as_str())
            && call.field("appSecret").as_deref() == Some(self.app_secret.as_str());
        if !valid {
            return fault_answer(&Fault::InvalidCredentials);
        }
        let token = self.token_for_app();
        Answer::Json(
            StatusCode::OK,
            json!({ "accessToken": token, "expireIn": self.token_ttl.as_secs() }),
        )
    }

    fn gettoken(&mut self, call: &Call) -> Answer {
        let valid = call.query("appkey") == Some(self.app_key.as_str())
            && call.query("appsecret") == Some(self.app_secret.as_str());
        if !valid {
            return errcode(40089, "invalid appkey or appsecret");
        }
        let token = self.token_for_app();
        Answer::Json(
            StatusCode::OK,
            json!({ "errcode": 0, "errmsg": "ok", "access_token": token,
                    "expires_in": self.token_ttl.as_secs() }),
        )
    }

    /// The organisation of the legacy host's `access_token` query parameter, or the gateway's
    /// answer to a blank, unknown or expired one.
    pub(super) fn token_corp(&mut self, call: &Call) -> Result<Corp, Answer> {
        let token = call.query("access_token").filter(|token| !token.is_empty());
        let Some(token) = token else {
            return Err(self.auth_error(40000, "access_token is blank"));
        };
        match self.tokens.get(token) {
            None => Err(self.auth_error(40014, "不合法的access_token")),
            Some((_, expiry)) if Instant::now() >= *expiry => {
                Err(self.auth_error(42001, "access_token已过期"))
            }
            Some((corp, _)) => Ok(corp.clone()),
        }
    }

    fn getuserinfo(&mut self, call: &Call) -> Answer {
        let token_corp = match self.token_corp(call) {
            Ok(corp) => corp,
            Err(answer) => return answer,
        };
        let Some(code) = call.field("code") else {
            return errcode(40035, "missing parameter code");
        };
        let now = Instant::now();
        let Some(issued) = self
            .codes
            .get_mut(&code)
            // A code issued in another organisation does not exist for this token.
            .filter(|issued| !issued.spent && now < issued.expires_at && issued.corp == token_corp)
        else {
            return errcode(40078, "不存在的临时授权码");
        };
        issued.spent = true;
        let Some(user) = self.users.get(&(token_corp, issued.userid.clone())) else {
            return errcode(60121, "找不到该用户");
        };
        let mut result = json!({
            "userid": user.userid(),
            "name": user.name(),
            "unionid": user.unionid(),
            "device_id": user.device_id(),
            "sys": user.is_admin(),
            "sys_level": user.admin_level().sys_level(),
        });
        if let Some(associated) = user.associated_unionid() {
            result["associated_unionid"] = json!(associated);
        }
        let request_id = self.fresh_secret();
        Answer::Json(
            StatusCode::OK,
            json!({ "errcode": 0, "errmsg": "ok", "request_id": request_id, "result": result }),
        )
    }
}
