//! How the layer refuses a request, each refusal counted by its kind: the rejection, or for a
//! page without a login, the way to sign in.

use bytes::Bytes;
use http::request::Parts;
use http::{Response, StatusCode};

use super::authenticator::{Authenticator, Decision};
use super::login::{is_page_request, redirect};
use crate::error::{AuthError, AuthErrorKind};
use crate::metrics::Outcome;

impl Authenticator {
    /// A request with neither code nor session.
    pub(super) fn anonymous(&self, parts: &Parts) -> Decision {
        if self.optional {
            Decision::PassThrough
        } else {
            Decision::Reject(self.no_login(parts, AuthError::missing_code()))
        }
    }

    /// For a page (a `GET` or `HEAD` that asks for HTML), the redirect to the login page where there
    /// is one; else the rejection of `error`, so that the page's own API calls get a 401 they can act
    /// on rather than the login page's HTML.
    pub(super) fn no_login(&self, parts: &Parts, error: AuthError) -> Response<Bytes> {
        self.metrics.count(Outcome::Rejected(error.kind()));
        self.no_login_uncounted(parts, error)
    }

    /// [`no_login`](Self::no_login) for an answer that may not be given (counted when it is).
    pub(super) fn no_login_uncounted(&self, parts: &Parts, error: AuthError) -> Response<Bytes> {
        // A code refused as a login: on its way back from a login page, with its `next`.
        let coming_back = error.kind() == AuthErrorKind::CrossSiteLogin;
        if is_page_request(parts)
            && let Some(web_login) = self.web_login_start(parts, coming_back)
        {
            return web_login;
        }
        let location = self
            .redirect
            .as_ref()
            .filter(|_| is_page_request(parts))
            .and_then(|login| login.location(parts, self.extractor.query_names(), coming_back));
        match location {
            Some(location) => redirect(StatusCode::FOUND, location),
            None => self.rejections.render(&error),
        }
    }

    /// The answer to a refused request, counted by its kind.
    pub(crate) fn rejection(&self, error: &AuthError) -> Response<Bytes> {
        self.metrics.count(Outcome::Rejected(error.kind()));
        self.rejections.render(error)
    }
}
