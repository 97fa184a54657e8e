//! What the fake web login looks like: the account chooser standing for DingTalk's QR-code page,
//! the approve page that hands the code to the app by script (as DingTalk's page does, so a test
//! meets a script navigation, not a server redirect chain), its error pages, and the JSAPI shim
//! script standing for `dingtalk.open.js` in a page written for the real client.

use std::fmt::Write as _;

use http::{Method, StatusCode};

use super::accounts::Account;
use super::answers::Answer;

/// A page of the fake's own, beside DingTalk's endpoints: not counted, never faulty.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Page {
    /// `GET /oauth2/approve`: the approve button's target.
    Approve,
    /// `GET /jsapi/dingtalk.js`: the JSAPI shim.
    Script,
}

impl Page {
    pub(crate) fn route(method: &Method, path: &str) -> Option<Self> {
        match (method, path) {
            (&Method::GET, "/oauth2/approve") => Some(Self::Approve),
            (&Method::GET, "/jsapi/dingtalk.js") => Some(Self::Script),
            _ => None,
        }
    }
}

/// `text` made safe inside HTML text and double-quoted attributes.
pub(crate) fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            other => escaped.push(other),
        }
    }
    escaped
}

fn page(status: StatusCode, body: &str) -> Answer {
    Answer::Html(
        status,
        format!(
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\">\
             <title>DingTalk login (fake)</title></head>\n<body>\n{body}</body>\n</html>\n"
        ),
    )
}

/// A page refusing the request, with why.
pub(crate) fn error_page(status: StatusCode, message: &str) -> Answer {
    page(
        status,
        &format!(
            "<h1>DingTalk login (fake)</h1>\n<p class=\"error\">{}</p>\n",
            escape(message)
        ),
    )
}

/// The account chooser: each account that may sign in, with its approve link, and the cancel link
/// that tells the app the user declined, as DingTalk does.
pub(crate) fn account_chooser(accounts: &[(Account, String)], cancel: &str) -> Answer {
    let mut body = String::from("<h1>DingTalk login (fake)</h1>\n<ul id=\"accounts\">\n");
    for (account, approve_href) in accounts {
        let unionid = escape(&account.unionid);
        // Writing to a String cannot fail.
        let _ = writeln!(
            body,
            "<li class=\"account\" data-unionid=\"{unionid}\"><span class=\"name\">{name}</span> \
             <a class=\"approve\" id=\"approve-{unionid}\" href=\"{href}\">Approve</a></li>",
            name = escape(&account.name),
            href = escape(approve_href),
        );
    }
    if accounts.is_empty() {
        body.push_str("<li class=\"none\">No account may sign in here.</li>\n");
    }
    let _ = writeln!(
        body,
        "</ul>\n<p><a id=\"cancel\" href=\"{}\">Cancel</a></p>",
        escape(cancel)
    );
    page(StatusCode::OK, &body)
}

/// The page after approval: it sends the browser to the app's callback by script.
pub(crate) fn approved(callback: &str) -> Answer {
    // A JSON string is a JS string literal; `<` escaped so that no `</script>` ends the script.
    let literal = serde_json::Value::from(callback)
        .to_string()
        .replace('<', "\\u003c");
    let href = escape(callback);
    page(
        StatusCode::OK,
        &format!(
            "<p>Signing you in…</p>\n<script>location.replace({literal})</script>\n\
             <noscript><a id=\"continue\" href=\"{href}\">Continue</a></noscript>\n"
        ),
    )
}

/// The JSAPI shim: `window.dd` with the calls a login page makes, getting codes from the fake.
pub(crate) fn jsapi_script() -> Answer {
    Answer::Text(
        StatusCode::OK,
        "application/javascript; charset=utf-8",
        JSAPI_SHIM.into(),
    )
}

/// The origin comes from the script's own URL, read while it loads (`currentScript` is null in
/// callbacks), so a page on any origin reaches the fake that served it.
const JSAPI_SHIM: &str = r#"// A stand-in for DingTalk's JSAPI (dingtalk.open.js), served by tower-dingtalk-auth's MockDingTalk.
(function () {
  "use strict";
  var script = document.currentScript;
  var origin = script && script.src ? new URL(script.src).origin : window.location.origin;
  function later(callback, argument) {
    if (typeof callback === "function") {
      setTimeout(function () { callback(argument); }, 0);
    }
  }
  function requestAuthCode(corpId, onSuccess, onFail) {
    var url = origin + "/jsapi/requestAuthCode?corpId=" + encodeURIComponent(corpId || "");
    fetch(url, { cache: "no-store", credentials: "omit" })
      .then(function (response) { return response.json(); })
      .then(function (answer) {
        if (answer && typeof answer.code === "string") {
          later(onSuccess, { code: answer.code });
        } else {
          later(onFail, {
            errorCode: String((answer && answer.errorCode) || "-1"),
            errorMessage: String((answer && answer.errorMessage) || "unexpected answer")
          });
        }
      }, function (error) {
        later(onFail, { errorCode: "-1", errorMessage: String(error) });
      });
  }
  window.dd = {
    env: { platform: "fake" },
    ready: function (callback) { later(callback); },
    error: function (callback) { /* the fake's config never fails */ },
    config: function () {},
    runtime: {
      permission: {
        requestAuthCode: function (options) {
          options = options || {};
          requestAuthCode(options.corpId, options.onSuccess, options.onFail);
        }
      }
    },
    getAuthCode: function (options) {
      options = options || {};
      requestAuthCode(options.corpId, options.success, options.fail);
    }
  };
})();
"#;
