//! The fake DingTalk's company directory over real sockets: `v2/user/get` answers a user's
//! departments, leadership and profile, `v2/department/listparentbyuser` the chain above each of
//! their departments, unknown and removed users are 60121, the new endpoint is counted and takes
//! faults, and each third-party corp keeps its own tree.

use reqwest::StatusCode;
use serde_json::{Value, json};
use tower_dingtalk_auth::AuthenticatedDingTalkUser;
use tower_dingtalk_auth::testing::{DirectoryEntry, Endpoint, Fault, MockDingTalk};

const CORP_A: &str = "dingcorpa0001";
const PARENTS: &str = "/topapi/v2/department/listparentbyuser";
const USER_GET: &str = "/topapi/v2/user/get";

/// A three-level tree: the root 1 with Engineering (2, over Platform 3) and Sales (4, over East 5);
/// li.si is in Platform and East and leads East; zhang.san has no entry.
async fn dingtalk() -> MockDingTalk {
    let dingtalk = MockDingTalk::start().await;
    dingtalk.add_department(2, 1, "Engineering");
    dingtalk.add_department(3, 2, "Platform");
    dingtalk.add_department(4, 1, "Sales");
    dingtalk.add_department(5, 4, "East");
    dingtalk.add_user(AuthenticatedDingTalkUser::builder("li.si", "Li Si").build());
    dingtalk.add_user(AuthenticatedDingTalkUser::builder("zhang.san", "Zhang San").build());
    dingtalk.set_directory_entry(
        "li.si",
        DirectoryEntry::in_departments([3, 5])
            .leader_of([5])
            .title("Engineer")
            .job_number("E-0042")
            .email("li.si@example.com")
            .avatar("https://static.example/li.si.png")
            .mobile("13800000000"),
    );
    dingtalk
}

async fn post_json(url: String, body: Value) -> (StatusCode, Value) {
    let response = reqwest::Client::new()
        .post(url)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, value)
}

async fn app_token(dingtalk: &MockDingTalk) -> String {
    let url = format!("{}/v1.0/oauth2/accessToken", dingtalk.base_url());
    let body = json!({ "appKey": dingtalk.app_key(), "appSecret": dingtalk.app_secret() });
    let (status, answer) = post_json(url, body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer["accessToken"].as_str().unwrap().to_owned()
}

async fn corp_token(dingtalk: &MockDingTalk, corp_id: &str) -> String {
    let url = format!("{}/v1.0/oauth2/{corp_id}/token", dingtalk.base_url());
    let body = json!({
        "client_id": dingtalk.suite_key(), "client_secret": dingtalk.suite_secret(),
        "grant_type": "client_credentials",
    });
    let (status, answer) = post_json(url, body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer["access_token"].as_str().unwrap().to_owned()
}

/// A legacy-host call with `token`, answered HTTP 200 as the legacy host always is.
async fn oapi(dingtalk: &MockDingTalk, path: &str, token: &str, body: Value) -> Value {
    let url = format!("{}{path}?access_token={token}", dingtalk.base_url());
    let (status, answer) = post_json(url, body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer
}

fn chains(answer: &Value) -> Value {
    assert_eq!(answer["errcode"], 0, "{answer}");
    let list = answer["result"]["parent_list"].as_array().unwrap();
    Value::Array(
        list.iter()
            .map(|element| element["parent_dept_id_list"].clone())
            .collect(),
    )
}

#[tokio::test]
async fn user_get_shows_the_entry_and_where_the_user_leads() {
    let dingtalk = dingtalk().await;
    let token = app_token(&dingtalk).await;
    let answer = oapi(&dingtalk, USER_GET, &token, json!({ "userid": "li.si" })).await;
    assert_eq!(answer["errcode"], 0, "{answer}");
    let result = &answer["result"];
    assert_eq!(result["dept_id_list"], json!([3, 5]));
    assert_eq!(
        result["leader_in_dept"],
        json!([{ "dept_id": 3, "leader": false }, { "dept_id": 5, "leader": true }])
    );
    assert_eq!(result["title"], "Engineer");
    assert_eq!(result["job_number"], "E-0042");
    assert_eq!(result["email"], "li.si@example.com");
    assert_eq!(result["avatar"], "https://static.example/li.si.png");
    assert_eq!(result["mobile"], "13800000000");
    // The fields the entry does not hold are as before.
    assert_eq!(result["userid"], "li.si");
    assert_eq!(result["name"], "Li Si");
    assert_eq!(result["unionid"], "li.si-unionid");
    assert_eq!(result["org_email"], "");
    assert_eq!(result["admin"], false);
    assert_eq!(result["boss"], false);
    assert_eq!(result["active"], true);
}

#[tokio::test]
async fn a_user_without_an_entry_is_in_the_root_with_empty_fields() {
    let dingtalk = dingtalk().await;
    let token = app_token(&dingtalk).await;
    let answer = oapi(
        &dingtalk,
        USER_GET,
        &token,
        json!({ "userid": "zhang.san" }),
    )
    .await;
    let result = &answer["result"];
    assert_eq!(result["dept_id_list"], json!([1]));
    assert_eq!(
        result["leader_in_dept"],
        json!([{ "dept_id": 1, "leader": false }])
    );
    for field in ["title", "job_number", "email", "avatar", "mobile"] {
        assert_eq!(result[field], "", "{field}");
    }
    let answer = oapi(&dingtalk, PARENTS, &token, json!({ "userid": "zhang.san" })).await;
    assert_eq!(chains(&answer), json!([[1]]));
}

#[tokio::test]
async fn listparentbyuser_gives_each_department_with_those_above_it() {
    let dingtalk = dingtalk().await;
    let token = app_token(&dingtalk).await;
    let answer = oapi(&dingtalk, PARENTS, &token, json!({ "userid": "li.si" })).await;
    assert_eq!(answer["errmsg"], "ok");
    assert!(answer["request_id"].is_string(), "{answer}");
    assert_eq!(chains(&answer), json!([[3, 2, 1], [5, 4, 1]]));

    // A form body is read as well as JSON, as the other legacy answers do.
    let response = reqwest::Client::new()
        .post(format!(
            "{}{PARENTS}?access_token={token}",
            dingtalk.base_url()
        ))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("userid=li.si")
        .send()
        .await
        .unwrap();
    let answer: Value = response.json().await.unwrap();
    assert_eq!(chains(&answer), json!([[3, 2, 1], [5, 4, 1]]));
}

#[tokio::test]
async fn a_department_never_added_hangs_under_the_root() {
    let dingtalk = dingtalk().await;
    dingtalk.add_user(AuthenticatedDingTalkUser::builder("wang.wu", "Wang Wu").build());
    dingtalk.set_directory_entry("wang.wu", DirectoryEntry::in_departments([99, 2]));
    let token = app_token(&dingtalk).await;
    let answer = oapi(&dingtalk, PARENTS, &token, json!({ "userid": "wang.wu" })).await;
    assert_eq!(chains(&answer), json!([[99, 1], [2, 1]]));
    // Moving a department moves the chains through it.
    dingtalk.add_department(2, 4, "Engineering");
    let answer = oapi(&dingtalk, PARENTS, &token, json!({ "userid": "li.si" })).await;
    assert_eq!(chains(&answer), json!([[3, 2, 4, 1], [5, 4, 1]]));
    assert_eq!(dingtalk.department_name(2).as_deref(), Some("Engineering"));
    assert_eq!(dingtalk.department_name(1), Some(dingtalk.corp_id()));
    assert_eq!(dingtalk.department_name(99), None);
}

#[tokio::test]
async fn an_unknown_user_is_60121() {
    let dingtalk = dingtalk().await;
    let token = app_token(&dingtalk).await;
    let answer = oapi(&dingtalk, PARENTS, &token, json!({ "userid": "nobody" })).await;
    assert_eq!(
        answer,
        json!({ "errcode": 60121, "errmsg": "找不到该用户" })
    );
}

#[tokio::test]
async fn a_removed_user_is_60121_and_comes_back_in_the_root() {
    let dingtalk = dingtalk().await;
    let token = app_token(&dingtalk).await;
    assert!(dingtalk.remove_user("li.si"));
    let answer = oapi(&dingtalk, PARENTS, &token, json!({ "userid": "li.si" })).await;
    assert_eq!(
        answer,
        json!({ "errcode": 60121, "errmsg": "找不到该用户" })
    );
    let answer = oapi(&dingtalk, USER_GET, &token, json!({ "userid": "li.si" })).await;
    assert_eq!(answer["errcode"], 60121, "{answer}");

    // Leaving forgets the entry: someone re-hired starts over in the root.
    dingtalk.add_user(AuthenticatedDingTalkUser::builder("li.si", "Li Si").build());
    let answer = oapi(&dingtalk, PARENTS, &token, json!({ "userid": "li.si" })).await;
    assert_eq!(chains(&answer), json!([[1]]));
}

#[tokio::test]
async fn the_token_is_checked_as_by_the_other_contact_answers() {
    let dingtalk = dingtalk().await;
    let body = json!({ "userid": "li.si" });
    let answer = oapi(&dingtalk, PARENTS, "", body.clone()).await;
    assert_eq!(answer["errcode"], 88, "{answer}");
    assert!(answer.to_string().contains("40000"), "{answer}");
    let answer = oapi(&dingtalk, PARENTS, "not-a-token", body.clone()).await;
    assert_eq!(answer["errcode"], 88, "{answer}");
    assert!(answer.to_string().contains("40014"), "{answer}");

    let token = app_token(&dingtalk).await;
    dingtalk.expire_tokens();
    let answer = oapi(&dingtalk, PARENTS, &token, body.clone()).await;
    assert!(answer.to_string().contains("42001"), "{answer}");

    let token = app_token(&dingtalk).await;
    let answer = oapi(&dingtalk, PARENTS, &token, json!({})).await;
    assert_eq!(answer["errcode"], 40035, "{answer}");
}

#[tokio::test]
async fn calls_are_counted_and_faults_injected() {
    let dingtalk = dingtalk().await;
    let token = app_token(&dingtalk).await;
    let body = json!({ "userid": "li.si" });
    assert_eq!(dingtalk.calls(Endpoint::ListParentByUser), 0);

    dingtalk.fail_next(Endpoint::ListParentByUser, Fault::Errcode(-1), 1);
    let answer = oapi(&dingtalk, PARENTS, &token, body.clone()).await;
    assert_eq!(answer["errcode"], -1, "{answer}");
    assert_eq!(dingtalk.faults_served(), 1);
    let answer = oapi(&dingtalk, PARENTS, &token, body.clone()).await;
    assert_eq!(chains(&answer), json!([[3, 2, 1], [5, 4, 1]]));

    dingtalk.fail_always(Endpoint::ListParentByUser, Fault::HttpStatus(502));
    let url = format!("{}{PARENTS}?access_token={token}", dingtalk.base_url());
    let (status, _) = post_json(url, body.clone()).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    // A fault on this endpoint leaves the others alone.
    let answer = oapi(&dingtalk, USER_GET, &token, body.clone()).await;
    assert_eq!(answer["errcode"], 0, "{answer}");
    dingtalk.clear_faults();

    // On the legacy host, the rate limit is errcode 88 with sub_code 90018.
    dingtalk.set_qps_limit(Some(1));
    let answer = oapi(&dingtalk, PARENTS, &token, body.clone()).await;
    assert_eq!(answer["errcode"], 0, "{answer}");
    let answer = oapi(&dingtalk, PARENTS, &token, body).await;
    assert!(answer.to_string().contains("90018"), "{answer}");

    assert_eq!(dingtalk.calls(Endpoint::ListParentByUser), 5);
    assert_eq!(dingtalk.calls(Endpoint::UserGet), 1);
}

#[tokio::test]
async fn a_third_party_corp_keeps_its_own_tree() {
    let dingtalk = dingtalk().await;
    dingtalk.add_corp(CORP_A);
    dingtalk.add_corp_user(
        CORP_A,
        AuthenticatedDingTalkUser::builder("li.si", "Li Si of A").build(),
    );
    // The same ids as the internal tree, arranged otherwise.
    dingtalk.add_corp_department(CORP_A, 3, 1, "Finance");
    dingtalk.add_corp_department(CORP_A, 5, 3, "Audit");
    dingtalk.set_corp_directory_entry(
        CORP_A,
        "li.si",
        DirectoryEntry::in_departments([5])
            .leader_of([5])
            .title("Auditor"),
    );
    let corp = corp_token(&dingtalk, CORP_A).await;
    let internal = app_token(&dingtalk).await;
    let body = json!({ "userid": "li.si" });

    let answer = oapi(&dingtalk, PARENTS, &corp, body.clone()).await;
    assert_eq!(chains(&answer), json!([[5, 3, 1]]));
    let answer = oapi(&dingtalk, USER_GET, &corp, body.clone()).await;
    assert_eq!(answer["result"]["name"], "Li Si of A");
    assert_eq!(answer["result"]["title"], "Auditor");
    assert_eq!(answer["result"]["dept_id_list"], json!([5]));
    assert_eq!(
        answer["result"]["leader_in_dept"],
        json!([{ "dept_id": 5, "leader": true }])
    );

    // The internal organisation's li.si and tree are untouched.
    let answer = oapi(&dingtalk, PARENTS, &internal, body.clone()).await;
    assert_eq!(chains(&answer), json!([[3, 2, 1], [5, 4, 1]]));
    let answer = oapi(&dingtalk, USER_GET, &internal, body).await;
    assert_eq!(answer["result"]["title"], "Engineer");
    assert_eq!(
        dingtalk.corp_department_name(CORP_A, 3).as_deref(),
        Some("Finance")
    );
    assert_eq!(
        dingtalk.corp_department_name(CORP_A, 1).as_deref(),
        Some(CORP_A)
    );

    // A user of the internal organisation only is unknown to the corp's token.
    let answer = oapi(&dingtalk, PARENTS, &corp, json!({ "userid": "zhang.san" })).await;
    assert_eq!(answer["errcode"], 60121, "{answer}");
    // Removing the corp's user leaves the internal one.
    assert!(dingtalk.remove_corp_user(CORP_A, "li.si"));
    let answer = oapi(&dingtalk, PARENTS, &corp, json!({ "userid": "li.si" })).await;
    assert_eq!(answer["errcode"], 60121, "{answer}");
    let answer = oapi(&dingtalk, PARENTS, &internal, json!({ "userid": "li.si" })).await;
    assert_eq!(chains(&answer), json!([[3, 2, 1], [5, 4, 1]]));
}
