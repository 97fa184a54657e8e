//! The app under attack, what a `DebuggingRecorder` holds, and logins that must all succeed.

use std::collections::BTreeSet;

use axum::routing::{get, post};
use axum::{Json, Router};
use metrics_util::debugging::{DebugValue, Snapshotter};
use tower_dingtalk_auth::testing::MockDingTalk;
use tower_dingtalk_auth::{
    AuthenticatedDingTalkUser, DingTalkAuthLayer, DingTalkClientBuilder, SessionConfig, SessionKey,
};

use super::support;

pub const LOGIN: &str = "/auth/login";

/// `/me` behind a layer with sessions and token login, its client from `client`.
pub fn layer(client: DingTalkClientBuilder) -> DingTalkAuthLayer {
    DingTalkAuthLayer::builder()
        .client(client.build().unwrap())
        .session(SessionConfig::new(SessionKey::generate()).secure(false))
        .token_login(LOGIN)
        .build()
        .unwrap()
}

pub async fn serve(layer: DingTalkAuthLayer) -> String {
    let me = |user: AuthenticatedDingTalkUser| async move { Json(user) };
    let app = Router::new()
        .route("/me", get(me))
        .route(LOGIN, post(|| async { "the layer answers" }))
        .layer(layer);
    format!("http://{}", support::serve(app).await.0)
}

/// Every metric key (kind, name, labels) the recorder holds.
pub fn keys(snapshotter: &Snapshotter) -> BTreeSet<String> {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, ..)| format!("{key:?}"))
        .collect()
}

/// The `errcode/name` pairs of `dingtalk_auth_dingtalk_errors_total`, and the `other` count.
pub fn errcodes(snapshotter: &Snapshotter) -> (BTreeSet<String>, u64) {
    let mut pairs = BTreeSet::new();
    let mut other = 0;
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let key = key.key();
        if key.name() != "dingtalk_auth_dingtalk_errors_total" {
            continue;
        }
        let labels: Vec<&str> = key.labels().map(|label| label.value()).collect();
        let pair = labels.join("/");
        if pair == "other/other"
            && let DebugValue::Counter(count) = value
        {
            other = count;
        }
        pairs.insert(pair);
    }
    (pairs, other)
}

/// Codes (exchanged, then hit), their cookies and a token login under `recorder`, all 200.
pub async fn logins(base: &str, dingtalk: &MockDingTalk, users: &[&str]) {
    let http = reqwest::Client::new();
    for userid in users {
        let code = dingtalk.issue_code(userid);
        for attempt in 0..2 {
            let response = http
                .get(format!("{base}/me"))
                .header("x-dingtalk-code", &code)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "{userid}, attempt {attempt}");
            if let Some(set) = response.headers().get("set-cookie") {
                let cookie = set.to_str().unwrap().split(';').next().unwrap().to_owned();
                let again = http.get(format!("{base}/me")).header("cookie", cookie);
                assert_eq!(
                    again.send().await.unwrap().status(),
                    200,
                    "{userid}'s cookie"
                );
            }
        }
        let login = http
            .post(format!("{base}{LOGIN}"))
            .json(&serde_json::json!({ "code": dingtalk.issue_code(userid) }))
            .send()
            .await
            .unwrap();
        assert_eq!(login.status(), 200, "{userid}'s token login");
    }
}
