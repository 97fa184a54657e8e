//! A request that comes with a session (a bearer token, or the cookie): its user, unless the user
//! was revoked since the login (refused at once, the cookie cleared) or is due to be re-validated
//! with DingTalk first; for third-party apps, while this layer's directory admits its corp.

use std::sync::Arc;

use bytes::Bytes;
use http::request::Parts;
use http::{Response, header};

use super::authenticator::{AfterLogin, Authenticator, Decision, SessionCheck};
use crate::error::{AuthError, AuthErrorKind};
use crate::extract::cookie_value_bytes;
use crate::metrics::Outcome;
use crate::session::{SessionKind, SessionUser, bearer_token_bytes};
use crate::user::AuthenticatedDingTalkUser;

impl Authenticator {
    /// A request without a code: its bearer token (with a token login), else its cookie, else
    /// nobody.
    pub(super) fn decide_without_code(&self, parts: &Parts) -> Decision {
        let (Some(session), Some(opened)) = (self.session.as_deref(), &self.opened_sessions) else {
            return self.anonymous(parts);
        };
        let every = self.client.access().interval;
        if self.token_login.is_some()
            && let Some(token) = bearer_token_bytes(&parts.headers)
        {
            return match session.open_with(token, SessionKind::Token, opened, every) {
                Some(user) => self.decide_session(parts, user, token, SessionKind::Token),
                // A token that does not open is refused, never taken for no login at all.
                None => Decision::Reject(self.rejection(&AuthError::invalid_token())),
            };
        }
        let cookie = cookie_value_bytes(&parts.headers, session.name()).find_map(|value| {
            let user = session.open_with(value, SessionKind::Cookie, opened, every)?;
            Some((user, value))
        });
        match cookie {
            Some((user, value)) => self.decide_session(parts, user, value, SessionKind::Cookie),
            None => self.anonymous(parts),
        }
    }

    fn decide_session(
        &self,
        parts: &Parts,
        opened: SessionUser,
        sealed: &[u8],
        kind: SessionKind,
    ) -> Decision {
        let user = opened.user;
        let access = self.client.access();
        let outcome = match kind {
            SessionKind::Token => Outcome::BearerToken,
            SessionKind::Cookie => Outcome::SessionCookie,
        };
        if access.is_revoked(user.corp_id(), user.userid(), opened.auth) {
            tracing::debug!("a revoked session");
            if let Some(opened) = &self.opened_sessions {
                opened.forget(sealed);
            }
            self.metrics.count(Outcome::Rejected(revoked_kind(kind)));
            return Decision::Reject(self.revoked(parts, kind));
        }
        if opened.check_due || !access.is_ready() {
            return Decision::CheckSession(SessionCheck {
                user,
                auth: opened.auth,
                due: opened.check_due,
                sealed: sealed.into(),
                revoked: self.revoked(parts, kind),
                revoked_kind: revoked_kind(kind),
                outcome,
            });
        }
        match self.remembered_corp_verdict(user.corp_id()) {
            Some(true) => match self.enriched_now(user, false) {
                Ok((user, resolved)) => Decision::Session(user, resolved, outcome),
                Err(user) => Decision::CheckCorp(user, outcome),
            },
            Some(false) => Decision::Reject(self.rejection(&AuthError::corp_not_authorized())),
            None => Decision::CheckCorp(user, outcome),
        }
    }

    /// The answer to a revoked session: a token is `invalid_token`; a cookie is cleared, and the
    /// request gets `session_revoked` (or, for a page, the way to sign in again). Not counted:
    /// it may not be given.
    fn revoked(&self, parts: &Parts, kind: SessionKind) -> Response<Bytes> {
        if kind == SessionKind::Token {
            return self.rejections.render(&AuthError::invalid_token());
        }
        let mut response = self.no_login_uncounted(parts, AuthError::session_revoked());
        if let Some(session) = &self.session {
            response
                .headers_mut()
                .append(header::SET_COOKIE, session.sign_out_header());
        }
        response
    }

    /// A session whose user is due: re-validated with DingTalk (at most once per interval across
    /// replicas), or on a replica that has not read the store's revocations yet, checked once
    /// they are; then admitted as any session is.
    pub(crate) async fn check_session(
        self: Arc<Self>,
        check: SessionCheck,
    ) -> Result<(AuthenticatedDingTalkUser, AfterLogin), Response<Bytes>> {
        let user = &check.user;
        let access = self.client.access().clone();
        // A replica that just started reads the revocations kept in the store first.
        access.ready().await;
        // Re-validation asks DingTalk, and the app's resolver again: either may end the session.
        let revoked = access.is_revoked(user.corp_id(), user.userid(), check.auth)
            || (check.due
                && (self
                    .client
                    .revalidate(user.corp_id(), user.userid())
                    .await
                    .is_err()
                    || self.revalidate_resolution(user).await.is_err()));
        if revoked {
            if let Some(opened) = &self.opened_sessions {
                opened.forget(&check.sealed);
            }
            self.metrics.count(Outcome::Rejected(check.revoked_kind));
            return Err(check.revoked);
        }
        if let (true, Some(opened), Some(every)) =
            (check.due, &self.opened_sessions, access.interval)
        {
            opened.checked(&check.sealed, every);
        }
        self.check_corp(check.user).await
    }
}

/// What a revoked session is refused as.
fn revoked_kind(kind: SessionKind) -> AuthErrorKind {
    match kind {
        SessionKind::Token => AuthErrorKind::InvalidToken,
        SessionKind::Cookie => AuthErrorKind::SessionRevoked,
    }
}
