//! What the fake DingTalk can be told to do wrong: [`Fault`], and where: [`Endpoint`].

use std::time::Duration;

/// An endpoint of the fake DingTalk, for counting calls and injecting faults.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Endpoint {
    /// `POST /v1.0/oauth2/accessToken`: an internal app's access token.
    AccessToken,
    /// `GET /gettoken`: the legacy access token endpoint.
    GetToken,
    /// `POST /topapi/v2/user/getuserinfo`: the code exchange.
    GetUserInfo,
    /// `POST /v1.0/oauth2/{corpId}/token`: a third-party app's token for one corp.
    CorpToken,
    /// `POST /v1.0/oauth2/corpAccessToken`: a third-party app's token for one corp, by suite ticket.
    CorpAccessToken,
    /// `GET /oauth2/auth`: the web login page (DingTalk's `login.dingtalk.com`).
    LoginPage,
    /// `POST /v1.0/oauth2/userAccessToken`: a web login's auth code for a user access token.
    UserAccessToken,
    /// `GET /v1.0/contact/users/me`: the DingTalk account behind a user access token.
    UsersMe,
    /// `POST /topapi/user/getbyunionid`: the organisation's userid of an account, if it has one.
    GetByUnionId,
    /// `POST /topapi/v2/user/get`: an employee's details.
    UserGet,
    /// `POST /topapi/user/listadmin`: the organisation's administrators.
    ListAdmin,
    /// `GET /jsapi/requestAuthCode`: where the fake JSAPI script gets a code for its signed-in user.
    JsApiCode,
    /// `POST /topapi/v2/department/listparentbyuser`: each of a user's departments with those
    /// above it.
    ListParentByUser,
}

impl Endpoint {
    /// Every endpoint, each at its own [`index`](Self::index).
    pub(crate) const ALL: [Self; 13] = [
        Self::AccessToken,
        Self::GetToken,
        Self::GetUserInfo,
        Self::CorpToken,
        Self::CorpAccessToken,
        Self::LoginPage,
        Self::UserAccessToken,
        Self::UsersMe,
        Self::GetByUnionId,
        Self::UserGet,
        Self::ListAdmin,
        Self::JsApiCode,
        Self::ListParentByUser,
    ];

    /// Whether DingTalk serves it on its new host (`api.dingtalk.com`), whose errors are an HTTP
    /// status with a `code`, rather than on the legacy host's errcodes.
    pub(crate) fn on_api_host(self) -> bool {
        matches!(
            self,
            Self::AccessToken
                | Self::CorpToken
                | Self::CorpAccessToken
                | Self::UserAccessToken
                | Self::UsersMe
        )
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// A way for the fake DingTalk to misbehave, as real DingTalk or a gateway in front of it does.
///
/// A fault answers in place of the endpoint's normal work, as a gateway in front of DingTalk
/// would, so it spends no code and issues no token; [`Fault::Latency`] only delays the normal
/// answer, after the work is done (the code is spent when the call arrives).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Do the work when the call arrives (a code is spent then), and send the answer after this
    /// delay; a client that gives up meanwhile loses it (see
    /// [`MockDingTalk::abandoned_calls`](super::MockDingTalk::abandoned_calls)).
    Latency(Duration),
    /// Answer with this HTTP status and a short text body.
    HttpStatus(u16),
    /// Answer HTTP 200 with an HTML page, as a gateway's error page does.
    Html,
    /// Answer HTTP 200 with JSON cut off in the middle.
    TruncatedJson,
    /// Close the connection after reading the request, without any response.
    CloseConnection,
    /// Answer HTTP 200 `{"errcode": N, "errmsg": ...}` (for example -1, 40014, 60020, 90018).
    Errcode(i64),
    /// Answer HTTP 200 with errcode 88 wrapping this `sub_code`, as DingTalk's gateway does.
    SubCode(i64),
    /// Answer the gateway's per-IP ban: `{"status":1111,"wait":5,"source":"x5","punish":"deny"}`.
    IpBan,
    /// Answer HTTP 400 `invalidClientIdOrSecret`, as the token endpoint does for a wrong secret.
    InvalidCredentials,
    /// Answer this HTTP status with these bytes as the body, as they are (JSON content type).
    Raw(u16, Vec<u8>),
}

/// How long an injected fault lasts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Times {
    Next(u32),
    Always,
}

#[derive(Clone, Debug)]
pub(crate) struct FaultRule {
    pub(crate) endpoint: Endpoint,
    pub(crate) fault: Fault,
    pub(crate) times: Times,
}

/// The injected faults, first injected first applied.
#[derive(Debug, Default)]
pub(crate) struct FaultPlan {
    rules: Vec<FaultRule>,
}

impl FaultPlan {
    pub(crate) fn push(&mut self, rule: FaultRule) {
        self.rules.push(rule);
    }

    pub(crate) fn clear(&mut self) {
        self.rules.clear();
    }

    /// The fault for the next call to `endpoint`, if any, using one of its times up.
    pub(crate) fn take(&mut self, endpoint: Endpoint) -> Option<Fault> {
        let index = self
            .rules
            .iter()
            .position(|rule| rule.endpoint == endpoint)?;
        let rule = &mut self.rules[index];
        let fault = rule.fault.clone();
        if let Times::Next(left) = &mut rule.times {
            *left -= 1;
            if *left == 0 {
                self.rules.remove(index);
            }
        }
        Some(fault)
    }
}

#[cfg(test)]
mod tests {
    use super::Endpoint;

    /// The call counters are indexed by `index()`: `ALL` must list every endpoint in order.
    #[test]
    fn every_endpoint_sits_at_its_index() {
        for (position, endpoint) in Endpoint::ALL.iter().enumerate() {
            assert_eq!(endpoint.index(), position, "{endpoint:?}");
        }
    }
}
