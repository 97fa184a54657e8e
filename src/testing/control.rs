//! The fake's control surface over HTTP (see [`CONTROL_PREFIX`]): what [`MockDingTalk`]'s methods
//! do in process, for a fake running as its own process and for front-end developers.
//!
//! [`MockDingTalk`]: super::MockDingTalk

use std::sync::atomic::Ordering;

use http::{Method, StatusCode};
use serde_json::{Map, Value, json};

use super::Shared;
use super::answers::Answer;
use super::control_query::Query;
use super::fault::Endpoint;
use crate::user::AuthenticatedDingTalkUser;

/// Where the fake's control surface lives, a prefix no DingTalk path uses: what
/// [`MockDingTalk`](super::MockDingTalk)'s methods do in process (add users, issue codes, read the
/// call counters), over HTTP, for a fake running as its own process (`cargo run --example
/// fake_dingtalk`) and for front-end developers who need codes without the DingTalk client. These
/// calls are not counted and never faulty.
///
/// | call | answer |
/// | --- | --- |
/// | `POST /_fake/codes?userid=alice` | 200, `text/plain`: a fresh one-time code for `alice` (as [`issue_code`](super::MockDingTalk::issue_code): a userid never added gets a code DingTalk refuses with 60121) |
/// | `POST /_fake/users?userid=alice&name=Alice` | 201: `alice` added, or replaced (`name` defaults to the userid) |
/// | `POST /_fake/users` with a user's JSON body | 201: that user, in the shape handlers answer with (admin level, unionid...); the body wins over the query, and is read as JSON whatever its `Content-Type` |
/// | `GET /_fake/calls` | 200, JSON: `{"calls": {"get_user_info": 3, "access_token": 1, ...}, "total": 4, "faults_served": 0, "abandoned": 0}`, one key per [`Endpoint`] in snake case |
/// | `OPTIONS` on any of these | 204: a browser's CORS preflight passes (`Access-Control-Allow-Methods`, the headers it asks for in `Access-Control-Allow-Headers`, and `Access-Control-Allow-Private-Network` when asked) |
///
/// A missing, empty, repeated, overlong (over 256 bytes) or not UTF-8 (once percent-decoded)
/// `userid` or `name`, or a body that is not a user, is a 400 saying what is wrong; a body over
/// 64 KiB a 413; another method is a 405 with `Allow`; another path under the prefix a 404 listing
/// these calls. Answers carry `Access-Control-Allow-Origin: *`, so a page on any origin can fetch
/// codes and add users, and `Cache-Control: no-store`.
///
/// ```
/// use tower_dingtalk_auth::testing::{CONTROL_PREFIX, MockDingTalk};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let dingtalk = MockDingTalk::start().await;
/// let http = reqwest::Client::new();
/// let base = format!("{}{CONTROL_PREFIX}", dingtalk.base_url());
/// let added = http.post(format!("{base}users?userid=alice&name=Alice")).send().await.unwrap();
/// assert_eq!(added.status(), 201);
/// let code = http.post(format!("{base}codes?userid=alice")).send().await.unwrap();
/// assert_eq!(code.status(), 200);
/// let code = code.text().await.unwrap();
/// let user = dingtalk.client_builder().build().unwrap().user_info(&code).await.unwrap();
/// assert_eq!(user.name(), "Alice");
/// let calls: serde_json::Value = http.get(format!("{base}calls")).send().await.unwrap()
///     .json().await.unwrap();
/// assert_eq!(calls["calls"]["get_user_info"], 1);
/// # }
/// ```
pub const CONTROL_PREFIX: &str = "/_fake/";

/// The longest `userid` or `name` the control surface takes.
const MAX_FIELD: usize = 256;

/// What the 404 under the prefix lists.
const CALLS: &str = "POST /_fake/codes?userid=ID, POST /_fake/users?userid=ID&name=NAME \
                     (or a user's JSON body), GET /_fake/calls";

/// One call of the control surface, routed by path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Control {
    Codes,
    Users,
    Calls,
    Unknown,
}

impl Control {
    /// The control call `path` names, or `None` when it is not under [`CONTROL_PREFIX`].
    pub(crate) fn route(path: &str) -> Option<Self> {
        Some(match path.strip_prefix(CONTROL_PREFIX)? {
            "codes" => Self::Codes,
            "users" => Self::Users,
            "calls" => Self::Calls,
            _ => Self::Unknown,
        })
    }

    /// The one method this call takes; `None` for an unknown call.
    pub(crate) fn method(self) -> Option<Method> {
        match self {
            Self::Codes | Self::Users => Some(Method::POST),
            Self::Calls => Some(Method::GET),
            Self::Unknown => None,
        }
    }

    /// The answer to this call with `method`, the query and the body.
    pub(crate) fn answer(
        self,
        shared: &Shared,
        method: &Method,
        query: Option<&str>,
        body: &[u8],
    ) -> Answer {
        let Some(allowed) = self.method() else {
            return text(StatusCode::NOT_FOUND, format!("the fake serves {CALLS}"));
        };
        if method == Method::OPTIONS {
            // A browser's preflight, before a page on another origin posts JSON: the CORS headers
            // that let it pass are added with the others (`control_headers.rs`).
            return text(StatusCode::NO_CONTENT, String::new());
        }
        if method != allowed {
            return text(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("use {allowed}: the fake serves {CALLS}"),
            );
        }
        let query = Query::parse(query);
        match self {
            Self::Codes => match field(&query, "userid") {
                Ok(userid) => text(StatusCode::OK, shared.state().issue_code(None, &userid)),
                Err(why) => text(StatusCode::BAD_REQUEST, why),
            },
            Self::Users => match user(&query, body) {
                Ok(user) => {
                    let added = format!("added {}", user.userid());
                    shared.state().add_user(None, user);
                    text(StatusCode::CREATED, added)
                }
                Err(why) => text(StatusCode::BAD_REQUEST, why),
            },
            Self::Calls | Self::Unknown => Answer::Json(StatusCode::OK, calls(shared)),
        }
    }
}

/// The user to add: the body's JSON when there is one, else `userid` and `name` (default: the
/// userid) from the query.
fn user(query: &Query, body: &[u8]) -> Result<AuthenticatedDingTalkUser, String> {
    if !body.is_empty() {
        let user: AuthenticatedDingTalkUser = serde_json::from_slice(body)
            .map_err(|error| format!("the body is not a user's JSON: {error}"))?;
        checked("userid", user.userid())?;
        checked("name", user.name())?;
        return Ok(user);
    }
    let userid = field(query, "userid")?;
    let name = if query.has("name") {
        field(query, "name")?
    } else {
        userid.clone()
    };
    Ok(AuthenticatedDingTalkUser::builder(userid, name).build())
}

/// The query's `name`: present once, UTF-8, not empty and not overlong.
fn field(query: &Query, name: &'static str) -> Result<String, String> {
    let value = query.value(name)?.unwrap_or_default();
    checked(name, &value)?;
    Ok(value)
}

/// The answer to a body over `limit` bytes: refused like any other bad control call, so that a
/// page can read why.
pub(crate) fn too_large(limit: usize) -> Answer {
    let why = format!(
        "the body is over {} KiB; a user's JSON is a few hundred bytes",
        limit / 1024
    );
    text(StatusCode::PAYLOAD_TOO_LARGE, why)
}

fn checked(name: &str, value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err(format!("`{name}` is missing or empty"));
    }
    if value.len() > MAX_FIELD {
        return Err(format!("`{name}` is longer than {MAX_FIELD} bytes"));
    }
    Ok(())
}

/// The counters [`MockDingTalk::calls`](super::MockDingTalk::calls) and its neighbours read.
fn calls(shared: &Shared) -> Value {
    let mut by_endpoint = Map::new();
    let mut total = 0;
    for endpoint in Endpoint::ALL {
        let calls = shared.calls[endpoint.index()].load(Ordering::SeqCst);
        total += calls;
        by_endpoint.insert(name(endpoint).to_owned(), calls.into());
    }
    json!({
        "calls": by_endpoint,
        "total": total,
        "faults_served": shared.faults_served.load(Ordering::SeqCst),
        "abandoned": shared.abandoned.load(Ordering::SeqCst),
    })
}

/// An endpoint's key in `GET /_fake/calls`: its [`Endpoint`] variant in snake case.
fn name(endpoint: Endpoint) -> &'static str {
    match endpoint {
        Endpoint::AccessToken => "access_token",
        Endpoint::GetToken => "get_token",
        Endpoint::GetUserInfo => "get_user_info",
        Endpoint::CorpToken => "corp_token",
        Endpoint::CorpAccessToken => "corp_access_token",
        Endpoint::LoginPage => "login_page",
        Endpoint::UserAccessToken => "user_access_token",
        Endpoint::UsersMe => "users_me",
        Endpoint::GetByUnionId => "get_by_union_id",
        Endpoint::UserGet => "user_get",
        Endpoint::ListAdmin => "list_admin",
        Endpoint::JsApiCode => "js_api_code",
        Endpoint::ListParentByUser => "list_parent_by_user",
    }
}

fn text(status: StatusCode, body: String) -> Answer {
    Answer::Text(status, "text/plain; charset=utf-8", body.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_endpoint_has_its_own_key() {
        let mut names: Vec<_> = Endpoint::ALL.iter().map(|e| name(*e)).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Endpoint::ALL.len());
    }

    #[test]
    fn only_paths_under_the_prefix_are_control_calls() {
        assert_eq!(Control::route("/_fake/codes"), Some(Control::Codes));
        assert_eq!(Control::route("/_fake/nope"), Some(Control::Unknown));
        assert_eq!(Control::route("/_fake"), None);
        assert_eq!(Control::route("/topapi/v2/user/getuserinfo"), None);
    }
}
