//! Property tests: random request parts and random DingTalk answers never panic, and a user comes
//! only from an issued code and a well-formed success answer.

mod support;

use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Value, json};
use tower::ServiceExt;
use tower_dingtalk_auth::testing::{Endpoint, Fault, MockDingTalk};
use tower_dingtalk_auth::{AuthenticatedDingTalkUser, DingTalkAuthLayer, DingTalkClient};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The inner service answers with the userid the layer found.
async fn whoami(request: Request<String>) -> Result<Response<String>, Infallible> {
    let user = request.extensions().get::<AuthenticatedDingTalkUser>();
    Ok(Response::new(
        user.map(|u| u.userid().to_owned()).unwrap_or_default(),
    ))
}

fn query_strategy() -> impl Strategy<Value = String> {
    let pair = (
        prop_oneof![Just("code"), Just("c"), Just("code[]"), Just("x")],
        prop_oneof![any::<String>(), "[ -~]{0,300}", Just(String::new())],
    );
    let encoded = proptest::collection::vec(pair, 0..4).prop_map(|pairs| {
        let mut query = form_urlencoded::Serializer::new(String::new());
        query.extend_pairs(pairs);
        query.finish()
    });
    // Raw queries with stray percent signs and separators.
    prop_oneof![encoded, "[a-z0-9=&%+;.~-]{0,60}"]
}

fn headers_strategy() -> impl Strategy<Value = Vec<(&'static str, Vec<u8>)>> {
    let name = prop_oneof![Just("x-dingtalk-code"), Just("cookie"), Just("x-other")];
    let value = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..300),
        "[ -~]{0,40}".prop_map(String::into_bytes),
    ];
    proptest::collection::vec((name, value), 0..4)
}

#[test]
fn random_request_parts_never_panic_and_only_the_issued_code_authenticates() {
    let runtime = runtime();
    let (dingtalk, service, issued) = runtime.block_on(async {
        let dingtalk = support::dingtalk().await;
        let client = support::client_for(&dingtalk)
            .rate_limit(100_000)
            .build()
            .unwrap();
        let layer = DingTalkAuthLayer::builder().client(client).build().unwrap();
        let service = tower::ServiceBuilder::new()
            .layer(layer)
            .service(tower::service_fn(whoami));
        let issued = dingtalk.issue_code("staff01");
        (dingtalk, service, issued)
    });
    let strategy = (query_strategy(), headers_strategy(), 0..3u8);
    let mut runner = TestRunner::new(Config {
        cases: 300,
        ..Config::default()
    });
    let result = runner.run(&strategy, |(query, headers, place_issued)| {
        let mut request = Request::builder();
        let mut uri = format!("/me?{query}");
        match place_issued {
            0 => uri.push_str(&format!("&code={issued}")),
            1 => request = request.header("x-dingtalk-code", issued.as_str()),
            _ => {}
        }
        let Ok(uri) = http::Uri::try_from(uri) else {
            return Ok(());
        };
        request = request.uri(uri);
        for (name, value) in headers {
            if let Ok(value) = http::HeaderValue::from_bytes(&value) {
                request = request.header(name, value);
            }
        }
        let request = request.body(String::new()).unwrap();
        let carried_issued =
            format!("{:?}{:?}", request.uri(), request.headers()).contains(issued.as_str());
        let response = runtime
            .block_on(service.clone().oneshot(request))
            .map_err(|e| TestCaseError::fail(format!("{e}")))?;
        let status = response.status().as_u16();
        prop_assert!(status == 200 || status == 401, "status {}", status);
        if status == 200 {
            prop_assert!(carried_issued, "authenticated without the issued code");
            let body = runtime.block_on(http_body_util::BodyExt::collect(response.into_body()));
            let body: Bytes = body.unwrap().to_bytes();
            prop_assert_eq!(&body[..], b"staff01");
        }
        Ok(())
    });
    result.unwrap();
    assert!(
        dingtalk.userinfo_calls() >= 1,
        "the issued code was exchanged"
    );
}

/// What a documented field may hold in a well-formed answer, and values that it may not.
fn field(good: Vec<Value>, bad: Vec<Value>) -> impl Strategy<Value = Option<Value>> {
    let good = proptest::sample::select(good).prop_map(Some);
    let bad = proptest::sample::select(bad).prop_map(Some);
    prop_oneof![12 => good, 1 => bad, 1 => Just(None)]
}

fn answer_strategy() -> impl Strategy<Value = (u16, Vec<u8>)> {
    let result = (
        field(
            vec![json!("u1"), json!("u1"), json!("")],
            vec![json!(7), Value::Null],
        ),
        field(vec![json!("Name")], vec![json!(1), Value::Null]),
        field(
            vec![json!(true), json!(false)],
            vec![json!("true"), json!(1)],
        ),
        field(
            vec![json!(0), json!(1), json!(2), json!(100), json!(9)],
            vec![json!("1"), json!(1.5)],
        ),
        field(vec![json!("assoc"), json!(""), Value::Null], vec![json!(3)]),
    )
        .prop_map(|(userid, name, sys, level, associated)| {
            let mut result = serde_json::Map::new();
            for (key, value) in [
                ("userid", userid),
                ("name", name),
                ("sys", sys),
                ("sys_level", level),
                ("associated_unionid", associated),
            ] {
                if let Some(value) = value {
                    result.insert(key.to_owned(), value);
                }
            }
            Value::Object(result)
        });
    let envelope = (
        field(
            vec![
                json!(0),
                json!(0),
                json!(0),
                json!(40078),
                json!(90018),
                json!(60011),
                json!(12345),
            ],
            vec![json!("0"), Value::Null, json!(0.5)],
        ),
        field(vec![json!("ok")], vec![Value::Null, json!(5)]),
        prop_oneof![8 => result.prop_map(Some), 1 => Just(Some(Value::Null)), 1 => Just(None)],
    )
        .prop_map(|(errcode, errmsg, result)| {
            let mut body = serde_json::Map::new();
            for (key, value) in [("errcode", errcode), ("errmsg", errmsg), ("result", result)] {
                if let Some(value) = value {
                    body.insert(key.to_owned(), value);
                }
            }
            serde_json::to_vec(&body).unwrap()
        });
    let raw = proptest::collection::vec(any::<u8>(), 0..200);
    let status = prop_oneof![8 => Just(200u16), 1 => Just(400u16), 1 => Just(502u16)];
    (status, prop_oneof![3 => envelope, 1 => raw])
}

/// The oracle: a user may come only from HTTP 200, errcode 0, and a result whose userid is a
/// non-empty string and whose every documented field has its documented type.
fn well_formed_success(status: u16, body: &[u8]) -> bool {
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(body) else {
        return false;
    };
    let typed = |object: &serde_json::Map<String, Value>, key: &str, ok: fn(&Value) -> bool| {
        object.get(key).is_none_or(ok)
    };
    let Some(Value::Object(result)) = body.get("result") else {
        return false;
    };
    status == 200
        && body.get("errcode").and_then(Value::as_i64) == Some(0)
        && body.get("errcode").is_some_and(Value::is_i64)
        && typed(&body, "errmsg", Value::is_string)
        && result
            .get("userid")
            .and_then(Value::as_str)
            .is_some_and(|id| !id.is_empty())
        && typed(result, "name", Value::is_string)
        && typed(result, "sys", Value::is_boolean)
        && typed(result, "sys_level", Value::is_i64)
        && typed(result, "associated_unionid", |v| {
            v.is_string() || v.is_null()
        })
}

#[test]
fn random_dingtalk_answers_never_panic_and_only_well_formed_successes_give_a_user() {
    let runtime = runtime();
    let dingtalk: MockDingTalk = runtime.block_on(support::dingtalk());
    let mut runner = TestRunner::new(Config {
        cases: 200,
        ..Config::default()
    });
    let successes = std::sync::atomic::AtomicU32::new(0);
    let result = runner.run(&answer_strategy(), |(status, body)| {
        let expected = well_formed_success(status, &body);
        let outcome = runtime.block_on(async {
            // A fresh client per case: a throttling answer must not pause the next case.
            let client = DingTalkClient::builder()
                .internal_app(dingtalk.app_key(), dingtalk.app_secret())
                .base_url(dingtalk.base_url())
                .build()
                .unwrap();
            dingtalk.fail_always(Endpoint::GetUserInfo, Fault::Raw(status, body.clone()));
            let outcome = client.user_info(&dingtalk.issue_code("staff01")).await;
            dingtalk.clear_faults();
            outcome
        });
        prop_assert_eq!(
            outcome.is_ok(),
            expected,
            "HTTP {} {}: {:?}",
            status,
            String::from_utf8_lossy(&body),
            outcome
        );
        if let Ok(user) = outcome {
            prop_assert_eq!(user.userid(), "u1");
            successes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(())
    });
    result.unwrap();
    assert!(
        successes.into_inner() > 0,
        "the strategy produced well-formed successes"
    );
    // Found by fuzzing: invalid UTF-8 inside a field the client ignores.
    let mut body = br#"{"errcode":0,"urrmsg":"?ok","result":{"userid":"u2"}}"#.to_vec();
    body[23] = 0xe4;
    let client = DingTalkClient::builder()
        .internal_app(dingtalk.app_key(), dingtalk.app_secret())
        .base_url(dingtalk.base_url())
        .build()
        .unwrap();
    dingtalk.fail_always(Endpoint::GetUserInfo, Fault::Raw(200, body));
    let outcome = runtime.block_on(client.user_info(&dingtalk.issue_code("staff01")));
    assert!(outcome.is_err(), "{outcome:?}");
}
