//! The fake DingTalk's company directory: each organisation's departments under its root 1, and
//! each employee's [`DirectoryEntry`] (their departments, the ones they lead, their profile), which
//! `topapi/v2/user/get` and `topapi/v2/department/listparentbyuser` answer from.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::accounts::Corp;
use super::{MOCK_CORP_ID, MockDingTalk};

/// The root department of every organisation, as DingTalk numbers it.
pub(crate) const ROOT_DEPARTMENT: i64 = 1;

/// An employee's place in the company directory and the profile `topapi/v2/user/get` answers.
///
/// A user without one is in the root department 1 only, leads nothing, and has empty profile
/// fields. Build one with [`in_departments`](Self::in_departments) and the setters:
///
/// ```
/// use tower_dingtalk_auth::testing::DirectoryEntry;
///
/// let entry = DirectoryEntry::in_departments([2, 3])
///     .leader_of([2])
///     .title("Engineer")
///     .email("li.si@example.com");
/// assert_eq!(entry.departments, [2, 3]);
/// ```
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct DirectoryEntry {
    /// The departments the user is in (`dept_id_list`); none means the root department 1 only, as
    /// DingTalk has no employee outside every department.
    pub departments: Vec<i64>,
    /// The departments the user leads; only those they are in count, as `leader_in_dept` lists
    /// nothing else.
    pub leader_in: Vec<i64>,
    /// The job title (`title`).
    pub title: String,
    /// The employee number (`job_number`).
    pub job_number: String,
    /// The work email (`email`).
    pub email: String,
    /// The avatar URL (`avatar`).
    pub avatar: String,
    /// The mobile number (`mobile`).
    pub mobile: String,
}

impl DirectoryEntry {
    /// An entry for a user in these departments, with empty profile fields.
    pub fn in_departments(ids: impl IntoIterator<Item = i64>) -> Self {
        Self {
            departments: ids.into_iter().collect(),
            ..Self::default()
        }
    }

    /// Makes the user the leader of these departments (replacing any set before).
    pub fn leader_of(mut self, ids: impl IntoIterator<Item = i64>) -> Self {
        self.leader_in = ids.into_iter().collect();
        self
    }

    /// Sets the job title.
    pub fn title(mut self, title: impl Into<String>) -> Self {
        self.title = title.into();
        self
    }

    /// Sets the employee number.
    pub fn job_number(mut self, job_number: impl Into<String>) -> Self {
        self.job_number = job_number.into();
        self
    }

    /// Sets the work email.
    pub fn email(mut self, email: impl Into<String>) -> Self {
        self.email = email.into();
        self
    }

    /// Sets the avatar URL.
    pub fn avatar(mut self, avatar: impl Into<String>) -> Self {
        self.avatar = avatar.into();
        self
    }

    /// Sets the mobile number.
    pub fn mobile(mut self, mobile: impl Into<String>) -> Self {
        self.mobile = mobile.into();
        self
    }

    /// The user's departments, each once, in the order given; the root alone when none is.
    pub(crate) fn department_ids(&self) -> Vec<i64> {
        let mut ids: Vec<i64> = Vec::with_capacity(self.departments.len().max(1));
        for id in &self.departments {
            if !ids.contains(id) {
                ids.push(*id);
            }
        }
        if ids.is_empty() {
            ids.push(ROOT_DEPARTMENT);
        }
        ids
    }

    /// DingTalk's `leader_in_dept`: one element per department the user is in.
    pub(crate) fn leader_in_dept(&self) -> Value {
        let elements: Vec<Value> = self
            .department_ids()
            .into_iter()
            .map(|id| json!({ "dept_id": id, "leader": self.leader_in.contains(&id) }))
            .collect();
        Value::Array(elements)
    }
}

struct Department {
    parent: i64,
    name: String,
}

/// The directories of every organisation, held in `DingTalkState::directory`.
#[derive(Default)]
pub(crate) struct Directory {
    departments: HashMap<Corp, HashMap<i64, Department>>,
    entries: HashMap<(Corp, String), DirectoryEntry>,
}

impl Directory {
    /// Adds (or moves, or renames) a department; the root keeps no parent, only its name changes.
    pub(crate) fn add_department(&mut self, corp: Corp, id: i64, parent: i64, name: &str) {
        let name = name.to_owned();
        self.departments
            .entry(corp)
            .or_default()
            .insert(id, Department { parent, name });
    }

    pub(crate) fn set_entry(&mut self, corp: Corp, userid: &str, entry: DirectoryEntry) {
        self.entries.insert((corp, userid.to_owned()), entry);
    }

    /// Forgets a user's entry, when they leave: if they come back, they start in the root.
    pub(crate) fn forget(&mut self, corp: &Corp, userid: &str) {
        self.entries.remove(&(corp.clone(), userid.to_owned()));
    }

    /// The user's entry, or the default one (the root only, empty fields).
    pub(crate) fn entry(&self, corp: &Corp, userid: &str) -> DirectoryEntry {
        self.entries
            .get(&(corp.clone(), userid.to_owned()))
            .cloned()
            .unwrap_or_default()
    }

    /// The department's name; the root is named after the organisation (its corp id) until it is
    /// renamed, and a department never added has none.
    pub(crate) fn name(&self, corp: &Corp, id: i64) -> Option<String> {
        let added = self.departments.get(corp).and_then(|tree| tree.get(&id));
        match added {
            Some(department) => Some(department.name.clone()),
            None if id == ROOT_DEPARTMENT => {
                Some(corp.clone().unwrap_or_else(|| MOCK_CORP_ID.to_owned()))
            }
            None => None,
        }
    }

    /// `id` and every department above it, nearest first, ending at the root. A department never
    /// added hangs under the root, and a loop of parents (which DingTalk cannot have, but a test
    /// may add) is cut where it closes.
    pub(crate) fn parent_chain(&self, corp: &Corp, id: i64) -> Vec<i64> {
        let tree = self.departments.get(corp);
        let mut chain = Vec::new();
        let mut next = Some(id);
        while let Some(id) = next {
            if id == ROOT_DEPARTMENT || chain.contains(&id) {
                break;
            }
            chain.push(id);
            next = tree
                .and_then(|tree| tree.get(&id))
                .map(|department| department.parent);
        }
        chain.push(ROOT_DEPARTMENT);
        chain
    }
}

impl MockDingTalk {
    /// Adds a department of the internal organisation under `parent`, or moves or renames one
    /// added before. Department 1, the root, always exists, named after the organisation; adding
    /// it again only renames it. A parent never added counts as a department under the root.
    pub fn add_department(&self, id: i64, parent: i64, name: &str) {
        self.shared
            .state()
            .directory
            .add_department(None, id, parent, name);
    }

    /// [`add_department`](Self::add_department) for the third-party corp `corp_id`: each corp has
    /// its own tree under its own root 1.
    pub fn add_corp_department(&self, corp_id: &str, id: i64, parent: i64, name: &str) {
        self.shared
            .state()
            .directory
            .add_department(Some(corp_id.to_owned()), id, parent, name);
    }

    /// The name of a department of the internal organisation, if it was added (the root always
    /// is, named [`MOCK_CORP_ID`] until renamed): for pages a test renders with it.
    pub fn department_name(&self, id: i64) -> Option<String> {
        self.shared.state().directory.name(&None, id)
    }

    /// [`department_name`](Self::department_name) for the third-party corp `corp_id` (its root is
    /// named `corp_id` until renamed).
    pub fn corp_department_name(&self, corp_id: &str, id: i64) -> Option<String> {
        let corp = Some(corp_id.to_owned());
        self.shared.state().directory.name(&corp, id)
    }

    /// Sets (or replaces) the directory entry of `userid` of the internal organisation: what
    /// `topapi/v2/user/get` and `listparentbyuser` answer for them. It may be set before the user
    /// is added; [`remove_user`](Self::remove_user) forgets it.
    ///
    /// ```
    /// use tower_dingtalk_auth::AuthenticatedDingTalkUser;
    /// use tower_dingtalk_auth::testing::{DirectoryEntry, MockDingTalk};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let dingtalk = MockDingTalk::start().await;
    /// dingtalk.add_department(2, 1, "Engineering");
    /// dingtalk.add_department(3, 2, "Platform");
    /// dingtalk.add_user(AuthenticatedDingTalkUser::builder("user456", "Zhang San").build());
    /// dingtalk.set_directory_entry(
    ///     "user456",
    ///     DirectoryEntry::in_departments([3]).leader_of([3]).title("Team lead"),
    /// );
    /// // listparentbyuser now answers [3, 2, 1] for user456.
    /// # }
    /// ```
    pub fn set_directory_entry(&self, userid: &str, entry: DirectoryEntry) {
        self.shared.state().directory.set_entry(None, userid, entry);
    }

    /// [`set_directory_entry`](Self::set_directory_entry) for a user of the third-party corp
    /// `corp_id`.
    pub fn set_corp_directory_entry(&self, corp_id: &str, userid: &str, entry: DirectoryEntry) {
        self.shared
            .state()
            .directory
            .set_entry(Some(corp_id.to_owned()), userid, entry);
    }
}

#[cfg(test)]
mod tests {
    use super::{Directory, DirectoryEntry};

    #[test]
    fn chains_end_at_the_root_whatever_the_tree() {
        let mut directory = Directory::default();
        directory.add_department(None, 2, 1, "A");
        directory.add_department(None, 3, 2, "B");
        directory.add_department(None, 5, 4, "under a parent never added");
        directory.add_department(None, 6, 7, "loop");
        directory.add_department(None, 7, 6, "loop");
        assert_eq!(directory.parent_chain(&None, 3), [3, 2, 1]);
        assert_eq!(directory.parent_chain(&None, 1), [1]);
        assert_eq!(directory.parent_chain(&None, 9), [9, 1]);
        assert_eq!(directory.parent_chain(&None, 5), [5, 4, 1]);
        assert_eq!(directory.parent_chain(&None, 6), [6, 7, 1]);
        // Another organisation's tree is its own.
        assert_eq!(directory.parent_chain(&Some("corp".into()), 3), [3, 1]);
    }

    #[test]
    fn an_entry_is_in_some_department_and_leads_only_where_it_is() {
        let entry = DirectoryEntry::in_departments([2, 3, 2]).leader_of([3, 8]);
        assert_eq!(entry.department_ids(), [2, 3]);
        assert_eq!(
            entry.leader_in_dept(),
            serde_json::json!([{ "dept_id": 2, "leader": false }, { "dept_id": 3, "leader": true }])
        );
        assert_eq!(DirectoryEntry::default().department_ids(), [1]);
    }

    #[test]
    fn the_root_is_named_after_its_organisation_until_renamed() {
        let mut directory = Directory::default();
        assert_eq!(
            directory.name(&None, 1).as_deref(),
            Some(super::MOCK_CORP_ID)
        );
        let corp = Some("dingcorp".to_owned());
        assert_eq!(directory.name(&corp, 1).as_deref(), Some("dingcorp"));
        directory.add_department(None, 1, 0, "Mock Inc.");
        assert_eq!(directory.name(&None, 1).as_deref(), Some("Mock Inc."));
        assert_eq!(directory.parent_chain(&None, 1), [1]);
        assert_eq!(directory.name(&None, 2), None);
    }
}
