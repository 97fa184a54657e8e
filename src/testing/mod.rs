//! A fake DingTalk server for tests and demos (feature `testing`).
//!
//! [`MockDingTalk`] is a real HTTP server on `127.0.0.1` that serves the endpoints the layer uses,
//! following DingTalk's rules, inconvenient ones included: app key and secret are checked, access
//! tokens expire, a code is valid for 5 minutes and spent by the first call that reaches it, the
//! moment the call arrives, whether or not its answer reaches the client (the second call gets
//! 40078), and JSON and form bodies are both read. Its answers have the shapes DingTalk really
//! sends (a bad token is errcode 88 wrapping 40014, with the sub code in `sub_code`, in `errmsg`, or
//! both; an unknown path is errcode 22 or a JSON 404). It counts the calls each endpoint gets, the
//! calls whose client went away, and can be told to misbehave ([`Fault`]).
//!
//! It also speaks DingTalk's web login, for sign-in outside the DingTalk client: the login page
//! (`GET /oauth2/auth`, an account chooser, see [`MockDingTalk::login_page_url`]), the user token
//! and `users/me`, `getbyunionid`, `v2/user/get` and `listadmin`; and it serves a JSAPI shim
//! ([`MockDingTalk::jsapi_script_url`]) that gets codes for the user signed in with
//! [`MockDingTalk::set_jsapi_user`], so a page written for the real client runs in a browser.
//!
//! Each organisation has a company directory: departments under the root 1
//! ([`MockDingTalk::add_department`]) and each employee's departments, the ones they lead and their
//! profile ([`DirectoryEntry`]), which `v2/user/get` and `v2/department/listparentbyuser` answer.
//!
//! Over HTTP, under [`CONTROL_PREFIX`] (`/_fake/`), it adds users, issues codes and tells its call
//! counters, for a fake running as its own process (`cargo run --example fake_dingtalk`).
//!
//! ```
//! use tower_dingtalk_auth::testing::{Endpoint, MockDingTalk};
//! use tower_dingtalk_auth::{AdminLevel, AuthenticatedDingTalkUser, DingTalkClient};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let dingtalk = MockDingTalk::start().await;
//! dingtalk.add_user(
//!     AuthenticatedDingTalkUser::builder("user456", "Zhang San")
//!         .admin_level(AdminLevel::SuperAdmin)
//!         .build(),
//! );
//! let code = dingtalk.issue_code("user456");
//!
//! let client = DingTalkClient::builder()
//!     .internal_app(dingtalk.app_key(), dingtalk.app_secret())
//!     .base_url(dingtalk.base_url())
//!     .build()
//!     .unwrap();
//! let user = client.user_info(&code).await.unwrap();
//! assert_eq!(user.name(), "Zhang San");
//! assert_eq!(dingtalk.calls(Endpoint::GetUserInfo), 1);
//!
//! // A code is spent by its first exchange: this client remembers its user, another client is
//! // refused (40078).
//! assert_eq!(client.user_info(&code).await.unwrap(), user);
//! let another = dingtalk.client_builder().build().unwrap();
//! assert!(another.user_info(&code).await.is_err());
//! assert_eq!(dingtalk.calls(Endpoint::GetUserInfo), 2);
//! # }
//! ```

mod accounts;
mod answers;
mod builder;
mod call;
mod contact;
mod control;
mod control_headers;
mod control_query;
mod corp_tokens;
mod directory;
mod fault;
mod fixed_user;
mod login_page;
mod login_request;
mod server;
mod state;
mod third_party;
mod web_accounts;
mod web_login;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::task::JoinHandle;

pub use self::builder::MockDingTalkBuilder;
pub use self::control::CONTROL_PREFIX;
pub use self::directory::DirectoryEntry;
pub use self::fault::{Endpoint, Fault};
use self::fault::{FaultRule, Times};
pub use self::fixed_user::{FixedUser, FixedUserLayer};
use self::state::DingTalkState;
use crate::client::{DingTalkClient, DingTalkClientBuilder};
use crate::layer::{DingTalkAuthLayer, DingTalkAuthLayerBuilder};
use crate::user::AuthenticatedDingTalkUser;

/// The app key [`MockDingTalk::start`] accepts.
pub const MOCK_APP_KEY: &str = "mock-app-key";
/// The app secret [`MockDingTalk::start`] accepts.
pub const MOCK_APP_SECRET: &str = "mock-app-secret";

/// The internal organisation's corp id: the `corpId` in user tokens of the users added with
/// [`MockDingTalk::add_user`], and the `exclusiveCorpId` that admits only them to the login page.
pub const MOCK_CORP_ID: &str = "dingmockcorp";

/// The suite key of the third-party app [`MockDingTalk::start`] accepts.
pub const MOCK_SUITE_KEY: &str = "mock-suite-key";
/// The suite secret of the third-party app [`MockDingTalk::start`] accepts.
pub const MOCK_SUITE_SECRET: &str = "mock-suite-secret";

/// What the server task and the handle share.
pub(crate) struct Shared {
    state: Mutex<DingTalkState>,
    calls: [AtomicU64; Endpoint::ALL.len()],
    faults_served: AtomicU64,
    abandoned: AtomicU64,
}

impl Shared {
    pub(crate) fn state(&self) -> MutexGuard<'_, DingTalkState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn count(&self, endpoint: Endpoint) {
        self.calls[endpoint.index()].fetch_add(1, Ordering::SeqCst);
    }

    pub(crate) fn count_fault(&self) {
        self.faults_served.fetch_add(1, Ordering::SeqCst);
    }

    pub(crate) fn count_abandoned(&self) {
        self.abandoned.fetch_add(1, Ordering::SeqCst);
    }
}

/// A fake DingTalk server on loopback; it stops when dropped.
///
/// See the [module docs](self) for an example.
pub struct MockDingTalk {
    shared: Arc<Shared>,
    addr: SocketAddr,
    server: JoinHandle<()>,
}

impl std::fmt::Debug for MockDingTalk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockDingTalk")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl MockDingTalk {
    /// Starts a fake DingTalk on a free port of 127.0.0.1 with the app [`MOCK_APP_KEY`] /
    /// [`MOCK_APP_SECRET`] and no users. Panics if no port can be bound.
    pub async fn start() -> Self {
        Self::builder().start().await
    }

    /// Configures a fake DingTalk before starting it.
    pub fn builder() -> MockDingTalkBuilder {
        MockDingTalkBuilder {
            state: DingTalkState::new(MOCK_APP_KEY.to_owned(), MOCK_APP_SECRET.to_owned()),
            port: 0,
        }
    }

    /// The base URL of both hosts, `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A client builder for this fake's internal app: its app key and secret, and both hosts at
    /// [`base_url`](Self::base_url). Add any other setting before `build()`.
    pub fn client_builder(&self) -> DingTalkClientBuilder {
        DingTalkClient::builder()
            .internal_app(self.app_key(), self.app_secret())
            .base_url(self.base_url())
    }

    /// A layer builder with a client for this fake's internal app ([`client_builder`](Self::client_builder)
    /// with its defaults): what a test of your own app needs to put the real layer in front of its
    /// routes.
    ///
    /// ```
    /// use axum::{Router, routing::get};
    /// use tower_dingtalk_auth::AuthenticatedDingTalkUser;
    /// use tower_dingtalk_auth::testing::MockDingTalk;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let dingtalk = MockDingTalk::start().await;
    /// dingtalk.add_user(AuthenticatedDingTalkUser::builder("user456", "Zhang San").build());
    /// let layer = dingtalk.layer_builder().build().unwrap();
    /// let app: Router = Router::new()
    ///     .route("/me", get(|user: AuthenticatedDingTalkUser| async move { user.name().to_owned() }))
    ///     .layer(layer);
    /// // Serve `app` on a port and call it with `X-DingTalk-Code: {dingtalk.issue_code("user456")}`.
    /// # drop(app);
    /// # }
    /// ```
    pub fn layer_builder(&self) -> DingTalkAuthLayerBuilder {
        let client = self
            .client_builder()
            .build()
            .expect("the fake's own settings are valid");
        DingTalkAuthLayer::builder().client(client)
    }

    /// The app key the server accepts.
    pub fn app_key(&self) -> String {
        self.shared.state().app_key.clone()
    }

    /// The app secret the server accepts.
    pub fn app_secret(&self) -> String {
        self.shared.state().app_secret.clone()
    }

    /// Registers (or replaces) a user; codes are issued to users by their userid.
    pub fn add_user(&self, user: AuthenticatedDingTalkUser) {
        self.shared.state().add_user(None, user);
    }

    /// Issues a fresh one-time code for `userid`, valid for the code lifetime (default 5 minutes).
    /// Exchanging a code of a userid that was never added answers errcode 60121.
    pub fn issue_code(&self, userid: &str) -> String {
        self.shared.state().issue_code(None, userid)
    }

    /// Every access token issued so far, revoked and expired ones included: for tests that check
    /// no token leaks into logs or responses.
    pub fn issued_tokens(&self) -> Vec<String> {
        self.shared.state().issued_tokens.clone()
    }

    /// How many calls `endpoint` has received, faulty answers included.
    pub fn calls(&self, endpoint: Endpoint) -> u64 {
        self.shared.calls[endpoint.index()].load(Ordering::SeqCst)
    }

    /// Calls to `POST /v1.0/oauth2/accessToken`.
    pub fn token_calls(&self) -> u64 {
        self.calls(Endpoint::AccessToken)
    }

    /// Calls to `POST /topapi/v2/user/getuserinfo`.
    pub fn userinfo_calls(&self) -> u64 {
        self.calls(Endpoint::GetUserInfo)
    }

    /// Calls answered by an injected fault other than [`Fault::Latency`]: they spent no code.
    pub fn faults_served(&self) -> u64 {
        self.shared.faults_served.load(Ordering::SeqCst)
    }

    /// Calls whose client went away before the answer was sent (it timed out, or was cancelled).
    /// Like DingTalk, the fake did the call's work when it arrived: a code in it is spent.
    pub fn abandoned_calls(&self) -> u64 {
        self.shared.abandoned.load(Ordering::SeqCst)
    }

    /// Calls to all endpoints together.
    pub fn total_calls(&self) -> u64 {
        Endpoint::ALL
            .iter()
            .map(|endpoint| self.calls(*endpoint))
            .sum()
    }

    /// Sets the lifetime of tokens issued from now on (default 7200 s).
    pub fn set_token_ttl(&self, ttl: Duration) {
        self.shared.state().token_ttl = ttl;
    }

    /// Sets the lifetime of codes issued from now on (default 300 s).
    pub fn set_code_ttl(&self, ttl: Duration) {
        self.shared.state().code_ttl = ttl;
    }

    /// Makes every token issued so far expire now: using one answers 42001.
    pub fn expire_tokens(&self) {
        self.shared.state().expire_tokens();
    }

    /// Forgets every token issued so far: using one answers 40014.
    pub fn revoke_tokens(&self) {
        self.shared.state().revoke_tokens();
    }

    /// Turns on DingTalk's per-app, per-API rate limit: past `per_second` calls within one second,
    /// an endpoint answers errcode 88 with sub_code 90018. `None` turns it off (the default).
    pub fn set_qps_limit(&self, per_second: Option<u32>) {
        self.shared.state().qps_limit = per_second;
    }

    /// Calls answered with DingTalk's throttle (90018, or the new host's 403) because they were
    /// past the [QPS limit](Self::set_qps_limit), every endpoint together.
    pub fn throttled_calls(&self) -> u64 {
        self.shared.state().throttled
    }

    /// Answers the next `times` calls to `endpoint` with `fault`.
    pub fn fail_next(&self, endpoint: Endpoint, fault: Fault, times: u32) {
        if times > 0 {
            self.push_fault(endpoint, fault, Times::Next(times));
        }
    }

    /// Answers every call to `endpoint` with `fault` until [`clear_faults`](Self::clear_faults).
    pub fn fail_always(&self, endpoint: Endpoint, fault: Fault) {
        self.push_fault(endpoint, fault, Times::Always);
    }

    /// Removes every injected fault.
    pub fn clear_faults(&self) {
        let mut state = self.shared.state();
        state.faults.clear();
        state.corp_faults.clear();
    }

    fn push_fault(&self, endpoint: Endpoint, fault: Fault, times: Times) {
        self.shared.state().faults.push(FaultRule {
            endpoint,
            fault,
            times,
        });
    }
}

impl Drop for MockDingTalk {
    fn drop(&mut self) {
        self.server.abort();
    }
}
