//! The fake DingTalk's web login over real sockets: the login page and its approve links, auth
//! codes spent once at userAccessToken, users/me, the contact APIs a web login needs, counters and
//! faults on the new endpoints, and the JSAPI shim.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::redirect::Policy;
use serde_json::{Value, json};
use tower_dingtalk_auth::testing::{Endpoint, Fault, MOCK_CORP_ID, MockDingTalk};
use tower_dingtalk_auth::{AdminLevel, AuthenticatedDingTalkUser};

const CORP_A: &str = "dingcorpa0001";
const CALLBACK: &str = "https://app.example/auth/callback";

fn no_follow() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap()
}

/// Internal employees of every admin level, a corp with one user, and an outsider.
async fn dingtalk() -> MockDingTalk {
    let dingtalk = MockDingTalk::start().await;
    let users = [
        ("staff01", "Li Si", "union-staff01", AdminLevel::Other),
        ("boss01", "Wang Wu", "union-boss01", AdminLevel::Boss),
        (
            "super01",
            "Zhang San",
            "union-super01",
            AdminLevel::SuperAdmin,
        ),
        ("sub01", "Zhao Liu", "", AdminLevel::SubAdmin),
    ];
    for (userid, name, unionid, level) in users {
        let user = AuthenticatedDingTalkUser::builder(userid, name)
            .unionid(unionid)
            .admin_level(level)
            .build();
        dingtalk.add_user(user);
    }
    dingtalk.add_corp(CORP_A);
    dingtalk.add_corp_user(
        CORP_A,
        AuthenticatedDingTalkUser::builder("u1", "Alice of A")
            .unionid("union-alice")
            .build(),
    );
    dingtalk.add_outsider("union-outsider", "Otto Outsider");
    dingtalk
}

/// The login page URL with DingTalk's parameters for `client_id`, plus `extra`.
fn login_url(dingtalk: &MockDingTalk, client_id: &str, extra: &[(&str, &str)]) -> url::Url {
    let mut params = vec![
        ("redirect_uri", CALLBACK),
        ("response_type", "code"),
        ("client_id", client_id),
        ("scope", "openid"),
        ("state", "st ate&1"),
        ("prompt", "consent"),
    ];
    params.extend_from_slice(extra);
    url::Url::parse_with_params(&dingtalk.login_page_url(), &params).unwrap()
}

fn query_value(url: &url::Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

/// Approves `unionid` without a browser: the callback URL the 302 leads to.
async fn approve(dingtalk: &MockDingTalk, client_id: &str, extra: &[(&str, &str)]) -> url::Url {
    let response = no_follow()
        .get(login_url(dingtalk, client_id, extra))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FOUND);
    assert_eq!(response.headers()["cache-control"], "no-store");
    url::Url::parse(response.headers()["location"].to_str().unwrap()).unwrap()
}

async fn post_json(url: String, body: Value) -> (StatusCode, Value) {
    let response = no_follow().post(url).json(&body).send().await.unwrap();
    (response.status(), response.json().await.unwrap())
}

async fn user_token(
    dingtalk: &MockDingTalk,
    client: (&str, &str),
    code: &str,
) -> (StatusCode, Value) {
    let url = format!("{}/v1.0/oauth2/userAccessToken", dingtalk.base_url());
    let body = json!({ "clientId": client.0, "clientSecret": client.1, "code": code,
                       "grantType": "authorization_code" });
    post_json(url, body).await
}

async fn me(dingtalk: &MockDingTalk, token: &str) -> (StatusCode, Value) {
    let response = no_follow()
        .get(format!("{}/v1.0/contact/users/me", dingtalk.base_url()))
        .header("x-acs-dingtalk-access-token", token)
        .send()
        .await
        .unwrap();
    (response.status(), response.json().await.unwrap())
}

async fn app_token(dingtalk: &MockDingTalk) -> String {
    let url = format!("{}/v1.0/oauth2/accessToken", dingtalk.base_url());
    let body = json!({ "appKey": dingtalk.app_key(), "appSecret": dingtalk.app_secret() });
    let (status, answer) = post_json(url, body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer["accessToken"].as_str().unwrap().to_owned()
}

async fn oapi(dingtalk: &MockDingTalk, path: &str, token: &str, body: Value) -> Value {
    let url = format!("{}{path}?access_token={token}", dingtalk.base_url());
    let (status, answer) = post_json(url, body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer
}

#[tokio::test]
async fn approved_code_is_exchanged_once_for_a_token_that_names_the_account() {
    let dingtalk = dingtalk().await;
    let app = (dingtalk.app_key(), dingtalk.app_secret());
    let app = (app.0.as_str(), app.1.as_str());
    let callback = approve(&dingtalk, app.0, &[("approve", "union-staff01")]).await;
    assert!(callback.as_str().starts_with(CALLBACK), "{callback}");
    assert_eq!(query_value(&callback, "state").as_deref(), Some("st ate&1"));
    let code = query_value(&callback, "authCode").unwrap();

    let (status, token) = user_token(&dingtalk, app, &code).await;
    assert_eq!(status, StatusCode::OK, "{token}");
    assert_eq!(token["corpId"], MOCK_CORP_ID);
    assert_eq!(token["corpId"], dingtalk.corp_id());
    assert_eq!(token["expireIn"], 7200);
    let access = token["accessToken"].as_str().unwrap();
    let refresh = token["refreshToken"].as_str().unwrap();
    assert!(dingtalk.issued_tokens().iter().any(|t| t == access));
    assert!(dingtalk.issued_tokens().iter().any(|t| t == refresh));

    // Spent by its first exchange.
    let (status, again) = user_token(&dingtalk, app, &code).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(again["code"], "invalidAuthCode");

    let (status, who) = me(&dingtalk, access).await;
    assert_eq!(status, StatusCode::OK, "{who}");
    assert_eq!(who["unionId"], "union-staff01");
    assert_eq!(who["nick"], "Li Si");
    assert_eq!(who["stateCode"], "86");
    assert!(who["openId"].as_str().is_some_and(|id| !id.is_empty()));
    let (status, refused) = me(&dingtalk, "not-a-token").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(refused["code"], "InvalidAuthentication");

    // Tokens expire: users/me refuses them as unknown ones.
    dingtalk.expire_tokens();
    assert_eq!(me(&dingtalk, access).await.0, StatusCode::UNAUTHORIZED);

    assert_eq!(dingtalk.calls(Endpoint::LoginPage), 1);
    assert_eq!(dingtalk.calls(Endpoint::UserAccessToken), 2);
    assert_eq!(dingtalk.calls(Endpoint::UsersMe), 3);
    assert_eq!(dingtalk.calls(Endpoint::GetUserInfo), 0);
}

#[tokio::test]
async fn user_token_refuses_wrong_clients_grants_and_codes() {
    let dingtalk = dingtalk().await;
    let (key, secret) = (dingtalk.app_key(), dingtalk.app_secret());
    let (suite_key, suite_secret) = (dingtalk.suite_key(), dingtalk.suite_secret());
    let code = dingtalk.issue_auth_code("union-outsider");

    let (status, answer) = user_token(&dingtalk, (&key, "wrong"), &code).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["code"], "invalidClientIdOrSecret");
    assert!(answer["requestid"].is_string());

    let url = format!("{}/v1.0/oauth2/userAccessToken", dingtalk.base_url());
    let body = json!({ "clientId": key, "clientSecret": secret, "code": code,
                       "grantType": "refresh_token" });
    let (status, answer) = post_json(url, body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["code"], "unsupported.grant.type");

    // Issued to the app: the suite cannot use it.
    let (status, answer) = user_token(&dingtalk, (&suite_key, &suite_secret), &code).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["code"], "invalidAuthCode");

    // Refusals before the code is read leave it unspent; an outsider's token names no known corp.
    let (status, answer) = user_token(&dingtalk, (&key, &secret), &code).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["corpId"], "dingoutsiderorg");

    // A third-party corp's user signs in to that corp, for the suite.
    let code = dingtalk.issue_corp_auth_code(CORP_A, "union-alice");
    let (status, answer) = user_token(&dingtalk, (&suite_key, &suite_secret), &code).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["corpId"], CORP_A);

    // Expired codes are refused.
    dingtalk.set_code_ttl(Duration::from_millis(1));
    let code = dingtalk.issue_auth_code("union-staff01");
    tokio::time::sleep(Duration::from_millis(20)).await;
    let (status, answer) = user_token(&dingtalk, (&key, &secret), &code).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["code"], "invalidAuthCode");
}

#[tokio::test]
async fn contact_apis_answer_about_the_tokens_organisation() {
    let dingtalk = dingtalk().await;
    let token = app_token(&dingtalk).await;

    let found = oapi(
        &dingtalk,
        "/topapi/user/getbyunionid",
        &token,
        json!({ "unionid": "union-staff01" }),
    )
    .await;
    assert_eq!(found["errcode"], 0);
    assert_eq!(found["result"]["userid"], "staff01");
    assert_eq!(found["result"]["contact_type"], 0);
    // An employee built without a unionid has one made from the userid.
    let made_up = oapi(
        &dingtalk,
        "/topapi/user/getbyunionid",
        &token,
        json!({ "unionid": "sub01-unionid" }),
    )
    .await;
    assert_eq!(made_up["result"]["userid"], "sub01");
    for stranger in ["union-outsider", "union-alice"] {
        let answer = oapi(
            &dingtalk,
            "/topapi/user/getbyunionid",
            &token,
            json!({ "unionid": stranger }),
        )
        .await;
        assert_eq!(answer["errcode"], 60121, "{stranger}: {answer}");
    }
    let missing = oapi(&dingtalk, "/topapi/user/getbyunionid", &token, json!({})).await;
    assert_eq!(missing["errcode"], 40035);
    let blank = oapi(
        &dingtalk,
        "/topapi/user/getbyunionid",
        "",
        json!({ "unionid": "union-staff01" }),
    )
    .await;
    assert_eq!(blank["errcode"], 88);
    let unknown = oapi(
        &dingtalk,
        "/topapi/user/getbyunionid",
        "nope",
        json!({ "unionid": "x" }),
    )
    .await;
    assert_eq!(unknown["errcode"], 88);

    let boss = oapi(
        &dingtalk,
        "/topapi/v2/user/get",
        &token,
        json!({ "userid": "boss01", "language": "zh_CN" }),
    )
    .await;
    assert_eq!(boss["errcode"], 0);
    let result = &boss["result"];
    assert_eq!(result["userid"], "boss01");
    assert_eq!(result["unionid"], "union-boss01");
    assert_eq!(result["name"], "Wang Wu");
    assert_eq!(result["boss"], true);
    assert_eq!(result["admin"], true);
    assert_eq!(result["active"], true);
    assert_eq!(result["dept_id_list"], json!([1]));
    let staff = oapi(
        &dingtalk,
        "/topapi/v2/user/get",
        &token,
        json!({ "userid": "staff01" }),
    )
    .await;
    assert_eq!(staff["result"]["admin"], false);
    assert_eq!(staff["result"]["boss"], false);
    let nobody = oapi(
        &dingtalk,
        "/topapi/v2/user/get",
        &token,
        json!({ "userid": "u1" }),
    )
    .await;
    assert_eq!(nobody["errcode"], 60121);

    let admins = oapi(&dingtalk, "/topapi/user/listadmin", &token, json!({})).await;
    assert_eq!(admins["errcode"], 0);
    assert_eq!(
        admins["result"],
        json!([{ "userid": "sub01", "sys_level": 2 }, { "userid": "super01", "sys_level": 1 }])
    );

    assert_eq!(dingtalk.calls(Endpoint::GetByUnionId), 7);
    assert_eq!(dingtalk.calls(Endpoint::UserGet), 3);
    assert_eq!(dingtalk.calls(Endpoint::ListAdmin), 1);
}

#[tokio::test]
async fn faults_are_served_on_the_new_endpoints() {
    let dingtalk = dingtalk().await;
    let (key, secret) = (dingtalk.app_key(), dingtalk.app_secret());
    let code = dingtalk.issue_auth_code("union-staff01");
    let (_, token) = user_token(&dingtalk, (&key, &secret), &code).await;
    let access = token["accessToken"].as_str().unwrap();

    dingtalk.fail_next(Endpoint::UsersMe, Fault::HttpStatus(503), 1);
    let response = no_follow()
        .get(format!("{}/v1.0/contact/users/me", dingtalk.base_url()))
        .header("x-acs-dingtalk-access-token", access)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(dingtalk.faults_served(), 1);
    assert_eq!(me(&dingtalk, access).await.0, StatusCode::OK);

    // A fault stands in for the work: the code is not spent.
    let code = dingtalk.issue_auth_code("union-staff01");
    dingtalk.fail_next(Endpoint::UserAccessToken, Fault::Errcode(-1), 1);
    let (status, answer) = user_token(&dingtalk, (&key, &secret), &code).await;
    assert_eq!((status, &answer["errcode"]), (StatusCode::OK, &json!(-1)));
    assert_eq!(
        user_token(&dingtalk, (&key, &secret), &code).await.0,
        StatusCode::OK
    );
    assert_eq!(dingtalk.calls(Endpoint::UsersMe), 2);
    assert_eq!(dingtalk.calls(Endpoint::UserAccessToken), 3);
}

#[tokio::test]
async fn login_page_lists_accounts_with_approve_links_and_escapes_names() {
    let dingtalk = dingtalk().await;
    dingtalk.add_user(
        AuthenticatedDingTalkUser::builder("eve01", "<b>Eve</b>")
            .unionid("union-eve")
            .build(),
    );
    let key = dingtalk.app_key();
    let response = no_follow()
        .get(login_url(&dingtalk, &key, &[]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "text/html; charset=utf-8"
    );
    let page = response.text().await.unwrap();
    assert!(page.contains("<title>DingTalk login (fake)</title>"));
    assert!(page.contains("&lt;b&gt;Eve&lt;/b&gt;"), "{page}");
    assert!(!page.contains("<b>Eve</b>"));
    for unionid in [
        "union-staff01",
        "sub01-unionid",
        "union-alice",
        "union-outsider",
        "union-eve",
    ] {
        assert!(
            page.contains(&format!("id=\"approve-{unionid}\"")),
            "{unionid}: {page}"
        );
    }
    for name in ["Li Si", "Alice of A", "Otto Outsider"] {
        assert!(page.contains(name), "{name}");
    }
    assert!(page.contains(r#"<a id="cancel" href="https://app.example/auth/callback?error=access_denied&amp;state=st+ate%261">"#), "{page}");

    // The approve link hands over the code by script, not by a redirect.
    let start = page.find("id=\"approve-union-staff01\" href=\"").unwrap();
    let href = page[start..]
        .split('"')
        .nth(3)
        .unwrap()
        .replace("&amp;", "&");
    let response = no_follow()
        .get(format!("{}{href}", dingtalk.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let approved = response.text().await.unwrap();
    let script = approved.split("location.replace(").nth(1).unwrap();
    let literal = &script[..script.find(")</script>").unwrap()];
    let callback: String = serde_json::from_str(literal).unwrap();
    let callback = url::Url::parse(&callback).unwrap();
    assert_eq!(query_value(&callback, "state").as_deref(), Some("st ate&1"));
    let code = query_value(&callback, "authCode").unwrap();
    let (status, _) = user_token(&dingtalk, (&key, &dingtalk.app_secret()), &code).await;
    assert_eq!(status, StatusCode::OK);
    assert!(approved.contains("<noscript>"));
    // Approve links are the fake's own: not counted.
    assert_eq!(dingtalk.calls(Endpoint::LoginPage), 1);
}

#[tokio::test]
async fn login_page_checks_parameters_and_exclusive_logins() {
    let dingtalk = dingtalk().await;
    let key = dingtalk.app_key();
    for (name, value) in [
        ("client_id", "someone-else"),
        ("scope", "snsapi_login"),
        ("response_type", "token"),
        ("redirect_uri", "/relative/callback"),
    ] {
        let mut url = login_url(&dingtalk, &key, &[]);
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| {
                if k == name {
                    (k.into_owned(), value.to_owned())
                } else {
                    (k.into_owned(), v.into_owned())
                }
            })
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
        let response = no_follow().get(url).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{name}");
        assert!(response.text().await.unwrap().contains(name), "{name}");
    }
    // The suite key is a client too, and a callback with a query keeps it.
    let suite = dingtalk.suite_key();
    let url = url::Url::parse_with_params(
        &dingtalk.login_page_url(),
        &[
            ("redirect_uri", "http://127.0.0.1:9/cb?next=%2F"),
            ("response_type", "code"),
            ("client_id", &suite),
            ("scope", "openid"),
            ("approve", "union-alice"),
        ],
    )
    .unwrap();
    let response = no_follow().get(url).send().await.unwrap();
    let location = response.headers()["location"].to_str().unwrap();
    assert!(
        location.starts_with("http://127.0.0.1:9/cb?next=%2F&authCode="),
        "{location}"
    );
    assert!(!location.contains("state="));

    // Only the internal organisation's employees.
    let internal = [
        ("exclusiveLogin", "true"),
        ("exclusiveCorpId", MOCK_CORP_ID),
    ];
    let page = no_follow()
        .get(login_url(&dingtalk, &key, &internal))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("approve-union-staff01"));
    assert!(!page.contains("approve-union-outsider") && !page.contains("approve-union-alice"));
    assert!(page.contains("exclusiveCorpId=dingmockcorp"));
    let refused = no_follow()
        .get(login_url(
            &dingtalk,
            &key,
            &[internal[0], internal[1], ("approve", "union-outsider")],
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert!(
        refused
            .text()
            .await
            .unwrap()
            .contains("not a member of this organisation")
    );
    let unknown = no_follow()
        .get(login_url(&dingtalk, &key, &[("approve", "union-nobody")]))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::BAD_REQUEST);

    // Only corp A's users.
    let corp_a = [("exclusiveLogin", "true"), ("exclusiveCorpId", CORP_A)];
    let page = no_follow()
        .get(login_url(&dingtalk, &suite, &corp_a))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("approve-union-alice") && !page.contains("approve-union-staff01"));
    let callback = approve(
        &dingtalk,
        &suite,
        &[corp_a[0], corp_a[1], ("approve", "union-alice")],
    )
    .await;
    let code = query_value(&callback, "authCode").unwrap();
    let (_, token) = user_token(&dingtalk, (&suite, &dingtalk.suite_secret()), &code).await;
    assert_eq!(token["corpId"], CORP_A);
}

#[tokio::test]
async fn jsapi_codes_are_getuserinfo_codes_and_the_shim_is_javascript() {
    let dingtalk = dingtalk().await;
    let url = format!(
        "{}/jsapi/requestAuthCode?corpId={MOCK_CORP_ID}",
        dingtalk.base_url()
    );

    let response = no_follow().get(&url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["access-control-allow-origin"], "*");
    assert_eq!(response.headers()["cache-control"], "no-store");
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["errorCode"], "7");

    dingtalk.set_jsapi_user(Some("staff01"));
    let answer: Value = no_follow()
        .get(&url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let code = answer["code"].as_str().unwrap();
    let client = dingtalk.client_builder().build().unwrap();
    let user = client.user_info(code).await.unwrap();
    assert_eq!(user.userid(), "staff01");
    assert_eq!(dingtalk.calls(Endpoint::JsApiCode), 2);

    dingtalk.set_jsapi_user(None);
    let answer: Value = no_follow()
        .get(&url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["errorCode"], "7");

    let response = no_follow()
        .get(dingtalk.jsapi_script_url())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/javascript")
    );
    let script = response.text().await.unwrap();
    for needle in [
        "window.dd",
        "currentScript",
        "requestAuthCode",
        "getAuthCode",
        "/jsapi/requestAuthCode?corpId=",
    ] {
        assert!(script.contains(needle), "{needle}");
    }
    assert_eq!(dingtalk.calls(Endpoint::JsApiCode), 3);
}
