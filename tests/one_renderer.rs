//! One way to say no: the layer, every guard and every extractor behind it render rejections with
//! the layer's realm and `on_rejection`, byte for byte alike; one layer serves an app with public
//! and private routes; and a guard or extractor the layer never saw is loud about it.

mod support;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use axum::Router;
use axum::routing::get;
use http::Response;
use support::{assert_rejection, json};
use tower_dingtalk_auth::{AuthenticatedDingTalkUser, DingTalkAuthLayerBuilder, guard};

/// `/layer` behind a required layer, `/guard` behind `guard::authenticated()` under an optional
/// layer, `/extractor` taking the user under the optional layer, and `/admin` behind
/// `guard::require_admin()`; both layers on one client, configured by `configure`.
async fn app(
    configure: impl Fn(DingTalkAuthLayerBuilder) -> DingTalkAuthLayerBuilder,
) -> (String, tower_dingtalk_auth::testing::MockDingTalk) {
    let dingtalk = support::dingtalk().await;
    let client = support::client_for(&dingtalk).build().unwrap();
    let required =
        configure(tower_dingtalk_auth::DingTalkAuthLayer::builder().client(client.clone()))
            .build()
            .unwrap();
    let optional = configure(tower_dingtalk_auth::DingTalkAuthLayer::builder().client(client))
        .optional()
        .build()
        .unwrap();
    let me = |user: AuthenticatedDingTalkUser| async move { user.userid().to_owned() };
    let app = Router::new()
        .merge(Router::new().route("/layer", get(me)).route_layer(required))
        .merge(
            Router::new()
                .route("/guard", get(|| async { "private" }))
                .route_layer(guard::authenticated())
                .route("/extractor", get(me))
                .merge(
                    Router::new()
                        .route("/admin", get(|| async { "admin" }))
                        .route_layer(guard::require_admin()),
                )
                .layer(optional),
        );
    let (addr, server) = support::serve(app).await;
    std::mem::forget(server);
    (format!("http://{addr}"), dingtalk)
}

/// Status, `WWW-Authenticate`, `Content-Type` and body.
async fn seen(response: reqwest::Response) -> (u16, Option<String>, Option<String>, String) {
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|value| value.to_str().unwrap().to_owned())
    };
    let (www, content_type) = (header("www-authenticate"), header("content-type"));
    (
        response.status().as_u16(),
        www,
        content_type,
        response.text().await.unwrap(),
    )
}

#[tokio::test]
async fn the_layer_a_guard_and_the_extractor_answer_401_byte_for_byte_alike() {
    let (base, dingtalk) = app(|builder| {
        builder.realm("intranet").on_rejection(|error| {
            Response::builder()
                .status(error.status())
                .header("www-authenticate", r#"Intranet realm="intranet""#)
                .header("content-type", "text/plain")
                .body(format!("no entry ({})", error.kind()))
                .unwrap()
        })
    })
    .await;
    let http = reqwest::Client::new();
    let mut answers = Vec::new();
    for path in ["/layer", "/guard", "/extractor"] {
        answers.push(seen(http.get(format!("{base}{path}")).send().await.unwrap()).await);
    }
    let expected = (
        401,
        Some(r#"Intranet realm="intranet""#.to_owned()),
        Some("text/plain".to_owned()),
        "no entry (missing_code)".to_owned(),
    );
    assert_eq!(answers, vec![expected.clone(); 3]);
    // A guard's 403 is the same renderer's.
    let response = http
        .get(format!("{base}/admin"))
        .header("x-dingtalk-code", dingtalk.issue_code("staff01"))
        .send()
        .await
        .unwrap();
    let (status, _, content_type, body) = seen(response).await;
    assert_eq!(
        (status, content_type.as_deref(), body.as_str()),
        (403, Some("text/plain"), "no entry (forbidden)")
    );
}

#[tokio::test]
async fn with_the_default_renderer_the_realm_is_the_layers_everywhere() {
    let (base, _) = app(|builder| builder.realm("intranet")).await;
    let http = reqwest::Client::new();
    for path in ["/layer", "/guard", "/extractor"] {
        let response = http.get(format!("{base}{path}")).send().await.unwrap();
        let headers = assert_rejection(response, 401, "missing_code", &[]).await;
        assert_eq!(
            headers["www-authenticate"], r#"DingTalk realm="intranet""#,
            "{path}"
        );
    }
}

#[tokio::test]
async fn one_client_two_layers_never_reject_each_others_codes() {
    let (base, dingtalk) = app(|builder| builder).await;
    let http = reqwest::Client::new();
    let code = dingtalk.issue_code("boss01");
    for path in ["/layer", "/extractor", "/layer", "/guard"] {
        let response = http
            .get(format!("{base}{path}"))
            .header("x-dingtalk-code", &code)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
    }
    assert_eq!(dingtalk.userinfo_calls(), 1);
}

#[tokio::test]
async fn a_guard_the_layer_never_saw_is_a_500_and_an_error_in_the_log() {
    let (_guard, logs) = support::capture_logs();
    let dingtalk = support::dingtalk().await;
    let layer = support::layer_for(&dingtalk).build().unwrap();
    // The guard outside the layer: `layer` added before `route_layer(guard)` wraps the guard in
    // the layer, but here the guard wraps everything, the layer included.
    let app = support::routes(Arc::new(AtomicU64::new(0)))
        .route_layer(layer)
        .layer(guard::require_admin());
    let (addr, server) = support::serve(app).await;
    let response = reqwest::Client::new()
        .get(format!("http://{addr}/me"))
        .header("x-dingtalk-code", dingtalk.issue_code("super01"))
        .send()
        .await
        .unwrap();
    let body = json(response).await;
    assert_eq!(body["error"], "internal_error", "{body}");
    assert_eq!(dingtalk.userinfo_calls(), 0, "the layer never ran");
    let logs = logs.contents();
    assert!(logs.contains("DingTalkAuthLayer"), "{logs}");
    assert!(logs.contains("route_layer"), "{logs}");
    server.abort();
}

/// Two layers on one route, each with its own renderer, reading codes from headers of their own:
/// a guard behind both renders as the inner one, the last to see the request, whichever of the
/// two signed the user in and whether the inner one signed anyone in.
#[tokio::test]
async fn behind_two_layers_a_guard_renders_as_the_last_layer_that_saw_the_request() {
    let dingtalk = support::dingtalk().await;
    let client = support::client_for(&dingtalk).build().unwrap();
    let layer = |header: &'static str, body: &'static str| {
        tower_dingtalk_auth::DingTalkAuthLayer::builder()
            .client(client.clone())
            .code_sources([tower_dingtalk_auth::CodeSource::header(header)])
            .optional()
            .on_rejection(move |error| {
                Response::builder()
                    .status(error.status())
                    .body(format!("{body} ({})", error.kind()))
                    .unwrap()
            })
            .build()
            .unwrap()
    };
    let app = Router::new()
        .route("/admin", get(|| async { "admin" }))
        .route_layer(guard::require_admin())
        .route_layer(layer("x-inner-code", "inner"))
        .route_layer(layer("x-outer-code", "outer"));
    let (address, _server) = support::serve(app).await;
    let http = reqwest::Client::new();
    let mut bodies = Vec::new();
    // The inner layer signs in (after the outer one passed the request on), the outer one signs
    // in (and the inner one passes it on), and both sign the same user in; each code twice, by
    // an exchange and then from the cache (where the user carries the rendering).
    for headers in [
        vec!["x-inner-code"],
        vec!["x-outer-code"],
        vec!["x-outer-code", "x-inner-code"],
    ] {
        let code = dingtalk.issue_code("staff01");
        for _ in 0..2 {
            let mut request = http.get(format!("http://{address}/admin"));
            for name in &headers {
                request = request.header(*name, &code);
            }
            let response = request.send().await.unwrap();
            bodies.push((response.status().as_u16(), response.text().await.unwrap()));
        }
    }
    assert_eq!(bodies, vec![(403, "inner (forbidden)".to_owned()); 6]);
    // The code of each request was exchanged once.
    assert_eq!(dingtalk.userinfo_calls(), 3);
}
