//! The layer protects DingTalk and itself: a local rate limit with a bounded queue, a cap on
//! exchanges in flight, remembered rejections, pauses while DingTalk throttles, one time budget per
//! exchange, and a token endpoint that fails without a storm.

mod support;

use std::time::Duration;

use futures_util::future::join_all;
use support::{TestApp, assert_rejection, json};
use tower_dingtalk_auth::testing::{Endpoint, Fault};

/// Sends one request per code, all at once; returns the statuses.
async fn statuses(app: &TestApp, codes: &[String]) -> Vec<u16> {
    join_all(codes.iter().map(|code| app.get_with_code("/me", code)))
        .await
        .into_iter()
        .map(|response| response.status().as_u16())
        .collect()
}

fn fresh_codes(app: &TestApp, n: usize) -> Vec<String> {
    (0..n).map(|_| app.dingtalk.issue_code("staff01")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_rate_limit_keeps_dingtalk_from_throttling() {
    let dingtalk = support::dingtalk().await;
    // DingTalk's own limit, as real DingTalk applies it.
    dingtalk.set_qps_limit(Some(20));
    let app =
        TestApp::with_client(dingtalk, |c| c.queue_timeout(Duration::from_secs(4)), |l| l).await;
    // 50 new logins at once: at 20 a second they all fit in the 4 s queue.
    let codes = fresh_codes(&app, 50);
    let statuses = statuses(&app, &codes).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(app.dingtalk.userinfo_calls(), 50);
    assert_eq!(app.dingtalk.faults_served(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_queue_new_logins_get_503_and_cache_hits_never_wait() {
    let app = TestApp::with_client(
        support::dingtalk().await,
        |c| c.rate_limit(5).queue_timeout(Duration::from_millis(500)),
        |l| l,
    )
    .await;
    let known = app.dingtalk.issue_code("boss01");
    assert_eq!(app.get_with_code("/me", &known).await.status(), 200);

    let codes = fresh_codes(&app, 30);
    let flood = statuses(&app, &codes);
    // While the queue is full, a code already exchanged is answered from the cache.
    let hit = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        app.get_with_code("/me", &known).await
    };
    let (statuses, hit) = tokio::join!(flood, hit);
    assert_eq!(json(hit).await["userid"], "boss01");

    let admitted = statuses.iter().filter(|s| **s == 200).count() as u64;
    let refused = statuses.iter().filter(|s| **s == 503).count();
    assert_eq!(admitted as usize + refused, 30, "{statuses:?}");
    // One at once, then one every ~210 ms for half a second.
    assert!((2..=5).contains(&admitted), "{statuses:?}");
    assert_eq!(app.dingtalk.userinfo_calls(), 1 + admitted);

    let response = app
        .get_with_code("/me", &app.dingtalk.issue_code("staff01"))
        .await;
    // A refused login is told when to come back; the queue may have drained by now.
    if response.status() == 503 {
        let headers = assert_rejection(response, 503, "rate_limited", &[]).await;
        assert_eq!(headers["retry-after"], "1");
    }
}

#[tokio::test]
async fn a_refused_login_says_rate_limited_with_retry_after() {
    let app = TestApp::with_client(
        support::dingtalk().await,
        |c| c.rate_limit(1).queue_timeout(Duration::from_millis(100)),
        |l| l,
    )
    .await;
    assert_eq!(
        app.get_with_code("/me", &app.dingtalk.issue_code("staff01"))
            .await
            .status(),
        200
    );
    let code = app.dingtalk.issue_code("staff01");
    let response = app.get_with_code("/me", &code).await;
    let headers = assert_rejection(response, 503, "rate_limited", &[&code]).await;
    assert_eq!(headers["retry-after"], "1");
    assert_eq!(app.dingtalk.userinfo_calls(), 1);
    assert_eq!(app.handler_runs(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchanges_in_flight_are_capped() {
    let app = TestApp::with_client(
        support::dingtalk().await,
        |c| {
            c.rate_limit(1000)
                .max_in_flight(2)
                .queue_timeout(Duration::from_millis(150))
        },
        |l| l,
    )
    .await;
    app.dingtalk.fail_always(
        Endpoint::GetUserInfo,
        Fault::Latency(Duration::from_millis(500)),
    );
    let codes = fresh_codes(&app, 6);
    let statuses = statuses(&app, &codes).await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        2,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 503).count(),
        4,
        "{statuses:?}"
    );
    assert_eq!(app.dingtalk.userinfo_calls(), 2);
}

#[tokio::test]
async fn a_rejected_code_replayed_costs_no_call_until_it_is_forgotten() {
    let app = TestApp::with_client(
        support::dingtalk().await,
        |c| c.rejected_code_ttl(Duration::from_millis(300)),
        |l| l,
    )
    .await;
    for _ in 0..100 {
        let response = app.get_with_code("/me", "dead-code-0001").await;
        assert_rejection(response, 401, "code_rejected", &["dead-code-0001"]).await;
    }
    assert_eq!(app.dingtalk.userinfo_calls(), 1);
    assert_eq!(app.layer.cache_stats().await.rejected_codes, 1);

    tokio::time::sleep(Duration::from_millis(400)).await;
    let response = app.get_with_code("/me", "dead-code-0001").await;
    assert_rejection(response, 401, "code_rejected", &[]).await;
    assert_eq!(app.dingtalk.userinfo_calls(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_replays_of_a_rejected_code_make_one_call() {
    let app = TestApp::start().await;
    app.dingtalk.fail_next(
        Endpoint::GetUserInfo,
        Fault::Latency(Duration::from_millis(100)),
        1,
    );
    let codes = vec!["replayed-code-42".to_owned(); 300];
    let statuses = statuses(&app, &codes).await;
    assert!(statuses.iter().all(|s| *s == 401));
    assert_eq!(app.dingtalk.userinfo_calls(), 1);
}

#[tokio::test]
async fn while_dingtalk_throttles_the_layer_pauses_for_what_it_asks() {
    let app = TestApp::start().await;
    app.dingtalk
        .fail_next(Endpoint::GetUserInfo, Fault::SubCode(90018), 1);
    let response = app
        .get_with_code("/me", &app.dingtalk.issue_code("staff01"))
        .await;
    let headers = assert_rejection(response, 503, "upstream_throttled", &[]).await;
    assert_eq!(headers["retry-after"], "1");

    // Within the pause: refused at once, DingTalk not called.
    for _ in 0..10 {
        let response = app
            .get_with_code("/me", &app.dingtalk.issue_code("staff01"))
            .await;
        let headers = assert_rejection(response, 503, "upstream_throttled", &[]).await;
        assert_eq!(headers["retry-after"], "1");
    }
    assert_eq!(app.dingtalk.userinfo_calls(), 1);

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let response = app
        .get_with_code("/me", &app.dingtalk.issue_code("staff01"))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(app.dingtalk.userinfo_calls(), 2);
}

#[tokio::test]
async fn an_ip_ban_pauses_for_its_wait_in_minutes() {
    let app = TestApp::start().await;
    app.dingtalk
        .fail_next(Endpoint::GetUserInfo, Fault::IpBan, 1);
    let response = app
        .get_with_code("/me", &app.dingtalk.issue_code("staff01"))
        .await;
    // `{"status":1111,"wait":5}`: DingTalk bans the IP for five minutes.
    let headers = assert_rejection(response, 503, "upstream_throttled", &[]).await;
    assert_eq!(headers["retry-after"], "300");
    tokio::time::sleep(Duration::from_secs(5)).await;
    // Five seconds later the ban still holds: no call is sent while it lasts.
    let response = app
        .get_with_code("/me", &app.dingtalk.issue_code("staff01"))
        .await;
    let headers = assert_rejection(response, 503, "upstream_throttled", &[]).await;
    let retry_after: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((294..=296).contains(&retry_after), "{retry_after}");
    assert_eq!(app.dingtalk.userinfo_calls(), 1);
}

#[tokio::test]
async fn one_budget_covers_the_token_fetch_and_the_exchange() {
    let app = TestApp::with_client(
        support::dingtalk().await,
        |c| c.upstream_timeout(Duration::from_millis(600)),
        |l| l,
    )
    .await;
    // Each alone fits in the budget; together they do not.
    app.dingtalk.fail_next(
        Endpoint::AccessToken,
        Fault::Latency(Duration::from_millis(400)),
        1,
    );
    app.dingtalk.fail_next(
        Endpoint::GetUserInfo,
        Fault::Latency(Duration::from_millis(400)),
        1,
    );
    let code = app.dingtalk.issue_code("staff01");
    let response = app.get_with_code("/me", &code).await;
    assert_rejection(response, 504, "upstream_timeout", &[&code]).await;
}

#[tokio::test]
async fn busy_retries_stay_inside_the_budget() {
    let app = TestApp::with_client(
        support::dingtalk().await,
        |c| c.upstream_timeout(Duration::from_millis(250)),
        |l| l,
    )
    .await;
    app.dingtalk
        .fail_always(Endpoint::GetUserInfo, Fault::Errcode(-1));
    let response = app
        .get_with_code("/me", &app.dingtalk.issue_code("staff01"))
        .await;
    // Backoffs of 100 ms then 200 ms: the budget ends during the second.
    assert_rejection(response, 504, "upstream_timeout", &[]).await;
    assert_eq!(app.dingtalk.userinfo_calls(), 2);
}

#[tokio::test]
async fn with_the_token_endpoint_down_cached_users_keep_working_and_it_recovers() {
    let app = TestApp::start().await;
    let known = app.dingtalk.issue_code("super01");
    assert_eq!(app.get_with_code("/me", &known).await.status(), 200);

    app.dingtalk.revoke_tokens();
    app.dingtalk
        .fail_always(Endpoint::AccessToken, Fault::HttpStatus(503));
    for _ in 0..20 {
        // Known users are served from the cache.
        let response = app.get_with_code("/me", &known).await;
        assert_eq!(json(response).await["userid"], "super01");
        // New logins fail fast with a 5xx.
        let response = app
            .get_with_code("/me", &app.dingtalk.issue_code("staff01"))
            .await;
        assert_rejection(response, 502, "upstream_error", &[]).await;
    }
    // One token refresh after the revocation, then nothing for a second: no storm.
    assert_eq!(app.dingtalk.token_calls(), 2);

    tokio::time::sleep(Duration::from_millis(1100)).await;
    app.dingtalk.clear_faults();
    let response = app
        .get_with_code("/me", &app.dingtalk.issue_code("boss01"))
        .await;
    assert_eq!(json(response).await["userid"], "boss01");
    assert_eq!(app.dingtalk.token_calls(), 3);
}
