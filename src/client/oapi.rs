//! Calls to DingTalk's legacy host with the app's (or a corp's) access token: the token refreshed
//! once when DingTalk refuses it, "system busy" retried, a throttle pausing the client; and what
//! an answer's errcode means, the same for every oapi endpoint.

use std::future::Future;
use std::time::Duration;

use http::StatusCode;
use serde::de::DeserializeOwned;
use tokio::time::Instant;

use super::token::AccessToken;
use super::wire::{self, OapiEnvelope};
use super::{DingTalkClient, ExchangeBudget};
use crate::error::{AuthError, AuthErrorKind};

/// How many more times a "system busy" (-1) answer is retried, and the first pause.
const BUSY_RETRIES: u32 = 2;
const BUSY_BACKOFF: Duration = Duration::from_millis(100);

/// The message of DingTalk refusing this server's IP address, at any endpoint: the self-check
/// names the whitelist for it.
pub(crate) const IP_REFUSED: &str = "DingTalk refused this server's IP address";

/// What a throttled answer without its own wait asks for.
pub(crate) const DEFAULT_THROTTLE_WAIT: Duration = Duration::from_secs(1);

/// DingTalk failed, or answered something that is not its documented JSON.
pub(crate) fn upstream_error(message: &'static str) -> AuthError {
    AuthError::new(AuthErrorKind::Upstream, message)
}

/// The longest IP ban honoured, in minutes: DingTalk's are 5.
const MAX_BAN_MINUTES: i64 = 60;

/// Why one call did not give its answer, before the caller decides what to do next.
pub(crate) enum CallFailure {
    /// DingTalk refused the access token: drop it, fetch another, try once more.
    TokenRejected(i64),
    /// DingTalk answered "system busy" (-1): pause and try again.
    Busy,
    /// Nothing to retry.
    Final(AuthError),
}

impl CallFailure {
    /// The errcode DingTalk answered with, if it gave one.
    fn errcode(&self) -> Option<i64> {
        match self {
            Self::TokenRejected(errcode) => Some(*errcode),
            Self::Busy => Some(-1),
            Self::Final(error) => error.upstream_errcode(),
        }
    }
}

impl DingTalkClient {
    /// Runs `call` with the token of the app (or of `corp_id`, for third-party apps), within
    /// `budget`: each attempt waits for its turn under the client's limits; a refused token is
    /// dropped and fetched again once; "system busy" is retried twice with a pause. Once sent, a
    /// call runs to its answer: `call` is bounded by the answer timeout, not by the budget.
    pub(crate) async fn with_token<T, F, Fut>(
        &self,
        corp_id: Option<&str>,
        budget: &ExchangeBudget,
        call: F,
    ) -> Result<T, AuthError>
    where
        F: Fn(AccessToken) -> Fut,
        Fut: Future<Output = Result<T, CallFailure>>,
    {
        let mut token_refreshed = false;
        let mut busy_retries = 0;
        loop {
            // A token and a turn that are free at once must not send a call past the budget.
            if Instant::now() >= budget.send_by {
                return Err(self.too_slow());
            }
            let prepare = self.inner.app.token_and_turn(self, corp_id, budget);
            let (tokens, token, in_flight) = tokio::time::timeout_at(budget.send_by, prepare)
                .await
                .map_err(|_elapsed| self.too_slow())??;
            let outcome = call(token.clone()).await;
            drop(in_flight);
            if let Some(errcode) = outcome.as_ref().err().and_then(CallFailure::errcode) {
                self.inner.metrics.dingtalk_error(errcode);
            }
            match outcome {
                Ok(answer) => return Ok(answer),
                Err(CallFailure::TokenRejected(errcode)) if !token_refreshed => {
                    tracing::info!(
                        errcode,
                        "DingTalk refused the access token; fetching a new one"
                    );
                    tokens.invalidate(&token);
                    token_refreshed = true;
                }
                Err(CallFailure::TokenRejected(errcode)) => {
                    tracing::error!(
                        errcode,
                        "DingTalk refused a freshly fetched access token; check that the app key \
                         and secret belong to the organisation the codes come from"
                    );
                    return Err(AuthError::new(
                        AuthErrorKind::Misconfigured,
                        "DingTalk refused the app's access token",
                    )
                    .with_errcode(errcode));
                }
                Err(CallFailure::Busy) if busy_retries < BUSY_RETRIES => {
                    let backoff = BUSY_BACKOFF * 2u32.pow(busy_retries);
                    if Instant::now() + backoff >= budget.send_by {
                        return Err(self.too_slow());
                    }
                    tokio::time::sleep(backoff).await;
                    busy_retries += 1;
                }
                Err(CallFailure::Busy) => {
                    return Err(AuthError::new(AuthErrorKind::Upstream, "DingTalk is busy")
                        .with_errcode(-1));
                }
                Err(CallFailure::Final(error)) => {
                    self.pause_if_throttled(&error);
                    return Err(error);
                }
            }
        }
    }

    /// DingTalk said it is throttling: the whole client waits as long as it asked.
    pub(crate) fn pause_if_throttled(&self, error: &AuthError) {
        if let (AuthErrorKind::Throttled, Some(wait)) = (error.kind(), error.retry_after()) {
            self.inner.limits.pause(wait);
        }
    }

    /// The budget ran out before a call could be sent.
    pub(crate) fn too_slow(&self) -> AuthError {
        tracing::warn!(
            timeout_ms = u64::try_from(self.inner.timeout.as_millis()).unwrap_or(u64::MAX),
            "DingTalk did not answer within the exchange's time budget"
        );
        AuthError::new(
            AuthErrorKind::UpstreamTimeout,
            "DingTalk did not answer in time",
        )
    }
}

/// What an answer of an oapi endpoint means: its envelope when errcode is 0, or why not.
/// `specific` names the errcodes that mean something for this endpoint alone (40078 for
/// getuserinfo, 60121 for a user lookup); the rest mean the same everywhere.
pub(crate) fn read<R: DeserializeOwned>(
    status: StatusCode,
    body: &[u8],
    endpoint: &'static str,
    specific: impl Fn(i64) -> Option<AuthError>,
) -> Result<OapiEnvelope<R>, CallFailure> {
    // JSON is UTF-8 throughout; serde would skip invalid bytes inside fields it ignores.
    let parsed = std::str::from_utf8(body).map(serde_json::from_str::<OapiEnvelope<R>>);
    let Ok(Ok(envelope)) = parsed else {
        tracing::warn!(%status, endpoint, "DingTalk answered something that is not JSON");
        return Err(CallFailure::Final(upstream_error(if status.is_success() {
            "DingTalk answered something that is not its JSON"
        } else {
            "DingTalk answered with an HTTP error"
        })));
    };
    let Some(errcode) = wire::effective_errcode(&envelope) else {
        if let (Some(_), Some(wait)) = (envelope.status, envelope.wait) {
            // DingTalk documents the ban's `wait` in minutes (5 for its per-IP limit): calling
            // again sooner, while the IP is still banned, can lengthen the ban.
            let minutes = wait.clamp(1, MAX_BAN_MINUTES).unsigned_abs();
            tracing::warn!(
                wait_minutes = minutes,
                "DingTalk's gateway is refusing this server's IP (too many calls); no call to \
                 DingTalk until the ban ends"
            );
            return Err(CallFailure::Final(AuthError::throttled(
                Duration::from_secs(minutes * 60),
                "DingTalk is refusing calls from this server for a while",
            )));
        }
        tracing::warn!(%status, endpoint, "DingTalk answered JSON without an errcode");
        return Err(CallFailure::Final(upstream_error(
            "DingTalk answered something that is not its JSON",
        )));
    };
    if !status.is_success() {
        tracing::warn!(%status, errcode, endpoint, "DingTalk answered with an HTTP error");
        return Err(CallFailure::Final(
            upstream_error("DingTalk answered with an HTTP error").with_errcode(errcode),
        ));
    }
    if errcode == 0 {
        return Ok(envelope);
    }
    if let Some(error) = specific(errcode) {
        return Err(CallFailure::Final(error));
    }
    Err(match errcode {
        -1 => CallFailure::Busy,
        // 88 without a sub code says "auth error" (in practice: an invalid access token).
        40001 | 40014 | 42001 | 33001 | 88 => CallFailure::TokenRejected(errcode),
        90001..=90018 => {
            tracing::warn!(errcode, endpoint, "DingTalk is throttling this app");
            CallFailure::Final(
                AuthError::throttled(DEFAULT_THROTTLE_WAIT, "DingTalk is throttling this app")
                    .with_errcode(errcode),
            )
        }
        60011 => CallFailure::Final(misconfigured(
            errcode,
            endpoint,
            "the app lacks a permission this call needs (qyapi_base for logins, \
             qyapi_get_member for user details); grant it in the DingTalk developer console",
        )),
        60020 => {
            // Only the address from DingTalk's message: the message itself may be huge, hold line
            // breaks, or echo what it was sent.
            let seen_ip = seen_ip(&envelope.errmsg);
            tracing::error!(
                errcode,
                endpoint,
                seen_ip = seen_ip.as_deref().unwrap_or("not given"),
                "this server's IP is not in the app's whitelist; add it in the DingTalk developer console"
            );
            CallFailure::Final(
                AuthError::new(AuthErrorKind::Misconfigured, IP_REFUSED)
                    .with_errcode(errcode)
                    .with_seen_ip(seen_ip),
            )
        }
        // 22: an unknown API path; 40000 (inside 88) and 41001: no access token sent.
        22 | 40000 | 41001 | 40035 | 43004 => {
            tracing::error!(
                errcode,
                endpoint,
                "DingTalk rejected the form of a call: a bug in tower-dingtalk-auth, not your \
                 configuration; please report it"
            );
            CallFailure::Final(
                AuthError::new(
                    AuthErrorKind::Internal,
                    "DingTalk rejected the request's form",
                )
                .with_errcode(errcode),
            )
        }
        other => {
            tracing::warn!(errcode = other, endpoint, "a call to DingTalk failed");
            CallFailure::Final(upstream_error("DingTalk refused the call").with_errcode(other))
        }
    })
}

/// The longest text form of an IP address.
const MAX_IP_LEN: usize = 45;

/// The address in a 60020 message (`...,request ip=120.230.136.230 appKey(...)`).
fn seen_ip(errmsg: &str) -> Option<String> {
    let start = errmsg.find("ip=")? + "ip=".len();
    let candidate: String = errmsg[start..]
        .chars()
        .take_while(|c| c.is_ascii_hexdigit() || *c == '.' || *c == ':')
        // No address is longer (IPv6 with an IPv4 tail): a huge message costs no huge string.
        .take(MAX_IP_LEN + 1)
        .collect();
    candidate.parse::<std::net::IpAddr>().ok()?;
    Some(candidate)
}

fn misconfigured(errcode: i64, endpoint: &'static str, fix: &'static str) -> AuthError {
    tracing::error!(errcode, endpoint, "DingTalk refused the call: {fix}");
    AuthError::new(
        AuthErrorKind::Misconfigured,
        "DingTalk refused the app's configuration",
    )
    .with_errcode(errcode)
}
