//! Logs without codes: `trace::RedactedSpan` with tower-http's `TraceLayer`. A test binary of its
//! own: it captures this thread's trace output, which tests running beside it on other threads
//! (tower-http's callsites shared with them) could make racy.

mod support;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

/// Logs without codes: tower-http's `TraceLayer::new_for_http()` records the full URI, the code
/// included, in every request's span; with `RedactedSpan` the span holds the path and the other
/// parameters, and the code's value is `REDACTED`.
#[tokio::test(flavor = "current_thread")]
async fn the_redacted_span_keeps_codes_out_of_trace_logs() {
    use tower_dingtalk_auth::trace::RedactedSpan;
    use tower_http::trace::TraceLayer;
    let (_guard, logs) = support::capture_logs();
    let dingtalk = support::dingtalk().await;
    let auth = support::layer_for(&dingtalk)
        .code_sources([
            tower_dingtalk_auth::CodeSource::query("code"),
            tower_dingtalk_auth::CodeSource::query("dt"),
        ])
        .build()
        .unwrap();
    let redacted = support::routes(Arc::new(AtomicU64::new(0)))
        .layer(auth.clone())
        .layer(TraceLayer::new_for_http().make_span_with(RedactedSpan::for_layer(&auth)));
    let default = support::routes(Arc::new(AtomicU64::new(0)))
        .layer(auth.clone())
        .layer(TraceLayer::new_for_http());
    let (redacted_addr, _a) = support::serve(redacted).await;
    let (default_addr, _b) = support::serve(default).await;
    let http = reqwest::Client::new();

    let code = dingtalk.issue_code("boss01");
    let other = dingtalk.issue_code("staff01");
    let response = http
        .get(format!("http://{redacted_addr}/me?tab=2&code={code}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let response = http
        .get(format!(
            "http://{redacted_addr}/me?dt={other}&authCode=x1&state=s1"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let redacted_logs = logs.contents();
    assert!(
        redacted_logs.contains("uri=/me?tab=2&code=REDACTED"),
        "{redacted_logs}"
    );
    assert!(redacted_logs.contains("uri=/me?dt=REDACTED&authCode=REDACTED&state=REDACTED"));
    for secret in [&code, &other, "x1", "s1"] {
        assert!(
            !redacted_logs.contains(secret),
            "{secret} logged: {redacted_logs}"
        );
    }

    // What `TraceLayer::new_for_http()` would log: the code itself.
    let code = dingtalk.issue_code("sub01");
    let response = http
        .get(format!("http://{default_addr}/me?code={code}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let all = logs.contents();
    assert!(all.contains(&format!("uri=/me?code={code}")), "{all}");
}
