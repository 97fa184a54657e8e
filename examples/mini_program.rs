//! Mini programs and API clients: a code once for a bearer token, then the token; against the
//! built-in fake DingTalk.
//!
//! ```sh
//! cargo run --example mini_program            # listens on 127.0.0.1:3000
//! PORT=8080 cargo run --example mini_program  # another port
//! ```
//!
//! A mini program's `dd.httpRequest` keeps no cookies, so the session travels as a token:
//! - `POST /auth/dingtalk/login` with `{"code": "..."}` answers `{"token", "expires_in",
//!   "expires_at", "user"}` (one call to DingTalk, once per code);
//! - `GET /api/me` with `Authorization: Bearer <token>`: no call to DingTalk;
//! - `POST /auth/dingtalk/login/refresh` with the token answers a new one, without DingTalk.
//! - `GET /dev/code?user=...` plays `dd.getAuthCode`: the fake DingTalk issues a code.
//!
//! The mini program's side:
//!
//! ```js
//! dd.getAuthCode({
//!   success: ({ authCode }) =>
//!     dd.httpRequest({
//!       url: "https://api.example.com/auth/dingtalk/login",
//!       method: "POST",
//!       headers: { "Content-Type": "application/json" },
//!       data: JSON.stringify({ code: authCode }),
//!       dataType: "json",
//!       success: ({ data }) => dd.setStorageSync({ key: "token", data: data.token }),
//!     }),
//! });
//! ```

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use tower_dingtalk_auth::testing::MockDingTalk;
use tower_dingtalk_auth::{
    AdminLevel, AuthenticatedDingTalkUser, ConfigError, DingTalkAuthLayer, SessionConfig,
    SessionKey,
};

/// Where the layer answers logins and refreshes.
pub const LOGIN_PATH: &str = "/auth/dingtalk/login";

async fn me(user: AuthenticatedDingTalkUser) -> Json<AuthenticatedDingTalkUser> {
    Json(user)
}

#[derive(serde::Deserialize)]
struct CodeFor {
    user: Option<String>,
}

/// Plays `dd.getAuthCode` for curl: a fresh code of `?user=` (default `staff1024`).
async fn code(State(dingtalk): State<Arc<MockDingTalk>>, Query(code): Query<CodeFor>) -> String {
    dingtalk.issue_code(code.user.as_deref().unwrap_or("staff1024"))
}

/// The application: the login endpoint and the API behind one layer, and the fake's code route.
pub fn app(dingtalk: Arc<MockDingTalk>, session: SessionConfig) -> Result<Router, ConfigError> {
    let auth = DingTalkAuthLayer::builder()
        .client(dingtalk.client_builder().build()?)
        .session(session)
        .token_login(LOGIN_PATH)
        .build()?;
    // `layer`, not `route_layer`, and last: the login path has no route of its own, the layer
    // answers it (a `merge` after `layer` would put an unlayered 404 in front of it).
    let api = Router::new().route("/api/me", get(me)).layer(auth);
    // The fake's code route needs no user: it stands outside, and everything else goes to `api`.
    Ok(Router::new()
        .route("/dev/code", get(code))
        .with_state(dingtalk)
        .fallback_service(api))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,tower_dingtalk_auth=debug".into()),
        )
        .init();
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3000);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));

    let dingtalk = Arc::new(MockDingTalk::start().await);
    dingtalk.add_user(AuthenticatedDingTalkUser::builder("staff1024", "Li Si").build());
    dingtalk.add_user(
        AuthenticatedDingTalkUser::builder("manager4220", "Zhang San")
            .admin_level(AdminLevel::SuperAdmin)
            .build(),
    );
    // In production: SessionKey::from_bytes(std::env::var("SESSION_SECRET")?)?, the same on
    // every replica.
    let app = app(dingtalk, SessionConfig::new(SessionKey::generate()))?;
    let listener = tokio::net::TcpListener::bind(addr).await?;

    let url = format!("http://{addr}");
    println!("\nA mini program's API at {url}, with a fake DingTalk. Play the mini program:\n");
    println!("  CODE=$(curl -s '{url}/dev/code?user=manager4220')          # dd.getAuthCode");
    println!(
        "  TOKEN=$(curl -s -X POST {url}{LOGIN_PATH} -H 'content-type: application/json' \
         -d \"{{\\\"code\\\": \\\"$CODE\\\"}}\" | sed 's/.*\"token\":\"\\([^\"]*\\)\".*/\\1/')"
    );
    println!(
        "  curl -s -H \"Authorization: Bearer $TOKEN\" {url}/api/me          # no DingTalk call"
    );
    println!(
        "  curl -s -X POST -H \"Authorization: Bearer $TOKEN\" {url}{LOGIN_PATH}/refresh   # a new token"
    );
    println!(
        "  curl -si -H \"Authorization: Bearer ${{TOKEN}}x\" {url}/api/me      # tampered: 401 invalid_token"
    );
    println!(
        "  curl -si -X POST {url}{LOGIN_PATH} -H 'content-type: application/json' \
         -d \"{{\\\"code\\\": \\\"$CODE\\\"}}\"   # the code again: 401 code_rejected\n"
    );
    println!("Ctrl-C stops the server.");
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}
