//! Nothing secret (app or suite secret, access tokens, corp tokens, suite tickets, auth codes,
//! session keys and session cookies) reaches a log line at any level, a response body, or the
//! `Debug` output of a public type.

mod support;

use std::time::Duration;

use support::{TestApp, capture_logs};
use tower_dingtalk_auth::testing::{Endpoint, Fault, MockDingTalk};
use tower_dingtalk_auth::{
    AuthenticatedDingTalkUser, DingTalkAuthLayer, DingTalkClient, MemorySuiteTicketStore,
    SessionConfig, SessionKey,
};

#[tokio::test]
async fn trace_logs_and_bodies_of_every_flow_hold_no_secret() {
    let (_guard, logs) = capture_logs();
    let app = TestApp::with_client(
        support::dingtalk().await,
        |c| c.upstream_timeout(Duration::from_millis(300)),
        |l| l,
    )
    .await;
    let dingtalk = &app.dingtalk;
    let mut codes = Vec::new();
    let mut bodies = Vec::new();
    let mut send = async |code: String| {
        let response = app.get_with_code("/me", &code).await;
        bodies.push(response.text().await.unwrap());
        codes.push(code);
    };

    let first = dingtalk.issue_code("staff01");
    send(first.clone()).await; // success
    send(first).await; // cache hit
    dingtalk.fail_next(Endpoint::GetUserInfo, Fault::Errcode(40014), 1);
    send(dingtalk.issue_code("boss01")).await; // token refresh and retry
    dingtalk.revoke_tokens();
    send(dingtalk.issue_code("sub01")).await; // revoked token replaced
    send("never-issued-code-0001".to_owned()).await; // rejected by DingTalk
    for fault in [
        Fault::HttpStatus(502),
        Fault::Html,
        Fault::TruncatedJson,
        Fault::CloseConnection,
        Fault::Errcode(60020),
        Fault::Errcode(60011),
        Fault::SubCode(90018),
        Fault::IpBan,
        Fault::Errcode(-1),
        Fault::Latency(Duration::from_secs(1)),
    ] {
        dingtalk.fail_always(Endpoint::GetUserInfo, fault);
        send(dingtalk.issue_code("staff01")).await;
        dingtalk.clear_faults();
    }
    dingtalk.revoke_tokens();
    dingtalk.fail_always(Endpoint::AccessToken, Fault::InvalidCredentials);
    send(dingtalk.issue_code("staff01")).await; // secret refused

    let logs = logs.contents();
    assert!(
        logs.contains("TRACE") || logs.contains("DEBUG"),
        "logs were captured: {logs}"
    );
    assert!(
        logs.contains("ERROR"),
        "misconfigurations were logged: {logs}"
    );
    let tokens = dingtalk.issued_tokens();
    assert_eq!(tokens.len(), 2, "the test saw a token refresh");
    let secret = dingtalk.app_secret();
    let secrets: Vec<&str> = codes
        .iter()
        .chain(&tokens)
        .map(String::as_str)
        .chain([secret.as_str()])
        .collect();
    for secret in &secrets {
        assert!(
            !logs.contains(secret),
            "a secret in the logs: {secret}\n{logs}"
        );
        for body in &bodies {
            assert!(!body.contains(secret), "a secret in a body: {body}");
        }
    }
}

#[tokio::test]
async fn debug_output_redacts_the_app_secret() {
    let secret = "s3cr3t-app-secret-value";
    let builder = DingTalkAuthLayer::builder().internal_app("key", secret);
    assert!(!format!("{builder:?}").contains(secret));
    let layer = builder.build().unwrap();
    assert!(!format!("{layer:?}").contains(secret));
    assert!(!format!("{:?}", layer.client()).contains(secret));
    let client_builder = DingTalkClient::builder().internal_app("key", secret);
    assert!(!format!("{client_builder:?}").contains(secret));
    let client = client_builder.build().unwrap();
    let debug = format!("{client:?}");
    assert!(
        !debug.contains(secret) && debug.contains("redacted"),
        "{debug}"
    );
}

#[tokio::test]
async fn errors_name_no_code() {
    let dingtalk = support::dingtalk().await;
    let client = DingTalkClient::builder()
        .internal_app(dingtalk.app_key(), dingtalk.app_secret())
        .base_url(dingtalk.base_url())
        .build()
        .unwrap();
    let code = dingtalk.issue_code("staff01");
    // Another client spends the code; this one is refused.
    dingtalk
        .client_builder()
        .build()
        .unwrap()
        .user_info(&code)
        .await
        .unwrap();
    let error = client.user_info(&code).await.unwrap_err();
    for shown in [format!("{error}"), format!("{error:?}"), error.json_body()] {
        assert!(!shown.contains(&code), "{shown}");
    }
}

#[tokio::test]
async fn third_party_and_session_flows_hold_no_secret() {
    const CORP: &str = "dingsecretcorp01";
    const OTHER_CORP: &str = "dingsecretcorp02";
    // Its first login comes after the suite ticket rotated.
    const LATE_CORP: &str = "dingsecretcorp03";
    const SESSION_SECRET: &str = "session-secret-that-must-never-be-logged-0123456789";
    let (_guard, logs) = capture_logs();
    let dingtalk = MockDingTalk::start().await;
    for corp in [CORP, OTHER_CORP, LATE_CORP] {
        dingtalk.add_corp(corp);
        dingtalk.add_corp_user(
            corp,
            AuthenticatedDingTalkUser::builder("u1", "Alice").build(),
        );
    }
    let tickets = MemorySuiteTicketStore::new();
    let first_ticket = dingtalk.suite_ticket();
    tickets.update(first_ticket.clone());
    let session = SessionConfig::new(SessionKey::from_bytes(SESSION_SECRET).unwrap()).secure(false);
    let (suite_key, suite_secret) = (dingtalk.suite_key(), dingtalk.suite_secret());
    let app = TestApp::with_client(
        dingtalk,
        {
            let (tickets, suite_secret) = (tickets.clone(), suite_secret.clone());
            move |c| {
                c.third_party_app(suite_key, suite_secret)
                    .suite_ticket_store(tickets)
            }
        },
        {
            let session = session.clone();
            move |l| {
                l.authorized_corps([CORP, OTHER_CORP, LATE_CORP])
                    .session(session)
            }
        },
    )
    .await;
    let dingtalk = &app.dingtalk;
    let get = async |corp: &str, code: &str, cookie: Option<&str>| {
        let mut request = app
            .http
            .get(app.url("/me"))
            .header("x-dingtalk-code", code)
            .header("x-dingtalk-corp-id", corp);
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        request.send().await.unwrap()
    };

    let mut codes = Vec::new();
    let mut bodies = Vec::new();
    let mut cookies = Vec::new();
    // A login that sets a session cookie, then the cookie alone.
    let code = dingtalk.issue_corp_code(CORP, "u1");
    let response = get(CORP, &code, None).await;
    assert_eq!(response.status(), 200);
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    let pair = cookie.split(';').next().unwrap().to_owned();
    let value = pair.split_once('=').unwrap().1.to_owned();
    bodies.push(response.text().await.unwrap());
    let response = app
        .http
        .get(app.url("/me"))
        .header("cookie", &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    bodies.push(response.text().await.unwrap());
    cookies.push(value.clone());
    // A tampered cookie, and a code sent with the wrong corp.
    let mut tampered = value.clone().into_bytes();
    tampered[value.len() / 2] ^= 1;
    let tampered = format!("dingtalk_session={}", String::from_utf8_lossy(&tampered));
    let response = get(OTHER_CORP, &code, Some(&tampered)).await;
    assert_eq!(response.status(), 401);
    bodies.push(response.text().await.unwrap());
    codes.push(code);
    // The ticket rotates before a corp's first login: refused until the app stores it.
    let next_ticket = dingtalk.rotate_suite_ticket();
    let code = dingtalk.issue_corp_code(LATE_CORP, "u1");
    let response = get(LATE_CORP, &code, None).await;
    assert!(response.status().is_server_error(), "{}", response.status());
    bodies.push(response.text().await.unwrap());
    codes.push(code);
    tickets.update(next_ticket.clone());
    tokio::time::sleep(Duration::from_millis(1100)).await; // past the failure hold
    let code = dingtalk.issue_corp_code(LATE_CORP, "u1");
    let response = get(LATE_CORP, &code, None).await;
    assert_eq!(response.status(), 200);
    bodies.push(response.text().await.unwrap());
    codes.push(code);

    let logs = logs.contents();
    assert!(logs.contains("DEBUG"), "logs were captured: {logs}");
    let tokens = dingtalk.issued_tokens();
    assert_eq!(tokens.len(), 3, "one token per corp");
    let debug = [
        format!("{:?}", app.layer),
        format!("{:?}", app.layer.client()),
        format!("{tickets:?}"),
        format!("{session:?}"),
    ];
    let secrets: Vec<&str> = codes
        .iter()
        .chain(&tokens)
        .chain(&cookies)
        .map(String::as_str)
        .chain([
            suite_secret.as_str(),
            first_ticket.as_str(),
            next_ticket.as_str(),
            SESSION_SECRET,
        ])
        .collect();
    for secret in &secrets {
        assert!(
            !logs.contains(secret),
            "a secret in the logs: {secret}\n{logs}"
        );
        for shown in bodies.iter().chain(&debug) {
            assert!(!shown.contains(secret), "a secret shown: {shown}");
        }
    }
}

#[tokio::test]
async fn bearer_token_flows_hold_no_secret() {
    const SESSION_SECRET: &str = "token-secret-that-must-never-be-logged-0123456789";
    const LOGIN: &str = "/auth/dingtalk/login";
    let (_guard, logs) = capture_logs();
    let session = SessionConfig::new(SessionKey::from_bytes(SESSION_SECRET).unwrap());
    let app = TestApp::with(support::dingtalk().await, |l| {
        l.session(session).token_login(LOGIN)
    })
    .await;
    let code = app.dingtalk.issue_code("staff01");
    let response = app
        .http
        .post(app.url(LOGIN))
        .header("content-type", "application/json")
        .body(format!(r#"{{"code": "{code}"}}"#))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let token = support::json(response).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut tokens = vec![token.clone()];
    let mut bodies = Vec::new();
    let response = app
        .http
        .post(app.url(&format!("{LOGIN}/refresh")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    tokens.push(
        support::json(response).await["token"]
            .as_str()
            .unwrap()
            .to_owned(),
    );
    let tampered = format!("{token}x");
    for bearer in [&token, &tokens[1], &tampered] {
        let response = app
            .http
            .get(app.url("/me"))
            .bearer_auth(bearer)
            .send()
            .await
            .unwrap();
        bodies.push(response.text().await.unwrap());
    }
    // The code again: refused.
    let response = app
        .http
        .post(app.url(LOGIN))
        .header("x-dingtalk-code", &code)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    bodies.push(response.text().await.unwrap());
    tokens.push(tampered);

    let logged = logs.contents();
    assert!(
        logged.contains("token endpoint refused"),
        "the flows were logged: {logged}"
    );
    let debug = format!("{:?}", app.layer);
    for secret in tokens
        .iter()
        .map(String::as_str)
        .chain([code.as_str(), SESSION_SECRET])
    {
        assert!(!logged.contains(secret), "a log holds a secret: {logged}");
        assert!(!debug.contains(secret), "Debug holds a secret: {debug}");
        for body in &bodies {
            assert!(!body.contains(secret), "a body holds a secret: {body}");
        }
    }
}
