//! The third-party app's corp token endpoints, as the fake DingTalk answers them: a new token for
//! a corp on every fetch, and refusals in DingTalk's shapes for a corp that did not install the app.

use http::StatusCode;
use serde_json::json;
use tokio::time::Instant;

use super::answers::{Answer, api_error, fault_answer};
use super::call::Call;
use super::state::DingTalkState;

impl DingTalkState {
    /// A new token for a corp on every fetch, as DingTalk does for third-party apps.
    fn token_for_corp(&mut self, corp: &str) -> String {
        let token = self.fresh_secret();
        self.issued_tokens.push(token.clone());
        let expiry = Instant::now() + self.token_ttl;
        self.tokens
            .insert(token.clone(), (Some(corp.to_owned()), expiry));
        token
    }

    /// The checks both corp token endpoints share: the corp's injected fault, and whether the
    /// corp installed the app. `Err` is the answer to give instead of a token.
    fn corp_token_checks(&mut self, corp: &str, not_installed: Answer) -> Result<(), Answer> {
        *self.corp_token_calls.entry(corp.to_owned()).or_default() += 1;
        if let Some(fault) = self.corp_faults.get(corp) {
            return Err(fault_answer(fault));
        }
        if !self.authorized_corps.contains(corp) {
            return Err(not_installed);
        }
        Ok(())
    }

    pub(super) fn corp_token(&mut self, call: &Call) -> Answer {
        let Some(corp) = call.path_corp.clone() else {
            return api_error(StatusCode::NOT_FOUND, "not.found");
        };
        if call.field("grant_type").as_deref() != Some("client_credentials") {
            return api_error(StatusCode::BAD_REQUEST, "unsupported.grant.type");
        }
        // DingTalk answers a corp that did not install the app and wrong credentials alike, with
        // an HTTP 500 (captured live).
        let refused = || api_error(StatusCode::INTERNAL_SERVER_ERROR, "unknownError");
        if call.field("client_id").as_deref() != Some(self.suite_key.as_str())
            || call.field("client_secret").as_deref() != Some(self.suite_secret.as_str())
        {
            return refused();
        }
        let not_installed = refused();
        if let Err(answer) = self.corp_token_checks(&corp, not_installed) {
            return answer;
        }
        let token = self.token_for_corp(&corp);
        Answer::Json(
            StatusCode::OK,
            json!({ "access_token": token, "expires_in": self.token_ttl.as_secs() }),
        )
    }

    pub(super) fn corp_access_token(&mut self, call: &Call) -> Answer {
        if call.field("suiteKey").as_deref() != Some(self.suite_key.as_str())
            || call.field("suiteSecret").as_deref() != Some(self.suite_secret.as_str())
        {
            return api_error(StatusCode::BAD_REQUEST, "invalidSuiteKey");
        }
        if call.field("suiteTicket").as_deref() != Some(self.suite_ticket.as_str()) {
            return api_error(StatusCode::BAD_REQUEST, "invalidSuiteTicket");
        }
        let Some(corp) = call.field("authCorpId") else {
            return api_error(StatusCode::BAD_REQUEST, "invalidAuthInfo");
        };
        let not_installed = api_error(StatusCode::BAD_REQUEST, "invalidAuthInfo");
        if let Err(answer) = self.corp_token_checks(&corp, not_installed) {
            return answer;
        }
        let token = self.token_for_corp(&corp);
        Answer::Json(
            StatusCode::OK,
            json!({ "accessToken": token, "expireIn": self.token_ttl.as_secs() }),
        )
    }
}
