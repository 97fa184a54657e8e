//! Every DingTalk answer shape, read as the client reads it: never panics, a user comes only from
//! an HTTP 200 with errcode 0 and a non-empty userid, and a token only from an HTTP 200, kept for
//! a sane time whatever `expireIn` says (the cache's arithmetic runs on it too).
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use tower_dingtalk_auth::fuzzing::{access_token_answer, userinfo_answer};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let status = [200, 400, 401, 403, 404, 429, 500, 502, 503][usize::from(selector % 9)];
    if let Ok(user) = userinfo_answer(status, body) {
        assert_eq!(status, 200);
        assert!(!user.userid().is_empty());
        // Only the documented field is read: numbers out of range elsewhere are ignored, as the
        // client ignores fields it does not use.
        #[derive(serde::Deserialize)]
        struct Errcode {
            errcode: i64,
        }
        let answer: Errcode = serde_json::from_slice(body).expect("a success has an errcode");
        assert_eq!(answer.errcode, 0);
    }
    if let Ok(kept) = access_token_answer(status, body, selector / 9) {
        assert_eq!(status, 200);
        assert!(kept <= Duration::from_secs(24 * 60 * 60), "{kept:?}");
    }
});
