//! The build without a TLS stack (`cargo test --lib --no-default-features`, run by `.ci/run`):
//! https base URLs are refused when the client is built.

use super::DingTalkClient;
use crate::config_error::ConfigError;

#[test]
fn an_https_base_url_is_refused_when_built_and_http_or_a_client_of_ones_own_is_not() {
    let app = || DingTalkClient::builder().internal_app("key", "secret");
    let error = app().build().unwrap_err();
    assert!(
        matches!(
            error,
            ConfigError::NoTls {
                name: "oapi_base_url"
            }
        ),
        "{error}"
    );
    let mixed = app()
        .base_url("http://127.0.0.1:1")
        .api_base_url("https://api.example");
    let error = mixed.build().unwrap_err();
    assert!(
        matches!(
            error,
            ConfigError::NoTls {
                name: "api_base_url"
            }
        ),
        "{error}"
    );
    assert!(app().base_url("http://127.0.0.1:1").build().is_ok());
    let own = reqwest::Client::new();
    assert!(app().http_client(own).build().is_ok());
}
