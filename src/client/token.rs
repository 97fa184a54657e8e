//! The app's access token: one value, read cheaply, refreshed ahead of expiry by one caller at a
//! time, and never fetched more than once a second while DingTalk refuses it.

use std::fmt;
use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::error::AuthError;

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
#[derive(Debug)]
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
    /// When the last refresh ahead failed: the next one waits for [`FAILURE_HOLD`].
    refresh_failed_at: Option<Instant>,
}

impl CachedToken {
    /// A token fetched at `started` that DingTalk said lives `lifetime` (already clamped to a sane
    /// range by the answer's reader). Checked arithmetic: no lifetime can make it panic.
    fn new(token: AccessToken, started: Instant, lifetime: Duration) -> Self {
        let ahead = (lifetime / 4).min(MAX_REFRESH_AHEAD);
        // A little before DingTalk's expiry too, for the time the answer took to arrive.
        let margin = (lifetime / 20).min(Duration::from_secs(60));
        let at = |after: Duration| started.checked_add(after).unwrap_or(started);
        Self {
            token,
            refresh_at: at(lifetime.saturating_sub(ahead)),
            expires_at: at(lifetime.saturating_sub(margin)),
            refresh_failed_at: None,
        }
    }
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

    /// A cache holding a token just fetched.
    pub(crate) fn with_token(fetched: FetchedToken, started: Instant) -> Self {
        Self {
            state: RwLock::new(State::Cached(CachedToken::new(
                fetched.token,
                started,
                fetched.lifetime,
            ))),
            fetching: Mutex::new(()),
        }
    }

    /// For the fuzz targets: how long a token fetched now is used, worked out as the cache does.
    #[cfg(feature = "fuzzing")]
    pub(crate) fn lifetime_of(fetched: &FetchedToken) -> Duration {
        let now = Instant::now();
        let cached = CachedToken::new(fetched.token.clone(), now, fetched.lifetime);
        assert!(cached.refresh_at <= cached.expires_at);
        cached.expires_at.duration_since(now)
    }

    fn lookup(&self, now: Instant) -> Lookup {
        let state = self
            .state
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match &*state {
            State::Cached(cached) if now < cached.refresh_at => Lookup::Fresh(cached.token.clone()),
            // A refresh ahead failed a moment ago: use the old token without asking again.
            State::Cached(cached)
                if now < cached.expires_at
                    && cached
                        .refresh_failed_at
                        .is_some_and(|at| now.duration_since(at) < FAILURE_HOLD) =>
            {
                Lookup::Fresh(cached.token.clone())
            }
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
                self.store(State::Cached(CachedToken::new(
                    token.clone(),
                    started,
                    lifetime,
                )));
                tracing::debug!(lifetime_secs = lifetime.as_secs(), "access token fetched");
                Ok(token)
            }
            Err(error) => {
                let now = Instant::now();
                let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
                match &mut *state {
                    // Keep a still-valid token, and hold off the next refresh for a moment.
                    State::Cached(cached) if now < cached.expires_at => {
                        cached.refresh_failed_at = Some(now);
                    }
                    _ => *state = State::Failed(now, error.clone()),
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
