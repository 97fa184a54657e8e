//! [`Call`]: one request as the fake DingTalk reads it.

use serde_json::Value;

use super::fault::Endpoint;

/// One request as the fake DingTalk reads it.
pub(crate) struct Call {
    pub(crate) endpoint: Endpoint,
    /// The corp id in the path of `/v1.0/oauth2/{corpId}/token`.
    pub(crate) path_corp: Option<String>,
    pub(crate) query: Vec<(String, String)>,
    pub(crate) headers: http::HeaderMap,
    pub(crate) body: bytes::Bytes,
}

impl Call {
    pub(super) fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// A request header, when it is there and readable as text.
    pub(super) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    /// A field of the body, JSON or form-urlencoded alike.
    pub(super) fn field(&self, name: &str) -> Option<String> {
        if let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(&self.body) {
            return map.get(name).and_then(Value::as_str).map(str::to_owned);
        }
        form_urlencoded::parse(&self.body)
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
    }
}
