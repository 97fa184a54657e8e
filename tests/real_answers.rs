//! What DingTalk really sends: every answer in `tests/data/real-answers.json` (captured live by
//! others, or documented by DingTalk) is served once by the fake DingTalk, in place of the endpoint
//! it came from, to a request with a fresh code; the layer must answer what the entry expects
//! (status, error kind, `Retry-After`, the user) with the calls it expects (a second token call
//! means the token was fetched again, a second getuserinfo call that the exchange was retried), and
//! the handler runs only for a 200.

mod support;

use serde::Deserialize;
use support::{TestApp, json};
use tower_dingtalk_auth::testing::{Endpoint, Fault, MockDingTalk};
use tower_dingtalk_auth::{AuthenticatedDingTalkUser, MemorySuiteTicketStore};

const CORP: &str = "dingcorpreal0001";

#[derive(Deserialize)]
struct Entry {
    id: String,
    http_status: u16,
    body: String,
    meaning: String,
    expect: Expect,
}

#[derive(Deserialize)]
struct Expect {
    app: String,
    serve_at: String,
    status: u16,
    error: Option<String>,
    retry_after: Option<u64>,
    userid: Option<String>,
    admin_level: Option<i64>,
    token_calls: u64,
    userinfo_calls: u64,
}

fn corpus() -> Vec<Entry> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/real-answers.json");
    let text = std::fs::read_to_string(path).expect("tests/data/real-answers.json");
    serde_json::from_str(&text).expect("the corpus parses")
}

/// An app of the kind the entry needs, and the request's corp (third-party apps).
async fn app_for(kind: &str) -> (TestApp, Option<&'static str>) {
    let dingtalk = support::dingtalk().await;
    dingtalk.add_corp(CORP);
    dingtalk.add_corp_user(
        CORP,
        AuthenticatedDingTalkUser::builder("u1", "Corp User").build(),
    );
    let (key, secret) = (dingtalk.suite_key(), dingtalk.suite_secret());
    let app = match kind {
        "internal" => TestApp::with(dingtalk, |b| b).await,
        "third_party" => {
            TestApp::with_client(
                dingtalk,
                move |c| c.third_party_app(key, secret),
                |l| l.authorized_corps([CORP]),
            )
            .await
        }
        "third_party_tickets" => {
            let tickets = MemorySuiteTicketStore::new();
            tickets.update(dingtalk.suite_ticket());
            TestApp::with_client(
                dingtalk,
                move |c| c.third_party_app(key, secret).suite_ticket_store(tickets),
                |l| l.authorized_corps([CORP]),
            )
            .await
        }
        other => panic!("unknown app kind {other}"),
    };
    let corp = (kind != "internal").then_some(CORP);
    (app, corp)
}

fn token_calls(dingtalk: &MockDingTalk) -> u64 {
    [
        Endpoint::AccessToken,
        Endpoint::CorpToken,
        Endpoint::CorpAccessToken,
    ]
    .into_iter()
    .map(|endpoint| dingtalk.calls(endpoint))
    .sum()
}

async fn check(entry: &Entry) -> Result<(), String> {
    let expect = &entry.expect;
    let (app, corp) = app_for(&expect.app).await;
    let endpoint = match expect.serve_at.as_str() {
        "getuserinfo" => Endpoint::GetUserInfo,
        "access_token" => Endpoint::AccessToken,
        "corp_token" => Endpoint::CorpToken,
        "corp_access_token" => Endpoint::CorpAccessToken,
        other => panic!("unknown endpoint {other}"),
    };
    let fault = Fault::Raw(entry.http_status, entry.body.clone().into_bytes());
    app.dingtalk.fail_next(endpoint, fault, 1);
    let code = match corp {
        Some(corp) => app.dingtalk.issue_corp_code(corp, "u1"),
        None => app.dingtalk.issue_code("staff01"),
    };
    let mut request = app
        .http
        .get(app.url("/me"))
        .header("x-dingtalk-code", &code);
    if let Some(corp) = corp {
        request = request.header("x-dingtalk-corp-id", corp);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|value| value.to_str().unwrap().parse::<u64>().unwrap());
    let body = json(response).await;
    let mut wrong = Vec::new();
    let mut expect_eq = |what: &str, got: String, want: String| {
        if got != want {
            wrong.push(format!("{what}: got {got}, expected {want}"));
        }
    };
    expect_eq("status", status.to_string(), expect.status.to_string());
    if let Some(error) = &expect.error {
        expect_eq("error", body["error"].to_string(), format!("{error:?}"));
    }
    expect_eq(
        "retry-after",
        format!("{retry_after:?}"),
        format!("{:?}", expect.retry_after),
    );
    if let Some(userid) = &expect.userid {
        expect_eq("userid", body["userid"].to_string(), format!("{userid:?}"));
    }
    if let Some(level) = expect.admin_level {
        expect_eq(
            "admin_level",
            body["admin_level"].to_string(),
            level.to_string(),
        );
    }
    expect_eq(
        "token calls",
        token_calls(&app.dingtalk).to_string(),
        expect.token_calls.to_string(),
    );
    expect_eq(
        "getuserinfo calls",
        app.dingtalk.userinfo_calls().to_string(),
        expect.userinfo_calls.to_string(),
    );
    let runs = u64::from(expect.status == 200);
    expect_eq(
        "handler runs",
        app.handler_runs().to_string(),
        runs.to_string(),
    );
    if !body.to_string().contains(&code) && wrong.is_empty() {
        return Ok(());
    }
    if body.to_string().contains(&code) {
        wrong.push("the body holds the code".to_owned());
    }
    Err(format!(
        "{} ({}): {}; body {body}",
        entry.id,
        entry.meaning,
        wrong.join("; ")
    ))
}

#[tokio::test]
async fn every_captured_answer_gets_its_documented_outcome() {
    let corpus = corpus();
    assert_eq!(corpus.len(), 26, "the corpus is whole");
    let mut failures = Vec::new();
    for entry in &corpus {
        if let Err(failure) = check(entry).await {
            failures.push(failure);
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}
