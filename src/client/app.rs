//! Whose credentials the client holds, and how each kind of app gets the access token a call
//! needs: one token for an internal app, one per corp for a third-party app.

use std::fmt;
use std::sync::Arc;

use reqwest::{RequestBuilder, Url};
use tokio::sync::SemaphorePermit;

use super::suite::{CorpTokens, SuiteTicketStore, TokenFailure};
use super::token::{AccessToken, FetchedToken, TokenCache};
use super::token_answer::{self, TokenEndpoint, TokenRefusal};
use super::wire::{AccessTokenRequest, CorpAccessTokenRequest, CorpTokenRequest};
use super::{DingTalkClient, ExchangeBudget, transport_error};
use crate::error::{AuthError, AuthErrorKind};

/// The app's key and secret, and where its tokens come from.
pub(crate) struct App {
    key: String,
    secret: String,
    tokens: Tokens,
}

pub(crate) enum Tokens {
    /// An internal app (企业内部应用): one token for its own organisation.
    Internal { url: Url, cache: TokenCache },
    /// A third-party app (第三方企业应用): one token per corp that installed it.
    ThirdParty {
        corps: CorpTokens,
        endpoint: CorpEndpoint,
    },
}

/// Where a third-party app gets a corp's token.
pub(crate) enum CorpEndpoint {
    /// `POST {api}/v1.0/oauth2/{corpId}/token`; holds `{api}/v1.0/oauth2/`.
    Unified { prefix: String },
    /// `POST {api}/v1.0/oauth2/corpAccessToken` with the latest suite ticket.
    SuiteTicket {
        url: Url,
        tickets: Arc<dyn SuiteTicketStore>,
    },
}

/// A token cache borrowed from the client (internal apps) or shared from the corp caches.
pub(crate) enum TokenRef<'a> {
    App(&'a TokenCache),
    Corp(Arc<TokenCache>),
}

impl std::ops::Deref for TokenRef<'_> {
    type Target = TokenCache;

    fn deref(&self) -> &TokenCache {
        match self {
            Self::App(cache) => cache,
            Self::Corp(cache) => cache,
        }
    }
}

impl App {
    pub(crate) fn new(key: String, secret: String, tokens: Tokens) -> Self {
        Self {
            key,
            secret,
            tokens,
        }
    }

    pub(crate) fn key(&self) -> &str {
        &self.key
    }

    /// The key and the secret, for DingTalk's user token endpoint, which takes them as they are.
    pub(crate) fn credentials(&self) -> (&str, &str) {
        (&self.key, &self.secret)
    }

    pub(crate) fn is_third_party(&self) -> bool {
        matches!(self.tokens, Tokens::ThirdParty { .. })
    }

    /// What a call needs before it is sent: the token (of the corp, for third-party apps) and the
    /// right to send (rate limit, fair queue, in-flight cap). A corp without a cached token is
    /// fetched under the same limits, so invented corp ids cannot storm the token endpoint.
    pub(crate) async fn token_and_turn<'c>(
        &'c self,
        client: &'c DingTalkClient,
        corp_id: Option<&str>,
        budget: &ExchangeBudget,
    ) -> Result<(TokenRef<'c>, AccessToken, SemaphorePermit<'c>), AuthError> {
        let limits = &client.inner.limits;
        let tokens = match (&self.tokens, corp_id) {
            (Tokens::Internal { cache, .. }, _) => TokenRef::App(cache),
            (Tokens::ThirdParty { corps, .. }, Some(corp_id)) => {
                let first_fetch = || async {
                    let _in_flight = limits.admit(&budget.caller).await?;
                    self.fetch(client, Some(corp_id)).await
                };
                TokenRef::Corp(corps.for_corp(corp_id, first_fetch).await?)
            }
            (Tokens::ThirdParty { .. }, None) => return Err(AuthError::missing_corp_id()),
        };
        let token = tokens
            .get(|| async { self.fetch(client, corp_id).await.map_err(|f| f.error) })
            .await?;
        let in_flight = limits.admit(&budget.caller).await?;
        Ok((tokens, token, in_flight))
    }

    /// An internal app's token, held or fetched now (outside the rate limit: the token endpoint
    /// has its own, and a failing one is asked at most once a second); `None` for third-party
    /// apps, whose tokens are per corp.
    pub(crate) async fn held_or_fetched_token(
        &self,
        client: &DingTalkClient,
    ) -> Option<Result<AccessToken, AuthError>> {
        let Tokens::Internal { cache, .. } = &self.tokens else {
            return None;
        };
        let fetch = || async { self.fetch(client, None).await.map_err(|f| f.error) };
        Some(cache.get(fetch).await)
    }

    /// One call to the token endpoint of the app (or of the corp), counted and timed.
    async fn fetch(
        &self,
        client: &DingTalkClient,
        corp_id: Option<&str>,
    ) -> Result<FetchedToken, TokenFailure> {
        let started = std::time::Instant::now();
        let fetched = self.fetch_uncounted(client, corp_id).await;
        let outcome = fetched.as_ref().map(|_| ()).map_err(|f| f.error.kind());
        client
            .inner
            .metrics
            .token_fetched(outcome, started.elapsed());
        fetched
    }

    async fn fetch_uncounted(
        &self,
        client: &DingTalkClient,
        corp_id: Option<&str>,
    ) -> Result<FetchedToken, TokenFailure> {
        let http = &client.inner.http;
        let (request, endpoint) = match (&self.tokens, corp_id) {
            (Tokens::Internal { url, .. }, _) => self.app_token(http, url),
            (Tokens::ThirdParty { endpoint, .. }, Some(corp_id)) => match endpoint {
                CorpEndpoint::Unified { prefix } => self.corp_token(http, prefix, corp_id),
                CorpEndpoint::SuiteTicket { url, tickets } => {
                    self.corp_token_by_ticket(http, url, tickets.as_ref(), corp_id)
                        .await?
                }
            },
            (Tokens::ThirdParty { .. }, None) => return Err(AuthError::missing_corp_id().into()),
        };
        // With a shared store, the token endpoint's budget is shared by the replicas too.
        client.inner.limits.token_turn().await?;
        let response = request
            .send()
            .await
            .map_err(|error| transport_error("access token", error))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|error| transport_error("access token", error))?;
        token_answer::read(status, &bytes, endpoint)
            .map_err(|refusal| self.refused(refusal, corp_id))
    }

    /// `POST /v1.0/oauth2/accessToken` (internal apps).
    fn app_token(&self, http: &reqwest::Client, url: &Url) -> (RequestBuilder, TokenEndpoint) {
        let request = http.post(url.clone()).json(&AccessTokenRequest {
            app_key: &self.key,
            app_secret: &self.secret,
        });
        (request, TokenEndpoint::App)
    }

    /// `POST /v1.0/oauth2/{corpId}/token` (third-party apps, unified); `prefix` ends in `oauth2/`.
    fn corp_token(
        &self,
        http: &reqwest::Client,
        prefix: &str,
        corp_id: &str,
    ) -> (RequestBuilder, TokenEndpoint) {
        // The corp id was checked: letters, digits, '-' and '_' only.
        let request = http
            .post(format!("{prefix}{corp_id}/token"))
            .json(&CorpTokenRequest {
                client_id: &self.key,
                client_secret: &self.secret,
                grant_type: "client_credentials",
            });
        (request, TokenEndpoint::CorpUnified)
    }

    /// `POST /v1.0/oauth2/corpAccessToken` with the latest suite ticket (third-party apps).
    async fn corp_token_by_ticket(
        &self,
        http: &reqwest::Client,
        url: &Url,
        tickets: &dyn SuiteTicketStore,
        corp_id: &str,
    ) -> Result<(RequestBuilder, TokenEndpoint), TokenFailure> {
        let Some(ticket) = tickets.latest_ticket().await else {
            tracing::error!(
                "no suite ticket yet: DingTalk pushes one to the app's callback about every 5 \
                 hours; pass it to the SuiteTicketStore"
            );
            return Err(AuthError::new(
                AuthErrorKind::Misconfigured,
                "the app has no suite ticket yet",
            )
            .into());
        };
        let request = http.post(url.clone()).json(&CorpAccessTokenRequest {
            suite_key: &self.key,
            suite_secret: &self.secret,
            auth_corp_id: corp_id,
            suite_ticket: &ticket,
        });
        Ok((request, TokenEndpoint::CorpBySuiteTicket))
    }

    /// Logs why DingTalk gave no token (for corps, once a minute at most) and says whether it
    /// refused the corp itself.
    fn refused(&self, refusal: TokenRefusal, corp_id: Option<&str>) -> TokenFailure {
        let refusal = refusal.without_echo_of(&self.secret);
        let corp_refused = refusal.refuses_corp();
        let whose = match corp_id {
            Some(corp_id) => format!("suite key {:?} in corp {corp_id:?}", self.key),
            None => format!("app key {:?}", self.key),
        };
        match (&self.tokens, corp_id) {
            (Tokens::ThirdParty { corps, .. }, Some(corp_id)) => {
                corps.log_refusal(corp_id, &refusal, &whose)
            }
            _ => refusal.log(&whose),
        }
        TokenFailure {
            error: refusal.error,
            corp_refused,
        }
    }
}

impl Tokens {
    pub(crate) fn internal(url: Url) -> Self {
        Self::Internal {
            url,
            cache: TokenCache::new(),
        }
    }
}

impl fmt::Debug for App {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("App")
            .field("key", &self.key)
            .field("secret", &"<redacted>")
            .field("third_party", &self.is_third_party())
            .finish()
    }
}
