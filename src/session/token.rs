//! Sessions as bearer tokens, for clients that keep no cookies (mini programs, native apps, APIs
//! on another origin): the same sealed session as the cookie, carried in
//! `Authorization: Bearer <token>`.

use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderValue};

use super::SessionConfig;
use super::clock::now_millis;
use super::seal::SessionKind;
use crate::user::AuthenticatedDingTalkUser;

/// A token just issued, with when it expires.
pub(crate) struct IssuedToken {
    pub(crate) token: String,
    /// Unix seconds.
    pub(crate) expires_at: u64,
    /// Seconds from now.
    pub(crate) expires_in: u64,
}

impl SessionConfig {
    /// A token for `user`, signed in now (a lifetime of at least a millisecond always leaves one).
    pub(crate) fn issue_token_now(&self, user: &AuthenticatedDingTalkUser) -> String {
        let now = now_millis();
        self.seal(user, now, now, SessionKind::Token).value
    }

    /// A token for `user`, who logged in with a code just now.
    pub(crate) fn issue_token(&self, user: &AuthenticatedDingTalkUser) -> Option<IssuedToken> {
        let now = now_millis();
        self.token(user, now, now)
    }

    /// A new token for the login `token` holds, if it is still valid and not `revoked` (asked with
    /// the user and the login's time): it keeps the login's time,
    /// so refreshing never carries a login past the absolute lifetime. `None` when the token is
    /// not valid, or when the login has no time left to give.
    pub(crate) fn refresh_token(
        &self,
        token: &str,
        revoked: impl FnOnce(&AuthenticatedDingTalkUser, u64) -> bool,
    ) -> Option<(AuthenticatedDingTalkUser, IssuedToken)> {
        let opened = self.open_session(token, SessionKind::Token)?;
        // A revoked login is not refreshed: its tokens end with it.
        if revoked(&opened.user, opened.auth) {
            return None;
        }
        let now = now_millis();
        let issued = self.token(&opened.user, opened.auth, now)?;
        Some((opened.user, issued))
    }

    /// `None` when the login has no time left.
    fn token(&self, user: &AuthenticatedDingTalkUser, auth: u64, now: u64) -> Option<IssuedToken> {
        let sealed = self.seal(user, auth, now, SessionKind::Token);
        let left = sealed
            .expires_at_millis
            .checked_sub(now)
            .filter(|left| *left > 0)?;
        Some(IssuedToken {
            token: sealed.value,
            expires_at: sealed.expires_at_millis / 1000,
            // Whole seconds, rounded down: a client that refreshes by it is never late.
            expires_in: left / 1000,
        })
    }
}

/// The token of an `Authorization: Bearer <token>` header (RFC 6750), if there is one. The scheme
/// is matched without regard to case; other schemes are not ours and are ignored.
pub(crate) fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    // A token that is not UTF-8 never opens: it is skipped, as a scheme not ours is.
    headers
        .get_all(AUTHORIZATION)
        .iter()
        .find_map(|value| std::str::from_utf8(bearer_of(value)?).ok())
}

/// [`bearer_token`] as bytes, for the hot path: a session opened lately is found by comparing
/// them, and a token is a few hundred bytes, which ASCII checks a word at a time where UTF-8 (or
/// `HeaderValue::to_str`) checks them one by one. The same token as [`bearer_token`].
pub(crate) fn bearer_token_bytes(headers: &HeaderMap) -> Option<&[u8]> {
    headers.get_all(AUTHORIZATION).iter().find_map(|value| {
        bearer_of(value).filter(|token| token.is_ascii() || std::str::from_utf8(token).is_ok())
    })
}

/// The token of one `Authorization` value of the bearer scheme.
fn bearer_of(value: &HeaderValue) -> Option<&[u8]> {
    let value = value.as_bytes();
    let (scheme, token) = match value.iter().position(|byte| *byte == b' ') {
        Some(space) => (&value[..space], &value[space + 1..]),
        // `Bearer` with no token is a bearer attempt too: refused, not ignored.
        None => (value, &[][..]),
    };
    scheme
        .eq_ignore_ascii_case(b"bearer")
        .then(|| token.trim_ascii())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(AUTHORIZATION, value.parse().unwrap());
        }
        headers
    }

    #[test]
    fn only_the_bearer_scheme_is_read() {
        assert_eq!(bearer_token(&headers(&["Bearer abc"])), Some("abc"));
        assert_eq!(bearer_token(&headers(&["bearer  abc "])), Some("abc"));
        assert_eq!(
            bearer_token(&headers(&["Basic dXNlcg==", "Bearer x"])),
            Some("x")
        );
        assert_eq!(bearer_token(&headers(&["Basic dXNlcg=="])), None);
        assert_eq!(bearer_token(&headers(&["Bearer"])), Some(""));
        assert_eq!(bearer_token(&headers(&[])), None);
    }
}
