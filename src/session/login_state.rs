//! The web login's state: a random value sent to DingTalk's login page and, sealed beside it in a
//! short-lived cookie of this browser, the page to go back to. The callback is answered only when
//! both agree (login CSRF), once, within [`LOGIN_STATE_LIFETIME`].

use std::time::Duration;

use cookie::{Cookie, CookieJar, SameSite};
use http::{HeaderMap, HeaderValue};
use serde::{Deserialize, Serialize};

use super::SessionConfig;
use super::clock::{millis, now_millis};
use crate::extract::cookie_values;

/// How long a web login may take, from the redirect to DingTalk to the callback.
pub const LOGIN_STATE_LIFETIME: Duration = Duration::from_secs(10 * 60);

/// The state's random bytes: 128 bits.
const STATE_BYTES: usize = 16;

/// How many of the state's characters name its cookie, so that two tabs signing in at once each
/// keep their own.
const NAME_CHARS: usize = 12;

/// What the state cookie holds, sealed.
#[derive(Serialize, Deserialize)]
struct StatePayload {
    v: u8,
    /// The app the login is for.
    aud: String,
    state: String,
    /// Where the browser was going: a path on this host.
    next: String,
    /// Issued at, milliseconds since the Unix epoch.
    iat: u64,
}

/// How many logins one browser may have in flight besides a new one (tabs signing in at once);
/// older ones' cookies are cleared, so that abandoned logins cannot grow the `Cookie` header.
const LOGINS_IN_FLIGHT: usize = 2;

/// A login just started: the state for DingTalk's URL and the cookie that remembers it.
pub(crate) struct StartedLogin {
    pub(crate) state: String,
    pub(crate) set_cookie: HeaderValue,
}

/// A fresh random state: 32 hex digits.
fn fresh_state() -> Option<String> {
    let mut bytes = [0u8; STATE_BYTES];
    getrandom::fill(&mut bytes).ok()?;
    Some(bytes.iter().map(|byte| format!("{byte:02x}")).collect())
}

/// Whether `state` has the shape this layer gives states.
fn well_formed(state: &str) -> bool {
    state.len() == STATE_BYTES * 2 && state.bytes().all(|b| b.is_ascii_hexdigit())
}

impl SessionConfig {
    /// The state cookie's name for `state`: the session cookie's prefix rules, its own name.
    fn state_cookie_name(&self, state: &str) -> String {
        // On the path `/` of this host, without a domain: a `Secure` one can be `__Host-`.
        let prefix = if self.secure { "__Host-" } else { "" };
        format!("{prefix}dingtalk_login_{}", &state[..NAME_CHARS])
    }

    /// Starts a web login for a browser going to `next`; `None` if the system has no randomness.
    pub(crate) fn start_login(&self, next: &str) -> Option<StartedLogin> {
        let state = fresh_state()?;
        let name = self.state_cookie_name(&state);
        let payload = StatePayload {
            v: 1,
            aud: self.audience().to_owned(),
            state: state.clone(),
            next: next.to_owned(),
            iat: now_millis(),
        };
        let json = serde_json::to_string(&payload).ok()?;
        let mut jar = CookieJar::new();
        jar.private_mut(&self.key.0)
            .add(Cookie::new(name.clone(), json));
        let sealed = jar.get(&name)?.value().to_owned();
        let cookie = self
            .state_cookie(name, sealed)
            .max_age(cookie::time::Duration::seconds(
                LOGIN_STATE_LIFETIME
                    .as_secs()
                    .try_into()
                    .unwrap_or(i64::MAX),
            ));
        let set_cookie = HeaderValue::try_from(cookie.build().to_string()).ok()?;
        Some(StartedLogin { state, set_cookie })
    }

    /// The page to go back to, if this browser's state cookie for `state` opens (with one of the
    /// keys, for this app), holds that very state, and is younger than [`LOGIN_STATE_LIFETIME`].
    pub(crate) fn finish_login(&self, headers: &HeaderMap, state: &str) -> Option<String> {
        if !well_formed(state) {
            return None;
        }
        let name = self.state_cookie_name(state);
        let jar = CookieJar::new();
        let opened = cookie_values(headers, &name).find_map(|value| {
            let cookie = Cookie::new(name.clone(), value.to_owned());
            std::iter::once(&self.key)
                .chain(&self.previous_keys)
                .find_map(|key| jar.private(&key.0).decrypt(cookie.clone()))
        })?;
        let payload: StatePayload = serde_json::from_str(opened.value()).ok()?;
        let now = now_millis();
        let lifetime = millis(LOGIN_STATE_LIFETIME);
        let fresh =
            payload.iat <= now.saturating_add(60_000) && now.saturating_sub(payload.iat) < lifetime;
        (payload.v == 1 && payload.aud == self.audience() && payload.state == state && fresh)
            .then_some(payload.next)
    }

    /// The `Set-Cookie`s that clear this browser's older login states: any that do not open, and
    /// all but the newest [`LOGINS_IN_FLIGHT`].
    pub(crate) fn clear_stale_logins(&self, headers: &HeaderMap) -> Vec<HeaderValue> {
        let prefix = self.state_cookie_name(&"0".repeat(STATE_BYTES * 2));
        let prefix = &prefix[..prefix.len() - NAME_CHARS];
        let jar = CookieJar::new();
        let mut held: Vec<(u64, String)> = headers
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .filter(|(name, _)| name.starts_with(prefix))
            .map(|(name, value)| {
                let cookie = Cookie::new(name.to_owned(), value.to_owned());
                let issued = std::iter::once(&self.key)
                    .chain(&self.previous_keys)
                    .find_map(|key| jar.private(&key.0).decrypt(cookie.clone()))
                    .and_then(|opened| serde_json::from_str::<StatePayload>(opened.value()).ok())
                    .map_or(0, |payload| payload.iat);
                (issued, name.to_owned())
            })
            .collect();
        held.sort_unstable_by(|a, b| b.cmp(a));
        held.dedup_by(|a, b| a.1 == b.1);
        held.into_iter()
            .enumerate()
            .filter(|(rank, (issued, _))| *rank >= LOGINS_IN_FLIGHT || *issued == 0)
            .filter_map(|(_, (_, name))| {
                let cookie = self
                    .state_cookie(name, String::new())
                    .max_age(cookie::time::Duration::ZERO);
                HeaderValue::try_from(cookie.build().to_string()).ok()
            })
            .collect()
    }

    /// The `Set-Cookie` that clears the state cookie of `state` (used once, or refused).
    pub(crate) fn clear_login(&self, state: &str) -> Option<HeaderValue> {
        if !well_formed(state) {
            return None;
        }
        let cookie = self
            .state_cookie(self.state_cookie_name(state), String::new())
            .max_age(cookie::time::Duration::ZERO);
        HeaderValue::try_from(cookie.build().to_string()).ok()
    }

    /// `HttpOnly`, `SameSite=Lax` (sent on DingTalk's navigation back, a top-level `GET`),
    /// `Secure` like the session cookie, on the path `/` of this host only.
    fn state_cookie(&self, name: String, value: String) -> cookie::CookieBuilder<'static> {
        Cookie::build((name, value))
            .http_only(true)
            .secure(self.secure)
            .same_site(SameSite::Lax)
            .path("/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::SessionKey;

    fn config(app: &str, key: &SessionKey) -> SessionConfig {
        SessionConfig::new(key.clone()).bound_to(app)
    }

    fn cookie_header(started: &StartedLogin) -> HeaderMap {
        let pair = started
            .set_cookie
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(http::header::COOKIE, pair.parse().unwrap());
        headers
    }

    /// A state cookie sealed `age` ago, as `start_login` would have.
    fn sealed_at(config: &SessionConfig, state: &str, age: Duration) -> HeaderMap {
        let name = config.state_cookie_name(state);
        let payload = StatePayload {
            v: 1,
            aud: config.audience().to_owned(),
            state: state.to_owned(),
            next: "/".to_owned(),
            iat: now_millis() - u64::try_from(age.as_millis()).unwrap(),
        };
        let mut jar = CookieJar::new();
        jar.private_mut(&config.key.0).add(Cookie::new(
            name.clone(),
            serde_json::to_string(&payload).unwrap(),
        ));
        let mut headers = HeaderMap::new();
        let pair = format!("{name}={}", jar.get(&name).unwrap().value());
        headers.insert(http::header::COOKIE, pair.parse().unwrap());
        headers
    }

    #[test]
    fn a_state_opens_only_for_its_app_its_value_and_ten_minutes() {
        let key = SessionKey::generate();
        let ours = config("app-one", &key);
        let started = ours.start_login("/reports?tab=2").unwrap();
        let headers = cookie_header(&started);
        assert_eq!(
            ours.finish_login(&headers, &started.state).as_deref(),
            Some("/reports?tab=2")
        );
        // Another app under the same key, another state of the same shape, another key.
        assert_eq!(
            config("app-two", &key).finish_login(&headers, &started.state),
            None
        );
        let mut other = started.state.clone();
        other.replace_range(31.., if other.ends_with('0') { "1" } else { "0" });
        assert_eq!(ours.finish_login(&headers, &other), None);
        let stranger = config("app-one", &SessionKey::generate());
        assert_eq!(stranger.finish_login(&headers, &started.state), None);
        // Nine minutes old opens; eleven minutes old, or from the future, does not.
        let state = "0123456789abcdef0123456789abcdef";
        let nine = sealed_at(&ours, state, Duration::from_secs(9 * 60));
        assert!(ours.finish_login(&nine, state).is_some());
        let eleven = sealed_at(&ours, state, Duration::from_secs(11 * 60));
        assert_eq!(ours.finish_login(&eleven, state), None);
        // Not a state this layer gives: never looked up.
        for odd in ["", "../../x", "0123456789abcdef", &"f".repeat(4096)] {
            assert_eq!(ours.finish_login(&headers, odd), None, "{odd}");
            assert!(ours.clear_login(odd).is_none());
        }
    }
}
