//! One internal app, the way a team ships it: pages with a session cookie and a login page, their
//! JSON API, a mini program's bearer tokens, administrator pages, a public health check and
//! sign-out, behind one layer on `route_layer` (unknown paths stay 404), against the built-in
//! fake DingTalk.
//!
//! ```sh
//! cargo run --example workbench            # listens on 127.0.0.1:3000
//! PORT=8080 cargo run --example workbench  # another port
//! ```
//!
//! It prints a `curl` session that walks every part; `tests/examples.rs` runs those very lines.
//!
//! | route | who | what |
//! | --- | --- | --- |
//! | `GET /health` | anyone | `ok` |
//! | `GET /`, `GET /admin/users` | signed in (administrators for `/admin`) | pages: without a session, 302 to `/login?next=...` |
//! | `GET /api/me` | signed in: cookie, bearer token or code | the user as JSON; 401 instead of a redirect |
//! | `POST /auth/login`, `POST /auth/login/refresh` | mini programs | a code for a bearer token; a new token |
//! | `POST /sign-out` | anyone | clears the session cookie |
//! | `GET /login`, `GET /dev/code` | the fake DingTalk's side | the login page (issues a code and goes back to `next`), `dd.getAuthCode` |

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
    AdminLevel, AuthenticatedDingTalkUser, ClientKey, ConfigError, DingTalkAuthLayer,
    DingTalkClient, SessionConfig, SessionKey, guard,
};

/// Where the mini program logs in.
pub const LOGIN_PATH: &str = "/auth/login";

async fn home(user: AuthenticatedDingTalkUser) -> Html<String> {
    Html(format!("<h1>Workbench</h1><p>你好 {}</p>\n", user.name()))
}

async fn users(user: AuthenticatedDingTalkUser, Query(page): Query<Page>) -> Html<String> {
    let tab = page.tab.unwrap_or(1);
    Html(format!(
        "<h1>Users, tab {tab}</h1><p>for {}</p>\n",
        user.name()
    ))
}

#[derive(serde::Deserialize)]
struct Page {
    tab: Option<u32>,
}

async fn me(user: AuthenticatedDingTalkUser) -> Json<AuthenticatedDingTalkUser> {
    Json(user)
}

#[derive(serde::Deserialize)]
struct LoginAs {
    user: Option<String>,
    next: Option<String>,
    #[serde(rename = "corpId")]
    corp_id: Option<String>,
}

/// The fake login page. The real one runs DingTalk's JSAPI for a code and goes back with the
/// code and `next` (see the `sessions` example); this one issues a code for `?user=` itself.
async fn login(
    State(dingtalk): State<Arc<MockDingTalk>>,
    Query(login): Query<LoginAs>,
) -> Redirect {
    let userid = login.user.as_deref().unwrap_or("staff1024");
    let mut back = form_urlencoded::Serializer::new(String::new());
    back.append_pair("code", &dingtalk.issue_code(userid));
    for (name, value) in [("next", &login.next), ("corpId", &login.corp_id)] {
        if let Some(value) = value {
            back.append_pair(name, value);
        }
    }
    Redirect::to(&format!("/?{}", back.finish()))
}

/// `dd.getAuthCode`, played by the fake: a fresh code for `?user=`.
async fn code(State(dingtalk): State<Arc<MockDingTalk>>, Query(login): Query<LoginAs>) -> String {
    dingtalk.issue_code(login.user.as_deref().unwrap_or("staff1024"))
}

/// The whole app: one layer on the routes that need a user, its login endpoints beside them, and
/// the public routes outside.
pub fn app(dingtalk: Arc<MockDingTalk>, session: SessionConfig) -> Result<Router, ConfigError> {
    let client = DingTalkClient::builder()
        .internal_app(dingtalk.app_key(), dingtalk.app_secret())
        .base_url(dingtalk.base_url())
        .build()?;
    let auth = DingTalkAuthLayer::builder()
        .client(client)
        .session(session)
        // Pages go to the login page, with where they were going in `next`.
        .redirect_when_missing("/login")
        .token_login(LOGIN_PATH)
        // The peer's address; behind nginx, ClientKey::forwarded_for(1) instead.
        .client_key_from(ClientKey::peer())
        .build()?;
    let sign_out = auth.sessions().expect("sessions").sign_out_cookie();

    let admin = Router::new()
        .route("/admin/users", get(users))
        .route_layer(guard::require_admin());
    let signed_in = Router::new()
        .route("/", get(home))
        .route("/api/me", get(me))
        .merge(admin)
        .route_layer(auth.clone());
    let public = Router::new()
        .route("/health", get(|| async { "ok\n" }))
        .route(
            "/sign-out",
            post(move || async move { ([(SET_COOKIE, sign_out)], Redirect::to("/")) }),
        )
        .route("/login", get(login))
        .route("/dev/code", get(code))
        .with_state(dingtalk);
    Ok(signed_in.merge(auth.login_routes()).merge(public))
}

/// One step of the printed walk-through: what it shows, the shell line, and what it prints.
pub struct Step {
    pub says: &'static str,
    pub command: String,
    pub prints: String,
}

/// The walk-through `main` prints, for a server at `addr` and a cookie jar at `jar`.
pub fn walkthrough(addr: SocketAddr, jar: &str) -> Vec<Step> {
    let base = format!("http://{addr}");
    let step = |says, command: String, prints: &str| Step {
        says,
        command,
        prints: prints.to_owned(),
    };
    let status = "-s -o /dev/null -w '%{http_code}\\n'";
    vec![
        step("A public route", format!("curl -s {base}/health"), "ok"),
        step(
            "An unknown path stays 404",
            format!("curl {status} {base}/nope"),
            "404",
        ),
        step(
            "A page without a session goes to the login page, keeping where it was going",
            format!(
                "curl -s -o /dev/null -w '%{{http_code}} %{{redirect_url}}\\n' -H 'accept: text/html' '{base}/admin/users?tab=2'"
            ),
            &format!("302 {base}/login?next=%2Fadmin%2Fusers%3Ftab%3D2"),
        ),
        step(
            "The login page signs the administrator in and goes back there",
            format!(
                "curl -sL -c {jar} -b {jar} -H 'accept: text/html' '{base}/login?user=manager4220&next=%2Fadmin%2Fusers%3Ftab%3D2'"
            ),
            "<h1>Users, tab 2</h1><p>for Zhang San</p>",
        ),
        step(
            "The page's API with the cookie alone",
            format!("curl -s -b {jar} {base}/api/me"),
            r#"{"userid":"manager4220","name":"Zhang San","unionid":"","device_id":"","is_admin":true,"admin_level":1,"login_method":"session"}"#,
        ),
        step(
            "The API without a session: 401, not a redirect",
            format!("curl {status} {base}/api/me"),
            "401",
        ),
        step(
            "A mini program: dd.getAuthCode, then a code for a bearer token",
            format!(
                "TOKEN=$(curl -s -X POST -H 'content-type: application/json' -d \"{{\\\"code\\\": \\\"$(curl -s '{base}/dev/code?user=staff1024')\\\"}}\" {base}{LOGIN_PATH} | grep -o '\"token\":\"[^\"]*' | cut -d'\"' -f4); echo \"token ${{TOKEN:+received}}\""
            ),
            "token received",
        ),
        step(
            "The API with the token",
            format!("curl -s -H \"authorization: Bearer $TOKEN\" {base}/api/me"),
            r#"{"userid":"staff1024","name":"Li Si","unionid":"","device_id":"","is_admin":false,"admin_level":0,"login_method":"token"}"#,
        ),
        step(
            "An administrator page refuses the ordinary user",
            format!("curl {status} -H \"authorization: Bearer $TOKEN\" {base}/admin/users"),
            "403",
        ),
        step(
            "A new token without DingTalk",
            format!(
                "curl {status} -X POST -H \"authorization: Bearer $TOKEN\" {base}{LOGIN_PATH}/refresh"
            ),
            "200",
        ),
        step(
            "Sign out, and the cookie no longer signs in",
            format!(
                "curl {status} -b {jar} -c {jar} -X POST {base}/sign-out; curl {status} -b {jar} {base}/api/me"
            ),
            "303\n401",
        ),
    ]
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,tower_dingtalk_auth=info".into()),
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
    // In production: the same secret on every replica, from your secret store, and `secure` on.
    let session = SessionConfig::new(SessionKey::generate())
        .lifetime(Duration::from_secs(8 * 60 * 60))
        .secure(false);
    let app = app(dingtalk, session)?;
    let listener = tokio::net::TcpListener::bind(addr).await?;

    println!("\nThe workbench at http://{addr}, with a fake DingTalk. In a shell:\n");
    for step in walkthrough(addr, "/tmp/workbench-jar") {
        println!("# {}", step.says);
        println!("{}", step.command);
        if !step.prints.is_empty() {
            for line in step.prints.lines() {
                println!("#   -> {line}");
            }
        }
        println!();
    }
    println!("Or open http://{addr}/admin/users in a browser. Ctrl-C stops the server.");

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
