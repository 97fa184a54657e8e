//! [`MockDingTalk`]'s side for third-party apps: the suite, the corps that installed it, their
//! users and codes, suite tickets and corp token faults.

use super::{Fault, MockDingTalk};
use crate::user::AuthenticatedDingTalkUser;

impl MockDingTalk {
    /// The suite key of the third-party app the server accepts.
    pub fn suite_key(&self) -> String {
        self.shared.state().suite_key.clone()
    }

    /// The suite secret of the third-party app the server accepts.
    pub fn suite_secret(&self) -> String {
        self.shared.state().suite_secret.clone()
    }

    /// Makes `corp_id` an organisation that installed the third-party app: its token endpoints
    /// issue tokens for it. Codes are issued per corp with [`issue_corp_code`](Self::issue_corp_code).
    pub fn add_corp(&self, corp_id: &str) {
        self.shared
            .state()
            .authorized_corps
            .insert(corp_id.to_owned());
    }

    /// Registers (or replaces) a user of `corp_id`; userids are unique only within one corp.
    pub fn add_corp_user(&self, corp_id: &str, user: AuthenticatedDingTalkUser) {
        self.shared.state().add_user(Some(corp_id.to_owned()), user);
    }

    /// Issues a fresh one-time code for a user of `corp_id`. Exchanged with a token of another corp
    /// it does not exist (40078).
    pub fn issue_corp_code(&self, corp_id: &str, userid: &str) -> String {
        self.shared
            .state()
            .issue_code(Some(corp_id.to_owned()), userid)
    }

    /// The suite ticket `POST /v1.0/oauth2/corpAccessToken` accepts now.
    pub fn suite_ticket(&self) -> String {
        self.shared.state().suite_ticket.clone()
    }

    /// Pushes a new suite ticket, as DingTalk does about every 5 hours; the previous one stops
    /// working. Returns the new ticket.
    pub fn rotate_suite_ticket(&self) -> String {
        let mut state = self.shared.state();
        let next = format!("mock-suite-ticket-{}", state.serial());
        state.suite_ticket.clone_from(&next);
        next
    }

    /// Answers every token request for `corp_id` (on either corp token endpoint) with `fault`
    /// until [`clear_faults`](Self::clear_faults).
    pub fn fail_corp_tokens(&self, corp_id: &str, fault: Fault) {
        self.shared
            .state()
            .corp_faults
            .insert(corp_id.to_owned(), fault);
    }

    /// Calls to either corp token endpoint for `corp_id`.
    pub fn corp_token_calls(&self, corp_id: &str) -> u64 {
        let state = self.shared.state();
        state.corp_token_calls.get(corp_id).copied().unwrap_or(0)
    }
}
