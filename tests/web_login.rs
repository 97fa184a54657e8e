//! DingTalk's web login through the layer, over real sockets, without a browser (the browser
//! flows are in `browser.rs`): the redirect and its state cookie, the callback and its
//! refusals, the calls DingTalk gets, and what never leaks.

mod support;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use axum::Router;
use reqwest::header::{ACCEPT, COOKIE, LOCATION, SET_COOKIE, USER_AGENT};
use support::{PAGE_ACCEPT, dingtalk, routes, serve};
use tower_dingtalk_auth::testing::{Endpoint, Fault, MOCK_CORP_ID, MockDingTalk};
use tower_dingtalk_auth::{
    AuthenticatedDingTalkUser, ConfigError, DingTalkAuthLayer, LoginMethod, SessionConfig,
    SessionKey,
};

const CALLBACK: &str = "/auth/dingtalk/callback";
const BROWSER: &str = "Mozilla/5.0 (X11; Linux x86_64) Chrome/156.0 Safari/537.36";

/// The web login's endpoints, in the order a login calls them.
const WEB_ENDPOINTS: [Endpoint; 5] = [
    Endpoint::UserAccessToken,
    Endpoint::UsersMe,
    Endpoint::GetByUnionId,
    Endpoint::UserGet,
    Endpoint::ListAdmin,
];

struct WebApp {
    dingtalk: MockDingTalk,
    base: String,
    http: reqwest::Client,
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn start_with(dingtalk: MockDingTalk, corp_id: bool) -> WebApp {
    let mut client = dingtalk.client_builder();
    if corp_id {
        client = client.corp_id(MOCK_CORP_ID);
    }
    let layer = DingTalkAuthLayer::builder()
        .client(client.build().unwrap())
        .session(SessionConfig::new(SessionKey::generate()).secure(false))
        .web_login(CALLBACK)
        .build()
        .unwrap();
    let app: Router = routes(Arc::new(AtomicU64::new(0))).layer(layer);
    let (addr, _server) = serve(app).await;
    WebApp {
        dingtalk,
        base: format!("http://{addr}"),
        http: no_redirects(),
    }
}

/// `name=value` of every cookie `response` sets with a value (cleared ones are left out).
fn cookies_set(response: &reqwest::Response) -> Vec<String> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|value| value.to_str().unwrap())
        .filter(|cookie| !cookie.contains("Max-Age=0"))
        .map(|cookie| cookie.split(';').next().unwrap().to_owned())
        .collect()
}

fn calls(dingtalk: &MockDingTalk) -> Vec<u64> {
    WEB_ENDPOINTS.iter().map(|e| dingtalk.calls(*e)).collect()
}

impl WebApp {
    async fn page(&self, path: &str, cookie: Option<&str>) -> reqwest::Response {
        let mut request = self
            .http
            .get(format!("{}{path}", self.base))
            .header(ACCEPT, PAGE_ACCEPT)
            .header(USER_AGENT, BROWSER);
        if let Some(cookie) = cookie {
            request = request.header(COOKIE, cookie);
        }
        request.send().await.unwrap()
    }

    /// A page without a session, sent to DingTalk: DingTalk's URL and the state cookie.
    async fn start_login(&self, path: &str) -> (reqwest::Url, String) {
        let response = self.page(path, None).await;
        assert_eq!(
            response.status(),
            302,
            "a page without a login goes to DingTalk"
        );
        let location = response.headers()[LOCATION].to_str().unwrap().to_owned();
        let set_cookie = response.headers()[SET_COOKIE].to_str().unwrap().to_owned();
        assert!(set_cookie.contains("HttpOnly"), "{set_cookie}");
        assert!(set_cookie.contains("SameSite=Lax"), "{set_cookie}");
        assert!(set_cookie.contains("Max-Age=600"), "{set_cookie}");
        let state_cookie = set_cookie.split(';').next().unwrap().to_owned();
        (reqwest::Url::parse(&location).unwrap(), state_cookie)
    }

    /// DingTalk's page approved by `unionid`: the callback URL it sends the browser to.
    async fn approve(&self, login: &reqwest::Url, unionid: &str) -> String {
        let mut approve = login.clone();
        approve.query_pairs_mut().append_pair("approve", unionid);
        let response = self.http.get(approve).send().await.unwrap();
        assert_eq!(response.status(), 302, "the fake approves");
        response.headers()[LOCATION].to_str().unwrap().to_owned()
    }

    async fn callback(&self, url: &str, cookie: &str, accept: &str) -> reqwest::Response {
        self.http
            .get(url)
            .header(ACCEPT, accept)
            .header(USER_AGENT, BROWSER)
            .header(COOKIE, cookie)
            .header("sec-fetch-site", "cross-site")
            .header("sec-fetch-mode", "navigate")
            .send()
            .await
            .unwrap()
    }
}

fn query(url: &reqwest::Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

#[tokio::test]
async fn a_browser_outside_dingtalk_signs_in_with_four_calls_and_none_after() {
    let app = start_with(dingtalk().await, true).await;
    let (login, state_cookie) = app.start_login("/me?tab=2").await;
    assert_eq!(
        login.as_str().split('?').next().unwrap(),
        app.dingtalk.login_page_url()
    );
    assert_eq!(query(&login, "client_id").unwrap(), app.dingtalk.app_key());
    assert_eq!(
        query(&login, "redirect_uri").unwrap(),
        format!("{}{CALLBACK}", app.base)
    );
    assert_eq!(query(&login, "response_type").unwrap(), "code");
    assert_eq!(query(&login, "scope").unwrap(), "openid");
    assert_eq!(query(&login, "prompt").unwrap(), "consent");
    assert_eq!(query(&login, "exclusiveLogin").unwrap(), "true");
    assert_eq!(query(&login, "exclusiveCorpId").unwrap(), MOCK_CORP_ID);
    let state = query(&login, "state").unwrap();
    assert_eq!(state.len(), 32);
    assert_eq!(app.dingtalk.total_calls(), 0, "the redirect costs no call");

    let callback = app.approve(&login, "union-super01").await;
    let response = app.callback(&callback, &state_cookie, PAGE_ACCEPT).await;
    assert_eq!(response.status(), 303, "{:?}", response.text().await);
    assert_eq!(response.headers()[LOCATION], "/me?tab=2");
    assert_eq!(response.headers()["cache-control"], "no-store");
    let set: Vec<_> = response.headers().get_all(SET_COOKIE).iter().collect();
    assert_eq!(
        set.len(),
        2,
        "the session, and the state cookie cleared: {set:?}"
    );
    assert!(set.iter().any(|c| {
        c.to_str()
            .unwrap()
            .starts_with(&format!("{}=;", state_cookie.split('=').next().unwrap()))
    }));
    let session = cookies_set(&response).pop().expect("a session cookie");
    // userAccessToken, users/me, getbyunionid, user/get; listadmin for an administrator.
    assert_eq!(calls(&app.dingtalk), [1, 1, 1, 1, 1]);
    assert_eq!(app.dingtalk.token_calls(), 1);

    let before = app.dingtalk.total_calls();
    for _ in 0..3 {
        let page = app.page("/me", Some(&session)).await;
        assert_eq!(page.status(), 200);
        let user: AuthenticatedDingTalkUser = page.json().await.unwrap();
        assert_eq!(user.userid(), "super01");
        assert_eq!(user.name(), "Zhang San");
        assert_eq!(user.unionid(), "union-super01");
        assert_eq!(
            user.admin_level(),
            tower_dingtalk_auth::AdminLevel::SuperAdmin
        );
        assert!(user.is_admin());
        assert_eq!(user.corp_id(), Some(MOCK_CORP_ID));
        assert_eq!(user.login_method(), LoginMethod::WebLogin);
    }
    assert_eq!(
        app.dingtalk.total_calls(),
        before,
        "later pages cost nothing"
    );

    // A second administrator's login reads the cached levels: four calls.
    let (login, state_cookie) = app.start_login("/me").await;
    let callback = app.approve(&login, "union-sub01").await;
    let response = app.callback(&callback, &state_cookie, PAGE_ACCEPT).await;
    assert_eq!(response.status(), 303);
    assert_eq!(calls(&app.dingtalk), [2, 2, 2, 2, 1]);
}

#[tokio::test]
async fn the_web_login_user_is_the_silent_login_user() {
    let app = start_with(dingtalk().await, false).await;
    let silent = app.dingtalk.client_builder().build().unwrap();
    for user in support::known_users() {
        let by_code = silent
            .user_info(&app.dingtalk.issue_code(user.userid()))
            .await
            .unwrap();
        let (login, state_cookie) = app.start_login("/me").await;
        assert_eq!(query(&login, "exclusiveLogin"), None, "no corp configured");
        let callback = app.approve(&login, user.unionid()).await;
        let response = app.callback(&callback, &state_cookie, PAGE_ACCEPT).await;
        assert_eq!(response.status(), 303, "{}", user.userid());
        let session = cookies_set(&response).pop().unwrap();
        let by_web: AuthenticatedDingTalkUser =
            app.page("/me", Some(&session)).await.json().await.unwrap();
        assert_eq!(by_web.userid(), by_code.userid());
        assert_eq!(by_web.name(), by_code.name());
        assert_eq!(by_web.unionid(), by_code.unionid());
        assert_eq!(by_web.is_admin(), by_code.is_admin(), "{}", user.userid());
        // user/get says only whether someone administers; the level of a non-administrator
        // (odd01's 7, with `sys` false) is not in it: 0.
        let level = if by_code.is_admin() {
            by_code.admin_level()
        } else {
            tower_dingtalk_auth::AdminLevel::Other
        };
        assert_eq!(by_web.admin_level(), level, "{}", user.userid());
        assert_eq!(by_web.device_id(), "", "a browser has no DingTalk device");
    }
}

#[tokio::test]
async fn an_outsider_never_signs_in() {
    let app = start_with(dingtalk().await, false).await;
    app.dingtalk.add_outsider("union-eve", "Eve");
    let (login, state_cookie) = app.start_login("/me").await;
    let callback = app.approve(&login, "union-eve").await;
    let response = app.callback(&callback, &state_cookie, PAGE_ACCEPT).await;
    assert_eq!(response.status(), 403);
    assert!(cookies_set(&response).is_empty(), "no session");
    assert_eq!(
        response.headers()["content-type"],
        "text/html; charset=utf-8"
    );
    let page = response.text().await.unwrap();
    assert!(page.contains("not_a_member"), "{page}");
    assert!(page.contains("not a member of the organisation"), "{page}");
    assert_eq!(
        calls(&app.dingtalk),
        [1, 1, 1, 0, 0],
        "no details for an outsider"
    );
}

#[tokio::test]
async fn a_callback_is_answered_once_and_only_with_its_own_state() {
    let app = start_with(dingtalk().await, false).await;
    let (login, state_cookie) = app.start_login("/me").await;
    let callback = app.approve(&login, "union-staff01").await;
    let first = app.callback(&callback, &state_cookie, PAGE_ACCEPT).await;
    assert_eq!(first.status(), 303);
    let spent = calls(&app.dingtalk);

    // Replayed, cookie and all: refused before DingTalk.
    let replay = app
        .callback(&callback, &state_cookie, "application/json")
        .await;
    support::assert_rejection(replay, 403, "invalid_login_state", &[]).await;
    assert_eq!(calls(&app.dingtalk), spent);

    // Another login's state with this browser's cookie, and a state without a cookie.
    let (login, state_cookie) = app.start_login("/me").await;
    let (other_login, _other_cookie) = app.start_login("/me").await;
    let forged = app.approve(&other_login, "union-staff01").await;
    let response = app
        .callback(&forged, &state_cookie, "application/json")
        .await;
    support::assert_rejection(response, 403, "invalid_login_state", &[]).await;
    let no_cookie = app.callback(&forged, "", "application/json").await;
    support::assert_rejection(no_cookie, 403, "invalid_login_state", &[]).await;
    assert_eq!(
        calls(&app.dingtalk),
        spent,
        "no call for a state that does not match"
    );

    // A forged authCode with the right state: DingTalk refuses it, no session.
    let state = query(&login, "state").unwrap();
    let url = format!("{}{CALLBACK}?authCode=forged-code&state={state}", app.base);
    let response = app.callback(&url, &state_cookie, "application/json").await;
    let headers = support::assert_rejection(response, 401, "code_rejected", &[]).await;
    assert!(
        headers
            .get_all(SET_COOKIE)
            .iter()
            .all(|c| c.to_str().unwrap().contains("Max-Age=0")),
        "only the state cookie, cleared"
    );
}

#[tokio::test]
async fn bad_callbacks_are_clear_and_cost_nothing() {
    let app = start_with(dingtalk().await, false).await;
    let (login, cookie) = app.start_login("/me").await;
    let state = query(&login, "state").unwrap();
    let long = "a".repeat(10 * 1024);
    for (query, status, error) in [
        ("authCode=x".to_owned(), 400, "invalid_request"),
        (
            format!("authCode=x&state={state}&state={state}"),
            400,
            "invalid_request",
        ),
        (
            format!("authCode={long}&state={state}"),
            401,
            "invalid_code",
        ),
        (format!("state={state}"), 400, "invalid_request"),
        (
            format!("error=access_denied&state={state}"),
            401,
            "login_cancelled",
        ),
        (
            format!("authCode=a&authCode=b&state={state}"),
            401,
            "invalid_code",
        ),
        (format!("authCode=%00&state={state}"), 401, "invalid_code"),
        (
            "authCode=x&state=..%2F..%2F".to_owned(),
            403,
            "invalid_login_state",
        ),
    ] {
        let url = format!("{}{CALLBACK}?{query}", app.base);
        let json = app.callback(&url, &cookie, "application/json").await;
        let status_seen = json.status().as_u16();
        let body: serde_json::Value = json.json().await.unwrap();
        assert_eq!(
            (status_seen, body["error"].as_str().unwrap()),
            (status, error),
            "{query}"
        );
        let page = app.callback(&url, &cookie, PAGE_ACCEPT).await;
        assert_eq!(page.status().as_u16(), status, "{query}");
        assert!(
            page.text().await.unwrap().contains("Sign in again"),
            "{query}"
        );
    }
    assert_eq!(app.dingtalk.total_calls(), 0);
}

#[tokio::test]
async fn apis_and_the_dingtalk_client_are_not_sent_to_the_login_page() {
    let app = start_with(dingtalk().await, false).await;
    let api = app
        .http
        .get(format!("{}/me", app.base))
        .header(ACCEPT, "application/json")
        .send()
        .await
        .unwrap();
    support::assert_rejection(api, 401, "missing_code", &[]).await;
    let inside = app
        .http
        .get(format!("{}/me", app.base))
        .header(ACCEPT, PAGE_ACCEPT)
        .header(
            USER_AGENT,
            "Mozilla/5.0 (iPhone) AliApp(DingTalk/7.6.0) Mobile",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        inside.status(),
        401,
        "inside DingTalk the JSAPI signs in, not the QR page"
    );
}

#[tokio::test]
async fn dingtalk_failing_mid_login_is_a_clear_refusal_and_a_refused_token_is_refreshed() {
    let app = start_with(dingtalk().await, false).await;
    // Warm the app token, then have DingTalk forget it: the lookup refreshes it once.
    let (login, cookie) = app.start_login("/me").await;
    let callback = app.approve(&login, "union-staff01").await;
    assert_eq!(
        app.callback(&callback, &cookie, PAGE_ACCEPT).await.status(),
        303
    );
    app.dingtalk.revoke_tokens();
    let (login, cookie) = app.start_login("/me").await;
    let callback = app.approve(&login, "union-staff01").await;
    assert_eq!(
        app.callback(&callback, &cookie, PAGE_ACCEPT).await.status(),
        303
    );
    assert_eq!(app.dingtalk.token_calls(), 2);

    app.dingtalk
        .fail_next(Endpoint::UsersMe, Fault::HttpStatus(502), 1);
    let (login, cookie) = app.start_login("/me").await;
    let callback = app.approve(&login, "union-staff01").await;
    let failed = app.callback(&callback, &cookie, PAGE_ACCEPT).await;
    assert_eq!(failed.status(), 502);
    assert!(cookies_set(&failed).is_empty());
    app.dingtalk
        .fail_next(Endpoint::UserGet, Fault::SubCode(90018), 1);
    let (login, cookie) = app.start_login("/me").await;
    let callback = app.approve(&login, "union-staff01").await;
    let throttled = app.callback(&callback, &cookie, "application/json").await;
    let headers = support::assert_rejection(throttled, 503, "upstream_throttled", &[]).await;
    assert!(headers.contains_key("retry-after"));
}

#[tokio::test(flavor = "current_thread")]
async fn no_secret_of_the_web_login_leaks() {
    let (_guard, logs) = support::capture_logs();
    let app = start_with(dingtalk().await, false).await;
    let (login, cookie) = app.start_login("/me").await;
    let callback = app.approve(&login, "union-staff01").await;
    let auth_code = query(&reqwest::Url::parse(&callback).unwrap(), "authCode").unwrap();
    let response = app.callback(&callback, &cookie, PAGE_ACCEPT).await;
    assert_eq!(response.status(), 303);
    let replay = app.callback(&callback, &cookie, PAGE_ACCEPT).await;
    let body = replay.text().await.unwrap();
    let logs = logs.contents();
    let mut secrets = app.dingtalk.issued_tokens();
    secrets.push(auth_code);
    secrets.push(app.dingtalk.app_secret());
    assert!(
        secrets.len() >= 4,
        "app token, user token, refresh token, authCode"
    );
    for secret in &secrets {
        assert!(!logs.contains(secret.as_str()), "a secret in the logs");
        assert!(!body.contains(secret.as_str()), "a secret in a body");
    }
}

#[tokio::test]
async fn a_code_from_another_site_continues_by_script_and_loops_nowhere() {
    let app = start_with(dingtalk().await, false).await;
    let stale = app.dingtalk.issue_code("staff01");
    let response = app
        .http
        .get(format!("{}/me?code={stale}", app.base))
        .header(ACCEPT, PAGE_ACCEPT)
        .header(USER_AGENT, BROWSER)
        .header("sec-fetch-site", "cross-site")
        .header("sec-fetch-mode", "navigate")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "a page, not another redirect");
    assert!(response.headers().get(LOCATION).is_none());
    assert_eq!(cookies_set(&response).len(), 1, "the state cookie");
    let page = response.text().await.unwrap();
    assert!(page.contains("location.replace("), "{page}");
    assert!(page.contains(&app.dingtalk.login_page_url()), "{page}");
    assert!(!page.contains(&stale), "the stale code is not carried on");
    assert_eq!(app.dingtalk.total_calls(), 0);
}

#[tokio::test]
async fn web_login_needs_a_session_and_a_callback() {
    let dingtalk = MockDingTalk::start().await;
    let no_session = dingtalk.layer_builder().web_login(CALLBACK).build();
    assert!(matches!(no_session, Err(ConfigError::WebLoginNeedsSession)));
    for bad in ["callback", "/a?b", "ftp://x/cb", "//evil/cb", "/a b", ""] {
        let built = dingtalk
            .layer_builder()
            .session(SessionConfig::new(SessionKey::generate()))
            .web_login(bad)
            .build();
        assert!(
            matches!(built, Err(ConfigError::InvalidWebLoginCallback)),
            "{bad}"
        );
    }
}

#[tokio::test]
async fn a_third_party_web_login_takes_its_corp_from_dingtalk_and_the_directory_decides() {
    let dingtalk = MockDingTalk::start().await;
    for (corp, userid, name) in [("dingcorpa", "alice", "Alice"), ("dingcorpb", "bob", "Bob")] {
        dingtalk.add_corp(corp);
        dingtalk.add_corp_user(
            corp,
            AuthenticatedDingTalkUser::builder(userid, name)
                .unionid(format!("union-{userid}"))
                .build(),
        );
    }
    let client = tower_dingtalk_auth::DingTalkClient::builder()
        .third_party_app(dingtalk.suite_key(), dingtalk.suite_secret())
        .base_url(dingtalk.base_url())
        .build()
        .unwrap();
    let layer = DingTalkAuthLayer::builder()
        .client(client)
        .authorized_corps(["dingcorpa"])
        .session(SessionConfig::new(SessionKey::generate()).secure(false))
        .web_login(CALLBACK)
        .build()
        .unwrap();
    let app: Router = routes(Arc::new(AtomicU64::new(0))).layer(layer);
    let (addr, _server) = serve(app).await;
    let app = WebApp {
        dingtalk,
        base: format!("http://{addr}"),
        http: no_redirects(),
    };

    // A page naming its corp offers only that corp's accounts.
    let (login, _) = app.start_login("/me?corpId=dingcorpa").await;
    assert_eq!(
        query(&login, "client_id").unwrap(),
        app.dingtalk.suite_key()
    );
    assert_eq!(query(&login, "exclusiveCorpId").unwrap(), "dingcorpa");

    let (login, cookie) = app.start_login("/me").await;
    let callback = app.approve(&login, "union-alice").await;
    let response = app.callback(&callback, &cookie, PAGE_ACCEPT).await;
    assert_eq!(response.status(), 303);
    let session = cookies_set(&response).pop().unwrap();
    let user: AuthenticatedDingTalkUser =
        app.page("/me", Some(&session)).await.json().await.unwrap();
    assert_eq!(
        (user.userid(), user.corp_id()),
        ("alice", Some("dingcorpa"))
    );
    assert_eq!(user.login_method(), LoginMethod::WebLogin);
    assert_eq!(app.dingtalk.corp_token_calls("dingcorpa"), 1);

    // A corp that installed the app but that this layer does not admit: no session, and no
    // call past the user token.
    let before = calls(&app.dingtalk);
    let (login, cookie) = app.start_login("/me").await;
    let callback = app.approve(&login, "union-bob").await;
    let refused = app.callback(&callback, &cookie, "application/json").await;
    let headers = support::assert_rejection(refused, 401, "corp_not_authorized", &[]).await;
    assert!(
        headers
            .get_all(SET_COOKIE)
            .iter()
            .all(|c| c.to_str().unwrap().contains("Max-Age=0"))
    );
    let after = calls(&app.dingtalk);
    assert_eq!(after[0], before[0] + 1, "the user token");
    assert_eq!(after[1..], before[1..], "nothing more");
    assert_eq!(app.dingtalk.corp_token_calls("dingcorpb"), 0);
}

#[tokio::test]
async fn two_tabs_signing_in_at_once_both_finish() {
    let app = start_with(dingtalk().await, false).await;
    let (first, first_cookie) = app.start_login("/reports").await;
    // The second tab's request carries the first tab's state cookie: it is kept.
    let second_page = app.page("/me", Some(&first_cookie)).await;
    assert_eq!(second_page.status(), 302);
    assert!(
        second_page
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .all(|c| !c.to_str().unwrap().contains("Max-Age=0")),
        "nothing cleared"
    );
    let second = reqwest::Url::parse(second_page.headers()[LOCATION].to_str().unwrap()).unwrap();
    let second_cookie = cookies_set(&second_page).pop().unwrap();
    let both = format!("{first_cookie}; {second_cookie}");
    for (login, next) in [(&second, "/me"), (&first, "/reports")] {
        let callback = app.approve(login, "union-staff01").await;
        let response = app.callback(&callback, &both, PAGE_ACCEPT).await;
        assert_eq!(response.status(), 303);
        assert_eq!(response.headers()[LOCATION], next);
    }
}
