//! Where DingTalk is: its three hosts (the legacy oapi host, the new api host and the web
//! login's login host), each configurable for a fake DingTalk, a proxy or another region.

use super::builder::DingTalkClientBuilder;

impl DingTalkClientBuilder {
    /// Points every DingTalk host (oapi, api and the web login's login host) at one base URL,
    /// for a fake DingTalk or a proxy.
    pub fn base_url(self, url: impl Into<String>) -> Self {
        let url = url.into();
        self.oapi_base_url(url.clone())
            .api_base_url(url.clone())
            .login_base_url(url)
    }

    /// The host of DingTalk's web login page (QR code or account login), where browsers are
    /// sent by [`web_login`](crate::DingTalkAuthLayerBuilder::web_login). Default:
    /// [`DEFAULT_LOGIN_BASE_URL`](crate::DEFAULT_LOGIN_BASE_URL); tenants outside mainland China
    /// may have their own.
    pub fn login_base_url(mut self, url: impl Into<String>) -> Self {
        self.login_base_url = Some(url.into());
        self
    }

    /// The legacy host, which serves getuserinfo and the user-detail calls. Default:
    /// [`DEFAULT_OAPI_BASE_URL`](crate::DEFAULT_OAPI_BASE_URL).
    pub fn oapi_base_url(mut self, url: impl Into<String>) -> Self {
        self.oapi_base_url = Some(url.into());
        self
    }

    /// The new host, which serves access tokens and the web login's user token. Default:
    /// [`DEFAULT_API_BASE_URL`](crate::DEFAULT_API_BASE_URL).
    pub fn api_base_url(mut self, url: impl Into<String>) -> Self {
        self.api_base_url = Some(url.into());
        self
    }
}
