//! DingTalk's web login in the layer: a page request from outside the DingTalk client, with
//! neither code nor session, is sent to DingTalk's login page with a fresh state; the callback
//! checks the state against this browser's state cookie, exchanges the `authCode` for the
//! company's employee and starts the session. Where the callback is: `web_login_route.rs`.

use std::sync::Arc;

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderValue, Response, StatusCode, header};
use tokio::time::Instant;

use super::authenticator::Authenticator;
use super::login::{CleanUrl, accepts_html, redirect};
use super::login_redirect::{path_on_this_host, return_target};
use super::pages::error_page;
use super::web_login_route::in_dingtalk;
use crate::client::ExchangeBudget;
use crate::error::AuthError;
use crate::key::IdentityKeyRef;
use crate::metrics::Outcome;

/// The longest page kept in the state to come back to.
const MAX_NEXT: usize = 1024;

/// What a callback's query says.
#[derive(Default)]
struct Callback {
    auth_code: Option<String>,
    state: Option<String>,
    states: usize,
    error: bool,
}

impl Callback {
    fn read(parts: &Parts) -> Result<Self, AuthError> {
        let mut callback = Self::default();
        let query = parts.uri.query().unwrap_or_default();
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            match &*key {
                "authCode" => match &callback.auth_code {
                    Some(held) if *held != value => return Err(AuthError::ambiguous_code()),
                    _ => callback.auth_code = Some(value.into_owned()),
                },
                "state" => {
                    callback.states += 1;
                    callback.state = Some(value.into_owned());
                }
                "error" => callback.error = true,
                _ => {}
            }
        }
        Ok(callback)
    }
}

impl Authenticator {
    /// For a page request from outside the DingTalk client: `302` to DingTalk's login page, with
    /// this browser's state cookie, to come back to the page asked for (or, `coming_back` from a
    /// login page with a refused code, to its `next`). `None` without web login, inside DingTalk, or when the
    /// callback's URL cannot be made from the request.
    pub(super) fn web_login_start(
        &self,
        parts: &Parts,
        coming_back: bool,
    ) -> Option<Response<Bytes>> {
        let web = self.web_login.as_ref()?;
        let session = self.session.as_ref()?;
        if in_dingtalk(parts) {
            return None;
        }
        let redirect_uri = web.redirect_uri(parts)?;
        let names = self.extractor.query_names();
        let next = return_target(&parts.uri, &self.return_param, names.clone())
            .filter(|_| coming_back)
            .or_else(|| CleanUrl::without(&parts.uri, names))?;
        // The state cookie must stay under browsers' 4096 bytes: a page too long to keep comes
        // back to its path, or to the root.
        let next = next.to_str().ok()?;
        let next = if next.len() <= MAX_NEXT {
            next
        } else {
            let path = parts.uri.path();
            if path.len() <= MAX_NEXT { path } else { "/" }
        };
        let started = session.start_login(next)?;
        let corp = match &self.corps {
            None => self.client.own_corp_id().map(str::to_owned),
            Some(_) => self
                .corp_of(parts)
                .ok()
                .flatten()
                .map(|corp| corp.into_owned()),
        };
        let location = self
            .client
            .authorize_url(&redirect_uri, &started.state, corp.as_deref());
        let mut response = redirect(
            StatusCode::FOUND,
            HeaderValue::try_from(location.as_str()).ok()?,
        );
        let headers = response.headers_mut();
        for stale in session.clear_stale_logins(&parts.headers) {
            headers.append(header::SET_COOKIE, stale);
        }
        headers.append(header::SET_COOKIE, started.set_cookie);
        Some(response)
    }

    /// Answers DingTalk's browser coming back: the session and `303` to the page first asked
    /// for, or a clear refusal (an HTML page for browsers), the state cookie cleared either way.
    pub(crate) async fn answer_web_login(self: Arc<Self>, parts: Parts) -> Response<Bytes> {
        let callback = Callback::read(&parts);
        let state = callback.as_ref().ok().and_then(|c| c.state.clone());
        let mut response = match callback {
            Ok(callback) => self.finish_web_login(&parts, callback).await,
            Err(error) => Err(error),
        }
        .unwrap_or_else(|error| {
            tracing::debug!(error = %error, "web login refused");
            self.page_rejection(&parts, &error)
        });
        let clear = self
            .session
            .as_ref()
            .zip(state.as_deref())
            .and_then(|(session, state)| session.clear_login(state));
        if let Some(clear) = clear {
            response.headers_mut().append(header::SET_COOKIE, clear);
        }
        response
    }

    async fn finish_web_login(
        &self,
        parts: &Parts,
        callback: Callback,
    ) -> Result<Response<Bytes>, AuthError> {
        let (Some(_), Some(session)) = (&self.web_login, &self.session) else {
            return Err(AuthError::invalid_login_state());
        };
        let state = match (callback.states, callback.state) {
            (1, Some(state)) => state,
            (0, _) => {
                return Err(AuthError::invalid_request(
                    "the login came back without its state",
                ));
            }
            _ => {
                return Err(AuthError::invalid_request(
                    "the login came back with two states",
                ));
            }
        };
        if callback.error {
            return Err(AuthError::login_cancelled());
        }
        let Some(auth_code) = callback.auth_code else {
            return Err(AuthError::invalid_request(
                "the login came back without an authCode",
            ));
        };
        // The same rules as a code: a malformed one never reaches DingTalk.
        IdentityKeyRef::checked(None, &auth_code)?;
        let next = session
            .finish_login(&parts.headers, &state)
            .ok_or_else(AuthError::invalid_login_state)?;
        if !self.client.first_use_of_state(&state).await {
            tracing::debug!("a web login's state came back twice");
            return Err(AuthError::invalid_login_state());
        }
        let budget = ExchangeBudget {
            send_by: Instant::now() + self.client.upstream_timeout(),
            caller: self.caller_of(parts),
        };
        let token = self.client.user_token(&auth_code, &budget).await?;
        if self.corps.is_some() {
            // The organisation comes from DingTalk: this layer's directory decides, as for codes.
            let corp_id = token
                .corp_id
                .as_deref()
                .ok_or_else(AuthError::missing_corp_id)?;
            self.admit_corp(Some(corp_id)).await?;
        }
        // Nothing is spent past the user token: the rest is bounded by the budget.
        let user = tokio::time::timeout_at(budget.send_by, self.client.employee(token, &budget))
            .await
            .map_err(|_elapsed| self.client.too_slow())??;
        // A sign-in: the app's resolver runs, and may refuse the user.
        let with_profile = self.client.with_profile(user.clone()).await;
        self.resolve_for(&with_profile, true).await?;
        tracing::debug!("web login: session started");
        self.metrics.count(Outcome::WebLogin);
        let location = path_on_this_host(&next, self.extractor.query_names());
        let mut response = redirect(StatusCode::SEE_OTHER, location);
        let headers = response.headers_mut();
        headers.append(header::SET_COOKIE, session.issue_cookie(&user));
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
        Ok(response)
    }

    /// A refusal for a browser: the app's renderer if it has one, else an HTML page for clients
    /// that ask for HTML and the JSON rejection for the others.
    pub(super) fn page_rejection(&self, parts: &Parts, error: &AuthError) -> Response<Bytes> {
        if !self.rejections.is_custom() && accepts_html(parts) {
            self.metrics.count(Outcome::Rejected(error.kind()));
            error_page(error)
        } else {
            self.rejection(error)
        }
    }
}
