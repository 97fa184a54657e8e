//! A code sent is a code kept: the budget bounds how long a request waits, never the life of a call
//! that reached DingTalk, which spends the code when the call arrives. And the fake DingTalk is as
//! unforgiving as the real one.

mod support;

use std::time::{Duration, Instant};

use support::{TestApp, assert_rejection, json};
use tower_dingtalk_auth::testing::{Endpoint, Fault};

async fn app_with_budget(budget: Duration) -> TestApp {
    TestApp::with_client(
        support::dingtalk().await,
        |c| c.upstream_timeout(budget),
        |l| l,
    )
    .await
}

#[tokio::test]
async fn a_call_answered_after_the_budget_is_kept_and_the_retry_is_served_from_the_cache() {
    let app = app_with_budget(Duration::from_millis(300)).await;
    // The token first, so that the call below is sent at once.
    let warm = app.dingtalk.issue_code("staff01");
    assert_eq!(app.get_with_code("/me", &warm).await.status(), 200);
    app.dingtalk.fail_next(
        Endpoint::GetUserInfo,
        Fault::Latency(Duration::from_millis(800)),
        1,
    );
    let code = app.dingtalk.issue_code("boss01");
    let started = Instant::now();
    let response = app.get_with_code("/me", &code).await;
    let took = started.elapsed();
    // The request waited for its budget, not for DingTalk.
    assert_rejection(response, 504, "upstream_timeout", &[&code]).await;
    assert!(took < Duration::from_millis(700), "{took:?}");

    // DingTalk answers at 800 ms; the call ran to its answer, which is cached.
    tokio::time::sleep(Duration::from_millis(900)).await;
    let response = app.get_with_code("/me", &code).await;
    assert_eq!(json(response).await["userid"], "boss01");
    assert_eq!(
        app.dingtalk.userinfo_calls(),
        2,
        "no second call for the code"
    );
    assert_eq!(
        app.dingtalk.abandoned_calls(),
        0,
        "the layer heard DingTalk out"
    );
    assert_eq!(app.handler_runs(), 2);
}

#[tokio::test]
async fn a_retry_while_the_call_is_still_out_joins_it() {
    let app = app_with_budget(Duration::from_millis(400)).await;
    let warm = app.dingtalk.issue_code("staff01");
    assert_eq!(app.get_with_code("/me", &warm).await.status(), 200);
    app.dingtalk.fail_next(
        Endpoint::GetUserInfo,
        Fault::Latency(Duration::from_millis(700)),
        1,
    );
    let code = app.dingtalk.issue_code("super01");
    let first = app.get_with_code("/me", &code).await;
    assert_rejection(first, 504, "upstream_timeout", &[&code]).await;
    // At ~450 ms the call is still out; the retry waits on it and gets its answer at 700 ms.
    let response = app.get_with_code("/me", &code).await;
    assert_eq!(json(response).await["userid"], "super01");
    assert_eq!(app.dingtalk.userinfo_calls(), 2);
}

#[tokio::test]
async fn a_rejection_answered_after_the_budget_is_remembered_too() {
    let app = app_with_budget(Duration::from_millis(300)).await;
    let warm = app.dingtalk.issue_code("staff01");
    assert_eq!(app.get_with_code("/me", &warm).await.status(), 200);
    app.dingtalk.fail_next(
        Endpoint::GetUserInfo,
        Fault::Latency(Duration::from_millis(600)),
        1,
    );
    let response = app.get_with_code("/me", "never-issued-code-01").await;
    assert_rejection(response, 504, "upstream_timeout", &[]).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let response = app.get_with_code("/me", "never-issued-code-01").await;
    assert_rejection(response, 401, "code_rejected", &[]).await;
    assert_eq!(app.dingtalk.userinfo_calls(), 2);
}

#[tokio::test]
async fn past_the_budget_no_call_is_sent_at_all() {
    // The token endpoint alone takes longer than the budget: the code is never sent, so it is
    // still good once DingTalk is fast again.
    let app = app_with_budget(Duration::from_millis(300)).await;
    app.dingtalk.fail_next(
        Endpoint::AccessToken,
        Fault::Latency(Duration::from_millis(600)),
        1,
    );
    let code = app.dingtalk.issue_code("staff01");
    let response = app.get_with_code("/me", &code).await;
    assert_rejection(response, 504, "upstream_timeout", &[&code]).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(app.dingtalk.userinfo_calls(), 0);
    let response = app.get_with_code("/me", &code).await;
    assert_eq!(json(response).await["userid"], "staff01");
    assert_eq!(app.dingtalk.userinfo_calls(), 1);
}

#[tokio::test]
async fn a_sent_call_is_cut_only_at_the_answer_timeout() {
    let app = TestApp::with_client(
        support::dingtalk().await,
        |c| {
            c.upstream_timeout(Duration::from_millis(200))
                .answer_timeout(Duration::from_millis(600))
        },
        |l| l,
    )
    .await;
    let warm = app.dingtalk.issue_code("staff01");
    assert_eq!(app.get_with_code("/me", &warm).await.status(), 200);
    app.dingtalk.fail_next(
        Endpoint::GetUserInfo,
        Fault::Latency(Duration::from_secs(2)),
        1,
    );
    let code = app.dingtalk.issue_code("boss01");
    assert_eq!(app.get_with_code("/me", &code).await.status(), 504);
    tokio::time::sleep(Duration::from_millis(700)).await;
    // At 600 ms the layer gave up on DingTalk: the client went away, and the code it spent is gone
    // with the answer. The retry is told so, by DingTalk.
    assert_eq!(app.dingtalk.abandoned_calls(), 1);
    let response = app.get_with_code("/me", &code).await;
    assert_rejection(response, 401, "code_rejected", &[&code]).await;
    assert_eq!(app.dingtalk.userinfo_calls(), 3);
}

#[tokio::test]
async fn the_fake_spends_a_code_when_the_call_arrives_even_if_the_client_hangs_up() {
    let dingtalk = support::dingtalk().await;
    let http = reqwest::Client::new();
    let base = dingtalk.base_url();
    let token = support::known_token(&dingtalk).await;
    let url = format!("{base}/topapi/v2/user/getuserinfo?access_token={token}");
    let code = dingtalk.issue_code("staff01");
    dingtalk.fail_next(
        Endpoint::GetUserInfo,
        Fault::Latency(Duration::from_millis(500)),
        1,
    );
    let hung_up = http
        .post(&url)
        .timeout(Duration::from_millis(100))
        .json(&serde_json::json!({ "code": code }))
        .send()
        .await;
    assert!(hung_up.unwrap_err().is_timeout());
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(dingtalk.abandoned_calls(), 1);
    let again: serde_json::Value = http
        .post(&url)
        .json(&serde_json::json!({ "code": code }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["errcode"], 40078, "{again}");
    assert_eq!(dingtalk.userinfo_calls(), 2);
}

#[tokio::test]
async fn the_fake_answers_bad_tokens_and_unknown_paths_as_dingtalk_does() {
    let dingtalk = support::dingtalk().await;
    let http = reqwest::Client::new();
    let base = dingtalk.base_url();
    let getuserinfo = |token: &str| {
        http.post(format!(
            "{base}/topapi/v2/user/getuserinfo?access_token={token}"
        ))
        .json(&serde_json::json!({ "code": "x" }))
        .send()
    };
    // Three calls with a bad token: errcode 88 wrapping 40014, in each of DingTalk's shapes.
    let mut shapes = Vec::new();
    for _ in 0..3 {
        let answer: serde_json::Value = getuserinfo("bogus").await.unwrap().json().await.unwrap();
        assert_eq!(answer["errcode"], 88, "{answer}");
        let in_sub_code = answer["sub_code"] == "40014";
        let in_errmsg = answer["errmsg"].as_str().unwrap().contains("subcode=40014");
        assert!(in_sub_code || in_errmsg, "{answer}");
        shapes.push((in_sub_code, in_errmsg));
    }
    shapes.sort_unstable();
    assert_eq!(shapes, [(false, true), (true, false), (true, true)]);
    let blank: serde_json::Value = getuserinfo("").await.unwrap().json().await.unwrap();
    assert!(
        blank["sub_code"] == "40000" || blank["errmsg"].as_str().unwrap().contains("40000"),
        "{blank}"
    );
    // Unknown paths: errcode 22 on the legacy host, a JSON 404 on the new one.
    let legacy = http
        .post(format!("{base}/topapi/v2/user/notexist"))
        .send()
        .await
        .unwrap();
    assert_eq!(legacy.status(), 200);
    let legacy: serde_json::Value = legacy.json().await.unwrap();
    assert_eq!(legacy["errcode"], 22);
    let new = http
        .post(format!("{base}/v1.0/oauth2/nothing/here/either"))
        .send()
        .await
        .unwrap();
    assert_eq!(new.status(), 404);
    let new: serde_json::Value = new.json().await.unwrap();
    assert_eq!(new["code"], "InvalidAction.NotFound");
}
