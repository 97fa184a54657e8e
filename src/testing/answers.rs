//! What the fake DingTalk answers, in DingTalk's own shapes: the gateway's errcode 88, the new
//! host's `{"code": ...}` errors, the legacy host's errcodes, and the answers of injected faults.

use http::StatusCode;
use serde_json::{Value, json};

use super::fault::Fault;

/// What the fake DingTalk answers.
pub(crate) enum Answer {
    Json(StatusCode, Value),
    Text(StatusCode, &'static str, bytes::Bytes),
    /// A page of the web login, `text/html; charset=utf-8`, never cached (it carries codes).
    Html(StatusCode, String),
    /// A `302` to this URL, never cached (it carries a code).
    Redirect(String),
    Close,
}

/// The gateway's answer to a bad or missing access token: errcode 88 wrapping the real code, which
/// DingTalk puts in `sub_code` and in `errmsg`, or in only one of them; `shape` (0, 1 or 2) picks
/// which, so that the fake can take them in turn and clients meet all of them.
pub(crate) fn auth_error(shape: u64, sub_code: i64, sub_msg: &str, request_id: &str) -> Answer {
    let in_errmsg = format!("ding talk error[subcode={sub_code},submsg={sub_msg}]");
    let body = match shape % 3 {
        0 => json!({ "errcode": 88, "sub_code": sub_code.to_string(), "sub_msg": sub_msg,
                     "errmsg": in_errmsg, "request_id": request_id }),
        1 => json!({ "errcode": 88, "errmsg": in_errmsg, "request_id": request_id }),
        _ => json!({ "errcode": 88, "sub_code": sub_code.to_string(), "sub_msg": sub_msg,
                     "errmsg": "auth error", "request_id": request_id }),
    };
    Answer::Json(StatusCode::OK, body)
}

/// An error of the new "api" host.
pub(crate) fn api_error(status: StatusCode, code: &str) -> Answer {
    Answer::Json(
        status,
        json!({ "code": code, "message": code, "requestid": "mock" }),
    )
}

/// An error of the new "api" host with DingTalk's own message and a request id.
pub(crate) fn api_error_message(
    status: StatusCode,
    code: &str,
    message: &str,
    request_id: &str,
) -> Answer {
    Answer::Json(
        status,
        json!({ "code": code, "message": message, "requestid": request_id }),
    )
}

pub(crate) fn errcode(code: i64, message: &str) -> Answer {
    Answer::Json(
        StatusCode::OK,
        json!({ "errcode": code, "errmsg": message }),
    )
}

/// The answer of an injected fault (anything but latency, which the server applies itself).
pub(crate) fn fault_answer(fault: &Fault) -> Answer {
    match fault {
        Fault::Latency(_) => unreachable!("latency delays the normal answer"),
        Fault::HttpStatus(status) => {
            let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            Answer::Text(status, "text/plain", status.to_string().into())
        }
        Fault::Html => Answer::Text(
            StatusCode::OK,
            "text/html",
            "<html><body><h1>403 Forbidden</h1>Access denied by gateway</body></html>".into(),
        ),
        Fault::TruncatedJson => Answer::Text(
            StatusCode::OK,
            "application/json",
            r#"{"errcode":0,"errmsg":"ok","result":{"userid":"us"#.into(),
        ),
        Fault::CloseConnection => Answer::Close,
        Fault::Errcode(code) => errcode(*code, "injected fault"),
        Fault::SubCode(sub) => Answer::Json(
            StatusCode::OK,
            json!({ "errcode": 88, "errmsg": format!("ding talk error[subcode={sub},submsg=injected]"),
                    "sub_code": sub.to_string(), "sub_msg": "injected" }),
        ),
        Fault::IpBan => Answer::Json(
            StatusCode::OK,
            json!({ "status": 1111, "wait": 5, "source": "x5", "punish": "deny" }),
        ),
        Fault::Raw(status, body) => Answer::Text(
            StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            "application/json",
            body.clone().into(),
        ),
        Fault::InvalidCredentials => Answer::Json(
            StatusCode::BAD_REQUEST,
            json!({ "code": "invalidClientIdOrSecret", "message": "invalid clientId or clientSecret",
                    "requestid": "mock" }),
        ),
    }
}
