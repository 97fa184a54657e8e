//! [`MockDingTalkBuilder`]: a fake DingTalk's app, users and lifetimes before it starts.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::state::DingTalkState;
use super::{MockDingTalk, Shared, server};
use crate::user::AuthenticatedDingTalkUser;

/// Configures a [`MockDingTalk`]; see [`MockDingTalk::builder`].
pub struct MockDingTalkBuilder {
    pub(super) state: DingTalkState,
    pub(super) port: u16,
}

impl std::fmt::Debug for MockDingTalkBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockDingTalkBuilder")
            .finish_non_exhaustive()
    }
}

impl MockDingTalkBuilder {
    /// The app key and secret the server accepts.
    pub fn app(mut self, app_key: impl Into<String>, app_secret: impl Into<String>) -> Self {
        self.state.app_key = app_key.into();
        self.state.app_secret = app_secret.into();
        self
    }

    /// Registers a user.
    pub fn user(mut self, user: AuthenticatedDingTalkUser) -> Self {
        self.state.add_user(None, user);
        self
    }

    /// The suite key and secret of the third-party app the server accepts.
    pub fn suite(mut self, suite_key: impl Into<String>, suite_secret: impl Into<String>) -> Self {
        self.state.suite_key = suite_key.into();
        self.state.suite_secret = suite_secret.into();
        self
    }

    /// The lifetime of issued tokens (default 7200 s).
    pub fn token_ttl(mut self, ttl: Duration) -> Self {
        self.state.token_ttl = ttl;
        self
    }

    /// The lifetime of issued codes (default 300 s).
    pub fn code_ttl(mut self, ttl: Duration) -> Self {
        self.state.code_ttl = ttl;
        self
    }

    /// The port of 127.0.0.1 to listen on, for a fake others must find at a known address (the
    /// `fake_dingtalk` example's `--port`). Default: 0, a free port, which tests want.
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Starts the server on 127.0.0.1 at [`port`](Self::port), a free one by default. Panics if
    /// the port cannot be bound.
    pub async fn start(self) -> MockDingTalk {
        let (listener, addr) = server::bind(self.port).await.unwrap_or_else(|error| {
            panic!(
                "MockDingTalk: cannot bind port {} of 127.0.0.1: {error}",
                self.port
            )
        });
        let shared = Arc::new(Shared {
            state: Mutex::new(self.state),
            calls: Default::default(),
            faults_served: AtomicU64::new(0),
            abandoned: AtomicU64::new(0),
        });
        let server = tokio::spawn(server::serve(listener, shared.clone()));
        MockDingTalk {
            shared,
            addr,
            server,
        }
    }
}
