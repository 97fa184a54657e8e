//! The app's own user: `resolve_with` runs once per sign-in (counted), its value reaches the
//! handler, its refusal is a 403 rendered as every rejection, and at a re-validation it can end
//! the session.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use axum::routing::get;
use axum::{Extension, Router};
use reqwest::header::{COOKIE, SET_COOKIE};
use tower_dingtalk_auth::{
    AuthError, AuthenticatedDingTalkUser, DingTalkAuthLayer, SessionConfig, SessionKey,
};

#[derive(Clone)]
struct Member {
    number: u64,
    role: &'static str,
}

struct Resolver {
    runs: Arc<AtomicU64>,
    /// Whether the app still admits `staff01`.
    staff_admitted: Arc<AtomicBool>,
}

async fn start(
    interval: Duration,
) -> (tower_dingtalk_auth::testing::MockDingTalk, String, Resolver) {
    let dingtalk = support::dingtalk().await;
    let resolver = Resolver {
        runs: Arc::new(AtomicU64::new(0)),
        staff_admitted: Arc::new(AtomicBool::new(true)),
    };
    let (runs, admitted) = (resolver.runs.clone(), resolver.staff_admitted.clone());
    let client = dingtalk
        .client_builder()
        .revalidate_after(interval)
        .build()
        .unwrap();
    let layer = DingTalkAuthLayer::builder()
        .client(client)
        .session(SessionConfig::new(SessionKey::generate()).secure(false))
        .resolve_with(move |user: AuthenticatedDingTalkUser| {
            runs.fetch_add(1, Ordering::SeqCst);
            let admitted = admitted.load(Ordering::SeqCst);
            async move {
                // The app's database, in a few lines.
                match user.userid() {
                    "boss01" => Ok(Member {
                        number: 1,
                        role: "owner",
                    }),
                    "staff01" if admitted => Ok(Member {
                        number: 2,
                        role: "clerk",
                    }),
                    _ => Err(AuthError::forbidden("not a member of this app")),
                }
            }
        })
        .build()
        .unwrap();
    let app: Router = Router::new()
        .route(
            "/member",
            get(
                |user: AuthenticatedDingTalkUser, Extension(member): Extension<Member>| async move {
                    format!(
                        "{} is member {} ({})",
                        user.userid(),
                        member.number,
                        member.role
                    )
                },
            ),
        )
        .layer(layer);
    let (addr, _server) = support::serve(app).await;
    (dingtalk, format!("http://{addr}/member"), resolver)
}

fn cookie_of(response: &reqwest::Response) -> String {
    let set = response.headers()[SET_COOKIE].to_str().unwrap();
    set.split(';').next().unwrap().to_owned()
}

#[tokio::test]
async fn the_resolver_runs_once_per_sign_in_and_its_value_reaches_the_handler() {
    let (dingtalk, url, resolver) = start(Duration::from_secs(600)).await;
    let http = reqwest::Client::new();
    let code = dingtalk.issue_code("boss01");
    let signed_in = http
        .get(&url)
        .header("x-dingtalk-code", &code)
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 200);
    let cookie = cookie_of(&signed_in);
    assert_eq!(
        signed_in.text().await.unwrap(),
        "boss01 is member 1 (owner)"
    );
    assert_eq!(resolver.runs.load(Ordering::SeqCst), 1);
    for _ in 0..5 {
        let page = http.get(&url).header(COOKIE, &cookie).send().await.unwrap();
        assert_eq!(page.text().await.unwrap(), "boss01 is member 1 (owner)");
        // The same code again, within its reuse window: the same sign-in.
        let again = http
            .get(&url)
            .header("x-dingtalk-code", &code)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 200);
    }
    assert_eq!(
        resolver.runs.load(Ordering::SeqCst),
        1,
        "once per sign-in, not per request"
    );
    let second = http
        .get(&url)
        .header("x-dingtalk-code", dingtalk.issue_code("boss01"))
        .send()
        .await
        .unwrap();
    assert_eq!(second.status(), 200);
    assert_eq!(
        resolver.runs.load(Ordering::SeqCst),
        2,
        "a new sign-in runs it again"
    );
}

#[tokio::test]
async fn the_resolvers_refusal_is_a_403_and_starts_no_session() {
    let (dingtalk, url, resolver) = start(Duration::from_secs(600)).await;
    let http = reqwest::Client::new();
    let refused = http
        .get(&url)
        .header("x-dingtalk-code", dingtalk.issue_code("super01"))
        .send()
        .await
        .unwrap();
    assert!(refused.headers().get(SET_COOKIE).is_none(), "no session");
    support::assert_rejection(refused, 403, "forbidden", &[]).await;
    assert_eq!(resolver.runs.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_user_the_resolver_now_refuses_loses_the_session_at_re_validation() {
    let (dingtalk, url, resolver) = start(Duration::from_secs(1)).await;
    let http = reqwest::Client::new();
    let signed_in = http
        .get(&url)
        .header("x-dingtalk-code", dingtalk.issue_code("staff01"))
        .send()
        .await
        .unwrap();
    let cookie = cookie_of(&signed_in);
    resolver.staff_admitted.store(false, Ordering::SeqCst);
    // Until the interval ends, the last answer holds.
    let page = http.get(&url).header(COOKIE, &cookie).send().await.unwrap();
    assert_eq!(page.status(), 200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let refused = http.get(&url).header(COOKIE, &cookie).send().await.unwrap();
    assert!(
        refused.headers()[SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("Max-Age=0"),
        "the cookie is cleared"
    );
    support::assert_rejection(refused, 401, "session_revoked", &[]).await;
    assert_eq!(
        resolver.runs.load(Ordering::SeqCst),
        2,
        "the sign-in, the re-validation"
    );
}
