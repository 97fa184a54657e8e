//! The legacy host's contact answers: is this account an employee (`getbyunionid`), their details
//! (`v2/user/get`), the administrators (`listadmin`), and the departments above each of a user's
//! (`v2/department/listparentbyuser`). Each takes the app's or a corp's access token, checked as
//! getuserinfo checks it, and answers about that token's organisation only.

use http::StatusCode;
use serde_json::{Value, json};

use super::accounts::employee_unionid;
use super::answers::{Answer, errcode};
use super::call::Call;
use super::state::DingTalkState;
use crate::user::AdminLevel;

impl DingTalkState {
    fn ok_result(&mut self, result: Value) -> Answer {
        let request_id = self.fresh_secret();
        Answer::Json(
            StatusCode::OK,
            json!({ "errcode": 0, "errmsg": "ok", "request_id": request_id, "result": result }),
        )
    }

    /// `POST /topapi/user/getbyunionid`: 60121 for an account that is not an employee of the
    /// token's organisation, which is how a web login tells a colleague from any DingTalk user.
    pub(super) fn get_by_unionid(&mut self, call: &Call) -> Answer {
        let corp = match self.token_corp(call) {
            Ok(corp) => corp,
            Err(answer) => return answer,
        };
        let Some(unionid) = call.field("unionid") else {
            return errcode(40035, "缺少参数 unionid");
        };
        let userid = self
            .users
            .iter()
            .filter(|((user_corp, _), _)| *user_corp == corp)
            .find(|(_, user)| employee_unionid(user) == unionid)
            .map(|((_, userid), _)| userid.clone());
        match userid {
            Some(userid) => self.ok_result(json!({ "contact_type": 0, "userid": userid })),
            None => {
                let request_id = self.fresh_secret();
                Answer::Json(
                    StatusCode::OK,
                    json!({ "errcode": 60121, "errmsg": "找不到该用户", "request_id": request_id }),
                )
            }
        }
    }

    /// `POST /topapi/v2/user/get`: an employee's details, their departments and profile from their
    /// directory entry; the fields the fake does not know are empty, as DingTalk leaves those the
    /// app may not read.
    pub(super) fn user_get(&mut self, call: &Call) -> Answer {
        let corp = match self.token_corp(call) {
            Ok(corp) => corp,
            Err(answer) => return answer,
        };
        let Some(userid) = call.field("userid") else {
            return errcode(40035, "缺少参数 userid");
        };
        let entry = self.directory.entry(&corp, &userid);
        let Some(user) = self.users.get(&(corp, userid)) else {
            return errcode(60121, "找不到该用户");
        };
        let result = json!({
            "userid": user.userid(),
            "unionid": employee_unionid(user),
            "name": user.name(),
            "avatar": entry.avatar,
            "title": entry.title,
            "job_number": entry.job_number,
            "email": entry.email,
            "org_email": "",
            "mobile": entry.mobile,
            "dept_id_list": entry.department_ids(),
            "leader_in_dept": entry.leader_in_dept(),
            "admin": user.is_admin(),
            "boss": user.admin_level() == AdminLevel::Boss,
            "active": true,
            "real_authed": true,
            "senior": false,
            "hide_mobile": false,
            "exclusive_account": false,
        });
        self.ok_result(result)
    }

    /// `POST /topapi/user/listadmin`: the organisation's administrators with their level; the boss
    /// is not among them (DingTalk reports the boss through `v2/user/get`'s `boss`).
    pub(super) fn list_admin(&mut self, call: &Call) -> Answer {
        let corp = match self.token_corp(call) {
            Ok(corp) => corp,
            Err(answer) => return answer,
        };
        let mut admins: Vec<(&str, i64)> = self
            .users
            .iter()
            .filter(|((user_corp, _), user)| {
                *user_corp == corp
                    && user.is_admin()
                    && !matches!(user.admin_level(), AdminLevel::Boss | AdminLevel::Other)
            })
            .map(|(_, user)| (user.userid(), user.admin_level().sys_level()))
            .collect();
        admins.sort_unstable();
        let result: Vec<Value> = admins
            .into_iter()
            .map(|(userid, sys_level)| json!({ "userid": userid, "sys_level": sys_level }))
            .collect();
        self.ok_result(Value::Array(result))
    }

    /// `POST /topapi/v2/department/listparentbyuser`: for each of the user's departments, it and
    /// every department above it, nearest first, ending at the root 1.
    pub(super) fn list_parent_by_user(&mut self, call: &Call) -> Answer {
        let corp = match self.token_corp(call) {
            Ok(corp) => corp,
            Err(answer) => return answer,
        };
        let Some(userid) = call.field("userid") else {
            return errcode(40035, "缺少参数 userid");
        };
        if !self.users.contains_key(&(corp.clone(), userid.clone())) {
            return errcode(60121, "找不到该用户");
        }
        let parent_list: Vec<Value> = self
            .directory
            .entry(&corp, &userid)
            .department_ids()
            .into_iter()
            .map(|id| json!({ "parent_dept_id_list": self.directory.parent_chain(&corp, id) }))
            .collect();
        self.ok_result(json!({ "parent_list": parent_list }))
    }
}
