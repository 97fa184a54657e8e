//! A soak over loopback: 20,000 requests at concurrency 200, mixing 100 valid codes, bogus codes,
//! malformed codes and no code, with bursts of upstream faults in the middle third.

mod support;

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use support::TestApp;
use tower_dingtalk_auth::testing::{Endpoint, Fault};

const VALID: usize = 100;
const BOGUS: usize = 300;
const PER_PHASE: [usize; 3] = [8_000, 4_000, 8_000];
const CONCURRENCY: usize = 200;

#[derive(Clone, Debug)]
enum Sent {
    Valid { code: String, userid: String },
    Bogus(String),
    Malformed(&'static str),
    NoCode,
}

/// Request `i` of a phase; codes first seen in a phase are those of its share of the ranges.
fn request(i: usize, phase: usize, valid: &[(String, String)]) -> Sent {
    let (valid_seen, bogus_seen) = match phase {
        0 => (VALID / 2, BOGUS / 2),
        _ => (VALID, BOGUS),
    };
    // Six valid, two bogus, one malformed and one without code in every ten, each kind cycling
    // through all of its codes in order.
    let (round, slot) = (i / 10, i % 10);
    match slot {
        0..=5 => {
            let (code, userid) = valid[(round * 6 + slot) % valid_seen].clone();
            Sent::Valid { code, userid }
        }
        6 | 7 => Sent::Bogus(format!(
            "soak-bogus-{:04}",
            (round * 2 + slot - 6) % bogus_seen
        )),
        8 => Sent::Malformed(["bad code", "", "caf\u{e9}"][i % 3]),
        _ => Sent::NoCode,
    }
}

async fn send(app: &TestApp, sent: &Sent) -> (u16, Option<String>) {
    let mut request = app.http.get(app.url("/me"));
    match sent {
        Sent::Valid { code, .. } | Sent::Bogus(code) => {
            request = request.header("x-dingtalk-code", code.as_str());
        }
        Sent::Malformed(code) => request = request.header("x-dingtalk-code", *code),
        Sent::NoCode => {}
    }
    let response = request.send().await.expect("the app answers");
    let status = response.status().as_u16();
    let userid = match status {
        200 => response
            .json::<serde_json::Value>()
            .await
            .ok()
            .and_then(|body| body["userid"].as_str().map(str::to_owned)),
        _ => None,
    };
    (status, userid)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_thousand_requests_with_fault_bursts() {
    let app = Arc::new(
        TestApp::with_client(
            support::dingtalk().await,
            |c| {
                // DingTalk's pacing is tested elsewhere; here every exchange goes out at once.
                c.rate_limit(100_000).queue_timeout(Duration::from_secs(10))
            },
            |l| l,
        )
        .await,
    );
    let users = support::known_users();
    let valid: Vec<(String, String)> = (0..VALID)
        .map(|i| {
            let userid = users[i % users.len()].userid().to_owned();
            (app.dingtalk.issue_code(&userid), userid)
        })
        .collect();

    for (phase, count) in PER_PHASE.into_iter().enumerate() {
        let faulty = phase == 1;
        let bursts = faulty.then(|| {
            let app = app.clone();
            tokio::spawn(async move {
                let faults = [
                    Fault::HttpStatus(502),
                    Fault::Html,
                    Fault::CloseConnection,
                    Fault::Errcode(-1),
                    Fault::TruncatedJson,
                ];
                for fault in faults.into_iter().cycle().take(20) {
                    app.dingtalk.fail_next(Endpoint::GetUserInfo, fault, 10);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            })
        });
        let requests = (0..count).map(|i| request(i, phase, &valid));
        let outcomes: Vec<(Sent, (u16, Option<String>))> = futures_util::stream::iter(requests)
            .map(|sent| {
                let app = app.clone();
                async move {
                    let outcome = send(&app, &sent).await;
                    (sent, outcome)
                }
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        if let Some(bursts) = bursts {
            bursts.await.unwrap();
            app.dingtalk.clear_faults();
        }

        let mut server_errors = 0;
        for (sent, (status, userid)) in &outcomes {
            match sent {
                Sent::Valid {
                    userid: expected, ..
                } if *status == 200 => {
                    assert_eq!(userid.as_deref(), Some(expected.as_str()), "wrong user");
                }
                Sent::Valid { .. } | Sent::Bogus(_) if faulty && *status == 502 => {
                    server_errors += 1;
                }
                Sent::Valid { .. } => panic!("phase {phase}: a valid code got {status}"),
                Sent::Bogus(_) | Sent::Malformed(_) | Sent::NoCode => {
                    assert_eq!(*status, 401, "phase {phase}: {sent:?}");
                }
            }
        }
        if !faulty {
            assert_eq!(server_errors, 0);
        }
        eprintln!(
            "phase {phase}: {count} requests, {server_errors} answered 502 during fault bursts"
        );
    }

    // Every valid and every bogus code was answered normally exactly once; the rest were faults.
    let calls = app.dingtalk.userinfo_calls();
    let faults = app.dingtalk.faults_served();
    eprintln!("getuserinfo calls: {calls} = {VALID} valid + {BOGUS} bogus + {faults} faults");
    assert!(faults > 0, "the bursts hit exchanges");
    assert_eq!(calls, (VALID + BOGUS) as u64 + faults);
    assert_eq!(app.dingtalk.token_calls(), 1);
}
