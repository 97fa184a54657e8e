//! Administrator-only routes with guards, against the built-in fake DingTalk.
//!
//! ```sh
//! cargo run --example admin            # listens on 127.0.0.1:3000
//! PORT=8080 cargo run --example admin  # another port
//! ```
//!
//! `/me` is for everybody signed in, `/admin/dashboard` for DingTalk administrators (the `sys`
//! flag), `/admin/billing` for the main administrator and the boss only. Each guard sits on its own
//! routes with `route_layer`, so a path that matches nothing is still a 404. It prints `curl`
//! commands with fresh codes for each kind of user.

use std::net::SocketAddr;

use axum::routing::get;
use axum::{Json, Router};
use tower_dingtalk_auth::testing::MockDingTalk;
use tower_dingtalk_auth::{
    AdminLevel, AuthenticatedDingTalkUser, DingTalkAuthLayer, DingTalkClient, guard,
};

async fn me(user: AuthenticatedDingTalkUser) -> Json<AuthenticatedDingTalkUser> {
    Json(user)
}

async fn dashboard(user: AuthenticatedDingTalkUser) -> String {
    format!("dashboard for {} ({:?})\n", user.name(), user.admin_level())
}

async fn billing(user: AuthenticatedDingTalkUser) -> String {
    format!("billing for {} ({:?})\n", user.name(), user.admin_level())
}

/// The routes, each group behind its guard, all behind the authentication `layer`.
pub fn app(layer: DingTalkAuthLayer) -> Router {
    let administrators = Router::new()
        .route("/admin/dashboard", get(dashboard))
        .route_layer(guard::require_admin());
    let owners = Router::new()
        .route("/admin/billing", get(billing))
        .route_layer(guard::require_level([
            AdminLevel::SuperAdmin,
            AdminLevel::Boss,
        ]));
    Router::new()
        .route("/me", get(me))
        .merge(administrators)
        .merge(owners)
        .route_layer(layer)
}

/// A fake DingTalk with one user of each kind: (userid, name, level).
pub const USERS: [(&str, &str, AdminLevel); 4] = [
    ("boss100", "Wang Wu", AdminLevel::Boss),
    ("manager4220", "Zhang San", AdminLevel::SuperAdmin),
    ("sub2", "Zhao Liu", AdminLevel::SubAdmin),
    ("staff1024", "Li Si", AdminLevel::Other),
];

pub async fn fake_dingtalk() -> MockDingTalk {
    let dingtalk = MockDingTalk::start().await;
    for (userid, name, level) in USERS {
        dingtalk.add_user(
            AuthenticatedDingTalkUser::builder(userid, name)
                .admin_level(level)
                .build(),
        );
    }
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
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3000);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));

    let dingtalk = fake_dingtalk().await;
    let client = DingTalkClient::builder()
        .internal_app(dingtalk.app_key(), dingtalk.app_secret())
        .base_url(dingtalk.base_url())
        .build()?;
    let layer = DingTalkAuthLayer::builder().client(client).build()?;
    let listener = tokio::net::TcpListener::bind(addr).await?;

    println!("\nGuarded routes at http://{addr}, with a fake DingTalk.\n");
    for (path, expect) in [
        (
            "/admin/dashboard",
            "administrators: 200 for the first three, 403 for Li Si",
        ),
        (
            "/admin/billing",
            "main administrator and boss: 200 for the first two, 403 for the others",
        ),
    ] {
        println!("{path}, {expect}:");
        for (userid, name, level) in USERS {
            println!(
                "  curl -si http://{addr}{path} -H 'X-DingTalk-Code: {}'   # {name}, {level:?}",
                dingtalk.issue_code(userid)
            );
        }
    }
    println!("No code (401), and a path that matches no route (404):");
    println!("  curl -si http://{addr}/admin/dashboard");
    println!("  curl -si http://{addr}/admin/nothing-here\n");
    println!("Ctrl-C stops the server.");

    // With the peer's address, the layer tells clients apart in its fair queue of new logins.
    axum::serve(
        listener,
        app(layer).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    drop(dingtalk);
    Ok(())
}
