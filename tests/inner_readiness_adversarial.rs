//! The inner service's readiness, attacked from outside (a helper's attack on a change that called
//! the inner service from the layer's `call()` when it was ready; that change was reverted for the
//! last three tests here, which it failed). Waiters behind tower's `ConcurrencyLimit`, `Buffer`,
//! `RateLimit`, `LoadShed` and hand-written gates are woken and served once, as their user, by
//! code, cookie and bearer, behind a guard, on both runtimes and over a socket; rejections never
//! touch the inner service; a code login that waited starts its session; a cancelled waiter gives
//! its place back. And the inner service is asked for nothing before the response future is
//! polled: a future dropped unpolled never reaches it, futures awaited out of order do not
//! deadlock behind a `ConcurrencyLimit`, and an inner service whose readiness panics behind a
//! `Buffer` does not kill the buffer's worker.

mod support;

use std::convert::Infallible;
use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use http::{Request, Response};
use http_body_util::BodyExt;
use tokio::task::JoinHandle;
use tower::{Layer, Service, ServiceBuilder, ServiceExt};
use tower_dingtalk_auth::testing::MockDingTalk;
use tower_dingtalk_auth::{
    AuthenticatedDingTalkUser, DingTalkAuthLayer, SessionConfig, SessionKey, guard,
};

/// What the inner service saw, shared by its clones.
#[derive(Default)]
struct Probe {
    polls: AtomicUsize,
    calls: AtomicUsize,
    closed: AtomicBool,
    /// The wakers of tasks (not no-op ones) waiting while closed.
    wakers: Mutex<Vec<Waker>>,
    panic_once: AtomicBool,
}

impl Probe {
    /// Until `n` tasks wait for the closed service.
    async fn waiting(&self, n: usize) {
        within("requests waiting", async {
            while self.wakers.lock().unwrap().len() < n {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
    }

    fn open(&self) {
        self.closed.store(false, SeqCst);
        self.wakers.lock().unwrap().drain(..).for_each(Waker::wake);
    }
}

/// Answers the user's id; pending while the probe is closed, and for its first `pending` polls
/// (waking itself).
#[derive(Clone)]
struct Inner(Arc<Probe>, usize);

type Answer = Pin<Box<dyn Future<Output = Result<Response<String>, Infallible>> + Send>>;

impl Service<Request<String>> for Inner {
    type Response = Response<String>;
    type Error = Infallible;
    type Future = Answer;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        let probe = &self.0;
        probe.polls.fetch_add(1, SeqCst);
        assert!(!probe.panic_once.swap(false, SeqCst), "readiness panics");
        if probe.closed.load(SeqCst) {
            if !cx.waker().will_wake(Waker::noop()) {
                probe.wakers.lock().unwrap().push(cx.waker().clone());
            }
            return Poll::Pending;
        }
        if self.1 > 0 {
            self.1 -= 1;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<String>) -> Answer {
        self.0.calls.fetch_add(1, SeqCst);
        Box::pin(async move {
            let user = request.extensions().get::<AuthenticatedDingTalkUser>();
            let userid = user.map_or("nobody".to_owned(), |user| user.userid().to_owned());
            tokio::task::yield_now().await;
            Ok(Response::new(userid))
        })
    }
}

/// A fake DingTalk, a layer with sessions and token login (the client's limits on new logins out
/// of the crowds' way), and the inner service's probe.
struct Kit {
    dingtalk: MockDingTalk,
    layer: DingTalkAuthLayer,
    probe: Arc<Probe>,
}

impl Kit {
    async fn new(pending: usize, closed: bool) -> (Self, Inner) {
        let dingtalk = support::dingtalk().await;
        let client = support::client_for(&dingtalk).rate_limit(10_000);
        let client = client.max_pending_per_client(1_000).build().unwrap();
        let layer = DingTalkAuthLayer::builder().client(client);
        let layer = layer.session(SessionConfig::new(SessionKey::generate()));
        let layer = layer.token_login("/login").build().unwrap();
        let probe = Arc::new(Probe::default());
        probe.closed.store(closed, SeqCst);
        let inner = Inner(probe.clone(), pending);
        (
            Self {
                dingtalk,
                layer,
                probe,
            },
            inner,
        )
    }

    /// Request `i`: by code, session cookie or bearer token (`i % 3`), as one of three admins.
    fn request(&self, i: usize) -> (Request<String>, String) {
        let user = &support::known_users()[1 + (i / 3) % 3];
        let sessions = self.layer.sessions().unwrap();
        let code = self.dingtalk.issue_code(user.userid());
        let cookie = sessions.cookie_header(user).to_str().unwrap().to_owned();
        let bearer = format!("Bearer {}", sessions.issue_token(user));
        let name = ["x-dingtalk-code", "cookie", "authorization"][i % 3];
        (
            get(name, &[code, cookie, bearer][i % 3]),
            user.userid().to_owned(),
        )
    }

    fn calls(&self) -> usize {
        self.probe.calls.load(SeqCst)
    }
}

fn get(name: &str, value: &str) -> Request<String> {
    let request = Request::builder().header(name, value);
    request.body(String::new()).unwrap()
}

/// A hang guard, not a measurement.
async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    let waited = tokio::time::timeout(Duration::from_secs(10), future).await;
    waited.unwrap_or_else(|_| panic!("{what}: no answer within 10 s"))
}

/// Awaits `call`: it must answer 200 with `userid`.
async fn served<B, E>(what: &str, call: impl Future<Output = Result<Response<B>, E>>, userid: &str)
where
    B: http_body::Body,
    B::Error: Debug,
    E: Debug,
{
    let response = within(what, call).await.unwrap();
    assert_eq!(response.status(), 200, "{what}");
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(String::from_utf8(bytes.to_vec()).unwrap(), userid, "{what}");
}

async fn joined<T>(task: JoinHandle<T>) -> T {
    task.await.unwrap()
}

/// `n` requests at once through `service`, each served as its own user once the service lets it.
async fn crowd<S, B>(kit: &Kit, service: S, n: usize, before_serving: impl Future<Output = ()>)
where
    S: Service<Request<String>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Debug + Send,
    B: http_body::Body + Send + 'static,
    B::Error: Debug,
{
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let (request, userid) = kit.request(i);
            (tokio::spawn(service.clone().oneshot(request)), userid)
        })
        .collect();
    before_serving.await;
    for (task, userid) in tasks {
        served("a waiter", joined(task), &userid).await;
    }
    assert_eq!(kit.dingtalk.userinfo_calls() as usize, n.div_ceil(3));
    assert_eq!(kit.calls(), n);
}

async fn concurrency_limited_crowd() {
    let (kit, inner) = Kit::new(0, false).await;
    let service = ServiceBuilder::new().layer(kit.layer.clone());
    let service = service.layer(guard::require_admin()).concurrency_limit(2);
    crowd(&kit, service.service(inner), 60, async {}).await;
}

#[tokio::test]
async fn a_crowd_behind_a_concurrency_limit_is_served_once_each_single_thread() {
    concurrency_limited_crowd().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crowd_behind_a_concurrency_limit_is_served_once_each_multi_thread() {
    concurrency_limited_crowd().await;
}

/// Buffer, then RateLimit, then a service pending for its first three polls of each request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crowd_behind_buffer_rate_limit_and_a_slow_service_is_served_once_each() {
    let (kit, inner) = Kit::new(3, false).await;
    let service = ServiceBuilder::new().layer(kit.layer.clone()).buffer(2);
    let service = service
        .rate_limit(4, Duration::from_millis(20))
        .service(inner);
    crowd(&kit, service, 30, async {}).await;
}

/// A closed service behind a guard, opened by another task once every request waits on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_on_a_service_opened_from_another_task_are_all_woken() {
    let (kit, inner) = Kit::new(0, true).await;
    let service = ServiceBuilder::new().layer(kit.layer.clone());
    let service = service.layer(guard::require_admin()).service(inner);
    let open = async {
        kit.probe.waiting(30).await;
        assert_eq!(kit.calls(), 0, "called while closed");
        let probe = kit.probe.clone();
        tokio::spawn(async move { probe.open() }).await.unwrap();
    };
    crowd(&kit, service, 30, open).await;
}

/// Refusals (no credentials, a forged cookie or token, a non-admin behind the guard) and the
/// token login route are answered without asking a never-ready inner service anything.
#[tokio::test]
async fn rejections_and_token_login_never_touch_a_never_ready_service() {
    let (kit, inner) = Kit::new(0, true).await;
    let service = ServiceBuilder::new().layer(kit.layer.clone());
    let service = service.layer(guard::require_admin()).service(inner);
    let forged = format!("{}=forged", kit.layer.sessions().unwrap().cookie_name());
    let (code, staff) = (
        kit.dingtalk.issue_code("super01"),
        kit.dingtalk.issue_code("staff01"),
    );
    let login = Request::post("/login").header("content-type", "application/json");
    let login = login.body(format!(r#"{{"code":"{code}"}}"#)).unwrap();
    let cases = [
        (Request::new(String::new()), 401),
        (get("cookie", &forged), 401),
        (get("authorization", "Bearer forged"), 401),
        (get("x-dingtalk-code", &staff), 403),
        (login, 200),
    ];
    for (request, status) in cases {
        let response = within("a refusal", service.clone().oneshot(request)).await;
        assert_eq!(response.unwrap().status(), status);
    }
    assert_eq!((kit.probe.polls.load(SeqCst), kit.calls()), (0, 0));
}

/// LoadShed behind the layer, over a ConcurrencyLimit of 1 whose permit a request waiting on the
/// closed service holds: `Overloaded` passes through untouched, the permit the shed request's
/// readiness queued for is not lost, and the next request is served.
#[tokio::test]
async fn load_shed_overload_passes_through_and_the_next_request_is_served() {
    let (kit, inner) = Kit::new(0, true).await;
    let limited = ServiceBuilder::new().concurrency_limit(1).service(inner);
    let direct = kit.layer.layer(limited.clone());
    let shed = ServiceBuilder::new().layer(kit.layer.clone()).load_shed();
    let shed = shed.service(limited);
    let (first, first_user) = kit.request(1);
    let first = tokio::spawn(direct.oneshot(first));
    kit.probe.waiting(1).await;
    let error = shed.clone().oneshot(kit.request(2).0).await.unwrap_err();
    assert!(error.is::<tower::load_shed::error::Overloaded>(), "{error}");
    kit.probe.open();
    served("the first", joined(first), &first_user).await;
    let (next, userid) = kit.request(4);
    served("the next", shed.oneshot(next), &userid).await;
    assert_eq!(kit.calls(), 2);
}

/// A code login that waited for the inner service's readiness still starts its session: the
/// Set-Cookie is on the answer and serves the next request without DingTalk.
#[tokio::test]
async fn a_code_login_that_waited_still_starts_its_session() {
    let (kit, inner) = Kit::new(0, true).await;
    let service = kit.layer.layer(inner);
    let code = get("x-dingtalk-code", &kit.dingtalk.issue_code("boss01"));
    let waiting = tokio::spawn(service.clone().oneshot(code));
    kit.probe.waiting(1).await;
    kit.probe.open();
    let response = within("the code login", waiting).await.unwrap().unwrap();
    let cookie = response.headers()["set-cookie"].to_str().unwrap();
    let again = get("cookie", cookie.split(';').next().unwrap());
    served("the code login", async { Ok::<_, ()>(response) }, "boss01").await;
    served("by its cookie", service.oneshot(again), "boss01").await;
    assert_eq!((kit.dingtalk.userinfo_calls(), kit.calls()), (1, 2));
}

/// Behind a ConcurrencyLimit of 1 held by a request waiting on the closed service, waiters
/// dropped while waiting (one polled, one never polled) give their place back and are never
/// called; those after them are served.
#[tokio::test]
async fn waiters_dropped_while_waiting_give_their_place_back() {
    let (kit, inner) = Kit::new(0, true).await;
    let service = ServiceBuilder::new().layer(kit.layer.clone());
    let mut service = service.concurrency_limit(1).service(inner);
    let (first, first_user) = kit.request(1);
    let first = tokio::spawn(service.clone().oneshot(first));
    kit.probe.waiting(1).await;
    let polled = tokio::spawn(service.clone().oneshot(kit.request(2).0));
    let (after, userid) = kit.request(4);
    let after = tokio::spawn(service.clone().oneshot(after));
    drop(service.ready().await.unwrap().call(kit.request(5).0));
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    polled.abort();
    kit.probe.open();
    served("the first", joined(first), &first_user).await;
    served("after", joined(after), &userid).await;
    let (code, userid) = kit.request(6);
    served("by code", service.oneshot(code), &userid).await;
    assert_eq!(kit.calls(), 3);
}

/// Over a real socket: an axum app, its route behind a guard and a ConcurrencyLimit of 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_axum_app_over_loopback_serves_a_crowd_behind_a_concurrency_limit() {
    let (kit, _) = Kit::new(0, false).await;
    let runs = Arc::new(AtomicUsize::new(0));
    let counted = runs.clone();
    let me = move |user: AuthenticatedDingTalkUser| async move {
        counted.fetch_add(1, SeqCst);
        tokio::task::yield_now().await;
        user.userid().to_owned()
    };
    let app = axum::Router::new().route("/me", axum::routing::get(me));
    let app = app.layer(tower::limit::ConcurrencyLimitLayer::new(1));
    let app = app
        .route_layer(guard::require_admin())
        .layer(kit.layer.clone());
    let (addr, _server) = support::serve(app).await;
    let http = reqwest::Client::new();
    let tasks: Vec<_> = (0..24)
        .map(|i| {
            let (request, userid) = kit.request(i);
            let sent = http.get(format!("http://{addr}/me"));
            let sent = sent.headers(request.headers().clone()).send();
            (tokio::spawn(sent), userid)
        })
        .collect();
    for (task, userid) in tasks {
        let response = within("a request", joined(task)).await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.text().await.unwrap(), userid);
    }
    assert_eq!((runs.load(SeqCst), kit.dingtalk.userinfo_calls()), (24, 8));
}

/// A response future dropped before it is ever polled (a request nobody waits for): before
/// cd3ab53 the inner service was neither asked nor called for it.
#[tokio::test]
async fn a_future_dropped_unpolled_never_reaches_the_inner_service() {
    let (kit, inner) = Kit::new(0, false).await;
    let mut service = kit.layer.layer(inner);
    for i in [1, 2] {
        drop(service.ready().await.unwrap().call(kit.request(i).0));
    }
    assert_eq!((kit.probe.polls.load(SeqCst), kit.calls()), (0, 0));
}

/// Two response futures made, the second awaited first, behind a ConcurrencyLimit of 1: the
/// first, not yet polled, must not hold the only permit.
#[tokio::test]
async fn futures_awaited_out_of_order_do_not_deadlock_behind_a_concurrency_limit() {
    let (kit, inner) = Kit::new(0, false).await;
    let service = ServiceBuilder::new().layer(kit.layer.clone());
    let mut service = service.concurrency_limit(1).service(inner);
    let ((one, first_user), (two, second_user)) = (kit.request(1), kit.request(5));
    let first = service.ready().await.unwrap().call(one);
    let second = service.ready().await.unwrap().call(two);
    served("the second, awaited first", second, &second_user).await;
    served("the first", first, &first_user).await;
}

/// The layer behind a Buffer; the inner service's readiness panics once. The panic stays in that
/// request's task: the Buffer's worker lives on and serves the next request.
#[tokio::test]
async fn a_panicking_inner_readiness_does_not_kill_a_buffer_in_front_of_the_layer() {
    let (kit, inner) = Kit::new(0, false).await;
    kit.probe.panic_once.store(true, SeqCst);
    let service = ServiceBuilder::new()
        .buffer(4)
        .service(kit.layer.layer(inner));
    let first = tokio::spawn(service.clone().oneshot(kit.request(1).0));
    let first = within("the panicking one", first).await;
    assert!(!matches!(first, Ok(Ok(_))), "served although it panicked");
    let (next, userid) = kit.request(4);
    served("the next, after the panic", service.oneshot(next), &userid).await;
    assert_eq!(kit.calls(), 1);
}
