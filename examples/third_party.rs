//! A third-party enterprise app installed by two organisations, against the built-in fake DingTalk.
//!
//! ```sh
//! cargo run --example third_party            # listens on 127.0.0.1:3000
//! PORT=8080 cargo run --example third_party  # another port
//! ```
//!
//! Each corp has its own users (both have a `u1`) and its own access token. The printed `curl`
//! commands send a code with the corp id it was issued in; a code sent with the other corp's id, or
//! a corp that never installed the app, gets a 401 without any call to DingTalk.

use std::net::SocketAddr;

use axum::routing::get;
use axum::{Json, Router};
use tower_dingtalk_auth::testing::MockDingTalk;
use tower_dingtalk_auth::{
    AdminLevel, AuthenticatedDingTalkUser, DingTalkAuthLayer, DingTalkClient,
};

const NORTH: &str = "dingnorth0001";
const SOUTH: &str = "dingsouth0002";

async fn me(user: AuthenticatedDingTalkUser) -> Json<AuthenticatedDingTalkUser> {
    Json(user)
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

    let dingtalk = MockDingTalk::start().await;
    for (corp, name, level) in [
        (NORTH, "Zhang San of North", AdminLevel::SuperAdmin),
        (SOUTH, "Li Si of South", AdminLevel::Other),
    ] {
        dingtalk.add_corp(corp);
        dingtalk.add_corp_user(
            corp,
            AuthenticatedDingTalkUser::builder("u1", name)
                .admin_level(level)
                .build(),
        );
    }

    let client = DingTalkClient::builder()
        .third_party_app(dingtalk.suite_key(), dingtalk.suite_secret())
        .base_url(dingtalk.base_url())
        .build()?;
    let layer = DingTalkAuthLayer::builder()
        .client(client)
        // In production: the corps from your install callbacks, or a `CorpDirectory` over your
        // database.
        .authorized_corps([NORTH, SOUTH])
        .build()?;
    let app = Router::new().route("/me", get(me)).layer(layer);
    let listener = tokio::net::TcpListener::bind(addr).await?;

    let north_code = dingtalk.issue_corp_code(NORTH, "u1");
    println!("\nA third-party app at http://{addr}, installed by {NORTH} and {SOUTH}.\n");
    println!("u1 of {NORTH}:");
    println!(
        "  curl -s http://{addr}/me -H 'X-DingTalk-Code: {north_code}' -H 'X-DingTalk-Corp-Id: {NORTH}'"
    );
    println!("u1 of {SOUTH}, corp id in the query string:");
    println!(
        "  curl -s 'http://{addr}/me?code={}&corpId={SOUTH}'",
        dingtalk.issue_corp_code(SOUTH, "u1")
    );
    println!("A {SOUTH} code sent as if from {NORTH} (401 code_rejected):");
    println!(
        "  curl -si http://{addr}/me -H 'X-DingTalk-Code: {}' -H 'X-DingTalk-Corp-Id: {NORTH}'",
        dingtalk.issue_corp_code(SOUTH, "u1")
    );
    println!("A corp that never installed the app (401 corp_not_authorized, no call to DingTalk):");
    println!(
        "  curl -si http://{addr}/me -H 'X-DingTalk-Code: any-code-123' -H 'X-DingTalk-Corp-Id: dingother0003'"
    );
    println!("A code without its corp id (401 missing_corp_id):");
    println!("  curl -si http://{addr}/me -H 'X-DingTalk-Code: any-code-123'\n");
    println!("Ctrl-C stops the server.");

    // With the peer's address, the layer tells clients apart in its fair queue of new logins.
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    drop(dingtalk);
    Ok(())
}
