//! The tower contract: layer and service are `Clone + Send + Sync`, the inner service's error passes
//! through untouched, and a rejection never waits on the inner service's readiness.

mod support;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use tower::{Service, ServiceExt};
use tower_dingtalk_auth::{DingTalkAuth, DingTalkAuthLayer};

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
