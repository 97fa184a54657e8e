//! [`MockDingTalk`]'s side for the web login: accounts outside every organisation, auth codes
//! issued without the login page, the JSAPI shim's signed-in user, and the pages' URLs.

use super::accounts::corp_of;
use super::{MOCK_CORP_ID, MockDingTalk};

impl MockDingTalk {
    /// The internal organisation's corp id, [`MOCK_CORP_ID`]: what user tokens of the users added
    /// with [`add_user`](Self::add_user) report as `corpId`, and the `exclusiveCorpId` that admits
    /// only them to the login page.
    pub fn corp_id(&self) -> String {
        MOCK_CORP_ID.to_owned()
    }

    /// Registers (or renames) a DingTalk account that belongs to no organisation the app knows: it
    /// may sign in on the login page, and `getbyunionid` answers 60121 for it in every corp. Its
    /// user tokens report `corpId` `"dingoutsiderorg"`.
    pub fn add_outsider(&self, unionid: &str, nick: &str) {
        self.shared.state().web.add_outsider(unionid, nick);
    }

    /// Issues a one-time web login auth code (for `POST /v1.0/oauth2/userAccessToken`) signing in
    /// the account `unionid` for the internal app, as approving it on the login page would; for
    /// tests that skip the page. An employee's unionid is the one their user was built with, or
    /// `"{userid}-unionid"` if that was empty.
    ///
    /// Panics if no account has this unionid (add it with [`add_user`](Self::add_user),
    /// [`add_corp_user`](Self::add_corp_user) or [`add_outsider`](Self::add_outsider) first).
    ///
    /// ```
    /// use tower_dingtalk_auth::AuthenticatedDingTalkUser;
    /// use tower_dingtalk_auth::testing::MockDingTalk;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let dingtalk = MockDingTalk::start().await;
    /// dingtalk.add_user(AuthenticatedDingTalkUser::builder("user456", "Zhang San").build());
    /// let code = dingtalk.issue_auth_code("user456-unionid");
    /// let answer: serde_json::Value = reqwest::Client::new()
    ///     .post(format!("{}/v1.0/oauth2/userAccessToken", dingtalk.base_url()))
    ///     .json(&serde_json::json!({
    ///         "clientId": dingtalk.app_key(), "clientSecret": dingtalk.app_secret(),
    ///         "code": code, "grantType": "authorization_code",
    ///     }))
    ///     .send().await.unwrap()
    ///     .json().await.unwrap();
    /// assert_eq!(answer["corpId"], dingtalk.corp_id());
    /// # }
    /// ```
    pub fn issue_auth_code(&self, unionid: &str) -> String {
        let mut state = self.shared.state();
        let account = state.account(unionid, None);
        let Some(account) = account else {
            drop(state);
            panic!("MockDingTalk::issue_auth_code: no account has the unionid {unionid:?}");
        };
        let client_id = state.app_key.clone();
        state.issue_auth_code(&account, &client_id)
    }

    /// Issues a one-time web login auth code signing in the account `unionid` to the organisation
    /// `corp_id`, for the third-party app (the suite key is its client id); [`MOCK_CORP_ID`] is the
    /// internal organisation.
    ///
    /// Panics if the account is not a member of `corp_id`.
    pub fn issue_corp_auth_code(&self, corp_id: &str, unionid: &str) -> String {
        let mut state = self.shared.state();
        let account = state.account(unionid, Some(&corp_of(corp_id)));
        let Some(account) = account else {
            drop(state);
            panic!("MockDingTalk::issue_corp_auth_code: {unionid:?} is no member of {corp_id:?}");
        };
        let client_id = state.suite_key.clone();
        state.issue_auth_code(&account, &client_id)
    }

    /// Signs `userid`, an internal employee, in to the fake DingTalk client the JSAPI shim stands
    /// for: the shim's `requestAuthCode` then gets codes for them that getuserinfo exchanges, as
    /// [`issue_code`](Self::issue_code)'s. `None` signs out: the shim's calls fail (errorCode 7).
    pub fn set_jsapi_user(&self, userid: Option<&str>) {
        self.shared.state().web.jsapi_user = userid.map(|userid| (None, userid.to_owned()));
    }

    /// Signs `userid`, a user of the third-party corp `corp_id`, in to the fake DingTalk client:
    /// the shim's codes are then [`issue_corp_code`](Self::issue_corp_code)'s.
    pub fn set_jsapi_corp_user(&self, corp_id: &str, userid: &str) {
        self.shared.state().web.jsapi_user = Some((Some(corp_id.to_owned()), userid.to_owned()));
    }

    /// The JSAPI shim, `{base_url}/jsapi/dingtalk.js`: a page written for DingTalk's JSAPI runs
    /// unchanged when it loads this in place of `dingtalk.open.js`.
    pub fn jsapi_script_url(&self) -> String {
        format!("{}/jsapi/dingtalk.js", self.base_url())
    }

    /// The web login page, `{base_url}/oauth2/auth`, standing for
    /// `https://login.dingtalk.com/oauth2/auth`; add DingTalk's query parameters.
    pub fn login_page_url(&self) -> String {
        format!("{}/oauth2/auth", self.base_url())
    }

    /// Removes `userid` from the organisation, as when an employee leaves: `v2/user/get`,
    /// `getbyunionid`, `listparentbyuser` and the exchange of new codes answer 60121 for them, and
    /// their [directory entry](Self::set_directory_entry) is forgotten. Answers whether they were
    /// there.
    pub fn remove_user(&self, userid: &str) -> bool {
        self.shared.state().remove_user(&None, userid)
    }

    /// [`remove_user`](Self::remove_user) for a user of a third-party app's `corp_id`.
    pub fn remove_corp_user(&self, corp_id: &str, userid: &str) -> bool {
        self.shared
            .state()
            .remove_user(&Some(corp_id.to_owned()), userid)
    }
}
