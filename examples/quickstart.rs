//! The layer in front of a real axum server, against the built-in fake DingTalk.
//!
//! ```sh
//! cargo run --example quickstart            # listens on 127.0.0.1:3000
//! PORT=8080 cargo run --example quickstart  # another port
//! ```
//!
//! It prints `curl` commands with fresh codes for an administrator and an ordinary user. With
//! `DINGTALK_APP_KEY` and `DINGTALK_APP_SECRET` set it talks to the real DingTalk instead, and the
//! codes must come from a front end running inside the DingTalk client.

use std::net::SocketAddr;

use axum::routing::get;
use axum::{Json, Router};
use tower_dingtalk_auth::testing::MockDingTalk;
use tower_dingtalk_auth::{
    AdminLevel, AuthenticatedDingTalkUser, DingTalkAuthLayer, DingTalkClient,
};

/// Who is calling, as JSON.
async fn me(user: AuthenticatedDingTalkUser) -> Json<AuthenticatedDingTalkUser> {
    Json(user)
}

/// A greeting that does not need anybody in particular.
async fn hello(user: AuthenticatedDingTalkUser) -> String {
    let role = if user.is_admin() {
        "administrator"
    } else {
        "colleague"
    };
    format!("你好 {}, {role} ({:?})\n", user.name(), user.admin_level())
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

    let real = std::env::var("DINGTALK_APP_KEY")
        .ok()
        .zip(std::env::var("DINGTALK_APP_SECRET").ok());
    // Kept alive for as long as the server runs.
    let mut fake = None;
    let client = match real {
        Some((app_key, app_secret)) => DingTalkClient::builder()
            .internal_app(app_key, app_secret)
            .build()?,
        None => {
            let dingtalk = start_fake_dingtalk().await;
            let client = DingTalkClient::builder()
                .internal_app(dingtalk.app_key(), dingtalk.app_secret())
                .base_url(dingtalk.base_url())
                .build()?;
            fake = Some(dingtalk);
            client
        }
    };
    let layer = DingTalkAuthLayer::builder().client(client).build()?;

    let app = Router::new()
        .route("/me", get(me))
        .route("/hello", get(hello))
        .layer(layer);
    let listener = tokio::net::TcpListener::bind(addr).await?;

    match &fake {
        Some(dingtalk) => {
            println!(
                "\nThe layer is in front of http://{addr}, talking to a fake DingTalk at {}.",
                dingtalk.base_url()
            );
            println!(
                "Each code works once at DingTalk; the layer accepts it again for 30 s (its reuse window).\n"
            );
            println!("An administrator (Zhang San, super admin):");
            println!(
                "  curl -s http://{addr}/me -H 'X-DingTalk-Code: {}'",
                dingtalk.issue_code("manager4220")
            );
            println!("An ordinary user (Li Si), code in the query string:");
            println!(
                "  curl -s 'http://{addr}/hello?code={}'",
                dingtalk.issue_code("staff1024")
            );
            println!("No code at all (401):");
            println!("  curl -si http://{addr}/me");
            println!("A code DingTalk never issued (401):");
            println!("  curl -si http://{addr}/me -H 'X-DingTalk-Code: made-up-code'\n");
        }
        None => println!(
            "\nThe layer is in front of http://{addr}, talking to DingTalk. Send codes from the DingTalk client.\n"
        ),
    }
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
    drop(fake);
    Ok(())
}

async fn start_fake_dingtalk() -> MockDingTalk {
    let dingtalk = MockDingTalk::start().await;
    dingtalk.add_user(
        AuthenticatedDingTalkUser::builder("manager4220", "Zhang San")
            .unionid("gliiW002zUxxxx")
            .associated_unionid("N2o5U3axxxx")
            .device_id("12drtfxxxxx")
            .admin_level(AdminLevel::SuperAdmin)
            .build(),
    );
    dingtalk.add_user(
        AuthenticatedDingTalkUser::builder("staff1024", "Li Si")
            .unionid("Kp9sE00aQxxxx")
            .device_id("7fhwexxxxx")
            .build(),
    );
    dingtalk
}
