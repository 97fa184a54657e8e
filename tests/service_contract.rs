//! The tower contract: layer and service are `Clone + Send + Sync`, the inner service's error
//! (from its call or its readiness) passes through untouched, a rejection never waits on the
//! inner service's readiness, and a request that passes waits for it and is then served.

mod support;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use http_body_util::BodyExt;
use tokio::sync::Notify;
use tower::{Service, ServiceExt};
use tower_dingtalk_auth::{
    AuthenticatedDingTalkUser, DingTalkAuth, DingTalkAuthLayer, SessionConfig, SessionKey, guard,
};

fn assert_clone_send_sync<T: Clone + Send + Sync + 'static>() {}

#[test]
fn layer_and_service_are_clone_send_sync() {
    assert_clone_send_sync::<DingTalkAuthLayer>();
    assert_clone_send_sync::<DingTalkAuth<axum::routing::Router>>();
    assert_clone_send_sync::<DingTalkAuth<NeverReady>>();
}

/// An inner service that is never ready and would panic if called.
#[derive(Clone)]
struct NeverReady;

impl Service<Request<String>> for NeverReady {
    type Response = Response<String>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<String>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Pending
    }

    fn call(&mut self, _: Request<String>) -> Self::Future {
        panic!("called without being ready");
    }
}

#[tokio::test]
async fn a_rejection_does_not_wait_for_the_inner_service() {
    let dingtalk = support::dingtalk().await;
    let layer = support::layer_for(&dingtalk).build().unwrap();
    let service = tower::ServiceBuilder::new()
        .layer(layer)
        .service(NeverReady);
    for code in [None, Some("bad code"), Some("never-issued-code")] {
        let mut request = Request::builder();
        if let Some(code) = code {
            request = request.header("x-dingtalk-code", code);
        }
        let request = request.body(String::new()).unwrap();
        // A guard against hanging, not a measurement.
        let response =
            tokio::time::timeout(Duration::from_secs(10), service.clone().oneshot(request))
                .await
                .expect("answered without the inner service")
                .unwrap();
        assert_eq!(response.status(), 401, "{code:?}");
    }
    assert_eq!(dingtalk.userinfo_calls(), 1);
}

#[derive(Debug, PartialEq)]
struct InnerError(&'static str);

#[tokio::test]
async fn the_inner_services_error_passes_through() {
    let dingtalk = support::dingtalk().await;
    let layer = support::layer_for(&dingtalk).build().unwrap();
    let service = tower::ServiceBuilder::new()
        .layer(layer)
        .service(tower::service_fn(|_: Request<String>| async {
            Err::<Response<String>, _>(InnerError("inner failed"))
        }));
    let request = Request::builder()
        .header("x-dingtalk-code", dingtalk.issue_code("staff01"))
        .body(String::new())
        .unwrap();
    let error = service.clone().oneshot(request).await.unwrap_err();
    assert_eq!(error, InnerError("inner failed"));
    // A rejection is a response, not an error, even when the inner service would fail.
    let request = Request::builder().body(String::new()).unwrap();
    assert_eq!(service.oneshot(request).await.unwrap().status(), 401);
}

/// The inner service (behind a guard) serves one request at a time and is busy with the first
/// when the others pass: by code, by session cookie and by bearer token, each waits, is served
/// once the service is free, as the user the layer put on it, and the first is not disturbed.
#[tokio::test]
async fn requests_that_pass_wait_for_a_busy_inner_service_then_are_served() {
    let dingtalk = support::dingtalk().await;
    let layer = support::layer_for(&dingtalk)
        .session(SessionConfig::new(SessionKey::generate()))
        .token_login("/login")
        .build()
        .unwrap();
    let sessions = layer.sessions().unwrap();
    let user = support::known_users().remove(2);
    let cookie = sessions.cookie_header(&user).to_str().unwrap().to_owned();
    let bearer = format!("Bearer {}", sessions.issue_token(&user));
    let (entered, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let handler = {
        let (entered, release) = (entered.clone(), release.clone());
        tower::service_fn(move |request: Request<String>| {
            let (entered, release) = (entered.clone(), release.clone());
            async move {
                let user = request.extensions().get::<AuthenticatedDingTalkUser>();
                let userid = user.map_or("nobody".to_owned(), |user| user.userid().to_owned());
                if request.headers().contains_key("x-hold") {
                    entered.notify_one();
                    release.notified().await;
                }
                Ok::<_, Infallible>(Response::new(userid))
            }
        })
    };
    let service = tower::ServiceBuilder::new()
        .layer(layer)
        .layer(guard::require_admin())
        .concurrency_limit(1)
        .service(handler);
    let request = |header: &str, value: &str| {
        Request::builder()
            .header(header, value)
            .body(String::new())
            .unwrap()
    };
    let mut first = request("x-dingtalk-code", &dingtalk.issue_code("super01"));
    first
        .headers_mut()
        .insert("x-hold", http::HeaderValue::from_static("1"));
    let first = tokio::spawn(service.clone().oneshot(first));
    entered.notified().await;
    let waiting = [
        request("x-dingtalk-code", &dingtalk.issue_code("super01")),
        request("cookie", &cookie),
        request("authorization", &bearer),
    ]
    .map(|request| tokio::spawn(service.clone().oneshot(request)));
    // Time for each to reach the busy service: none may be answered while it is busy.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        waiting.iter().all(|task| !task.is_finished()),
        "served while busy"
    );
    assert!(!first.is_finished());
    release.notify_one();
    let first = first.await.unwrap().unwrap();
    assert_eq!(
        (first.status().as_u16(), text(first).await),
        (200, "super01".to_owned())
    );
    for task in waiting {
        // A guard against hanging, not a measurement: a waiter that is never woken fails here.
        let response = tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("woken once the inner service was free")
            .unwrap()
            .unwrap();
        assert_eq!(
            (response.status().as_u16(), text(response).await),
            (200, "super01".to_owned())
        );
    }
    assert_eq!(dingtalk.userinfo_calls(), 2);
}

async fn text<B: http_body::Body>(response: Response<B>) -> String
where
    B::Error: std::fmt::Debug,
{
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// An inner service whose readiness fails.
#[derive(Clone)]
struct FailsReadiness;

impl Service<Request<String>> for FailsReadiness {
    type Response = Response<String>;
    type Error = InnerError;
    type Future = std::future::Ready<Result<Response<String>, InnerError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), InnerError>> {
        Poll::Ready(Err(InnerError("not ready")))
    }

    fn call(&mut self, _: Request<String>) -> Self::Future {
        panic!("called although its readiness failed");
    }
}

/// Its error reaches the caller for a request that passes (by code, behind a guard too); a
/// request refused still gets its refusal, without asking it.
#[tokio::test]
async fn the_inner_services_readiness_error_passes_through() {
    let dingtalk = support::dingtalk().await;
    let layer = support::layer_for(&dingtalk).build().unwrap();
    let bare = tower::ServiceBuilder::new()
        .layer(layer.clone())
        .service(FailsReadiness);
    let guarded = tower::ServiceBuilder::new()
        .layer(layer)
        .layer(guard::require_admin())
        .service(FailsReadiness);
    let with_code = || {
        Request::builder()
            .header("x-dingtalk-code", dingtalk.issue_code("super01"))
            .body(String::new())
            .unwrap()
    };
    let error = bare.clone().oneshot(with_code()).await.unwrap_err();
    assert_eq!(error, InnerError("not ready"));
    let error = guarded.clone().oneshot(with_code()).await.unwrap_err();
    assert_eq!(error, InnerError("not ready"));
    let no_code = Request::builder().body(String::new()).unwrap();
    assert_eq!(bare.oneshot(no_code).await.unwrap().status(), 401);
    assert_eq!(dingtalk.userinfo_calls(), 2);
}
