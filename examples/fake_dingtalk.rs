//! The fake DingTalk (`MockDingTalk`) as a process of its own: for apps in other processes (the
//! `replica` example, `tests/balancer.rs`) and for front-end developers who need codes without the
//! DingTalk client.
//!
//! ```sh
//! cargo run --example fake_dingtalk --features testing -- --port 9000   # 0: a free port
//! ```
//!
//! Its first line is `fake DingTalk at http://127.0.0.1:PORT`; then it prints the settings an app
//! needs and how to get codes over HTTP (see `CONTROL_PREFIX` in the crate's `testing` module).
//! It runs until Ctrl-C or a signal ends it.

use tower_dingtalk_auth::testing::{CONTROL_PREFIX, MockDingTalk};
use tower_dingtalk_auth::{AdminLevel, AuthenticatedDingTalkUser};

/// The port the fake listens on when `--port` is not given.
const DEFAULT_PORT: u16 = 9000;

/// `--port N` (or `--port=N`) from the arguments; `Err` says what is wrong.
fn port(mut args: impl Iterator<Item = String>) -> Result<u16, String> {
    let mut port = DEFAULT_PORT;
    while let Some(arg) = args.next() {
        let value = match arg.strip_prefix("--port") {
            Some("") => args.next().ok_or("--port needs a number")?,
            Some(rest) if rest.starts_with('=') => rest[1..].to_owned(),
            _ => {
                return Err(format!(
                    "unknown argument `{arg}`; usage: fake_dingtalk [--port N]"
                ));
            }
        };
        port = value
            .parse()
            .map_err(|_| format!("--port takes 0 to 65535, not `{value}`"))?;
    }
    Ok(port)
}

/// What the fake knows at start: two employees, one of them an administrator.
fn demo_users() -> [AuthenticatedDingTalkUser; 2] {
    [
        AuthenticatedDingTalkUser::builder("staff1024", "Li Si").build(),
        AuthenticatedDingTalkUser::builder("manager4220", "Zhang San")
            .admin_level(AdminLevel::SuperAdmin)
            .build(),
    ]
}

/// The lines `main` prints, for a fake at `url` with this app key and secret.
fn usage(url: &str, app_key: &str, app_secret: &str) -> String {
    let control = format!("{url}{CONTROL_PREFIX}");
    format!(
        "fake DingTalk at {url}\n\
         \n\
         Point your app at it (the replica example reads these):\n\
         \x20 DINGTALK_BASE_URL={url}\n\
         \x20 DINGTALK_APP_KEY={app_key}\n\
         \x20 DINGTALK_APP_SECRET={app_secret}\n\
         \n\
         Users: staff1024 (Li Si), manager4220 (Zhang San, super admin). Over HTTP:\n\
         \x20 curl -X POST '{control}codes?userid=staff1024'            # a fresh one-time code (text)\n\
         \x20 curl -X POST '{control}users?userid=alice&name=Alice'     # add a user\n\
         \x20 curl {control}calls                                      # calls per endpoint (JSON)\n\
         From a page on any origin: await (await fetch('{control}codes?userid=staff1024', \
         {{method: 'POST'}})).text()\n\
         In a page written for DingTalk's JSAPI, load {url}/jsapi/dingtalk.js: dd.runtime.permission.\
         requestAuthCode gets codes for staff1024.\n\
         Ctrl-C stops it.\n"
    )
}

#[tokio::main]
async fn main() {
    let port = match port(std::env::args().skip(1)) {
        Ok(port) => port,
        Err(why) => {
            eprintln!("{why}");
            std::process::exit(2);
        }
    };
    let mut builder = MockDingTalk::builder().port(port);
    for user in demo_users() {
        builder = builder.user(user);
    }
    let dingtalk = builder.start().await;
    dingtalk.set_jsapi_user(Some("staff1024"));
    // Line by line: whoever started it reads the first line for the URL.
    print!(
        "{}",
        usage(
            &dingtalk.base_url(),
            &dingtalk.app_key(),
            &dingtalk.app_secret()
        )
    );
    // The fake serves on its own task until the process ends.
    let _ = tokio::signal::ctrl_c().await;
}
