//! `DingTalkClient::check`: before the first user does, ask DingTalk whether it accepts this app
//! from this server. A healthy app passes with two calls (a token, and a code that cannot exist,
//! refused as unknown); each way DingTalk refuses an app is named with its fix, the IP DingTalk saw
//! included, and no secret is in the report.

mod support;

use std::time::Duration;

use tower_dingtalk_auth::CheckProblem;
use tower_dingtalk_auth::testing::{Endpoint, Fault, MockDingTalk};

/// DingTalk's 60020, as captured live (tests/data/real-answers.json, U-series).
const NOT_WHITELISTED: &str = r#"{"errcode":60020,"errmsg":"访问ip不在白名单之中，请参考FAQ：https://open.dingtalk.com/document/org-faq/app-faq,request ip=120.230.136.230 appKey\u0028dingmf6cuictoilijt0g\u0029"}"#;

#[tokio::test]
async fn a_healthy_app_passes_the_self_check_with_a_token_and_one_call() {
    let dingtalk = support::dingtalk().await;
    let client = dingtalk.client_builder().build().unwrap();
    assert_eq!(client.check().await, Ok(()));
    assert_eq!(dingtalk.token_calls(), 1);
    assert_eq!(dingtalk.userinfo_calls(), 1);
    // The check's code is not remembered as a rejected code of a user: the cache holds nothing.
    assert_eq!(client.cache_stats().await.rejected_codes, 0);
}

#[tokio::test]
async fn each_way_dingtalk_refuses_the_app_is_named_with_its_fix() {
    let dingtalk = support::dingtalk().await;
    let client = dingtalk
        .client_builder()
        .upstream_timeout(Duration::from_millis(500))
        .build()
        .unwrap();

    dingtalk.fail_next(
        Endpoint::GetUserInfo,
        Fault::Raw(200, NOT_WHITELISTED.as_bytes().to_vec()),
        1,
    );
    let problem = client.check().await.unwrap_err();
    assert_eq!(
        problem,
        CheckProblem::IpNotWhitelisted {
            seen_ip: Some("120.230.136.230".to_owned())
        }
    );
    assert!(
        problem.to_string().contains("add 120.230.136.230"),
        "{problem}"
    );

    dingtalk.fail_next(Endpoint::GetUserInfo, Fault::Errcode(60011), 1);
    let problem = client.check().await.unwrap_err();
    assert_eq!(problem, CheckProblem::MissingPermission);
    assert!(problem.to_string().contains("qyapi_base"));

    dingtalk.fail_next(Endpoint::GetUserInfo, Fault::HttpStatus(502), 1);
    assert_eq!(client.check().await, Err(CheckProblem::Unreachable));
    dingtalk.fail_next(
        Endpoint::GetUserInfo,
        Fault::Latency(Duration::from_secs(2)),
        1,
    );
    assert_eq!(client.check().await, Err(CheckProblem::Unreachable));
    dingtalk.fail_next(Endpoint::GetUserInfo, Fault::Errcode(90018), 1);
    assert_eq!(client.check().await, Err(CheckProblem::Throttled));
    // Past the pause DingTalk asked for, the same client passes again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(client.check().await, Ok(()));
}

#[tokio::test]
async fn a_wrong_secret_is_named_and_the_report_holds_no_secret() {
    let dingtalk = MockDingTalk::start().await;
    let client = tower_dingtalk_auth::DingTalkClient::builder()
        .internal_app(dingtalk.app_key(), "not-the-secret-s3cr3t")
        .base_url(dingtalk.base_url())
        .build()
        .unwrap();
    let problem = client.check().await.unwrap_err();
    assert_eq!(problem, CheckProblem::Credentials);
    let shown = format!("{problem} {problem:?}");
    assert!(shown.contains("AppSecret"), "{shown}");
    assert!(!shown.contains("s3cr3t"), "{shown}");
    assert_eq!(dingtalk.userinfo_calls(), 0);
}

#[tokio::test]
async fn a_third_party_app_checks_one_corp() {
    const CORP: &str = "dingcheckcorp01";
    let dingtalk = MockDingTalk::start().await;
    dingtalk.add_corp(CORP);
    let client = tower_dingtalk_auth::DingTalkClient::builder()
        .third_party_app(dingtalk.suite_key(), dingtalk.suite_secret())
        .base_url(dingtalk.base_url())
        .build()
        .unwrap();
    assert_eq!(client.check_corp(CORP).await, Ok(()));
    assert_eq!(
        client.check_corp("dingnotinstalled").await,
        Err(CheckProblem::Credentials)
    );
    // Without a corp there is nothing to check a third-party app against.
    assert_eq!(client.check().await, Err(CheckProblem::MissingCorpId));
}

/// The readiness probe: a held token costs no call, a token endpoint that refuses the app or a
/// store that does not answer make it 503, and its body names what failed and holds no secret.
#[tokio::test]
async fn the_readiness_probe_says_what_is_down_and_holds_no_secret() {
    use axum::routing::get;
    let dingtalk = support::dingtalk().await;
    let client = dingtalk.client_builder().build().unwrap();
    let probe = client.clone();
    let app = axum::Router::new().route(
        "/ready",
        get(move || async move { probe.readiness().await }),
    );
    let (addr, _server) = support::serve(app).await;
    let http = reqwest::Client::new();
    let ready = || http.get(format!("http://{addr}/ready")).send();

    let response = ready().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert_eq!(
        response.text().await.unwrap(),
        r#"{"ready":true,"token":true,"store":null}"#
    );
    for _ in 0..3 {
        assert_eq!(ready().await.unwrap().status(), 200);
    }
    assert_eq!(dingtalk.token_calls(), 1, "a held token costs no call");
    assert_eq!(dingtalk.userinfo_calls(), 0);

    // An app whose secret DingTalk refuses is not ready.
    let wrong = tower_dingtalk_auth::DingTalkClient::builder()
        .internal_app(dingtalk.app_key(), "wrong-s3cr3t")
        .base_url(dingtalk.base_url())
        .build()
        .unwrap();
    let readiness = wrong.readiness().await;
    assert!(!readiness.is_ready());
    assert_eq!(readiness.token, Some(false));
    assert_eq!(readiness.status(), 503);
    let shown = format!("{} {readiness:?}", readiness.to_json());
    assert!(!shown.contains("s3cr3t") && !shown.contains(&dingtalk.app_secret()));

    // A third-party app has no one token: only its store (none here) counts.
    let suite = tower_dingtalk_auth::DingTalkClient::builder()
        .third_party_app(dingtalk.suite_key(), dingtalk.suite_secret())
        .base_url(dingtalk.base_url())
        .build()
        .unwrap();
    assert_eq!(
        suite.readiness().await.to_json(),
        r#"{"ready":true,"token":null,"store":null}"#
    );
}

/// With a shared store, the probe asks Redis: answering, ready; a Redis that does not answer makes
/// the probe 503 (the layer itself keeps serving, each replica alone).
#[tokio::test]
async fn the_readiness_probe_asks_the_shared_store() {
    use support::store::{Prefix, TEST_SECRET};
    let dingtalk = support::dingtalk().await;
    let prefix = Prefix::new("readiness");
    let store = prefix.store(|b| b).await;
    let client = dingtalk
        .client_builder()
        .shared_store(store)
        .build()
        .unwrap();
    assert_eq!(
        client.readiness().await.to_json(),
        r#"{"ready":true,"token":true,"store":true}"#
    );
    // Nothing listens on this port: a store made while Redis is down.
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let store = tower_dingtalk_auth::RedisStore::builder(format!("redis://127.0.0.1:{dead}"))
        .secret(TEST_SECRET)
        .connect_lazy()
        .unwrap();
    let client = dingtalk
        .client_builder()
        .shared_store(store)
        .build()
        .unwrap();
    let readiness = client.readiness().await;
    assert_eq!(readiness.store, Some(false));
    assert_eq!(readiness.token, Some(true));
    assert_eq!(readiness.status(), 503);
}
