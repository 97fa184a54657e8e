//! The fake DingTalk's control surface over real sockets: users added and codes issued over HTTP
//! behave as `add_user` and `issue_code` do, the counters it answers are the fake's own, and bad
//! control calls are refused with what is wrong, costing no DingTalk call.

use serde_json::{Value, json};
use tower_dingtalk_auth::testing::{CONTROL_PREFIX, Endpoint, MockDingTalk};
use tower_dingtalk_auth::{AdminLevel, AuthenticatedDingTalkUser};

fn control(dingtalk: &MockDingTalk, call: &str) -> String {
    format!("{}{CONTROL_PREFIX}{call}", dingtalk.base_url())
}

async fn calls(http: &reqwest::Client, dingtalk: &MockDingTalk) -> Value {
    let response = http.get(control(dingtalk, "calls")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    response.json().await.unwrap()
}

#[tokio::test]
async fn a_code_over_http_is_exchanged_once_and_the_counters_say_so() {
    let dingtalk = MockDingTalk::start().await;
    let http = reqwest::Client::new();
    let added = http
        .post(control(&dingtalk, "users?userid=alice&name=Alice%20Wang"))
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), 201);

    let response = http
        .post(control(&dingtalk, "codes?userid=alice"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], "text/plain; charset=utf-8");
    // A page on another origin may read it; nobody may cache it.
    assert_eq!(headers["access-control-allow-origin"], "*");
    assert_eq!(headers["cache-control"], "no-store");
    let code = response.text().await.unwrap();
    assert!(
        !code.is_empty() && code.chars().all(|c| c.is_ascii_alphanumeric()),
        "{code}"
    );

    let user = dingtalk
        .client_builder()
        .build()
        .unwrap()
        .user_info(&code)
        .await
        .unwrap();
    assert_eq!((user.userid(), user.name()), ("alice", "Alice Wang"));
    // Spent by its first exchange, as DingTalk's codes are.
    let another = dingtalk.client_builder().build().unwrap();
    assert!(another.user_info(&code).await.is_err());

    // The control calls themselves are not counted: a token and an exchange per client.
    let counted = calls(&http, &dingtalk).await;
    assert_eq!(counted["calls"]["get_user_info"], 2);
    assert_eq!(counted["calls"]["access_token"], 2);
    assert_eq!(counted["total"], 4);
    assert_eq!(counted["faults_served"], 0);
    assert_eq!(counted["abandoned"], 0);
    assert_eq!(counted["total"], dingtalk.total_calls());
    assert_eq!(
        counted["calls"]["get_user_info"],
        dingtalk.calls(Endpoint::GetUserInfo)
    );
    assert_eq!(counted["calls"].as_object().unwrap().len(), 13, "{counted}");
}

#[tokio::test]
async fn a_user_from_a_json_body_keeps_its_whole_shape() {
    let dingtalk = MockDingTalk::start().await;
    let http = reqwest::Client::new();
    let boss = AuthenticatedDingTalkUser::builder("boss100", "Zhao Liu")
        .admin_level(AdminLevel::SuperAdmin)
        .build();
    let added = http
        .post(control(&dingtalk, "users"))
        .json(&boss)
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), 201);
    let code = http
        .post(control(&dingtalk, "codes?userid=boss100"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let user = dingtalk
        .client_builder()
        .build()
        .unwrap()
        .user_info(&code)
        .await
        .unwrap();
    assert_eq!(user, boss);
    assert_eq!(user.admin_level(), AdminLevel::SuperAdmin);
}

#[tokio::test]
async fn a_code_for_a_userid_never_added_is_60121_at_the_exchange_as_issue_code_s_is() {
    let dingtalk = MockDingTalk::start().await;
    let http = reqwest::Client::new();
    let response = http
        .post(control(&dingtalk, "codes?userid=nobody"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let code = response.text().await.unwrap();
    let base = dingtalk.base_url();
    let token: Value = http
        .post(format!("{base}/v1.0/oauth2/accessToken"))
        .json(&json!({ "appKey": dingtalk.app_key(), "appSecret": dingtalk.app_secret() }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["accessToken"].as_str().unwrap();
    let answer: Value = http
        .post(format!(
            "{base}/topapi/v2/user/getuserinfo?access_token={token}"
        ))
        .json(&json!({ "code": code }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["errcode"], 60121, "{answer}");
    assert_eq!(dingtalk.userinfo_calls(), 1);
}

#[tokio::test]
async fn bad_control_calls_say_what_is_wrong_and_cost_no_dingtalk_call() {
    let dingtalk = MockDingTalk::start().await;
    let http = reqwest::Client::new();
    let long = "x".repeat(257);
    let cases = [
        (
            "POST",
            "codes".to_owned(),
            None,
            400,
            "`userid` is missing or empty",
        ),
        (
            "POST",
            "codes?userid=".to_owned(),
            None,
            400,
            "`userid` is missing or empty",
        ),
        (
            "POST",
            format!("codes?userid={long}"),
            None,
            400,
            "longer than 256 bytes",
        ),
        (
            "POST",
            "users?userid=bob&name=".to_owned(),
            None,
            400,
            "`name` is missing or empty",
        ),
        (
            "POST",
            format!("users?userid=bob&name={long}"),
            None,
            400,
            "longer than 256 bytes",
        ),
        (
            "POST",
            "users".to_owned(),
            Some(json!({"userid": "bob"})),
            400,
            "not a user's JSON",
        ),
        (
            "POST",
            "users".to_owned(),
            Some(json!({"userid": "", "name": "B"})),
            400,
            "`userid`",
        ),
        (
            "GET",
            "codes?userid=alice".to_owned(),
            None,
            405,
            "use POST",
        ),
        ("POST", "calls".to_owned(), None, 405, "use GET"),
        (
            "GET",
            "reset".to_owned(),
            None,
            404,
            "POST /_fake/codes?userid=ID",
        ),
    ];
    for (method, call, body, status, says) in cases {
        let mut request = http.request(method.parse().unwrap(), control(&dingtalk, &call));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), status, "{method} {call}");
        let allow = response
            .headers()
            .get("allow")
            .map(|v| v.to_str().unwrap().to_owned());
        let expected = (status == 405).then(|| if call == "calls" { "GET" } else { "POST" });
        assert_eq!(allow.as_deref(), expected, "{method} {call}");
        let text = response.text().await.unwrap();
        assert!(text.contains(says), "{method} {call}: {text}");
    }
    // A body past the fake's 64 KiB limit is refused before it is read.
    let response = http
        .post(control(&dingtalk, "users"))
        .body(vec![b'{'; 65 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    // Nobody was added: a code for bob is refused.
    let code = dingtalk.issue_code("bob");
    assert!(
        dingtalk
            .client_builder()
            .build()
            .unwrap()
            .user_info(&code)
            .await
            .is_err()
    );
    assert_eq!(calls(&http, &dingtalk).await["calls"]["get_user_info"], 1);
    assert_eq!(
        dingtalk.total_calls(),
        2,
        "one token, one exchange: the control calls cost none"
    );
}
