//! The opened-session cache's size (`SessionConfig::opened_session_cache`): out of range is a
//! configuration error, and however small, every session is still served to its own user only,
//! each tampered byte refused, with no call to DingTalk.

mod support;

use support::{TestApp, json};
use tower_dingtalk_auth::{
    AuthenticatedDingTalkUser, ConfigError, DingTalkAuthLayer, MAX_OPENED_SESSION_CACHE,
    SessionConfig, SessionKey,
};

fn session(capacity: usize) -> SessionConfig {
    let key = SessionKey::from_bytes(b"the opened-session cache test's key, 32+").unwrap();
    SessionConfig::new(key).opened_session_cache(capacity)
}

#[test]
fn a_size_out_of_range_is_a_configuration_error() {
    for capacity in [0, 1, MAX_OPENED_SESSION_CACHE + 1, usize::MAX] {
        let built = DingTalkAuthLayer::builder()
            .internal_app("APP_KEY", "APP_SECRET")
            .session(session(capacity))
            .build();
        assert!(
            matches!(built, Err(ConfigError::OpenedSessionCache { capacity: got }) if got == capacity),
            "{capacity}: {built:?}"
        );
    }
    for capacity in [2, 3, 131_072] {
        assert!(session(capacity).validate().is_ok(), "{capacity}");
    }
}

/// Forty users take turns through a cache of two: nearly every request opens its cookie or token
/// again, and each is served as its own user; a cookie with any of its last bytes changed (where
/// the cache picks its slot) is refused, before and after the genuine one was served.
#[tokio::test]
async fn a_cache_smaller_than_its_users_serves_each_session_as_its_own_user() {
    let app = TestApp::with(support::dingtalk().await, |builder| {
        builder.session(session(2)).token_login("/login")
    })
    .await;
    let sessions = app.layer.sessions().unwrap();
    let users: Vec<_> = (0..40)
        .map(|i| AuthenticatedDingTalkUser::builder(format!("user{i:02}"), "张三").build())
        .collect();
    let cookies: Vec<String> = users
        .iter()
        .map(|user| sessions.cookie_header(user).to_str().unwrap().to_owned())
        .collect();
    let tokens: Vec<String> = users
        .iter()
        .map(|user| sessions.issue_token(user))
        .collect();
    for round in 0..3 {
        for (i, user) in users.iter().enumerate() {
            let by_cookie = app.http.get(app.url("/me")).header("cookie", &cookies[i]);
            let by_token = app.http.get(app.url("/me")).bearer_auth(&tokens[i]);
            for request in [by_cookie, by_token] {
                let response = request.send().await.unwrap();
                assert_eq!(response.status(), 200, "round {round}, {}", user.userid());
                assert_eq!(json(response).await["userid"], user.userid());
            }
        }
    }
    let served = app.handler_runs.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(served, 3 * 40 * 2);
    // Tampered: each of the last 40 bytes of a cookie that is served, one at a time.
    let genuine = &cookies[0];
    for back in 1..=40 {
        let mut bytes = genuine.clone().into_bytes();
        let at = bytes.len() - back;
        bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).unwrap();
        let response = app
            .http
            .get(app.url("/me"))
            .header("cookie", &tampered)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "byte {back} from the end");
    }
    assert_eq!(
        app.handler_runs.load(std::sync::atomic::Ordering::SeqCst),
        served
    );
    assert_eq!(app.dingtalk.userinfo_calls(), 0);
}
