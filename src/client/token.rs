//! The app's access token: one value, read cheaply, refreshed ahead of expiry by one caller at a
//! time, and never fetched more than once a second while DingTalk refuses it.

use std::fmt;
use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

use http::StatusCode;

use super::userinfo::{DEFAULT_THROTTLE_WAIT, upstream_error};
use super::wire::{AccessTokenResponse, ApiError};
use crate::error::{AuthError, AuthErrorKind};

/// How long a failed fetch is answered from memory, so that a token endpoint that is down or
/// refusing the secret sees at most one call a second, not one per waiting request.
const FAILURE_HOLD: Duration = Duration::from_secs(1);
/// The most a token is refreshed ahead of its expiry; short-lived tokens refresh at 3/4 of their life.
const MAX_REFRESH_AHEAD: Duration = Duration::from_secs(300);

/// An access token. Its `Debug` never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct AccessToken(Arc<str>);

impl AccessToken {
    pub(crate) fn new(value: impl Into<Arc<str>>) -> Self {
        Self(value.into())
    }

    pub(crate) fn secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken(<redacted>)")
    }
}

/// A fetched token and how long DingTalk said it lives.
pub(crate) struct FetchedToken {
    pub(crate) token: AccessToken,
    pub(crate) lifetime: Duration,
}

#[derive(Clone)]
struct CachedToken {
    token: AccessToken,
    /// From here on the next caller refreshes it, while the others keep using it.
    refresh_at: Instant,
    /// From here on nobody uses it.
    expires_at: Instant,
}

enum State {
    Empty,
    Cached(CachedToken),
    /// The last fetch failed at this instant; callers get the same error until it is old.
    Failed(Instant, AuthError),
}

/// The cache of one app's (or one corp's) access token.
pub(crate) struct TokenCache {
    state: RwLock<State>,
    /// Held by the one caller that fetches; the others wait for it and then read its result.
    fetching: Mutex<()>,
}

impl fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenCache { .. }")
    }
}

enum Lookup {
    Fresh(AccessToken),
    Aging(AccessToken),
    Failed(AuthError),
    Missing,
}

impl TokenCache {
    pub(crate) fn new() -> Self {
        Self {
            state: RwLock::new(State::Empty),
            fetching: Mutex::new(()),
        }
    }

    fn lookup(&self, now: Instant) -> Lookup {
        let state = self
            .state
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match &*state {
            State::Cached(cached) if now < cached.refresh_at => Lookup::Fresh(cached.token.clone()),
            State::Cached(cached) if now < cached.expires_at => Lookup::Aging(cached.token.clone()),
            State::Failed(at, error) if now.duration_since(*at) < FAILURE_HOLD => {
                Lookup::Failed(error.clone())
            }
            _ => Lookup::Missing,
        }
    }

    fn store(&self, state: State) {
        *self
            .state
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = state;
    }

    /// The current token, fetching one with `fetch` when there is none usable.
    pub(crate) async fn get<F, Fut>(&self, fetch: F) -> Result<AccessToken, AuthError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<FetchedToken, AuthError>>,
    {
        match self.lookup(Instant::now()) {
            Lookup::Fresh(token) => return Ok(token),
            Lookup::Failed(error) => return Err(error),
            Lookup::Aging(token) => {
                // Refresh ahead: one caller fetches while the token still works; the others, and
                // that caller too if the fetch fails, go on with the old one.
                let Ok(_guard) = self.fetching.try_lock() else {
                    return Ok(token);
                };
                return match self.lookup(Instant::now()) {
                    Lookup::Fresh(newer) => Ok(newer),
                    Lookup::Failed(error) => Err(error),
                    Lookup::Aging(_) => Ok(self.fetch_and_store(fetch).await.unwrap_or(token)),
                    Lookup::Missing => self.fetch_and_store(fetch).await,
                };
            }
            Lookup::Missing => {}
        }
        let _guard = self.fetching.lock().await;
        // Whoever held the lock before may have fetched already.
        match self.lookup(Instant::now()) {
            Lookup::Fresh(token) | Lookup::Aging(token) => Ok(token),
            Lookup::Failed(error) => Err(error),
            Lookup::Missing => self.fetch_and_store(fetch).await,
        }
    }

    async fn fetch_and_store<F, Fut>(&self, fetch: F) -> Result<AccessToken, AuthError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<FetchedToken, AuthError>>,
    {
        let started = Instant::now();
        match fetch().await {
            Ok(FetchedToken { token, lifetime }) => {
                let ahead = (lifetime / 4).min(MAX_REFRESH_AHEAD);
                // A little before DingTalk's expiry too, for the time the answer took to arrive.
                let margin = (lifetime / 20).min(Duration::from_secs(60));
                self.store(State::Cached(CachedToken {
                    token: token.clone(),
                    refresh_at: started + lifetime - ahead,
                    expires_at: started + lifetime - margin,
                }));
                tracing::debug!(lifetime_secs = lifetime.as_secs(), "access token fetched");
                Ok(token)
            }
            Err(error) => {
                // Keep a still-valid token if there is one; the caller decides to use it.
                let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
                if !matches!(&*state, State::Cached(cached) if Instant::now() < cached.expires_at) {
                    *state = State::Failed(Instant::now(), error.clone());
                }
                Err(error)
            }
        }
    }

    /// Forgets `token` after DingTalk refused it, unless a newer one has replaced it already.
    pub(crate) fn invalidate(&self, token: &AccessToken) {
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        if matches!(&*state, State::Cached(cached) if &cached.token == token) {
            *state = State::Empty;
        }
    }
}

/// What an answer of the access token endpoint means: a token and its lifetime, or why not.
///
/// `whose` names the credentials in the log line that says what to fix, such as
/// `app key "dingabc"`.
pub(crate) fn read_access_token(
    status: StatusCode,
    bytes: &[u8],
    whose: &str,
) -> Result<FetchedToken, AuthError> {
    if status.is_success() {
        let token: AccessTokenResponse = std::str::from_utf8(bytes)
            .ok()
            .and_then(|text| serde_json::from_str(text).ok())
            .ok_or_else(|| {
                upstream_error("the access token endpoint answered something that is not its JSON")
            })?;
        if token.access_token.is_empty() || token.expire_in <= 0 {
            return Err(upstream_error(
                "the access token endpoint answered an empty token",
            ));
        }
        return Ok(FetchedToken {
            token: AccessToken::new(token.access_token),
            lifetime: Duration::from_secs(token.expire_in.unsigned_abs()),
        });
    }
    let code = serde_json::from_slice::<ApiError>(bytes)
        .map(|error| error.code)
        .unwrap_or_default();
    Err(match status {
        StatusCode::TOO_MANY_REQUESTS => {
            tracing::warn!("DingTalk is throttling access token requests");
            AuthError::throttled(DEFAULT_THROTTLE_WAIT, "DingTalk is throttling this app")
        }
        _ if status.is_client_error() => {
            tracing::error!(
                %status,
                code = %code,
                "DingTalk refused the credentials of {whose}; check the app key and app secret (or \
                 the suite key and suite secret) in the developer console; for a third-party app, \
                 also that the corp installed it and that the suite ticket is current"
            );
            AuthError::new(
                AuthErrorKind::Misconfigured,
                "DingTalk refused the app's credentials",
            )
        }
        _ => {
            tracing::warn!(%status, "the access token endpoint failed");
            upstream_error("DingTalk's access token endpoint failed")
        }
    })
}
