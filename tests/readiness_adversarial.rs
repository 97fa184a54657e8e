//! The self-check and the readiness probe under attack, and in an unlucky operator's hands: hostile
//! DingTalk answers that echo secrets or carry odd IP text, a DingTalk slower than the client's
//! timeout, probe storms, a throttling or failing token endpoint, Redis dead or frozen, hostile
//! corp ids. Public API only, over real sockets against `MockDingTalk` and Redis.

mod support;

use std::future::Future;
use std::time::Duration;

use futures_util::future::join_all;
use tower_dingtalk_auth::testing::{Endpoint, Fault, MockDingTalk};
use tower_dingtalk_auth::{CheckProblem, DingTalkClient, RedisStore};

/// How long a call bounded by a timeout of `t` may take in a debug build on two busy cores: the
/// promise is that it ends, not how fast.
const SLACK: Duration = Duration::from_secs(2);

async fn within<T>(bound: Duration, what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(bound, future)
        .await
        .unwrap_or_else(|_| panic!("{what} did not return within {bound:?}"))
}

fn third_party(dingtalk: &MockDingTalk) -> DingTalkClient {
    DingTalkClient::builder()
        .third_party_app(dingtalk.suite_key(), dingtalk.suite_secret())
        .base_url(dingtalk.base_url())
        .build()
        .unwrap()
}

/// A 60020 whose message is `errmsg`, as DingTalk's JSON.
fn not_whitelisted(errmsg: &str) -> Fault {
    let body = serde_json::json!({ "errcode": 60020, "errmsg": errmsg }).to_string();
    Fault::Raw(200, body.into_bytes())
}

/// Every secret the fake knows: the app secret and each access token it issued.
fn secrets(dingtalk: &MockDingTalk) -> Vec<String> {
    let mut secrets = dingtalk.issued_tokens();
    secrets.push(dingtalk.app_secret());
    secrets
}

fn assert_no_secret(what: &str, text: &str, secrets: &[String]) {
    for secret in secrets {
        let leak = text.lines().find(|line| line.contains(secret.as_str()));
        assert!(
            leak.is_none(),
            "{what} holds a secret: {:.400}",
            leak.unwrap_or_default()
        );
    }
}

/// A 60020 carrying odd, hostile or echoing text: the report names the address only when it is
/// one, stays short, holds no secret, no markup and no line break; the log lines too.
#[tokio::test]
async fn hostile_60020_messages_give_a_short_report_and_leak_nothing() {
    let (_guard, logs) = support::capture_logs();
    let dingtalk = support::dingtalk().await;
    let client = dingtalk.client_builder().build().unwrap();
    assert_eq!(client.check().await, Ok(()));
    let token = dingtalk.issued_tokens()[0].clone();
    let secret = dingtalk.app_secret();
    let huge_ip = format!("request ip={}", "1".repeat(1 << 20));
    let huge_text = format!("request ip=10.1.2.3 {}", "x".repeat(1 << 20));
    let cases: Vec<(String, Option<&str>)> = vec![
        (
            format!("request ip=120.230.136.230 access_token={token} appSecret={secret}"),
            Some("120.230.136.230"),
        ),
        (
            format!("{token}{secret} request ip=8.8.8.8"),
            Some("8.8.8.8"),
        ),
        (huge_ip, None),
        (huge_text, Some("10.1.2.3")),
        (
            "访问ip不在白名单之中 request ip=１２０.２３０.１.１".to_owned(),
            None,
        ),
        (
            "<script>alert(1)</script> request ip=<b>1.2.3.4</b>".to_owned(),
            None,
        ),
        (
            "request ip=10.0.0.1, ip=10.0.0.2".to_owned(),
            Some("10.0.0.1"),
        ),
        (
            "request ip=2001:db8::1 appKey(x)".to_owned(),
            Some("2001:db8::1"),
        ),
        ("request ip=fe80::1%eth0".to_owned(), Some("fe80::1")),
        (
            "request ip=1.2.3.4\n\u{1b}[31mERROR forged log line".to_owned(),
            Some("1.2.3.4"),
        ),
        ("request ip=deadbeef".to_owned(), None),
        ("request ip=1.2.3.4.5".to_owned(), None),
        ("request ip=".to_owned(), None),
        ("ip=ip=ip=".to_owned(), None),
        (String::new(), None),
    ];
    for (errmsg, seen) in &cases {
        dingtalk.fail_next(Endpoint::GetUserInfo, not_whitelisted(errmsg), 1);
        let problem = client.check().await.unwrap_err();
        assert_eq!(
            problem,
            CheckProblem::IpNotWhitelisted {
                seen_ip: seen.map(str::to_owned)
            },
            "{errmsg:.80}"
        );
        let shown = format!("{problem} {problem:?}");
        assert!(shown.len() < 500, "a bounded report: {shown:.600}");
        assert!(!shown.contains(['<', '\n', '\u{1b}']), "{shown}");
        assert_no_secret("the report", &shown, &[token.clone(), secret.clone()]);
    }
    assert_eq!(dingtalk.userinfo_calls(), 1 + cases.len() as u64);
    let logs = logs.contents();
    assert_no_secret("the logs", &logs, &secrets(&dingtalk));
    for line in logs.lines() {
        assert!(line.len() < 2_000, "an unbounded log line: {:.200}…", line);
        assert!(
            !line.starts_with("\u{1b}[31mERROR"),
            "a forged log line: {line}"
        );
    }
}

/// A token endpoint that echoes the app secret back, in its `code`, its `message` or an errcode
/// answer: neither the check's report, the probe, nor any log line holds it.
#[tokio::test]
async fn a_token_endpoint_echoing_the_secret_leaks_it_nowhere() {
    let (_guard, logs) = support::capture_logs();
    let dingtalk = support::dingtalk().await;
    let secret = dingtalk.app_secret();
    let echoes = [
        (
            400,
            serde_json::json!({ "code": secret, "message": secret, "requestid": secret }),
        ),
        (
            403,
            serde_json::json!({ "code": format!("Throttling.{secret}"), "message": secret }),
        ),
        (
            200,
            serde_json::json!({ "errcode": 90018, "errmsg": secret }),
        ),
        (
            200,
            serde_json::json!({ "errcode": 40089, "errmsg": format!("bad appSecret {secret}") }),
        ),
        (
            500,
            serde_json::json!({ "code": "system.error", "message": secret }),
        ),
    ];
    for (status, body) in echoes {
        // A client of its own: a failed fetch is answered from memory for a second.
        let client = dingtalk.client_builder().build().unwrap();
        dingtalk.fail_next(
            Endpoint::AccessToken,
            Fault::Raw(status, body.to_string().into_bytes()),
            1,
        );
        let problem = client.check().await.unwrap_err();
        // The failed fetch is held for a second: the probe sees it without a call.
        let readiness = client.readiness().await;
        assert_eq!(readiness.token, Some(false), "{body}");
        let shown = format!(
            "{problem} {problem:?} {} {readiness:?}",
            readiness.to_json()
        );
        assert_no_secret("the report", &shown, std::slice::from_ref(&secret));
    }
    assert_eq!(
        dingtalk.token_calls(),
        5,
        "one fetch per client, its failure held"
    );
    assert_eq!(dingtalk.userinfo_calls(), 0, "no token, no getuserinfo");
    assert_no_secret("the logs", &logs.contents(), &secrets(&dingtalk));
}

/// A healthy check and probe, logged at TRACE: the token and the secret appear in no log line.
#[tokio::test]
async fn a_check_and_probes_log_no_token_at_trace() {
    let (_guard, logs) = support::capture_logs();
    let dingtalk = support::dingtalk().await;
    let client = dingtalk.client_builder().build().unwrap();
    assert_eq!(client.check().await, Ok(()));
    dingtalk.expire_tokens();
    // The expired token is refused (42001) and fetched again, once.
    assert_eq!(client.check().await, Ok(()));
    assert_eq!(dingtalk.token_calls(), 2);
    assert_eq!(dingtalk.userinfo_calls(), 3);
    assert!(client.readiness().await.is_ready());
    assert_eq!(dingtalk.issued_tokens().len(), 2);
    assert_no_secret("the logs", &logs.contents(), &secrets(&dingtalk));
}

/// DingTalk refusing this server's IP at the token endpoint (`Forbidden.AccessDenied.IpNotInWhiteList`)
/// is the whitelist, not the secret: the report must not send the operator to the wrong setting.
#[tokio::test]
async fn an_ip_refused_at_the_token_endpoint_is_named_as_the_whitelist() {
    let dingtalk = support::dingtalk().await;
    let client = dingtalk.client_builder().build().unwrap();
    let body = r#"{"code":"Forbidden.AccessDenied.IpNotInWhiteList","message":"ip not in whitelist","requestid":"x"}"#;
    dingtalk.fail_next(
        Endpoint::AccessToken,
        Fault::Raw(403, body.as_bytes().to_vec()),
        1,
    );
    let problem = client.check().await.unwrap_err();
    assert_eq!(problem, CheckProblem::IpNotWhitelisted { seen_ip: None });
    assert!(problem.to_string().contains("whitelist"), "{problem}");
    assert!(!problem.to_string().contains("AppSecret"), "{problem}");
    assert_eq!(dingtalk.userinfo_calls(), 0);
}

/// DingTalk slower than `upstream_timeout`, at the token endpoint or at getuserinfo: the check and
/// the probe end within the timeout (plus slack), saying DingTalk is unreachable.
#[tokio::test]
async fn a_dingtalk_slower_than_the_timeout_bounds_check_and_probe() {
    let timeout = Duration::from_millis(300);
    let dingtalk = support::dingtalk().await;
    let client = dingtalk
        .client_builder()
        .upstream_timeout(timeout)
        .build()
        .unwrap();
    dingtalk.fail_always(
        Endpoint::AccessToken,
        Fault::Latency(Duration::from_secs(10)),
    );
    let problem = within(timeout + SLACK, "check", client.check()).await;
    assert_eq!(problem, Err(CheckProblem::Unreachable));
    let readiness = within(timeout + SLACK, "readiness", client.readiness()).await;
    assert_eq!(readiness.token, Some(false));
    assert_eq!(readiness.status(), 503);
    dingtalk.clear_faults();

    // A token held, getuserinfo slow: the check gives up in time, the probe needs no call.
    let client = dingtalk
        .client_builder()
        .upstream_timeout(timeout)
        .build()
        .unwrap();
    assert!(client.readiness().await.is_ready());
    dingtalk.fail_always(
        Endpoint::GetUserInfo,
        Fault::Latency(Duration::from_secs(10)),
    );
    let problem = within(timeout + SLACK, "check", client.check()).await;
    assert_eq!(problem, Err(CheckProblem::Unreachable));
    let readiness = within(timeout + SLACK, "readiness", client.readiness()).await;
    assert!(readiness.is_ready());
}

/// 500 probes at once just after the token expired: one fetch between them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_probes_on_an_expired_token_fetch_it_once() {
    let dingtalk = support::dingtalk().await;
    dingtalk.set_token_ttl(Duration::from_secs(2));
    let client = dingtalk.client_builder().build().unwrap();
    assert!(client.readiness().await.is_ready());
    assert_eq!(dingtalk.token_calls(), 1);
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let probes = (0..500).map(|_| {
        let client = client.clone();
        tokio::spawn(async move { client.readiness().await })
    });
    for readiness in join_all(probes).await {
        assert!(readiness.unwrap().is_ready());
    }
    assert_eq!(dingtalk.token_calls(), 2, "one fetch for 500 probes");
    assert_eq!(dingtalk.userinfo_calls(), 0);
}

/// A token endpoint that throttles (90018, or the api host's `Throttling`) or fails: the probe is
/// 503, and 500 probes at once, then more over the next second and a half, cost one fetch a
/// second, not one each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_on_a_throttling_or_failing_token_endpoint_are_503_and_no_storm() {
    let throttle = r#"{"code":"Throttling.Api","message":"throttled"}"#
        .as_bytes()
        .to_vec();
    for fault in [
        Fault::Errcode(90018),
        Fault::Raw(403, throttle),
        Fault::HttpStatus(500),
        Fault::CloseConnection,
    ] {
        let dingtalk = support::dingtalk().await;
        dingtalk.fail_always(Endpoint::AccessToken, fault.clone());
        let client = dingtalk.client_builder().build().unwrap();
        let probes = (0..500).map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.readiness().await })
        });
        for readiness in join_all(probes).await {
            let readiness = readiness.unwrap();
            assert_eq!(readiness.status(), 503, "{fault:?}");
            assert_eq!(
                readiness.to_json(),
                r#"{"ready":false,"token":false,"store":null}"#
            );
        }
        assert_eq!(
            dingtalk.token_calls(),
            1,
            "{fault:?}: one fetch for 500 probes"
        );
        let started = tokio::time::Instant::now();
        while started.elapsed() < Duration::from_millis(1_500) {
            assert_eq!(client.readiness().await.status(), 503);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Once a second at most: the fetch at the start, and one or two more in 1.5 s.
        let calls = dingtalk.token_calls();
        assert!(
            (2..=3).contains(&calls),
            "{fault:?}: {calls} fetches in 1.5 s"
        );
    }
}

/// A frozen Redis (a listener that accepts and never answers) and a dead one: the probe returns
/// within the store's timeout (plus slack), says the store is down, and costs DingTalk nothing
/// more; 200 probes at once as well.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_on_a_frozen_or_dead_redis_return_within_its_timeout() {
    let frozen = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let frozen_port = frozen.local_addr().unwrap().port();
    let _frozen = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = frozen.accept().await {
            held.push(stream);
        }
    });
    let dead_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let dingtalk = support::dingtalk().await;
    let store_timeout = Duration::from_millis(100);
    for port in [frozen_port, dead_port] {
        let store = RedisStore::builder(format!("redis://127.0.0.1:{port}"))
            .secret(support::store::TEST_SECRET)
            .timeout(store_timeout)
            .connect_timeout(store_timeout)
            .connect_lazy()
            .unwrap();
        let client = dingtalk
            .client_builder()
            .shared_store(store)
            .build()
            .unwrap();
        let bound = store_timeout + SLACK;
        let probes = (0..200).map(|_| {
            let client = client.clone();
            tokio::spawn(async move { within(bound, "a probe", client.readiness()).await })
        });
        for readiness in join_all(probes).await {
            let readiness = readiness.unwrap();
            assert_eq!(readiness.store, Some(false), "port {port}");
            assert_eq!(readiness.token, Some(true));
            assert_eq!(readiness.status(), 503);
        }
    }
    assert_eq!(
        dingtalk.token_calls(),
        2,
        "one token per client, Redis down or not"
    );
    assert_eq!(dingtalk.userinfo_calls(), 0);
}

/// The probe over HTTP, ready or not, with Redis up or down: valid JSON whose `ready` matches the
/// status, `Content-Type: application/json`, `Cache-Control: no-store`, no secret.
#[tokio::test]
async fn the_probe_answers_valid_json_and_no_store_in_every_state() {
    use axum::routing::get;
    use support::store::Prefix;
    let dingtalk = support::dingtalk().await;
    let prefix = Prefix::new("readiness-adversarial");
    let up = prefix.store(|b| b).await;
    let down = RedisStore::builder("redis://127.0.0.1:1")
        .secret(support::store::TEST_SECRET)
        .connect_lazy()
        .unwrap();
    let wrong_secret = DingTalkClient::builder()
        .internal_app(dingtalk.app_key(), "wrong-s3cr3t")
        .base_url(dingtalk.base_url());
    let builders = [
        (dingtalk.client_builder(), 200),
        (dingtalk.client_builder().shared_store(up), 200),
        (dingtalk.client_builder().shared_store(down), 503),
        (wrong_secret, 503),
        (
            DingTalkClient::builder()
                .third_party_app(dingtalk.suite_key(), dingtalk.suite_secret())
                .base_url(dingtalk.base_url()),
            200,
        ),
    ];
    let http = reqwest::Client::new();
    for (builder, status) in builders {
        let probe = builder.build().unwrap();
        let app = axum::Router::new().route(
            "/ready",
            get(move || async move { probe.readiness().await }),
        );
        let (addr, _server) = support::serve(app).await;
        let response = http
            .get(format!("http://{addr}/ready"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status);
        assert_eq!(response.headers()["content-type"], "application/json");
        assert_eq!(response.headers()["cache-control"], "no-store");
        let text = response.text().await.unwrap();
        assert_no_secret("the probe", &text, &secrets(&dingtalk));
        assert!(!text.contains("s3cr3t"));
        let body: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(body["ready"], status == 200, "{text}");
        assert_eq!(body.as_object().unwrap().len(), 3, "{text}");
    }
}

/// `check()` on a third-party app has no corp to check in: a problem that says to use
/// `check_corp`, and no call to DingTalk.
#[tokio::test]
async fn check_on_a_third_party_app_says_to_name_a_corp_and_calls_nobody() {
    let dingtalk = MockDingTalk::start().await;
    dingtalk.add_corp("dingcheckcorp01");
    let client = third_party(&dingtalk);
    let problem = client.check().await.unwrap_err();
    assert_eq!(problem, CheckProblem::MissingCorpId);
    assert!(problem.to_string().contains("check_corp"), "{problem}");
    assert!(
        !problem.to_string().contains("DingTalk answered"),
        "{problem}"
    );
    assert_eq!(dingtalk.total_calls(), 0);
    // The readiness of a third-party app has no token to look at, and asks nobody either.
    assert_eq!(
        client.readiness().await.to_json(),
        r#"{"ready":true,"token":null,"store":null}"#
    );
    assert_eq!(dingtalk.total_calls(), 0);
}

/// Hostile corp ids (empty, 10 KB, control characters, a path, a header, non-ASCII): a problem
/// naming the corp id, and not one call to DingTalk. A well-formed corp that did not install the
/// app costs one call, however often it is checked.
#[tokio::test]
async fn check_corp_refuses_hostile_corp_ids_without_a_call() {
    let dingtalk = MockDingTalk::start().await;
    dingtalk.add_corp("dingcheckcorp01");
    let client = third_party(&dingtalk);
    let long = "d".repeat(10 * 1024);
    let hostile = [
        "",
        long.as_str(),
        "ding\0corp",
        "ding\r\nX-Injected: 1",
        "../../v1.0/oauth2/accessToken",
        "ding corp",
        "ding%2fcorp",
        "钉钉企业",
        "dingcheckcorp01?x=1",
        "dingcheckcorp01/",
    ];
    for corp_id in hostile {
        let problem = within(SLACK, "check_corp", client.check_corp(corp_id))
            .await
            .unwrap_err();
        assert_eq!(problem, CheckProblem::InvalidCorpId, "{corp_id:.40?}");
        let shown = problem.to_string();
        assert!(shown.contains("corp id"), "{shown}");
        assert!(
            shown.len() < 300 && !shown.contains(['\r', '\n', '\0']),
            "{shown}"
        );
    }
    assert_eq!(
        dingtalk.total_calls(),
        0,
        "a malformed corp id costs no call"
    );

    for _ in 0..5 {
        assert_eq!(
            client.check_corp("dingnotinstalled").await,
            Err(CheckProblem::Credentials)
        );
    }
    assert_eq!(
        dingtalk.corp_token_calls("dingnotinstalled"),
        1,
        "a refused corp is remembered"
    );
    assert_eq!(client.check_corp("dingcheckcorp01").await, Ok(()));
}

/// The check poisons no cache: a hostile DingTalk that answers the check's code with a user does
/// not make that user anyone's, a rejected check code is not remembered, and a real login after
/// the checks costs its one call with the token the check fetched.
#[tokio::test]
async fn the_check_poisons_no_cache_and_a_later_login_costs_one_call() {
    let dingtalk = support::dingtalk().await;
    let client = dingtalk.client_builder().build().unwrap();
    assert_eq!(client.check().await, Ok(()));
    let hostile = r#"{"errcode":0,"errmsg":"ok","result":{"userid":"intruder","name":"Mallory","unionid":"u","device_id":"d","sys":true,"sys_level":1}}"#;
    dingtalk.fail_next(
        Endpoint::GetUserInfo,
        Fault::Raw(200, hostile.as_bytes().to_vec()),
        1,
    );
    let problem = client.check().await.unwrap_err();
    assert!(
        matches!(problem, CheckProblem::Unexpected { .. }),
        "{problem:?}"
    );
    assert!(!format!("{problem} {problem:?}").contains("intruder"));
    let stats = client.cache_stats().await;
    assert_eq!(
        (stats.identities, stats.rejected_codes),
        (0, 0),
        "{stats:?}"
    );

    // The check's code (it is in the source), sent by an attacker to a layer on this client: it
    // is DingTalk's to refuse, not the hostile answer's user.
    let layer = tower_dingtalk_auth::DingTalkAuthLayer::builder()
        .client(client.clone())
        .build()
        .unwrap();
    let (addr, _server) = support::serve(support::routes(Default::default()).layer(layer)).await;
    let response = reqwest::Client::new()
        .get(format!("http://{addr}/me"))
        .header("x-dingtalk-code", "tower-dingtalk-auth-self-check")
        .send()
        .await
        .unwrap();
    support::assert_rejection(response, 401, "code_rejected", &[]).await;

    let code = dingtalk.issue_code("staff01");
    let user = client.user_info(&code).await.unwrap();
    assert_eq!(user.userid(), "staff01");
    assert_eq!(client.user_info(&code).await.unwrap(), user);
    assert_eq!(
        dingtalk.token_calls(),
        1,
        "the check's token serves the login"
    );
    assert_eq!(
        dingtalk.userinfo_calls(),
        4,
        "two checks, the attacker's code, one login"
    );
    assert_eq!(client.check().await, Ok(()));
    assert_eq!(client.cache_stats().await.identities, 1);
}

/// Checks run while users sign in take their turn under the rate limit as a caller of their own:
/// every user still gets in, and every check passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_alongside_logins_refuse_no_user() {
    let dingtalk = support::dingtalk().await;
    let client = dingtalk.client_builder().build().unwrap();
    assert_eq!(client.check().await, Ok(()));
    let checks = (0..5).map(|_| {
        let client = client.clone();
        tokio::spawn(async move { client.check().await })
    });
    let logins = (0..8).map(|_| {
        let client = client.clone();
        let code = dingtalk.issue_code("staff01");
        tokio::spawn(async move { client.user_info(&code).await })
    });
    let (checks, logins) = tokio::join!(join_all(checks), join_all(logins));
    for check in checks {
        assert_eq!(check.unwrap(), Ok(()));
    }
    for login in logins {
        assert_eq!(login.unwrap().unwrap().userid(), "staff01");
    }
    assert_eq!(dingtalk.userinfo_calls(), 1 + 5 + 8);
    assert_eq!(dingtalk.token_calls(), 1);
}

/// The token endpoint failing while the held token is due for refresh but still valid: the probes
/// stay ready (logins still work with it), and 200 of them at once try one refresh between them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_refresh_keeps_the_probe_ready_while_the_token_lives() {
    let dingtalk = support::dingtalk().await;
    // 4 s: refreshed ahead from 3 s on, used until 3.8 s.
    dingtalk.set_token_ttl(Duration::from_secs(4));
    let client = dingtalk.client_builder().build().unwrap();
    assert!(client.readiness().await.is_ready());
    tokio::time::sleep(Duration::from_millis(3_150)).await;
    dingtalk.fail_always(Endpoint::AccessToken, Fault::HttpStatus(503));
    let probes = (0..200).map(|_| {
        let client = client.clone();
        tokio::spawn(async move { client.readiness().await })
    });
    for readiness in join_all(probes).await {
        assert!(readiness.unwrap().is_ready(), "the held token still works");
    }
    assert_eq!(
        dingtalk.token_calls(),
        2,
        "one refresh tried for 200 probes"
    );
    let code = dingtalk.issue_code("staff01");
    assert_eq!(client.user_info(&code).await.unwrap().userid(), "staff01");
}
