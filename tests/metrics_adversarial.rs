//! Metrics under attack, over real sockets: floods of junk input and hostile DingTalk answers add
//! no metric key and no label value; a recorder that panics on histograms, on gauges or after N
//! calls loses no login and is logged once per fuse; a recorder installed after the build
//! records nothing; the in-flight gauge returns to 0 after timeouts and abandoned requests.

#[path = "metrics_adversarial/probe.rs"]
mod probe;
mod support;
#[path = "metrics_adversarial/tracking.rs"]
mod tracking;

use std::collections::BTreeSet;
use std::time::Duration;

use metrics_util::debugging::DebuggingRecorder;
use probe::{LOGIN, errcodes, keys, layer, logins, serve};
use reqwest::header::HeaderValue;
use tower_dingtalk_auth::testing::{Endpoint, Fault};
use tracking::{Mode, Tracking};

const PANICKED: &str = "the metrics recorder panicked";

#[tokio::test]
async fn floods_of_junk_input_add_no_key_and_no_label() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let dingtalk = support::dingtalk().await;
    let layer = metrics::with_local_recorder(&recorder, || layer(support::client_for(&dingtalk)));
    let base = serve(layer).await;
    let before = keys(&snapshotter);
    assert!(
        before.len() > 30,
        "counters are registered at build: {before:?}"
    );
    let http = reqwest::Client::new();
    let me = format!("{base}/me");

    let mut junk: Vec<HeaderValue> = vec![
        HeaderValue::from_str(&"a".repeat(10 * 1024)).unwrap(),
        HeaderValue::from_bytes(b"abc\tdef\x80\xff\xfe").unwrap(),
        HeaderValue::from_bytes("代码🙂".as_bytes()).unwrap(),
    ];
    junk.extend((0..2000).map(|i| HeaderValue::from_str(&format!("bad code {i}!")).unwrap()));
    for value in junk {
        let response = http
            .get(&me)
            .header("x-dingtalk-code", value)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
    }
    assert_eq!(dingtalk.userinfo_calls(), 0, "malformed codes cost no call");
    // Well-formed codes DingTalk never issued: each costs one call, then is replayed.
    for i in 0..30 {
        // Printable ASCII up to 256 bytes is a well-formed code, even a path.
        let code = format!("../../etc/passwd/{i:032x}");
        for _ in 0..2 {
            let response = http
                .get(&me)
                .header("x-dingtalk-code", &code)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 401, "{code}");
        }
    }
    assert_eq!(
        dingtalk.userinfo_calls(),
        30,
        "junk costs no call, a rejected code one"
    );
    for i in 0..500 {
        let cookie = format!("dingtalk_session=forged{i}\t\u{80}; other=\u{ff}x");
        let bearer = format!("Bearer {}", "A".repeat(i % 7 * 1000 + 1));
        for (name, value) in [("cookie", cookie), ("authorization", bearer)] {
            let value = HeaderValue::from_bytes(value.as_bytes()).unwrap();
            let response = http.get(&me).header(name, value).send().await.unwrap();
            assert!(
                response.status().is_client_error(),
                "{name}: {}",
                response.status()
            );
        }
    }
    for body in [
        "{\"code\":\"\u{0}\"}",
        "not json",
        "{\"code\":12}",
        "{\"refresh_token\":\"x\"}",
    ] {
        let response = http
            .post(format!("{base}{LOGIN}"))
            .body(body)
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_client_error(),
            "{body}: {}",
            response.status()
        );
    }
    // The corp id of a stranger on an internal app's request.
    let response = http
        .get(&me)
        .header("x-dingtalk-code", format!("../../etc/passwd/{:032x}", 7))
        .header(
            "x-dingtalk-corp-id",
            HeaderValue::from_bytes("ding-stranger-\t\u{1F600}".as_bytes()).unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert!(response.status().is_client_error());

    let after = keys(&snapshotter);
    let new: Vec<_> = after.difference(&before).collect();
    assert!(new.is_empty(), "junk created metric keys: {new:?}");
}

#[tokio::test]
async fn hostile_errcodes_land_in_other_and_the_label_set_stays_documented() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let dingtalk = support::dingtalk().await;
    let layer = metrics::with_local_recorder(&recorder, || layer(support::client_for(&dingtalk)));
    let base = serve(layer).await;
    let (documented, _) = errcodes(&snapshotter);
    let expected: BTreeSet<String> = [
        "-1/system_busy",
        "22/unknown_api",
        "88/auth_error",
        "33001/invalid_corp",
        "40001/invalid_credential",
        "40014/invalid_access_token",
        "40035/invalid_parameter",
        "40078/invalid_code",
        "41001/missing_access_token",
        "42001/access_token_expired",
        "42008/code_expired",
        "43004/invalid_content_type",
        "60011/no_permission",
        "60020/ip_not_whitelisted",
        "60121/not_a_member",
        "90002/global_rate_limit",
        "90018/app_rate_limit",
        "90001-90017/throttled",
        "other/other",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(documented, expected, "the documented errcode labels");

    let numeric = [99_999_999, -5, i64::MAX, i64::MIN, 90_019, 1];
    let mut faults: Vec<Fault> = numeric.iter().map(|&code| Fault::Errcode(code)).collect();
    faults.push(Fault::SubCode(99_999_999));
    for body in [
        r#"{"errcode":"99999999","errmsg":"x"}"#,
        r#"{"errcode":"abc","errmsg":"x"}"#,
        r#"{"errcode":1e300,"errmsg":"x"}"#,
        r#"{"errcode":-0.5}"#,
    ] {
        faults.push(Fault::Raw(200, body.as_bytes().to_vec()));
    }
    let http = reqwest::Client::new();
    for fault in &faults {
        dingtalk.fail_next(Endpoint::GetUserInfo, fault.clone(), 1);
        let code = dingtalk.issue_code("staff01");
        let response = http
            .get(format!("{base}/me"))
            .header("x-dingtalk-code", &code)
            .send()
            .await
            .unwrap();
        let status = response.status();
        assert!(
            status.is_client_error() || status.is_server_error(),
            "{fault:?}: {status}"
        );
        assert_ne!(status, 500, "{fault:?}");
        dingtalk.clear_faults();
    }
    // 88 with a sub code that is no number: an auth error, so the token is fetched again and the
    // call retried once (the fault spent no code): 200, and 88/auth_error counted.
    dingtalk.fail_next(
        Endpoint::GetUserInfo,
        Fault::Raw(200, br#"{"errcode":88,"sub_code":"\u0000evil"}"#.to_vec()),
        1,
    );
    let code = dingtalk.issue_code("staff01");
    let response = http
        .get(format!("{base}/me"))
        .header("x-dingtalk-code", &code);
    assert_eq!(
        response.send().await.unwrap().status(),
        200,
        "retried after 88"
    );
    // The numeric errcodes, and the 88 wrapping 99999999.
    let unknown = numeric.len() as u64 + 1;
    let (after, other) = errcodes(&snapshotter);
    assert_eq!(
        after, expected,
        "no errcode label beyond the documented ones"
    );
    assert!(
        other >= unknown,
        "every unknown numeric errcode counts as other: {other}"
    );
    let all = keys(&snapshotter);
    for key in &all {
        assert!(!key.contains("99999999") && !key.contains("evil"), "{key}");
    }
}

async fn panicking(mode: Mode) {
    let (_logs, buffer) = support::capture_logs();
    let recorder = Tracking::new(mode);
    let dingtalk = support::dingtalk().await;
    let layer = metrics::with_local_recorder(&recorder, || layer(support::client_for(&dingtalk)));
    let base = serve(layer).await;
    logins(&base, &dingtalk, &["staff01", "boss01"]).await;
    let logged = buffer.contents().matches(PANICKED).count();
    let calls = recorder.calls();
    assert!(calls > 0, "the recorder was asked");
    // One fuse per client, layer, cache and limits: each logs its first panic, no more.
    assert!((1..=4).contains(&logged), "logged {logged} times");
    logins(&base, &dingtalk, &["super01", "staff01"]).await;
    assert_eq!(
        buffer.contents().matches(PANICKED).count(),
        logged,
        "logged once"
    );
    assert_eq!(dingtalk.userinfo_calls(), 8);
}

#[tokio::test]
async fn a_recorder_that_panics_only_on_histograms_loses_no_login() {
    panicking(Mode::PanicOnHistograms).await;
}

#[tokio::test]
async fn a_recorder_that_panics_only_on_gauges_loses_no_login() {
    panicking(Mode::PanicOnGauges).await;
}

#[tokio::test]
async fn a_recorder_that_panics_after_some_calls_loses_no_login() {
    // Past the registrations (about 60), within the first requests' recordings.
    panicking(Mode::PanicAfter(70)).await;
}

#[tokio::test]
async fn a_recorder_installed_after_the_build_records_nothing() {
    let dingtalk = support::dingtalk().await;
    let layer = layer(support::client_for(&dingtalk));
    let base = serve(layer).await;
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    // A current-thread runtime: the server and the exchanges run on this thread, under it.
    let _installed = metrics::set_default_local_recorder(&recorder);
    logins(&base, &dingtalk, &["staff01", "boss01"]).await;
    let bad = reqwest::get(format!("{base}/me")).await.unwrap();
    assert_eq!(bad.status(), 401);
    let seen = keys(&snapshotter);
    assert!(seen.is_empty(), "recorded after the build: {seen:?}");
}

#[tokio::test]
async fn in_flight_returns_to_zero_after_timeouts_and_abandoned_requests() {
    let recorder = Tracking::new(Mode::Calm);
    let dingtalk = support::dingtalk().await;
    let client = support::client_for(&dingtalk).upstream_timeout(Duration::from_millis(200));
    let layer = metrics::with_local_recorder(&recorder, || layer(client));
    let base = serve(layer).await;
    dingtalk.fail_always(
        Endpoint::GetUserInfo,
        Fault::Latency(Duration::from_millis(600)),
    );
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(50))
        .build()
        .unwrap();
    let http = reqwest::Client::new();
    let mut requests = Vec::new();
    for i in 0..40 {
        let (http, me) = (
            if i % 2 == 0 { &http } else { &impatient },
            format!("{base}/me"),
        );
        let code = dingtalk.issue_code("staff01");
        requests.push(async move { http.get(me).header("x-dingtalk-code", code).send().await });
    }
    let answers = futures_util::future::join_all(requests).await;
    for (i, answer) in answers.into_iter().enumerate() {
        match answer {
            Ok(response) => assert_eq!(response.status(), 504, "request {i}"),
            Err(error) => assert!(i % 2 == 1 && error.is_timeout(), "request {i}: {error}"),
        }
    }
    // Calls already sent run to their answers: wait for them.
    let mut level = recorder.gauge("dingtalk_auth_exchanges_in_flight");
    for _ in 0..100 {
        level = recorder.gauge("dingtalk_auth_exchanges_in_flight");
        if level.now == 0.0 && dingtalk.userinfo_calls() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(dingtalk.userinfo_calls() > 0, "the storm reached DingTalk");
    assert_eq!(
        level.now, 0.0,
        "nothing in flight after the storm: {level:?}"
    );
    assert!(level.lowest >= 0.0, "in flight went negative: {level:?}");
    let cached = recorder.gauge("dingtalk_auth_cached_identities");
    assert!(
        cached.lowest >= 0.0,
        "cached identities went negative: {cached:?}"
    );
    dingtalk.clear_faults();
    logins(&base, &dingtalk, &["boss01"]).await;
    assert_eq!(recorder.gauge("dingtalk_auth_exchanges_in_flight").now, 0.0);
}
