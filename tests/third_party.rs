//! Third-party enterprise apps: many corps, each with its own token, and no way for a request to
//! reach a corp that did not authorise the app or to borrow another corp's identity.

mod support;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::future::join_all;
use support::{TestApp, assert_rejection, json};
use tower_dingtalk_auth::testing::{Endpoint, Fault, MockDingTalk};
use tower_dingtalk_auth::{
    AdminLevel, AuthenticatedDingTalkUser, ConfigError, CorpDirectory, DingTalkAuthLayer,
    DingTalkAuthLayerBuilder, DingTalkClient, MemorySuiteTicketStore,
};

const CORP_A: &str = "dingcorpa0001";
const CORP_B: &str = "dingcorpb0002";
const CORP_NOT_INSTALLED: &str = "dingcorpx9999";

/// A fake DingTalk where corps A and B installed the suite, each with a user `u1` of its own.
async fn dingtalk_with_corps() -> MockDingTalk {
    let dingtalk = MockDingTalk::start().await;
    for (corp, name, level) in [
        (CORP_A, "Alice of A", AdminLevel::SuperAdmin),
        (CORP_B, "Bob of B", AdminLevel::Other),
    ] {
        dingtalk.add_corp(corp);
        dingtalk.add_corp_user(
            corp,
            AuthenticatedDingTalkUser::builder("u1", name)
                .admin_level(level)
                .build(),
        );
    }
    dingtalk
}

/// The layer as a third-party app of `dingtalk`'s suite, trusting corps A and B.
fn third_party(dingtalk: &MockDingTalk) -> DingTalkAuthLayerBuilder {
    let client = DingTalkClient::builder()
        .third_party_app(dingtalk.suite_key(), dingtalk.suite_secret())
        .base_url(dingtalk.base_url())
        .build()
        .unwrap();
    DingTalkAuthLayer::builder()
        .client(client)
        .authorized_corps([CORP_A, CORP_B])
}

async fn app() -> TestApp {
    let dingtalk = dingtalk_with_corps().await;
    let (key, secret) = (dingtalk.suite_key(), dingtalk.suite_secret());
    TestApp::with_client(
        dingtalk,
        move |c| c.third_party_app(key, secret),
        |l| l.authorized_corps([CORP_A, CORP_B]),
    )
    .await
}

async fn get(app: &TestApp, corp: Option<&str>, code: &str) -> reqwest::Response {
    let mut request = app.http.get(app.url("/me")).header("x-dingtalk-code", code);
    if let Some(corp) = corp {
        request = request.header("x-dingtalk-corp-id", corp);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn users_sharing_a_userid_in_two_corps_stay_distinct() {
    let app = app().await;
    let in_a = app.dingtalk.issue_corp_code(CORP_A, "u1");
    let in_b = app.dingtalk.issue_corp_code(CORP_B, "u1");
    let a = json(get(&app, Some(CORP_A), &in_a).await).await;
    let b = json(get(&app, Some(CORP_B), &in_b).await).await;
    assert_eq!(
        (a["userid"].as_str(), a["name"].as_str()),
        (Some("u1"), Some("Alice of A"))
    );
    assert_eq!(
        (b["userid"].as_str(), b["name"].as_str()),
        (Some("u1"), Some("Bob of B"))
    );
    assert_eq!(a["corp_id"], CORP_A);
    assert_eq!(b["corp_id"], CORP_B);
    assert_eq!(a["admin_level"], 1);
    assert_eq!(b["admin_level"], 0);
    assert_eq!(app.dingtalk.corp_token_calls(CORP_A), 1);
    assert_eq!(app.dingtalk.corp_token_calls(CORP_B), 1);
}

#[tokio::test]
async fn the_corp_id_can_come_from_the_query() {
    let app = app().await;
    let code = app.dingtalk.issue_corp_code(CORP_B, "u1");
    let response = app.get(&format!("/me?code={code}&corpId={CORP_B}")).await;
    assert_eq!(json(response).await["name"], "Bob of B");
}

#[tokio::test]
async fn a_code_sent_with_the_wrong_corp_is_401() {
    let app = app().await;
    let in_a = app.dingtalk.issue_corp_code(CORP_A, "u1");
    let response = get(&app, Some(CORP_B), &in_a).await;
    assert_rejection(response, 401, "code_rejected", &[&in_a]).await;
    assert_eq!(app.handler_runs(), 0);
}

#[tokio::test]
async fn an_identity_cached_for_one_corp_is_never_served_for_another() {
    let app = app().await;
    let in_a = app.dingtalk.issue_corp_code(CORP_A, "u1");
    assert_eq!(
        json(get(&app, Some(CORP_A), &in_a).await).await["name"],
        "Alice of A"
    );
    // The same code named with corp B is a different key: B's token refuses it at DingTalk.
    let response = get(&app, Some(CORP_B), &in_a).await;
    assert_rejection(response, 401, "code_rejected", &[&in_a]).await;
    assert_eq!(app.dingtalk.userinfo_calls(), 2);
    // And corp A's entry is untouched.
    assert_eq!(
        json(get(&app, Some(CORP_A), &in_a).await).await["name"],
        "Alice of A"
    );
    assert_eq!(app.dingtalk.userinfo_calls(), 2);
}

#[tokio::test]
async fn an_unauthorised_corp_is_401_without_any_call() {
    let app = app().await;
    // Installed at DingTalk, but not in the app's list: the list decides.
    app.dingtalk.add_corp(CORP_NOT_INSTALLED);
    let code = app.dingtalk.issue_corp_code(CORP_NOT_INSTALLED, "u1");
    for _ in 0..5 {
        let response = get(&app, Some(CORP_NOT_INSTALLED), &code).await;
        assert_rejection(response, 401, "corp_not_authorized", &[&code]).await;
    }
    assert_eq!(app.dingtalk.total_calls(), 0);
    assert_eq!(app.handler_runs(), 0);
}

#[tokio::test]
async fn a_code_without_a_corp_id_or_with_a_malformed_one_is_401_without_any_call() {
    let app = app().await;
    let code = app.dingtalk.issue_corp_code(CORP_A, "u1");
    assert_rejection(
        get(&app, None, &code).await,
        401,
        "missing_corp_id",
        &[&code],
    )
    .await;
    for corp in ["ding corp", "ding/../x", "dingé", &"d".repeat(65)] {
        let response = get(&app, Some(corp), &code).await;
        assert_rejection(response, 401, "invalid_corp_id", &[&code]).await;
    }
    let response = app
        .http
        .get(app.url("/me"))
        .header("x-dingtalk-code", &code)
        .header("x-dingtalk-corp-id", CORP_A)
        .header("x-dingtalk-corp-id", CORP_B)
        .send()
        .await
        .unwrap();
    assert_rejection(response, 401, "invalid_corp_id", &[&code]).await;
    // No code at all is still "missing_code", whatever the corp.
    let response = app
        .http
        .get(app.url("/me"))
        .header("x-dingtalk-corp-id", CORP_A)
        .send()
        .await
        .unwrap();
    assert_rejection(response, 401, "missing_code", &[]).await;
    assert_eq!(app.dingtalk.total_calls(), 0);
    // The code was never spent: it still works with its corp.
    assert_eq!(
        json(get(&app, Some(CORP_A), &code).await).await["name"],
        "Alice of A"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_concurrent_requests_across_five_corps_make_one_token_call_per_corp() {
    let dingtalk = dingtalk_with_corps().await;
    let corps: Vec<String> = (0..5).map(|i| format!("dingcorp{i:04}")).collect();
    for corp in &corps {
        dingtalk.add_corp(corp);
        dingtalk.add_corp_user(
            corp,
            AuthenticatedDingTalkUser::builder("u1", corp.clone()).build(),
        );
    }
    // Slow token answers keep every corp's requests waiting on one fetch.
    dingtalk.fail_always(
        Endpoint::CorpToken,
        Fault::Latency(Duration::from_millis(200)),
    );
    let (key, secret, trusted) = (dingtalk.suite_key(), dingtalk.suite_secret(), corps.clone());
    let app = TestApp::with_client(
        dingtalk,
        move |c| c.third_party_app(key, secret).rate_limit(100_000),
        move |l| l.authorized_corps(trusted),
    )
    .await;
    let requests: Vec<(String, String)> = (0..500)
        .map(|i| {
            let corp = corps[i % corps.len()].clone();
            (app.dingtalk.issue_corp_code(&corp, "u1"), corp)
        })
        .collect();
    let responses = join_all(
        requests
            .iter()
            .map(|(code, corp)| get(&app, Some(corp), code)),
    )
    .await;
    for (response, (_, corp)) in responses.into_iter().zip(&requests) {
        assert_eq!(response.status(), 200);
        assert_eq!(json(response).await["name"], corp.as_str());
    }
    for corp in &corps {
        assert_eq!(app.dingtalk.corp_token_calls(corp), 1, "{corp}");
    }
    assert_eq!(app.dingtalk.calls(Endpoint::CorpToken), 5);
    assert_eq!(app.dingtalk.userinfo_calls(), 500);
}

#[tokio::test]
async fn one_corps_failing_token_endpoint_leaves_the_others_working() {
    let app = app().await;
    app.dingtalk
        .fail_corp_tokens(CORP_B, Fault::HttpStatus(503));
    for _ in 0..3 {
        let in_a = app.dingtalk.issue_corp_code(CORP_A, "u1");
        assert_eq!(
            json(get(&app, Some(CORP_A), &in_a).await).await["name"],
            "Alice of A"
        );
        let in_b = app.dingtalk.issue_corp_code(CORP_B, "u1");
        assert_rejection(
            get(&app, Some(CORP_B), &in_b).await,
            502,
            "upstream_error",
            &[],
        )
        .await;
    }
    assert_eq!(app.dingtalk.corp_token_calls(CORP_A), 1);
    // B's failures are held for a second: one call, not one per request.
    assert_eq!(app.dingtalk.corp_token_calls(CORP_B), 1);

    app.dingtalk.clear_faults();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let in_b = app.dingtalk.issue_corp_code(CORP_B, "u1");
    assert_eq!(
        json(get(&app, Some(CORP_B), &in_b).await).await["name"],
        "Bob of B"
    );
}

#[tokio::test]
async fn suite_ticket_rotation() {
    let dingtalk = dingtalk_with_corps().await;
    let tickets = MemorySuiteTicketStore::new();
    tickets.update(dingtalk.suite_ticket());
    let app = {
        let tickets = tickets.clone();
        let (key, secret) = (dingtalk.suite_key(), dingtalk.suite_secret());
        TestApp::with_client(
            dingtalk,
            move |c| c.third_party_app(key, secret).suite_ticket_store(tickets),
            |l| l.authorized_corps([CORP_A, CORP_B]),
        )
        .await
    };
    let in_a = app.dingtalk.issue_corp_code(CORP_A, "u1");
    assert_eq!(
        json(get(&app, Some(CORP_A), &in_a).await).await["name"],
        "Alice of A"
    );
    assert_eq!(app.dingtalk.calls(Endpoint::CorpAccessToken), 1);
    assert_eq!(app.dingtalk.calls(Endpoint::CorpToken), 0);

    // DingTalk pushes a new ticket; the app has not stored it yet.
    let next = app.dingtalk.rotate_suite_ticket();
    let in_b = app.dingtalk.issue_corp_code(CORP_B, "u1");
    assert_rejection(
        get(&app, Some(CORP_B), &in_b).await,
        500,
        "misconfigured",
        &[&next],
    )
    .await;
    // Corp A's token was fetched before the rotation and still works.
    let again_a = app.dingtalk.issue_corp_code(CORP_A, "u1");
    assert_eq!(get(&app, Some(CORP_A), &again_a).await.status(), 200);

    // The callback stores the new ticket; past the one-second hold, B logs in.
    tickets.update(next);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        json(get(&app, Some(CORP_B), &in_b).await).await["name"],
        "Bob of B"
    );
    assert_eq!(app.dingtalk.calls(Endpoint::CorpAccessToken), 3);
}

/// A directory that answers from "the app's database" and counts how often it is asked.
struct CountingDirectory(Arc<AtomicU64>);

impl CorpDirectory for CountingDirectory {
    fn is_authorized<'a>(
        &'a self,
        corp_id: &'a str,
    ) -> Pin<Box<dyn Future<Output = bool> + Send + 'a>> {
        Box::pin(async move {
            self.0.fetch_add(1, Ordering::SeqCst);
            tokio::task::yield_now().await;
            corp_id == CORP_A
        })
    }
}

#[tokio::test]
async fn a_corp_directory_of_the_apps_own_is_asked_before_exchanges_only() {
    let dingtalk = dingtalk_with_corps().await;
    let asked = Arc::new(AtomicU64::new(0));
    let directory = CountingDirectory(asked.clone());
    let (key, secret) = (dingtalk.suite_key(), dingtalk.suite_secret());
    let app = TestApp::with_client(
        dingtalk,
        move |c| c.third_party_app(key, secret),
        move |l| l.corp_directory(directory),
    )
    .await;
    let code = app.dingtalk.issue_corp_code(CORP_A, "u1");
    for _ in 0..5 {
        assert_eq!(get(&app, Some(CORP_A), &code).await.status(), 200);
    }
    assert_eq!(
        asked.load(Ordering::SeqCst),
        1,
        "cached identities skip the directory"
    );
    let in_b = app.dingtalk.issue_corp_code(CORP_B, "u1");
    assert_rejection(
        get(&app, Some(CORP_B), &in_b).await,
        401,
        "corp_not_authorized",
        &[],
    )
    .await;
    assert_eq!(app.dingtalk.userinfo_calls(), 1);
}

#[tokio::test]
async fn a_third_party_app_must_say_which_corps_it_trusts() {
    let client = DingTalkClient::builder()
        .third_party_app("suite", "secret")
        .build()
        .unwrap();
    let error = DingTalkAuthLayer::builder()
        .client(client)
        .build()
        .unwrap_err();
    assert!(matches!(error, ConfigError::NoCorpDirectory), "{error}");
    // A client used directly refuses a third-party exchange without a corp.
    let dingtalk = dingtalk_with_corps().await;
    let layer = third_party(&dingtalk).build().unwrap();
    let code = dingtalk.issue_corp_code(CORP_A, "u1");
    let error = layer.client().user_info(&code).await.unwrap_err();
    assert_eq!(error.kind().as_str(), "missing_corp_id");
    let user = layer
        .client()
        .user_info_for_corp(CORP_A, &code)
        .await
        .unwrap();
    assert_eq!(user.corp_id(), Some(CORP_A));
    assert_eq!(dingtalk.total_calls(), 2, "one token, one exchange");
}

#[tokio::test]
async fn an_internal_app_reports_its_configured_corp_id() {
    let app = TestApp::with_client(
        support::dingtalk().await,
        |c| c.corp_id("dinginternal01"),
        |l| l,
    )
    .await;
    let code = app.dingtalk.issue_code("staff01");
    let body = json(app.get_with_code("/me", &code).await).await;
    assert_eq!(body["corp_id"], "dinginternal01");
}

/// A directory that lets in any corp id starting with `ding`: the permissive kind the storm needs.
struct AnyDing;

impl CorpDirectory for AnyDing {
    fn is_authorized<'a>(
        &'a self,
        corp_id: &'a str,
    ) -> Pin<Box<dyn Future<Output = bool> + Send + 'a>> {
        Box::pin(async move { corp_id.starts_with("ding") })
    }
}

// One thread, so that the logs of every task are captured.
#[tokio::test]
async fn invented_corp_ids_cannot_storm_the_token_endpoint() {
    let (_guard, logs) = support::capture_logs();
    let dingtalk = dingtalk_with_corps().await;
    let (key, secret) = (dingtalk.suite_key(), dingtalk.suite_secret());
    let app = TestApp::with_client(
        dingtalk,
        move |c| c.third_party_app(key, secret).max_corps(5),
        |l| l.corp_directory(AnyDing),
    )
    .await;
    let real = app.dingtalk.issue_corp_code(CORP_A, "u1");
    assert_eq!(get(&app, Some(CORP_A), &real).await.status(), 200);

    // 200 requests at once, each naming a corp nobody installed the app in.
    let junk: Vec<String> = (0..200).map(|i| format!("dinginvented{i:04}")).collect();
    let started = std::time::Instant::now();
    let statuses = join_all(junk.iter().map(|corp| async {
        let response = get(&app, Some(corp), "any-code-at-all-0001").await;
        response.status().as_u16()
    }))
    .await;
    let took = started.elapsed();
    let asked = app.dingtalk.calls(Endpoint::CorpToken) - 1;
    println!(
        "200 invented corps: {asked} token calls in {took:?}; statuses 500: {}, 503: {}",
        statuses.iter().filter(|s| **s == 500).count(),
        statuses.iter().filter(|s| **s == 503).count()
    );
    // They queue under the same limit as logins, 20 calls a second (spaced 5% wider), and are
    // refused past the queue.
    let allowed = (took.as_secs_f64() * 20.0 / 1.05).ceil() as u64 + 1;
    assert!(asked <= allowed, "{asked} token calls in {took:?}");
    assert!(
        statuses.iter().all(|s| [500, 503].contains(s)),
        "{statuses:?}"
    );
    assert_eq!(app.dingtalk.userinfo_calls(), 1);

    // A corp DingTalk refused is remembered: asking again costs nothing.
    let refused = junk
        .iter()
        .zip(&statuses)
        .find(|(_, status)| **status == 500)
        .map(|(corp, _)| corp)
        .expect("some invented corps reached DingTalk");
    let before = app.dingtalk.calls(Endpoint::CorpToken);
    assert_rejection(
        get(&app, Some(refused), "another-code-0001").await,
        500,
        "misconfigured",
        &[],
    )
    .await;
    assert_eq!(app.dingtalk.calls(Endpoint::CorpToken), before);

    // The real corp kept its token: no invented corp pushed it out of the five kept.
    let again = app.dingtalk.issue_corp_code(CORP_A, "u1");
    assert_eq!(get(&app, Some(CORP_A), &again).await.status(), 200);
    assert_eq!(app.dingtalk.corp_token_calls(CORP_A), 1);
    // And the logs say it once, not once per invented corp.
    let logs = logs.contents();
    let errors = logs
        .lines()
        .filter(|line| line.contains("ERROR") && line.contains("DingTalk refused a token"))
        .count();
    assert_eq!(errors, 1, "{logs}");
}

/// A directory that admits the corps given, counts how often it is asked, and takes `delay` to
/// answer.
#[derive(Clone)]
struct CountedDirectory {
    admitted: Arc<Vec<&'static str>>,
    asked: Arc<AtomicU64>,
    delay: Duration,
}

impl CountedDirectory {
    fn new(admitted: &[&'static str], delay: Duration) -> Self {
        Self {
            admitted: Arc::new(admitted.to_vec()),
            asked: Arc::new(AtomicU64::new(0)),
            delay,
        }
    }

    fn asked(&self) -> u64 {
        self.asked.load(Ordering::SeqCst)
    }
}

impl CorpDirectory for CountedDirectory {
    fn is_authorized<'a>(
        &'a self,
        corp_id: &'a str,
    ) -> Pin<Box<dyn Future<Output = bool> + Send + 'a>> {
        self.asked.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            tokio::time::sleep(self.delay).await;
            self.admitted.contains(&corp_id)
        })
    }
}

/// Two layers on one client (as the README recommends), each with its own directory, under
/// `/x` (corp A only) and `/y` (corp B only), with sessions and the token login.
async fn two_directories() -> (
    MockDingTalk,
    String,
    CountedDirectory,
    CountedDirectory,
    tokio::task::JoinHandle<()>,
) {
    let dingtalk = dingtalk_with_corps().await;
    let client = DingTalkClient::builder()
        .third_party_app(dingtalk.suite_key(), dingtalk.suite_secret())
        .base_url(dingtalk.base_url())
        .build()
        .unwrap();
    let key =
        tower_dingtalk_auth::SessionKey::from_bytes(b"one key for both layers, 32 bytes+").unwrap();
    let session = tower_dingtalk_auth::SessionConfig::new(key).secure(false);
    let x = CountedDirectory::new(&[CORP_A], Duration::ZERO);
    let y = CountedDirectory::new(&[CORP_B], Duration::ZERO);
    // Each layer sees paths under its mount point: its token login answers `<mount>/login`.
    let layer = |directory: &CountedDirectory| {
        DingTalkAuthLayer::builder()
            .client(client.clone())
            .corp_directory(directory.clone())
            .session(session.clone())
            .token_login("/login")
            .build()
            .unwrap()
    };
    let runs = Arc::new(AtomicU64::new(0));
    let app = axum::Router::new()
        .nest_service("/x", support::routes(runs.clone()).layer(layer(&x)))
        .nest_service("/y", support::routes(runs).layer(layer(&y)));
    let (addr, server) = support::serve(app).await;
    (dingtalk, format!("http://{addr}"), x, y, server)
}

/// A layer's corp directory holds on cache hits: an identity another layer on the same client
/// cached (or a cookie or token it issued) never admits a corp this layer's directory refuses,
/// and the verdict is remembered per layer, not asked per request.
#[tokio::test]
async fn a_layers_corp_directory_holds_on_cache_hits() {
    let (dingtalk, base, x, y, _server) = two_directories().await;
    let http = reqwest::Client::new();
    let get = |path: &str, code: Option<&str>, cookie: Option<&str>, token: Option<&str>| {
        let mut request = http
            .get(format!("{base}{path}"))
            .header("x-dingtalk-corp-id", CORP_B);
        if let Some(code) = code {
            request = request.header("x-dingtalk-code", code);
        }
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    // Corp B's code to /y first: admitted, cached, and a session cookie.
    let code = dingtalk.issue_corp_code(CORP_B, "u1");
    let first = get("/y/me", Some(&code), None, None).await.unwrap();
    assert_eq!(first.status(), 200);
    let cookie = first.headers()["set-cookie"].to_str().unwrap();
    let cookie = cookie.split(';').next().unwrap().to_owned();
    // Then to /x, whose directory refuses corp B: the cached identity admits nobody there.
    for _ in 0..5 {
        let response = get("/x/me", Some(&code), None, None).await.unwrap();
        assert_rejection(response, 401, "corp_not_authorized", &[&code]).await;
    }
    // Its cookie neither.
    let response = get("/x/me", None, Some(&cookie), None).await.unwrap();
    assert_rejection(response, 401, "corp_not_authorized", &[]).await;
    // Nor a token of corp B issued by /y.
    let token_code = dingtalk.issue_corp_code(CORP_B, "u1");
    let login = http
        .post(format!("{base}/y/login"))
        .json(&serde_json::json!({ "code": token_code, "corpId": CORP_B }))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    let token = json(login).await["token"].as_str().unwrap().to_owned();
    let response = get("/x/me", None, None, Some(&token)).await.unwrap();
    assert_rejection(response, 401, "corp_not_authorized", &[&token]).await;
    // /y keeps serving the code, the cookie and the token.
    for _ in 0..5 {
        assert_eq!(
            get("/y/me", Some(&code), None, None)
                .await
                .unwrap()
                .status(),
            200
        );
        assert_eq!(
            get("/y/me", None, Some(&cookie), None)
                .await
                .unwrap()
                .status(),
            200
        );
        assert_eq!(
            get("/y/me", None, None, Some(&token))
                .await
                .unwrap()
                .status(),
            200
        );
    }
    // Each layer asked its directory about corp B once (refusals are remembered a few seconds),
    // and DingTalk was called once per code.
    assert_eq!(x.asked(), 1, "x");
    assert_eq!(y.asked(), 1, "y");
    assert_eq!(dingtalk.userinfo_calls(), 2);
}

/// A slow directory is bounded by the client's `upstream_timeout`: the request ends with 504 in
/// time, DingTalk is not called, and the slowness is logged once a period.
#[tokio::test(flavor = "current_thread")]
async fn a_slow_corp_directory_is_bounded_by_the_upstream_timeout() {
    let (_guard, logs) = support::capture_logs();
    let dingtalk = dingtalk_with_corps().await;
    let directory = CountedDirectory::new(&[CORP_A], Duration::from_secs(30));
    let (key, secret) = (dingtalk.suite_key(), dingtalk.suite_secret());
    let app = TestApp::with_client(
        dingtalk,
        move |c| {
            c.third_party_app(key, secret)
                .upstream_timeout(Duration::from_millis(300))
        },
        |l| l.corp_directory(directory.clone()),
    )
    .await;
    for _ in 0..3 {
        let code = app.dingtalk.issue_corp_code(CORP_A, "u1");
        let started = std::time::Instant::now();
        let response = get(&app, Some(CORP_A), &code).await;
        let took = started.elapsed();
        assert_rejection(response, 504, "upstream_timeout", &[&code]).await;
        assert!(took < Duration::from_secs(2), "{took:?}");
    }
    assert_eq!(app.dingtalk.total_calls(), 0);
    assert_eq!(app.handler_runs(), 0);
    let logged = logs.contents();
    assert_eq!(
        logged
            .matches("the CorpDirectory did not answer within")
            .count(),
        1,
        "{logged}"
    );
}
