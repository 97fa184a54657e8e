//! The guide's JavaScript helper for H5 micro apps, run as it is written (extracted from
//! `docs/front_end.md`) under Node against the fake DingTalk: a slow DingTalk (504), a throttling
//! one (503 with `Retry-After`) and a spent code (401 `code_rejected`) each end in the user, with
//! the same code retried where the layer kept its call, and a fresh code asked for only when
//! DingTalk refused one.
//!
//! Needs `node` (18 or later, for `fetch`): `.ci/run` installs Debian's `nodejs` when it is missing;
//! without it the test fails saying so.

mod support;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::routing::get;
use tower_dingtalk_auth::AuthenticatedDingTalkUser;
use tower_dingtalk_auth::testing::{Endpoint, Fault, MockDingTalk};

/// The helper, as the guide shows it.
fn helper() -> String {
    let guide = include_str!("../docs/front_end.md");
    let start = guide
        .find("```js\n// dingtalk-auth helper")
        .expect("the guide holds the helper");
    let block = &guide[start + "```js\n".len()..];
    block[..block.find("```").expect("the block ends")].to_owned()
}

#[derive(serde::Deserialize)]
struct Who {
    user: String,
}

/// `dd.runtime.permission.requestAuthCode`, played by the fake: a fresh code for `?user=`.
async fn code(State(dingtalk): State<Arc<MockDingTalk>>, Query(who): Query<Who>) -> String {
    dingtalk.issue_code(&who.user)
}

/// What the shim in front of the helper provides: `location`, `dd` asking the app's `/dev/code`
/// (or handing out the codes queued in `STALE` first), and `fetch` resolving paths against the app.
const SHIM: &str = r#"
const BASE = process.env.APP;
globalThis.location = { search: "?corpId=dingcorp01" };
const stale = JSON.parse(process.env.STALE || "[]");
let asked = 0;
globalThis.dd = { runtime: { permission: { requestAuthCode: ({ onSuccess, onFail }) => {
  asked += 1;
  if (stale.length > 0) { onSuccess({ code: stale.shift() }); return; }
  fetch(new URL("/dev/code?user=" + process.env.USER_ID, BASE)).then((r) => r.text())
    .then((code) => onSuccess({ code }), onFail);
} } } };
const realFetch = globalThis.fetch;
globalThis.fetch = (path, init) => realFetch(new URL(path, BASE), init);
"#;

const DRIVER: &str = r#"
(async () => {
  const started = Date.now();
  const response = await callApi("/api/me");
  const body = await response.json();
  console.log(JSON.stringify({
    status: response.status, userid: body.userid, asked, ms: Date.now() - started,
  }));
})().catch((error) => { console.error(error); process.exit(1); });
"#;

#[derive(Debug, serde::Deserialize)]
struct Outcome {
    status: u16,
    userid: Option<String>,
    /// Codes asked of DingTalk's JSAPI.
    asked: u32,
    ms: u64,
}

async fn run_helper(app: &str, userid: &str, stale: &[String]) -> Outcome {
    let script = format!("{SHIM}\n{}\n{DRIVER}", helper());
    let output = tokio::process::Command::new("node")
        .arg("-e")
        .arg(&script)
        .env("APP", app)
        .env("USER_ID", userid)
        .env("STALE", serde_json::to_string(stale).unwrap())
        .output()
        .await
        .unwrap_or_else(|error| {
            panic!("node is needed (apt-get install nodejs): {error}");
        });
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|_| panic!("not an outcome: {stdout}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guides_helper_keeps_the_users_the_layer_saved() {
    let version = std::process::Command::new("node").arg("--version").output();
    assert!(
        version.is_ok_and(|out| out.status.success()),
        "node is needed to run the guide's helper: apt-get install nodejs"
    );
    let dingtalk = Arc::new(MockDingTalk::start().await);
    for (userid, name) in [("staff01", "Li Si"), ("boss01", "Wang Wu")] {
        dingtalk.add_user(AuthenticatedDingTalkUser::builder(userid, name).build());
    }
    let client = dingtalk
        .client_builder()
        .upstream_timeout(Duration::from_millis(400))
        .build()
        .unwrap();
    let layer = tower_dingtalk_auth::DingTalkAuthLayer::builder()
        .client(client)
        .build()
        .unwrap();
    // Another app server of the same app, which spends codes this one never sees.
    let elsewhere_server = dingtalk.client_builder().build().unwrap();
    let spend = |code: String| {
        let other = elsewhere_server.clone();
        async move {
            other.user_info(&code).await.expect("spent elsewhere");
        }
    };
    let app = Router::new()
        .route(
            "/api/me",
            get(|user: AuthenticatedDingTalkUser| async move { axum::Json(user) }),
        )
        .route_layer(layer)
        .route("/dev/code", get(code))
        .with_state(dingtalk.clone());
    let (addr, _server) = support::serve(app).await;
    let url = format!("http://{addr}");
    // Warm the token: the faults below are the exchange's.
    let warm = run_helper(&url, "staff01", &[]).await;
    assert_eq!((warm.status, warm.asked), (200, 1));
    let calls = dingtalk.userinfo_calls();

    // DingTalk slower than the budget: 504, then the same code a second later, answered from the
    // cache by the call the layer kept. One code, one call.
    dingtalk.fail_next(
        Endpoint::GetUserInfo,
        Fault::Latency(Duration::from_millis(800)),
        1,
    );
    let slow = run_helper(&url, "boss01", &[]).await;
    assert_eq!(
        (slow.status, slow.userid.as_deref(), slow.asked),
        (200, Some("boss01"), 1),
        "{slow:?}"
    );
    assert!(slow.ms >= 1_000, "it waited the default second: {slow:?}");
    assert_eq!(dingtalk.userinfo_calls(), calls + 1);

    // DingTalk throttling (90018): 503 with `Retry-After`, the same code after it, and in.
    dingtalk.fail_next(Endpoint::GetUserInfo, Fault::Errcode(90018), 1);
    let throttled = run_helper(&url, "staff01", &[]).await;
    assert_eq!(
        (
            throttled.status,
            throttled.userid.as_deref(),
            throttled.asked
        ),
        (200, Some("staff01"), 1),
        "{throttled:?}"
    );
    assert!(
        throttled.ms >= 1_000,
        "it waited Retry-After: {throttled:?}"
    );
    assert_eq!(dingtalk.userinfo_calls(), calls + 3);

    // A code spent elsewhere (another server of the app, never seen by this layer): 401
    // `code_rejected`, one fresh code, and in.
    let calls = dingtalk.userinfo_calls();
    let elsewhere = dingtalk.issue_code("boss01");
    spend(elsewhere.clone()).await;
    let refused = run_helper(&url, "boss01", &[elsewhere]).await;
    assert_eq!(
        (refused.status, refused.userid.as_deref(), refused.asked),
        (200, Some("boss01"), 2),
        "{refused:?}"
    );
    // The other server's call, this layer's refused call, and its fresh code's.
    assert_eq!(dingtalk.userinfo_calls(), calls + 3);

    // Two refusals in a row go to the caller: no loop.
    let (one, two) = (dingtalk.issue_code("boss01"), dingtalk.issue_code("boss01"));
    spend(one.clone()).await;
    spend(two.clone()).await;
    let twice = run_helper(&url, "boss01", &[one, two]).await;
    assert_eq!((twice.status, twice.asked), (401, 2), "{twice:?}");
}
