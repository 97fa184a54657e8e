//! Code extraction from arbitrary request parts: never panics, and whatever it returns as a code is
//! 1 to 256 bytes of visible ASCII.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tower_dingtalk_auth::fuzzing::extract_code;

fuzz_target!(|data: &[u8]| {
    // Layout: the path and query up to the first NUL, then `name\0value\0` header pairs.
    let mut fields = data.split(|byte| *byte == 0);
    let target = fields.next().unwrap_or_default();
    let Ok(uri) = http::Uri::try_from(target) else {
        return;
    };
    let mut request = http::Request::builder().uri(uri);
    while let (Some(name), Some(value)) = (fields.next(), fields.next()) {
        let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(name),
            http::HeaderValue::from_bytes(value),
        ) else {
            continue;
        };
        request = request.header(name, value);
    }
    let Ok(request) = request.body(()) else {
        return;
    };
    let (parts, ()) = request.into_parts();
    if let Ok(Some(code)) = extract_code(&parts) {
        assert!(!code.is_empty() && code.len() <= 256);
        assert!(code.bytes().all(|byte| byte.is_ascii_graphic()));
    }
});
