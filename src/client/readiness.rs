//! [`Readiness`]: whether the client can sign users in now, for a readiness probe: an access token
//! held (or fetched now), and the shared store answering when there is one. Cheap enough to run
//! every few seconds: a held token costs no call, and the store gets one `PING`.

use super::DingTalkClient;

/// What [`DingTalkClient::readiness`] found. It holds no secret; with feature `axum` it is a
/// response: `200` (or `503` when not ready) with `{"ready", "token", "store"}` and
/// `Cache-Control: no-store`.
///
/// ```no_run
/// use axum::{Router, routing::get};
/// use tower_dingtalk_auth::DingTalkClient;
///
/// # fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let client = DingTalkClient::builder().internal_app("APP_KEY", "APP_SECRET").build()?;
/// let probe = client.clone();
/// let app: Router = Router::new()
///     .route("/ready", get(move || async move { probe.readiness().await }));
/// # drop((app, client));
/// # Ok(()) }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Readiness {
    /// Whether an access token is held or could be fetched now; `None` for third-party apps,
    /// whose tokens are per corp (see [`DingTalkClient::check_corp`]).
    pub token: Option<bool>,
    /// Whether the shared store answered a `PING` within its timeout; `None` without a store.
    /// While it is down the layer still serves (each replica alone), so a probe may choose to
    /// look at `token` only.
    pub store: Option<bool>,
}

impl Readiness {
    /// Whether nothing that is there is failing.
    pub fn is_ready(&self) -> bool {
        self.token != Some(false) && self.store != Some(false)
    }

    /// The status a probe answers: `200 OK` when ready, else `503 Service Unavailable`.
    pub fn status(&self) -> http::StatusCode {
        if self.is_ready() {
            http::StatusCode::OK
        } else {
            http::StatusCode::SERVICE_UNAVAILABLE
        }
    }

    /// The probe's JSON body: `{"ready": bool, "token": bool | null, "store": bool | null}`.
    pub fn to_json(&self) -> String {
        let show = |value: Option<bool>| match value {
            Some(true) => "true",
            Some(false) => "false",
            None => "null",
        };
        format!(
            r#"{{"ready":{},"token":{},"store":{}}}"#,
            self.is_ready(),
            show(self.token),
            show(self.store)
        )
    }
}

#[cfg(feature = "axum")]
impl axum_core::response::IntoResponse for Readiness {
    fn into_response(self) -> axum_core::response::Response {
        let mut response = axum_core::response::Response::new(self.to_json().into());
        *response.status_mut() = self.status();
        let headers = response.headers_mut();
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        headers.insert(
            http::header::CACHE_CONTROL,
            http::HeaderValue::from_static("no-store"),
        );
        response
    }
}

impl DingTalkClient {
    /// Whether the client can sign users in now, for a readiness probe: the app's access token is
    /// held or can be fetched within `upstream_timeout` (internal apps), and the shared store
    /// answers when there is one. Unlike [`check`](Self::check) it sends no call to getuserinfo.
    pub async fn readiness(&self) -> Readiness {
        let timeout = self.upstream_timeout();
        let token = async {
            match tokio::time::timeout(timeout, self.inner.app.held_or_fetched_token(self)).await {
                Ok(Some(token)) => Some(token.is_ok()),
                Ok(None) => None,
                Err(_elapsed) => Some(false),
            }
        };
        // Side by side: a probe's worst case is the slower of the two, not their sum.
        let store = async {
            match self.inner.identities.store() {
                Some(store) => Some(store.ping().await),
                None => None,
            }
        };
        let (token, store) = tokio::join!(token, store);
        Readiness { token, store }
    }
}
