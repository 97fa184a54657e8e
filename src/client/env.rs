//! [`DingTalkClientBuilder::from_env`]: an internal app's client configured from `DINGTALK_*`
//! environment variables.

use super::builder::DingTalkClientBuilder;
use crate::config_error::ConfigError;

impl DingTalkClientBuilder {
    /// A builder for an internal app configured from the environment: `DINGTALK_APP_KEY` and
    /// `DINGTALK_APP_SECRET` (required), and where set `DINGTALK_BASE_URL` (both hosts),
    /// `DINGTALK_OAPI_BASE_URL` and `DINGTALK_API_BASE_URL`. Any other setting can follow.
    /// A missing variable is [`ConfigError::MissingEnvVar`], naming it.
    ///
    /// ```no_run
    /// use tower_dingtalk_auth::{DingTalkAuthLayer, DingTalkClientBuilder};
    ///
    /// # fn run() -> Result<(), tower_dingtalk_auth::ConfigError> {
    /// let client = DingTalkClientBuilder::from_env()?.rate_limit(10).build()?;
    /// let layer = DingTalkAuthLayer::builder().client(client).build()?;
    /// # drop(layer);
    /// # Ok(()) }
    /// ```
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// [`from_env`](Self::from_env) with the variables looked up by `var`.
    fn from_vars(var: impl Fn(&'static str) -> Option<String>) -> Result<Self, ConfigError> {
        let required = |name| var(name).ok_or(ConfigError::MissingEnvVar { name });
        let mut builder = DingTalkClientBuilder::default().internal_app(
            required("DINGTALK_APP_KEY")?,
            required("DINGTALK_APP_SECRET")?,
        );
        if let Some(url) = var("DINGTALK_BASE_URL") {
            builder = builder.base_url(url);
        }
        if let Some(url) = var("DINGTALK_OAPI_BASE_URL") {
            builder = builder.oapi_base_url(url);
        }
        if let Some(url) = var("DINGTALK_API_BASE_URL") {
            builder = builder.api_base_url(url);
        }
        Ok(builder)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_names_what_is_missing() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &'static str| {
                vars.iter()
                    .find(|(key, _)| *key == name)
                    .map(|(_, value)| (*value).to_owned())
            }
        };
        let missing = DingTalkClientBuilder::from_vars(env(&[("DINGTALK_APP_KEY", "key")]));
        assert!(matches!(
            missing,
            Err(ConfigError::MissingEnvVar {
                name: "DINGTALK_APP_SECRET"
            })
        ));
        let client = DingTalkClientBuilder::from_vars(env(&[
            ("DINGTALK_APP_KEY", "key"),
            ("DINGTALK_APP_SECRET", "secret"),
            ("DINGTALK_BASE_URL", "http://127.0.0.1:9"),
        ]))
        .unwrap()
        .build()
        .unwrap();
        assert_eq!(client.app_key(), "key");
        assert!(format!("{client:?}").contains("127.0.0.1:9"));
    }
}
