//! The fake DingTalk's accounts for the web login: who they are and where they belong, the
//! one-time auth codes its login page issues, and the user tokens they are exchanged for. What
//! DingTalk answers with them is in `web_login.rs` and `contact.rs`.

use std::collections::{BTreeMap, HashMap};

use tokio::time::Instant;

use super::MOCK_CORP_ID;
use crate::user::AuthenticatedDingTalkUser;

/// The organisation a user, code or token belongs to: `None` is the internal app's own.
pub(crate) type Corp = Option<String>;

/// The `corpId` a user token of an account that belongs to no organisation the app knows reports.
pub(crate) const OUTSIDER_CORP_ID: &str = "dingoutsiderorg";

/// An employee's unionid: their own, or one made from the userid, so that every account has one.
pub(crate) fn employee_unionid(user: &AuthenticatedDingTalkUser) -> String {
    if user.unionid().is_empty() {
        format!("{}-unionid", user.userid())
    } else {
        user.unionid().to_owned()
    }
}

/// The organisation `corp_id` names, as the state keys organisations: [`MOCK_CORP_ID`] is the
/// internal app's own.
pub(crate) fn corp_of(corp_id: &str) -> Corp {
    (corp_id != MOCK_CORP_ID).then(|| corp_id.to_owned())
}

/// Where a DingTalk account belongs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Membership {
    /// An employee of this organisation, with this userid.
    Employee(Corp, String),
    /// A DingTalk account of no organisation the app knows.
    Outsider,
}

/// A DingTalk account as the login page shows it.
#[derive(Clone, Debug)]
pub(crate) struct Account {
    pub(crate) unionid: String,
    pub(crate) name: String,
    pub(crate) membership: Membership,
}

impl Account {
    /// The `corpId` a user token of this account reports: the organisation it signed in to.
    pub(crate) fn corp_id(&self) -> String {
        match &self.membership {
            Membership::Employee(None, _) => MOCK_CORP_ID.to_owned(),
            Membership::Employee(Some(corp), _) => corp.clone(),
            Membership::Outsider => OUTSIDER_CORP_ID.to_owned(),
        }
    }
}

pub(crate) struct AuthCode {
    pub(crate) unionid: String,
    pub(crate) nick: String,
    pub(crate) corp_id: String,
    pub(crate) client_id: String,
    pub(crate) expires_at: Instant,
    pub(crate) spent: bool,
}

pub(crate) struct UserToken {
    pub(crate) unionid: String,
    pub(crate) nick: String,
    pub(crate) expires_at: Instant,
}

/// The web login's state, held in [`DingTalkState::web`].
#[derive(Default)]
pub(crate) struct WebLoginState {
    /// Accounts of no known organisation: unionid → nick.
    pub(crate) outsiders: BTreeMap<String, String>,
    pub(crate) auth_codes: HashMap<String, AuthCode>,
    pub(crate) user_tokens: HashMap<String, UserToken>,
    /// The user signed in to the DingTalk client the JSAPI shim stands for: corp and userid.
    pub(crate) jsapi_user: Option<(Corp, String)>,
}

impl WebLoginState {
    pub(crate) fn add_outsider(&mut self, unionid: &str, nick: &str) {
        self.outsiders.insert(unionid.to_owned(), nick.to_owned());
    }

    pub(crate) fn expire_tokens(&mut self, now: Instant) {
        self.user_tokens
            .values_mut()
            .for_each(|token| token.expires_at = now);
    }

    pub(crate) fn revoke_tokens(&mut self) {
        self.user_tokens.clear();
    }
}
