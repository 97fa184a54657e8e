//! Logs without codes: [`RedactedSpan`], a span maker for tower-http's `TraceLayer` (feature
//! `tower-http`) that records the request's URI with the login's query parameters redacted.
//!
//! `TraceLayer::new_for_http()` records the whole URI in every request's span: a page that logs in
//! by `?code=...` writes the code to the logs, where anyone who reads them can replay it within
//! its reuse window. Use this span maker instead:
//!
//! ```
//! use axum::{Router, routing::get};
//! use tower_http::trace::TraceLayer;
//! use tower_dingtalk_auth::{DingTalkAuthLayer, trace::RedactedSpan};
//!
//! let auth = DingTalkAuthLayer::builder()
//!     .internal_app("APP_KEY", "APP_SECRET")
//!     .build()
//!     .unwrap();
//! let app: Router = Router::new()
//!     .route("/", get(|| async { "hello" }))
//!     .layer(auth.clone())
//!     // The layer's own code parameters, and `code`, `authCode` and `state`.
//!     .layer(TraceLayer::new_for_http().make_span_with(RedactedSpan::for_layer(&auth)));
//! # drop(app);
//! ```

use std::sync::Arc;

use http::Request;
use tracing::{Level, Span};

use crate::layer::DingTalkAuthLayer;

/// What a redacted parameter's value becomes.
const REDACTED: &str = "REDACTED";

/// The query parameters every `RedactedSpan` hides: DingTalk's codes (silent login's `code`, web
/// login's `authCode`) and the OAuth `state`.
pub const ALWAYS_REDACTED: [&str; 3] = ["code", "authCode", "state"];

/// A span maker for tower-http's `TraceLayer` that records the method, the URI with the values of
/// the login's query parameters replaced by `REDACTED`, and the HTTP version, like tower-http's
/// `DefaultMakeSpan` (at `DEBUG` unless [`level`](Self::level) says otherwise; no headers).
#[derive(Clone, Debug)]
pub struct RedactedSpan {
    names: Arc<[Box<str>]>,
    level: Level,
}

impl RedactedSpan {
    /// Redacts `code`, `authCode` and `state` ([`ALWAYS_REDACTED`]).
    pub fn new() -> Self {
        Self::with_params(std::iter::empty::<&str>())
    }

    /// Redacts those and the query parameters `layer` reads codes from.
    pub fn for_layer(layer: &DingTalkAuthLayer) -> Self {
        Self::with_params(layer.code_query_params())
    }

    /// Redacts [`ALWAYS_REDACTED`] and `names`.
    pub fn with_params<I, N>(names: I) -> Self
    where
        I: IntoIterator<Item = N>,
        N: AsRef<str>,
    {
        let mut all: Vec<Box<str>> = ALWAYS_REDACTED.iter().map(|name| (*name).into()).collect();
        for name in names {
            let name = name.as_ref();
            if !all.iter().any(|held| &**held == name) {
                all.push(name.into());
            }
        }
        Self {
            names: all.into(),
            level: Level::DEBUG,
        }
    }

    /// The span's level. Default: `DEBUG`, as tower-http's.
    pub fn level(mut self, level: Level) -> Self {
        self.level = level;
        self
    }

    /// `uri` as it is recorded: the values of the redacted parameters replaced, everything else as
    /// it was written.
    ///
    /// ```
    /// use tower_dingtalk_auth::trace::RedactedSpan;
    ///
    /// let uri = "/home?tab=2&code=4f6a9c&authCode=x&state=y".parse().unwrap();
    /// assert_eq!(
    ///     RedactedSpan::new().redact(&uri),
    ///     "/home?tab=2&code=REDACTED&authCode=REDACTED&state=REDACTED"
    /// );
    /// ```
    pub fn redact(&self, uri: &http::Uri) -> String {
        let path = uri.path();
        let Some(query) = uri.query() else {
            return path.to_owned();
        };
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| {
                let key = form_urlencoded::parse(pair.as_bytes())
                    .next()
                    .map(|(key, _)| key);
                match key {
                    Some(key) if self.names.iter().any(|name| **name == *key) => {
                        let raw_key = pair.split('=').next().unwrap_or_default();
                        format!("{raw_key}={REDACTED}")
                    }
                    _ => pair.to_owned(),
                }
            })
            .collect();
        format!("{path}?{}", pairs.join("&"))
    }

    fn span<B>(&self, request: &Request<B>) -> Span {
        let uri = self.redact(request.uri());
        let (method, version) = (request.method(), request.version());
        macro_rules! span {
            ($level:expr) => {
                tracing::span!($level, "request", %method, %uri, ?version)
            };
        }
        match self.level {
            Level::ERROR => span!(Level::ERROR),
            Level::WARN => span!(Level::WARN),
            Level::INFO => span!(Level::INFO),
            Level::DEBUG => span!(Level::DEBUG),
            Level::TRACE => span!(Level::TRACE),
        }
    }
}

impl Default for RedactedSpan {
    fn default() -> Self {
        Self::new()
    }
}

impl<B> tower_http::trace::MakeSpan<B> for RedactedSpan {
    fn make_span(&mut self, request: &Request<B>) -> Span {
        self.span(request)
    }
}
