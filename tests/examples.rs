//! The examples' servers, answered by a real HTTP client over loopback: the files under
//! `examples/` are compiled into this test as modules and their servers started here.

mod support;

use std::sync::Arc;

use tower_dingtalk_auth::testing::MockDingTalk;
use tower_dingtalk_auth::{SessionConfig, SessionKey};

#[path = "../examples/admin.rs"]
#[allow(dead_code)]
mod admin_example;
#[path = "../examples/hyper.rs"]
#[allow(dead_code)]
mod hyper_example;
#[cfg(feature = "metrics")]
#[path = "../examples/metrics.rs"]
#[allow(dead_code)]
mod metrics_example;
#[path = "../examples/mini_program.rs"]
#[allow(dead_code)]
mod mini_program_example;
#[path = "../examples/sessions.rs"]
#[allow(dead_code)]
mod sessions_example;

fn no_follow() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The `name=value` pair of the session cookie a response sets.
fn session_pair(response: &reqwest::Response) -> String {
    let set = response.headers()["set-cookie"].to_str().unwrap();
    assert!(set.starts_with("dingtalk_session="), "{set}");
    set.split(';').next().unwrap().to_owned()
}

#[tokio::test]
async fn the_hyper_example_serves_codes_sessions_and_sign_out() {
    let dingtalk = support::dingtalk().await;
    let layer = support::layer_for(&dingtalk)
        .session(SessionConfig::new(SessionKey::generate()).secure(false))
        .build()
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(hyper_example::serve(listener, layer));
    let http = no_follow();

    let code = dingtalk.issue_code("super01");
    let response = http
        .get(format!("http://{addr}/me"))
        .header("x-dingtalk-code", &code)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let cookie = session_pair(&response);
    let user: serde_json::Value = response.json().await.unwrap();
    assert_eq!(user["userid"], "super01");

    let response = http
        .get(format!("http://{addr}/"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.text().await.unwrap(),
        "你好 Zhang San (SuperAdmin)\n"
    );

    let response = http
        .post(format!("http://{addr}/sign-out"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let cleared = response.headers()["set-cookie"].to_str().unwrap();
    assert!(cleared.starts_with("dingtalk_session=;"), "{cleared}");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");

    let response = http.get(format!("http://{addr}/")).send().await.unwrap();
    support::assert_rejection(response, 401, "missing_code", &[&code]).await;
    assert_eq!(dingtalk.userinfo_calls(), 1);
    server.abort();
}

#[tokio::test]
async fn the_admin_example_guards_its_routes() {
    let dingtalk = admin_example::fake_dingtalk().await;
    let layer = support::layer_for(&dingtalk).build().unwrap();
    let (addr, server) = support::serve(admin_example::app(layer)).await;
    let http = no_follow();
    let status = |path: &'static str, userid: &'static str| {
        let request = http
            .get(format!("http://{addr}{path}"))
            .header("x-dingtalk-code", dingtalk.issue_code(userid));
        async move { request.send().await.unwrap().status().as_u16() }
    };
    // (userid, /me, /admin/dashboard, /admin/billing)
    for (userid, expected) in [
        ("boss100", [200, 200, 200]),
        ("manager4220", [200, 200, 200]),
        ("sub2", [200, 200, 403]),
        ("staff1024", [200, 403, 403]),
    ] {
        let got = [
            status("/me", userid).await,
            status("/admin/dashboard", userid).await,
            status("/admin/billing", userid).await,
        ];
        assert_eq!(got, expected, "{userid}");
    }
    let response = http
        .get(format!("http://{addr}/admin/dashboard"))
        .send()
        .await
        .unwrap();
    support::assert_rejection(response, 401, "missing_code", &[]).await;
    let response = http
        .get(format!("http://{addr}/admin/nothing-here"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    server.abort();
}

/// A client that asks for HTML, as a browser's navigations do, and shows redirects.
fn browser() -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("accept", "text/html".parse().unwrap());
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .default_headers(headers)
        .build()
        .unwrap()
}

#[tokio::test]
async fn the_sessions_example_signs_in_once_then_uses_the_cookie() {
    let dingtalk = Arc::new(MockDingTalk::start().await);
    for user in support::known_users() {
        dingtalk.add_user(user);
    }
    let session = SessionConfig::new(SessionKey::generate()).secure(false);
    let app = sessions_example::app(dingtalk.clone(), session).unwrap();
    let (addr, server) = support::serve(app).await;
    let http = browser();
    let url = |path: &str| format!("http://{addr}{path}");

    // A page without code or session: to the login page, which comes back with a code.
    let response = http.get(url("/")).send().await.unwrap();
    assert_eq!(response.status(), 302);
    assert_eq!(response.headers()["location"], "/login?next=%2F");
    let response = http
        .get(url("/login?user=boss01&next=%2F"))
        .send()
        .await
        .unwrap();
    let back = response.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        back.starts_with("/?code=") && back.ends_with("&next=%2F"),
        "{back}"
    );
    // The code signs in and leaves the address bar: 303 to the page without it, with the cookie.
    let response = http.get(url(&back)).send().await.unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/");
    let cookie = session_pair(&response);
    let response = http
        .get(url("/"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.text().await.unwrap().contains("你好 Wang Wu"));
    assert_eq!(dingtalk.userinfo_calls(), 1);

    // The cookie alone, on the page and on the API, with no further call to DingTalk.
    for path in ["/", "/api/me", "/"] {
        let response = http
            .get(url(path))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert!(response.headers().get("set-cookie").is_none());
    }
    assert_eq!(dingtalk.userinfo_calls(), 1);

    // Signing out clears the cookie; without it the API is 401 and the page redirects.
    let response = http
        .post(url("/sign-out"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    let cleared = response.headers()["set-cookie"].to_str().unwrap();
    assert!(cleared.starts_with("dingtalk_session=;"), "{cleared}");
    // One layer: the page's API call is a 401 it can act on, not the login page's redirect.
    let response = http
        .get(url("/api/me"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    support::assert_rejection(response, 401, "missing_code", &[]).await;
    let response = http.get(url("/")).send().await.unwrap();
    assert_eq!(response.status(), 302);
    server.abort();
}

#[tokio::test]
async fn the_mini_program_example_plays_as_printed() {
    let dingtalk = Arc::new(MockDingTalk::start().await);
    for user in support::known_users() {
        dingtalk.add_user(user);
    }
    let app =
        mini_program_example::app(dingtalk.clone(), SessionConfig::new(SessionKey::generate()))
            .unwrap();
    let (addr, server) = support::serve(app).await;
    let http = reqwest::Client::new();
    let url = |path: &str| format!("http://{addr}{path}");
    let login = url(mini_program_example::LOGIN_PATH);

    // dd.getAuthCode, then the login.
    let code = http.get(url("/dev/code?user=boss01")).send().await.unwrap();
    let code = code.text().await.unwrap();
    let body = serde_json::json!({ "code": code }).to_string();
    let post_login = || {
        http.post(&login)
            .header("content-type", "application/json")
            .body(body.clone())
    };
    let response = post_login().send().await.unwrap();
    assert_eq!(response.status(), 200);
    let token = support::json(response).await["token"]
        .as_str()
        .unwrap()
        .to_owned();

    // The API with the token, and a refresh: no further call to DingTalk.
    let response = http
        .get(url("/api/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(support::json(response).await["userid"], "boss01");
    let response = http
        .post(format!("{login}/refresh"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(dingtalk.userinfo_calls(), 1);

    // A tampered token, and the code again.
    let response = http
        .get(url("/api/me"))
        .bearer_auth(format!("{token}x"))
        .send()
        .await
        .unwrap();
    support::assert_rejection(response, 401, "invalid_token", &[&token]).await;
    let response = post_login().send().await.unwrap();
    support::assert_rejection(response, 401, "code_rejected", &[&code]).await;
    assert_eq!(dingtalk.userinfo_calls(), 1);
    server.abort();
}

#[path = "../examples/workbench.rs"]
#[allow(dead_code)]
mod workbench_example;

/// The workbench example, played exactly as it prints itself: every shell line of its
/// walk-through run by bash with curl, in order, against the example's own app, each printing
/// what the walk-through says it prints.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_workbench_example_plays_as_printed() {
    for tool in ["bash", "curl"] {
        let found = std::process::Command::new(tool).arg("--version").output();
        assert!(
            found.is_ok_and(|out| out.status.success()),
            "{tool} is needed to play the printed walk-through: apt-get install {tool}"
        );
    }
    let dingtalk = Arc::new(MockDingTalk::start().await);
    dingtalk.add_user(
        tower_dingtalk_auth::AuthenticatedDingTalkUser::builder("staff1024", "Li Si").build(),
    );
    dingtalk.add_user(
        tower_dingtalk_auth::AuthenticatedDingTalkUser::builder("manager4220", "Zhang San")
            .admin_level(tower_dingtalk_auth::AdminLevel::SuperAdmin)
            .build(),
    );
    let app = workbench_example::app(
        dingtalk.clone(),
        SessionConfig::new(SessionKey::generate()).secure(false),
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
        axum::serve(listener, app).await.unwrap();
    });
    let dir = std::env::temp_dir().join(format!("workbench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let jar = dir.join("jar");
    let steps = workbench_example::walkthrough(addr, jar.to_str().unwrap());
    // One shell, so that `TOKEN` lives from one line to the next; a marker between steps.
    let mut script = String::from("set -u\n");
    for (i, step) in steps.iter().enumerate() {
        script.push_str(&format!("echo '@@step {i}'\n{}\n", step.command));
    }
    let output = tokio::process::Command::new("bash")
        .arg("-c")
        .arg(&script)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed: Vec<&str> = stdout.split("@@step ").skip(1).collect();
    assert_eq!(printed.len(), steps.len(), "{stdout}");
    for (step, printed) in steps.iter().zip(printed) {
        let printed = printed.split_once('\n').map_or("", |(_, rest)| rest).trim();
        assert_eq!(printed, step.prints, "{}: {}", step.says, step.command);
    }
    // Two logins, one call to DingTalk each; everything else from the cookie or the token.
    assert_eq!(dingtalk.userinfo_calls(), 2);
    server.abort();
    let _ = std::fs::remove_dir_all(&dir);
}

/// The example's recorder is global: other tests here that build a layer after it add to its
/// counts, so they are read as at least what this test did.
#[cfg(feature = "metrics")]
#[tokio::test]
async fn the_metrics_example_serves_prometheus_text_without_secrets() {
    let metrics = metrics_example::install_recorder();
    let dingtalk = support::dingtalk().await;
    let layer = support::layer_for(&dingtalk).build().unwrap();
    let (addr, server) = support::serve(metrics_example::app(layer, metrics)).await;
    let http = no_follow();
    let code = dingtalk.issue_code("staff01");
    for _ in 0..2 {
        let response = http
            .get(format!("http://{addr}/me"))
            .header("x-dingtalk-code", &code)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    let response = http.get(format!("http://{addr}/me")).send().await.unwrap();
    support::assert_rejection(response, 401, "missing_code", &[]).await;

    let response = http
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "/metrics is outside the layer");
    let text = response.text().await.unwrap();
    let value = |series: &str| -> f64 {
        let line = text
            .lines()
            .find(|line| line.starts_with(series))
            .unwrap_or_else(|| panic!("no {series} in\n{text}"));
        line[series.len()..].trim().parse().unwrap()
    };
    assert!(value("dingtalk_auth_requests_total{outcome=\"code\"}") >= 2.0);
    assert!(value("dingtalk_auth_requests_total{outcome=\"missing_code\"}") >= 1.0);
    assert!(value("dingtalk_auth_identity_cache_total{result=\"hit\"}") >= 1.0);
    assert!(value("dingtalk_auth_exchanges_total{result=\"ok\"}") >= 1.0);
    // Registered at build, at 0 until the first refusal: a rate of 0 is a real 0.
    assert_eq!(
        value("dingtalk_auth_refusals_total{reason=\"per_client\"}"),
        0.0
    );
    assert!(
        text.contains("# HELP dingtalk_auth_requests_total "),
        "{text}"
    );
    assert!(text.contains("dingtalk_auth_exchange_seconds"), "{text}");
    for secret in [code.as_str(), "staff01", &dingtalk.app_secret()] {
        assert!(!text.contains(secret), "{secret} in\n{text}");
    }
    assert_eq!(dingtalk.userinfo_calls(), 1);
    server.abort();
}
