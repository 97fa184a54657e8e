//! Pages with sessions: the code once, then the cookie; against the built-in fake DingTalk.
//!
//! ```sh
//! cargo run --example sessions            # listens on 127.0.0.1:3000
//! PORT=8080 cargo run --example sessions  # another port
//! ```
//!
//! - `GET /`, a page: without a code or a session it redirects (302) to `/login`. The real login
//!   page runs DingTalk's JSAPI and comes back with a code (see [`login`]); the fake one here
//!   issues a code itself and sends the browser back to `/?code=...`. The layer exchanges the code
//!   once and answers with an encrypted session cookie; from then on the cookie alone signs in.
//! - `GET /api/me`, an API: the same layer and session, but 401 instead of a redirect: only page
//!   requests (a `GET` asking for `text/html`) are redirected.
//! - `POST /sign-out` clears the cookie.
//!
//! With curl and a cookie jar:
//!
//! ```sh
//! curl -sL -c jar -b jar -H 'accept: text/html' http://127.0.0.1:3000/   # 302 /login, 302 /?code=..., 303 /, 200
//! curl -s -b jar http://127.0.0.1:3000/api/me                    # the cookie alone, no DingTalk call
//! curl -s -b jar -c jar -X POST http://127.0.0.1:3000/sign-out   # clears the cookie
//! curl -si -b jar http://127.0.0.1:3000/api/me                   # 401 again
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::header::SET_COOKIE;
use axum::response::{Html, Redirect};
use axum::routing::{get, post};
use axum::{Json, Router};
use tower_dingtalk_auth::testing::MockDingTalk;
use tower_dingtalk_auth::{
    AdminLevel, AuthenticatedDingTalkUser, ConfigError, DingTalkAuthLayer, DingTalkClient,
    SessionConfig, SessionKey,
};

async fn home(user: AuthenticatedDingTalkUser) -> Html<String> {
    Html(format!(
        "<h1>你好 {}</h1><form method=post action=/sign-out><button>Sign out</button></form>\n",
        user.name()
    ))
}

async fn me(user: AuthenticatedDingTalkUser) -> Json<AuthenticatedDingTalkUser> {
    Json(user)
}

#[derive(serde::Deserialize)]
struct LoginAs {
    user: Option<String>,
    /// Where the browser was going: the layer puts it in the login page's URL.
    next: Option<String>,
}

/// The fake login page: issues a code for `?user=` (default `staff1024`) and sends the browser
/// back with it and `next`, as the real page does after DingTalk's JSAPI answered:
///
/// ```html
/// <script src="https://g.alicdn.com/dingding/dingtalk-jsapi/3.0.25/dingtalk.open.js"></script>
/// <script>
///   const query = new URLSearchParams(location.search); // ?corpId=...&next=...
///   dd.runtime.permission.requestAuthCode({
///     corpId: query.get("corpId"),
///     onSuccess: (result) => {
///       query.set("code", result.code);
///       location.replace("/?" + query); // the layer answers 303 to `next`, with the cookie
///     },
///   });
/// </script>
/// ```
async fn login(
    State(dingtalk): State<Arc<MockDingTalk>>,
    Query(login): Query<LoginAs>,
) -> Redirect {
    let userid = login.user.as_deref().unwrap_or("staff1024");
    let mut back = form_urlencoded::Serializer::new(String::new());
    back.append_pair("code", &dingtalk.issue_code(userid));
    if let Some(next) = &login.next {
        back.append_pair("next", next);
    }
    Redirect::to(&format!("/?{}", back.finish()))
}

/// The whole application: pages that redirect to the login page, an API that answers 401, both
/// reading the same session, and the sign-out and login routes that need no user.
pub fn app(dingtalk: Arc<MockDingTalk>, session: SessionConfig) -> Result<Router, ConfigError> {
    let client = DingTalkClient::builder()
        .internal_app(dingtalk.app_key(), dingtalk.app_secret())
        .base_url(dingtalk.base_url())
        .build()?;
    // One layer for pages and API: a page navigation without a session is sent to the login page,
    // the page's API calls get a 401 they can act on.
    let auth = DingTalkAuthLayer::builder()
        .client(client)
        .session(session)
        .redirect_when_missing("/login")
        .build()?;
    // The layer's own sessions: what it issues, reads and clears.
    let sign_out = auth.sessions().expect("sessions").sign_out_cookie();

    let sign_out = move || async move { ([(SET_COOKIE, sign_out)], Redirect::to("/")) };
    let app = Router::new()
        .route("/", get(home))
        .route("/api/me", get(me))
        .route_layer(auth) // the routes above; sign-out and the login page need no user
        .route("/sign-out", post(sign_out))
        .route("/login", get(login))
        .with_state(dingtalk);
    Ok(app)
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
    // In production: the same secret on every replica, from your secret store, e.g.
    // SessionKey::from_bytes(std::env::var("SESSION_SECRET")?)?; and keep `secure` on (HTTPS).
    let session = SessionConfig::new(SessionKey::generate())
        .lifetime(Duration::from_secs(8 * 60 * 60))
        .secure(false);
    let app = app(dingtalk.clone(), session)?;
    let listener = tokio::net::TcpListener::bind(addr).await?;

    println!("\nPages with sessions at http://{addr}, with a fake DingTalk.\n");
    println!("Sign in once (the redirects go through the fake login page), then the cookie:");
    println!(
        "  curl -sL -c /tmp/dingtalk-jar -b /tmp/dingtalk-jar -H 'accept: text/html' http://{addr}/"
    );
    println!("  curl -s -b /tmp/dingtalk-jar http://{addr}/api/me");
    println!("As the administrator instead:");
    println!(
        "  curl -sL -c /tmp/dingtalk-jar -b /tmp/dingtalk-jar 'http://{addr}/login?user=manager4220'"
    );
    println!("Sign out, and the API answers 401, the page 302:");
    println!("  curl -s -b /tmp/dingtalk-jar -c /tmp/dingtalk-jar -X POST http://{addr}/sign-out");
    println!("  curl -si -b /tmp/dingtalk-jar http://{addr}/api/me");
    println!("  curl -si -b /tmp/dingtalk-jar -H 'accept: text/html' http://{addr}/\n");
    println!("Or open http://{addr}/ in a browser. Ctrl-C stops the server.");

    // With the peer's address, the layer tells clients apart in its fair queue of new logins.
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}
