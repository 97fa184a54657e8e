//! One app, pages and an API, signed in two ways with one user type: by silent login inside the
//! DingTalk client (the JSAPI gives the login page a code), and by DingTalk's web login (a QR code
//! or an account login) in any other browser; against the built-in fake DingTalk.
//!
//! ```sh
//! cargo run --example web_app            # listens on 127.0.0.1:3000
//! PORT=8080 cargo run --example web_app  # another port
//! ```
//!
//! | route | who | what |
//! | --- | --- | --- |
//! | `GET /`, `GET /reports` | signed in | pages: without a session, a browser goes to DingTalk's login page, the DingTalk client to `/login` |
//! | `GET /api/me` | signed in | the user as JSON; 401 instead of a redirect |
//! | `GET /auth/dingtalk/callback` | DingTalk's browser coming back | answered by the layer: the session, then the page first asked for |
//! | `GET /login` | the DingTalk client | the JSAPI login page: a code, then back to the page with it |
//! | `POST /sign-out` | anyone | clears the session cookie |
//!
//! It prints what to open in a browser, and how to see the DingTalk client's side with curl.
//! `tests/browser.rs` drives this very app in headless Chromium.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header::SET_COOKIE;
use axum::response::{Html, IntoResponse};
use axum::routing::{get, post};
use axum::{Json, Router};
use tower_dingtalk_auth::testing::MockDingTalk;
use tower_dingtalk_auth::{
    AdminLevel, AuthenticatedDingTalkUser, ConfigError, DingTalkAuthLayer, SessionConfig,
    SessionKey, Sessions,
};

/// Where DingTalk's web login comes back (registered in DingTalk's developer console).
pub const CALLBACK: &str = "/auth/dingtalk/callback";

/// What the pages need besides the layer.
#[derive(Clone)]
struct AppState {
    sessions: Sessions,
    /// The JSAPI script: DingTalk's real one in production, the fake's shim here.
    jsapi_script: Arc<str>,
}

async fn home(user: AuthenticatedDingTalkUser) -> Html<String> {
    Html(format!(
        "<!doctype html><meta charset=utf-8><title>Home</title>\
         <h1 id=greeting>你好 {name}</h1>\
         <p>userid <span id=userid>{userid}</span>, signed in by <span id=method>{method}</span></p>\
         <p><a href=/reports>Reports</a> · <a href=/api/me>/api/me</a></p>\
         <form method=post action=/sign-out><button id=sign-out>Sign out</button></form>\n",
        name = escape(user.name()),
        userid = escape(user.userid()),
        method = user.login_method().as_str(),
    ))
}

async fn reports(user: AuthenticatedDingTalkUser) -> Html<String> {
    Html(format!(
        "<!doctype html><meta charset=utf-8><title>Reports</title>\
         <h1 id=greeting>Reports for {}</h1>\n",
        escape(user.name())
    ))
}

async fn me(user: AuthenticatedDingTalkUser) -> Json<AuthenticatedDingTalkUser> {
    Json(user)
}

/// The login page inside the DingTalk client, written for DingTalk's real JSAPI: it asks for a
/// code and goes back to the page it came from with it (`next`, which the layer put in the URL);
/// the layer exchanges the code, sets the session and sends the browser on, without the code.
async fn login(State(state): State<AppState>) -> Html<String> {
    Html(format!(
        r#"<!doctype html><meta charset=utf-8><title>Signing in</title>
<p id=status>Signing in with DingTalk…</p>
<script src="{script}"></script>
<script>
  const query = new URLSearchParams(location.search);
  const next = query.get("next") || "/";
  dd.ready(() => dd.runtime.permission.requestAuthCode({{
    corpId: query.get("corpId") || "",
    onSuccess: (result) => location.replace(
      "/?code=" + encodeURIComponent(result.code) + "&next=" + encodeURIComponent(next)),
    onFail: (error) => {{
      document.getElementById("status").textContent = "DingTalk said: " + error.errorMessage;
    }},
  }}));
</script>
"#,
        script = escape(&state.jsapi_script),
    ))
}

async fn sign_out(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(SET_COOKIE, state.sessions.sign_out_cookie())],
        Html(
            "<!doctype html><meta charset=utf-8><title>Signed out</title>\
             <h1 id=signed-out>Signed out</h1><p><a id=again href=/>Sign in again</a></p>\n",
        ),
    )
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The app: pages and API behind one layer on `route_layer`, the layer's login routes (the web
/// login's callback) beside them, and the public login and sign-out pages.
pub fn app(dingtalk: &MockDingTalk, session: SessionConfig) -> Result<Router, ConfigError> {
    let layer = DingTalkAuthLayer::builder()
        // In production: `DingTalkClient::builder().internal_app(..).corp_id("ding...")`; with a
        // corp id, DingTalk's login page offers only your organisation's accounts.
        .client(dingtalk.client_builder().build()?)
        .session(session)
        .web_login(CALLBACK)
        .redirect_when_missing("/login")
        .build()?;
    let state = AppState {
        sessions: layer.sessions().expect("the layer has sessions"),
        jsapi_script: dingtalk.jsapi_script_url().into(),
    };
    let pages = Router::new()
        .route("/", get(home))
        .route("/reports", get(reports))
        .route("/api/me", get(me))
        .route_layer(layer.clone());
    let public = Router::new()
        .route("/login", get(login))
        .route("/sign-out", post(sign_out))
        .with_state(state);
    Ok(pages.merge(layer.login_routes()).merge(public))
}

/// A fake DingTalk with an employee, an administrator and an outsider; the DingTalk client's
/// JSAPI signs in as the employee.
pub async fn fake_dingtalk() -> MockDingTalk {
    let dingtalk = MockDingTalk::start().await;
    dingtalk.add_user(
        AuthenticatedDingTalkUser::builder("staff01", "Li Si")
            .unionid("union-staff01")
            .build(),
    );
    dingtalk.add_user(
        AuthenticatedDingTalkUser::builder("super01", "Zhang San")
            .unionid("union-super01")
            .admin_level(AdminLevel::SuperAdmin)
            .build(),
    );
    dingtalk.add_outsider("union-eve", "Eve (not an employee)");
    dingtalk.set_jsapi_user(Some("staff01"));
    dingtalk
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,tower_dingtalk_auth=debug".into()),
        )
        .init();
    let dingtalk = fake_dingtalk().await;
    // Plain http on this machine: the cookie cannot be `Secure`, nor `__Host-`.
    let session = SessionConfig::new(SessionKey::generate()).secure(false);
    let app = app(&dingtalk, session)?;
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3000);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!(
        "web_app on http://{addr}/ (fake DingTalk on {})",
        dingtalk.base_url()
    );
    println!();
    println!(
        "In a browser: open http://{addr}/ → DingTalk's (fake) login page → Approve an account:"
    );
    println!("  Li Si or Zhang San are signed in and sent back to the page; Eve is refused (403).");
    println!(
        "Inside the DingTalk client (its User-Agent says DingTalk), pages go to /login, whose"
    );
    println!("JSAPI (the fake's shim here) signs in Li Si without a click. With curl:");
    println!("  curl -si -H 'accept: text/html' http://{addr}/reports");
    println!(
        "      # 302 to {}?...&state=... with the state cookie",
        dingtalk.login_page_url()
    );
    println!(
        "  curl -si -H 'accept: text/html' -A 'Mozilla/5.0 DingTalk/7.6.0' http://{addr}/reports"
    );
    println!("      # 302 /login?next=%2Freports: the JSAPI page");
    println!("  curl -si http://{addr}/api/me");
    println!("      # 401 missing_code: an API is never redirected");
    axum::serve(listener, app).await?;
    Ok(())
}
