//! The identity the layer puts on a request: [`AuthenticatedDingTalkUser`] and its [`AdminLevel`].

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::login_method::LoginMethod;
use crate::profile::Profile;

/// A DingTalk user whose auth code was exchanged with DingTalk.
///
/// The layer inserts one into the request's extensions before the inner service runs. Cloning is
/// cheap: the fields live behind one shared allocation.
///
/// ```
/// use tower_dingtalk_auth::{AdminLevel, AuthenticatedDingTalkUser};
///
/// let user = AuthenticatedDingTalkUser::builder("user456", "Zhang San")
///     .unionid("gliiW002zU")
///     .admin_level(AdminLevel::SuperAdmin)
///     .build();
/// assert_eq!(user.userid(), "user456");
/// assert!(user.is_admin());
/// assert_eq!(user.admin_level(), AdminLevel::SuperAdmin);
/// assert_eq!(user.associated_unionid(), None);
/// ```
///
/// # As JSON
///
/// `Serialize` writes (and `Deserialize` reads) one object, the shape handlers answer with
/// `Json(user)` and the token login's `user`:
///
/// | field | type | what it is |
/// | --- | --- | --- |
/// | `userid` | string | DingTalk's `userid`, the user's id inside the organisation |
/// | `name` | string | the display name |
/// | `unionid` | string | stable across the apps of one developer; `""` when DingTalk sent none |
/// | `associated_unionid` | string | only when DingTalk sent a non-empty one |
/// | `device_id` | string | the device the code was requested on; `""` when unknown |
/// | `is_admin` | bool | DingTalk's `sys` flag |
/// | `admin_level` | number | DingTalk's own `sys_level`, as DingTalk documents it: `0` not an administrator, `1` super administrator, `2` sub-administrator, `100` boss; any other number DingTalk adds later is kept as it is ([`AdminLevel::sys_level`]) |
/// | `corp_id` | string | only for third-party apps (and a client with [`corp_id`](crate::DingTalkClientBuilder::corp_id)) |
/// | `login_method` | string | how the user signed in ([`LoginMethod`]): `session`, `web_login` or `token`; absent for `code` |
///
/// The level is DingTalk's number rather than the enum's name, so that a front end reading the
/// JSON and DingTalk's documentation agree; `Debug` shows the name (`SuperAdmin`).
///
/// ```
/// use tower_dingtalk_auth::{AdminLevel, AuthenticatedDingTalkUser};
///
/// let user = AuthenticatedDingTalkUser::builder("user456", "Zhang San")
///     .unionid("gliiW002zU")
///     .device_id("dev-1")
///     .admin_level(AdminLevel::SuperAdmin)
///     .build();
/// assert_eq!(
///     serde_json::to_string(&user).unwrap(),
///     r#"{"userid":"user456","name":"Zhang San","unionid":"gliiW002zU","device_id":"dev-1","is_admin":true,"admin_level":1}"#
/// );
/// ```
#[derive(Clone)]
pub struct AuthenticatedDingTalkUser(Arc<UserFields>);

/// Two users are equal when they are the same person with the same rights, however each signed
/// in: [`login_method`](AuthenticatedDingTalkUser::login_method) is not compared.
impl PartialEq for AuthenticatedDingTalkUser {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0.same_person(&other.0)
    }
}

impl Eq for AuthenticatedDingTalkUser {}

/// The serialized shape, also what [`AuthenticatedDingTalkUserBuilder`] fills in.
#[derive(Clone, Serialize, Deserialize)]
struct UserFields {
    userid: String,
    name: String,
    #[serde(default)]
    unionid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    associated_unionid: Option<String>,
    #[serde(default)]
    device_id: String,
    #[serde(default)]
    is_admin: bool,
    #[serde(default)]
    admin_level: AdminLevel,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    corp_id: Option<String>,
    #[serde(default, skip_serializing_if = "LoginMethod::is_code")]
    login_method: LoginMethod,
    /// The directory's fields, when the client asks for them; never sealed into a session.
    #[serde(skip)]
    profile: Option<Arc<Profile>>,
}

impl UserFields {
    fn same_person(&self, other: &Self) -> bool {
        self.userid == other.userid
            && self.name == other.name
            && self.unionid == other.unionid
            && self.associated_unionid == other.associated_unionid
            && self.device_id == other.device_id
            && self.is_admin == other.is_admin
            && self.admin_level == other.admin_level
            && self.corp_id == other.corp_id
    }
}

impl AuthenticatedDingTalkUser {
    /// Starts a user by hand, for tests of handlers and for custom identity sources.
    pub fn builder(
        userid: impl Into<String>,
        name: impl Into<String>,
    ) -> AuthenticatedDingTalkUserBuilder {
        AuthenticatedDingTalkUserBuilder(UserFields {
            userid: userid.into(),
            name: name.into(),
            unionid: String::new(),
            associated_unionid: None,
            device_id: String::new(),
            is_admin: false,
            admin_level: AdminLevel::Other,
            corp_id: None,
            login_method: LoginMethod::Code,
            profile: None,
        })
    }

    /// The user's id inside the organisation (DingTalk's `userid`).
    pub fn userid(&self) -> &str {
        &self.0.userid
    }

    /// The user's display name.
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// The user's unionid, stable across the apps of one developer.
    pub fn unionid(&self) -> &str {
        &self.0.unionid
    }

    /// The associated unionid, when DingTalk sent a non-empty one.
    pub fn associated_unionid(&self) -> Option<&str> {
        self.0.associated_unionid.as_deref()
    }

    /// The id of the device the code was requested on.
    pub fn device_id(&self) -> &str {
        &self.0.device_id
    }

    /// Whether DingTalk reports the user as an administrator (its `sys` flag).
    pub fn is_admin(&self) -> bool {
        self.0.is_admin
    }

    /// The user's administrator level (DingTalk's `sys_level`).
    pub fn admin_level(&self) -> AdminLevel {
        self.0.admin_level
    }

    /// The organisation the user was authenticated in, when it is known.
    pub fn corp_id(&self) -> Option<&str> {
        self.0.corp_id.as_deref()
    }

    /// How the user signed in: a code on this request, a session cookie (started by a code, or
    /// by DingTalk's web login), or a bearer token.
    pub fn login_method(&self) -> LoginMethod {
        self.0.login_method
    }

    /// What the company's directory says of the user (departments, title, ...), when the client
    /// asks for it ([`DingTalkClientBuilder::profile`](crate::DingTalkClientBuilder::profile))
    /// and DingTalk answered; `None` otherwise. Not part of the user's JSON.
    pub fn profile(&self) -> Option<&Profile> {
        self.0.profile.as_deref()
    }

    /// The same user with `profile`.
    pub(crate) fn with_profile(&self, profile: Arc<Profile>) -> Self {
        let mut fields = (*self.0).clone();
        fields.profile = Some(profile);
        Self(Arc::new(fields))
    }

    /// The same user as signed in by `method`; shares the allocation when nothing changes.
    pub(crate) fn signed_in_by(self, method: LoginMethod) -> Self {
        if self.0.login_method == method {
            return self;
        }
        let mut fields = (*self.0).clone();
        fields.login_method = method;
        Self(Arc::new(fields))
    }
}

impl fmt::Debug for AuthenticatedDingTalkUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthenticatedDingTalkUser")
            .field("userid", &self.0.userid)
            .field("name", &self.0.name)
            .field("unionid", &self.0.unionid)
            .field("associated_unionid", &self.0.associated_unionid)
            .field("device_id", &self.0.device_id)
            .field("is_admin", &self.0.is_admin)
            .field("admin_level", &self.0.admin_level)
            .field("corp_id", &self.0.corp_id)
            .field("login_method", &self.0.login_method)
            .field("profile", &self.0.profile)
            .finish()
    }
}

impl Serialize for AuthenticatedDingTalkUser {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for AuthenticatedDingTalkUser {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        UserFields::deserialize(deserializer).map(|fields| Self(Arc::new(fields)))
    }
}

/// Builds an [`AuthenticatedDingTalkUser`] by hand; see [`AuthenticatedDingTalkUser::builder`].
#[derive(Clone)]
pub struct AuthenticatedDingTalkUserBuilder(UserFields);

impl AuthenticatedDingTalkUserBuilder {
    /// Sets the unionid.
    pub fn unionid(mut self, unionid: impl Into<String>) -> Self {
        self.0.unionid = unionid.into();
        self
    }

    /// Sets the associated unionid; an empty one counts as absent, as in DingTalk's answers.
    pub fn associated_unionid(mut self, associated_unionid: impl Into<String>) -> Self {
        self.0.associated_unionid = Some(associated_unionid.into()).filter(|id| !id.is_empty());
        self
    }

    /// Sets the device id.
    pub fn device_id(mut self, device_id: impl Into<String>) -> Self {
        self.0.device_id = device_id.into();
        self
    }

    /// Sets the administrator flag (DingTalk's `sys`).
    pub fn admin(mut self, is_admin: bool) -> Self {
        self.0.is_admin = is_admin;
        self
    }

    /// Sets the administrator level, and the administrator flag to whether the level is not
    /// [`AdminLevel::Other`]; call [`admin`](Self::admin) afterwards to set the flag apart.
    pub fn admin_level(mut self, level: AdminLevel) -> Self {
        self.0.admin_level = level;
        self.0.is_admin = level != AdminLevel::Other;
        self
    }

    /// Sets the organisation the user belongs to.
    pub fn corp_id(mut self, corp_id: impl Into<String>) -> Self {
        self.0.corp_id = Some(corp_id.into());
        self
    }

    /// Sets how the user signed in (default: [`LoginMethod::Code`]).
    pub fn login_method(mut self, method: LoginMethod) -> Self {
        self.0.login_method = method;
        self
    }

    /// Finishes the user.
    pub fn build(self) -> AuthenticatedDingTalkUser {
        AuthenticatedDingTalkUser(Arc::new(self.0))
    }
}

/// A user's administrator level, DingTalk's `sys_level`.
///
/// Levels DingTalk may add later are kept as [`AdminLevel::Unknown`] rather than rejected.
///
/// ```
/// use tower_dingtalk_auth::AdminLevel;
///
/// assert_eq!(AdminLevel::from_sys_level(100), AdminLevel::Boss);
/// assert_eq!(AdminLevel::from_sys_level(7), AdminLevel::Unknown(7));
/// assert_eq!(AdminLevel::SubAdmin.sys_level(), 2);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "i64", into = "i64")]
pub enum AdminLevel {
    /// `0`: not an administrator (an ordinary employee).
    #[default]
    Other,
    /// `1`: the main (super) administrator.
    SuperAdmin,
    /// `2`: a sub-administrator.
    SubAdmin,
    /// `100`: the boss.
    Boss,
    /// Any other level DingTalk sends.
    Unknown(i64),
}

impl AdminLevel {
    /// Maps DingTalk's `sys_level` number to a level.
    pub const fn from_sys_level(level: i64) -> Self {
        match level {
            0 => Self::Other,
            1 => Self::SuperAdmin,
            2 => Self::SubAdmin,
            100 => Self::Boss,
            other => Self::Unknown(other),
        }
    }

    /// The level as DingTalk's `sys_level` number.
    pub const fn sys_level(self) -> i64 {
        match self {
            Self::Other => 0,
            Self::SuperAdmin => 1,
            Self::SubAdmin => 2,
            Self::Boss => 100,
            Self::Unknown(other) => other,
        }
    }
}

impl From<i64> for AdminLevel {
    fn from(level: i64) -> Self {
        Self::from_sys_level(level)
    }
}

impl From<AdminLevel> for i64 {
    fn from(level: AdminLevel) -> Self {
        level.sys_level()
    }
}
