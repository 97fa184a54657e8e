//! Who a user is in the company: the directory's profile (read once per user, not per code),
//! department guards that take sub-departments in, leaders, and a DingTalk that does not answer.

mod support;

use axum::routing::get;
use axum::{Json, Router};
use tower_dingtalk_auth::testing::{DirectoryEntry, Endpoint, Fault, MockDingTalk};
use tower_dingtalk_auth::{
    AuthenticatedDingTalkUser, DingTalkAuthLayer, ProfileFields, SessionConfig, SessionKey, guard,
};

/// Finance (10) with Payroll (11) under it, and Sales (20), under the company (1).
async fn company() -> MockDingTalk {
    let dingtalk = support::dingtalk().await;
    dingtalk.add_department(10, 1, "Finance");
    dingtalk.add_department(11, 10, "Payroll");
    dingtalk.add_department(20, 1, "Sales");
    dingtalk.set_directory_entry(
        "staff01",
        DirectoryEntry::in_departments([11])
            .title("Payroll clerk")
            .mobile("13800000000")
            .email("li.si@example.com"),
    );
    dingtalk.set_directory_entry(
        "boss01",
        DirectoryEntry::in_departments([20])
            .leader_of([20])
            .title("Head of Sales"),
    );
    dingtalk
}

async fn serve(dingtalk: &MockDingTalk, fields: ProfileFields) -> String {
    let client = dingtalk.client_builder().profile(fields).build().unwrap();
    let layer = DingTalkAuthLayer::builder()
        .client(client)
        .session(SessionConfig::new(SessionKey::generate()).secure(false))
        .build()
        .unwrap();
    let reports = Router::new()
        .route("/reports", get(|| async { "the books" }))
        .route_layer(guard::require_department([10]));
    let approvals = Router::new()
        .route("/approvals", get(|| async { "to approve" }))
        .route_layer(guard::require_leader());
    let app: Router = Router::new()
        .route(
            "/me",
            get(|user: AuthenticatedDingTalkUser| async move {
                let profile = user.profile();
                Json(serde_json::json!({
                    "departments": profile.map(|p| p.departments().to_vec()),
                    "title": profile.and_then(|p| p.title()),
                    "mobile": profile.and_then(|p| p.mobile()),
                    "email": profile.and_then(|p| p.email()),
                }))
            }),
        )
        .merge(reports)
        .merge(approvals)
        .layer(layer);
    let (addr, _server) = support::serve(app).await;
    format!("http://{addr}")
}

async fn get_as(http: &reqwest::Client, url: String, code: &str) -> reqwest::Response {
    http.get(url)
        .header("x-dingtalk-code", code)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn department_guards_take_sub_departments_in_and_leaders_are_known() {
    let dingtalk = company().await;
    let base = serve(&dingtalk, ProfileFields::DEPARTMENTS | ProfileFields::TITLE).await;
    let http = reqwest::Client::new();
    let staff = dingtalk.issue_code("staff01");
    let boss = dingtalk.issue_code("boss01");
    // Payroll is under Finance: in; Sales is not.
    assert_eq!(
        get_as(&http, format!("{base}/reports"), &staff)
            .await
            .status(),
        200
    );
    let refused = get_as(&http, format!("{base}/reports"), &boss).await;
    support::assert_rejection(refused, 403, "forbidden", &[]).await;
    // Only the head of Sales leads a department.
    assert_eq!(
        get_as(&http, format!("{base}/approvals"), &boss)
            .await
            .status(),
        200
    );
    let refused = get_as(&http, format!("{base}/approvals"), &staff).await;
    support::assert_rejection(refused, 403, "forbidden", &[]).await;

    let me: serde_json::Value = get_as(&http, format!("{base}/me"), &staff)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["departments"], serde_json::json!([11]));
    assert_eq!(me["title"], "Payroll clerk");
    assert_eq!(
        me["mobile"],
        serde_json::Value::Null,
        "personal data only when asked for"
    );
    assert_eq!(me["email"], serde_json::Value::Null, "not asked for");

    // Once per user, not per code: a second sign-in reads the kept profile.
    let again = dingtalk.issue_code("staff01");
    assert_eq!(
        get_as(&http, format!("{base}/reports"), &again)
            .await
            .status(),
        200
    );
    assert_eq!(dingtalk.calls(Endpoint::UserGet), 2, "one per user");
    assert_eq!(
        dingtalk.calls(Endpoint::ListParentByUser),
        2,
        "one per user"
    );
}

#[tokio::test]
async fn the_mobile_number_only_when_asked_for() {
    let dingtalk = company().await;
    let base = serve(
        &dingtalk,
        ProfileFields::ALL_BUT_MOBILE | ProfileFields::MOBILE,
    )
    .await;
    let http = reqwest::Client::new();
    let me: serde_json::Value =
        get_as(&http, format!("{base}/me"), &dingtalk.issue_code("staff01"))
            .await
            .json()
            .await
            .unwrap();
    assert_eq!(me["mobile"], "13800000000");
    assert_eq!(me["email"], "li.si@example.com");
}

#[tokio::test]
async fn a_failing_profile_fails_no_login_but_a_guard_that_needs_it_is_503() {
    let dingtalk = company().await;
    let base = serve(&dingtalk, ProfileFields::DEPARTMENTS).await;
    dingtalk.fail_always(Endpoint::UserGet, Fault::HttpStatus(502));
    let http = reqwest::Client::new();
    let code = dingtalk.issue_code("staff01");
    let me = get_as(&http, format!("{base}/me"), &code).await;
    assert_eq!(me.status(), 200, "a login that needs no profile");
    let me: serde_json::Value = me.json().await.unwrap();
    assert_eq!(me["departments"], serde_json::Value::Null);
    let guarded = get_as(&http, format!("{base}/reports"), &code).await;
    let headers = support::assert_rejection(guarded, 503, "profile_unavailable", &[]).await;
    assert!(headers.contains_key("retry-after"));
    // DingTalk answers again: after the Retry-After, the next request gets the profile (while it
    // failed, DingTalk was asked once, not per request).
    assert_eq!(dingtalk.calls(Endpoint::UserGet), 1);
    dingtalk.clear_faults();
    tokio::time::sleep(std::time::Duration::from_millis(5100)).await;
    assert_eq!(
        get_as(&http, format!("{base}/reports"), &code)
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn replicas_share_a_users_profile_through_the_store() {
    let dingtalk = company().await;
    let prefix = support::store::Prefix::new("profiles");
    let mut replicas = Vec::new();
    for _ in 0..2 {
        let store = prefix
            .store(|b| b.timeout(support::store::SHARING_TEST_TIMEOUT))
            .await;
        replicas.push(
            support::store::Replica::start_with(
                &dingtalk,
                store,
                |client| client.profile(ProfileFields::DEPARTMENTS),
                |layer| layer,
            )
            .await,
        );
    }
    for replica in &replicas {
        let response = replica.get(&dingtalk.issue_code("staff01")).await;
        assert_eq!(response.status(), 200);
    }
    assert_eq!(
        dingtalk.calls(Endpoint::UserGet),
        1,
        "read once, across replicas"
    );
    assert_eq!(dingtalk.calls(Endpoint::ListParentByUser), 1);
    // Fields not asked for are not kept anywhere, Redis included.
    for (_, value, _) in prefix.entries() {
        assert!(
            !value.contains("13800000000") && !value.contains("li.si@"),
            "{value}"
        );
    }
}
