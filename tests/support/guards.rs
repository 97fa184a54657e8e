//! The guard tests' app: four guarded routes behind the authentication layer, on a loopback port.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::routing::get;
use tower_dingtalk_auth::{AdminLevel, AuthenticatedDingTalkUser, guard};

/// `/admin` (sys flag), `/owners` (SuperAdmin or Boss), `/subs` (SubAdmin), `/custom` (a
/// predicate on the unionid), each with its own guard; every handler run is counted.
pub fn guarded_routes(runs: Arc<AtomicU64>) -> Router {
    let route = |path: &'static str, guard: guard::GuardLayer| {
        let runs = runs.clone();
        Router::new()
            .route(
                path,
                get(move |user: AuthenticatedDingTalkUser| async move {
                    runs.fetch_add(1, Ordering::SeqCst);
                    format!("{path} for {}", user.userid())
                }),
            )
            .route_layer(guard)
    };
    Router::new()
        .merge(route("/admin", guard::require_admin()))
        .merge(route(
            "/owners",
            guard::require_level([AdminLevel::SuperAdmin, AdminLevel::Boss]),
        ))
        .merge(route("/subs", guard::require_level([AdminLevel::SubAdmin])))
        .merge(route(
            "/custom",
            guard::require(|user: &AuthenticatedDingTalkUser| {
                user.unionid().starts_with("union-s")
            }),
        ))
}

pub struct GuardedApp {
    pub dingtalk: tower_dingtalk_auth::testing::MockDingTalk,
    pub addr: std::net::SocketAddr,
    pub runs: Arc<AtomicU64>,
    pub http: reqwest::Client,
    server: tokio::task::JoinHandle<()>,
}

impl GuardedApp {
    /// The authentication layer as a `route_layer` too (required), or as a `layer` (optional).
    pub async fn start(optional_auth: bool) -> Self {
        let dingtalk = super::dingtalk().await;
        let runs = Arc::new(AtomicU64::new(0));
        let routes = guarded_routes(runs.clone());
        let app = if optional_auth {
            let auth = super::layer_for(&dingtalk).optional().build().unwrap();
            routes.layer(auth)
        } else {
            let auth = super::layer_for(&dingtalk).build().unwrap();
            routes.route_layer(auth)
        };
        let (addr, server) = super::serve(app).await;
        Self {
            dingtalk,
            addr,
            runs,
            http: reqwest::Client::new(),
            server,
        }
    }

    pub async fn get_as(&self, path: &str, userid: &str) -> reqwest::Response {
        let code = self.dingtalk.issue_code(userid);
        self.http
            .get(format!("http://{}{path}", self.addr))
            .header("x-dingtalk-code", code)
            .send()
            .await
            .unwrap()
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("http://{}{path}", self.addr))
            .send()
            .await
            .unwrap()
    }

    pub fn runs(&self) -> u64 {
        self.runs.load(Ordering::SeqCst)
    }
}

impl Drop for GuardedApp {
    fn drop(&mut self) {
        self.server.abort();
    }
}
