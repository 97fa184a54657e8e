//! [`Profile`]: what the company's directory says of a user beyond the login (departments,
//! title, job number, contact details), fetched when asked for with [`ProfileFields`].

use std::fmt;
use std::ops::BitOr;
use std::time::Duration;

/// How long a user whose profile DingTalk did not give goes without one before it is asked
/// again: the `Retry-After` of a guard that needs it.
pub(crate) const PROFILE_FAILURE_HOLD: Duration = Duration::from_secs(5);

/// Which directory fields a layer's users carry; combine them with `|`. Given to
/// [`DingTalkClientBuilder::profile`](crate::DingTalkClientBuilder::profile).
///
/// ```
/// use tower_dingtalk_auth::ProfileFields;
///
/// let fields = ProfileFields::DEPARTMENTS | ProfileFields::TITLE;
/// assert!(fields.contains(ProfileFields::TITLE));
/// assert!(!fields.contains(ProfileFields::MOBILE));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ProfileFields(u16);

impl ProfileFields {
    /// The user's departments, with every department above them (for
    /// [`guard::require_department`](crate::guard::require_department)), and the departments
    /// they lead (for [`guard::require_leader`](crate::guard::require_leader)). One more call to
    /// DingTalk per user (`listparentbyuser`).
    pub const DEPARTMENTS: Self = Self(1);
    /// The job title.
    pub const TITLE: Self = Self(1 << 1);
    /// The job number (工号).
    pub const JOB_NUMBER: Self = Self(1 << 2);
    /// The work email.
    pub const EMAIL: Self = Self(1 << 3);
    /// The avatar's URL.
    pub const AVATAR: Self = Self(1 << 4);
    /// The mobile number: personal data, kept only when asked for; mind your privacy duties.
    pub const MOBILE: Self = Self(1 << 5);
    /// Every field but the mobile number.
    pub const ALL_BUT_MOBILE: Self = Self(0b1_1111);

    /// Whether every field of `other` is in this set.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether no field is asked for.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl BitOr for ProfileFields {
    type Output = Self;

    fn bitor(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }
}

impl fmt::Debug for ProfileFields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = [
            (Self::DEPARTMENTS, "DEPARTMENTS"),
            (Self::TITLE, "TITLE"),
            (Self::JOB_NUMBER, "JOB_NUMBER"),
            (Self::EMAIL, "EMAIL"),
            (Self::AVATAR, "AVATAR"),
            (Self::MOBILE, "MOBILE"),
        ];
        let mut set = f.debug_set();
        for (field, name) in names {
            if self.contains(field) {
                set.entry(&format_args!("{name}"));
            }
        }
        set.finish()
    }
}

/// What the directory says of a user: the fields asked for with [`ProfileFields`]; the others
/// are empty. Read with [`AuthenticatedDingTalkUser::profile`](crate::AuthenticatedDingTalkUser::profile).
///
/// `Debug` leaves out the contact details (email, mobile).
#[derive(Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Profile {
    pub(crate) departments: Vec<i64>,
    /// The departments with every department above them.
    pub(crate) within: Vec<i64>,
    pub(crate) leads: Vec<i64>,
    pub(crate) title: Option<String>,
    pub(crate) job_number: Option<String>,
    pub(crate) email: Option<String>,
    pub(crate) avatar: Option<String>,
    pub(crate) mobile: Option<String>,
}

impl Profile {
    /// The departments the user is in (DingTalk's `dept_id_list`).
    pub fn departments(&self) -> &[i64] {
        &self.departments
    }

    /// Whether the user is in `department` or in any department below it.
    pub fn is_within(&self, department: i64) -> bool {
        self.within.contains(&department) || self.departments.contains(&department)
    }

    /// The departments the user leads (主管).
    pub fn leads(&self) -> &[i64] {
        &self.leads
    }

    /// Whether the user leads at least one department.
    pub fn is_leader(&self) -> bool {
        !self.leads.is_empty()
    }

    /// The job title, when asked for and set.
    pub fn title(&self) -> Option<&str> {
        self.title.as_deref()
    }

    /// The job number, when asked for and set.
    pub fn job_number(&self) -> Option<&str> {
        self.job_number.as_deref()
    }

    /// The work email, when asked for and set.
    pub fn email(&self) -> Option<&str> {
        self.email.as_deref()
    }

    /// The avatar's URL, when asked for and set.
    pub fn avatar(&self) -> Option<&str> {
        self.avatar.as_deref()
    }

    /// The mobile number, only when asked for ([`ProfileFields::MOBILE`]) and set.
    pub fn mobile(&self) -> Option<&str> {
        self.mobile.as_deref()
    }
}

impl fmt::Debug for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Profile")
            .field("departments", &self.departments)
            .field("within", &self.within)
            .field("leads", &self.leads)
            .field("title", &self.title)
            .field("job_number", &self.job_number)
            .finish_non_exhaustive()
    }
}
