//! Replicas as real processes behind a real balancer: the fake DingTalk as a process
//! (`examples/fake_dingtalk.rs`), one `redis-server` of the test's own, three replica processes
//! (`examples/replica.rs`) and HAProxy in round robin in front of them; one replica is SIGKILLed
//! mid-run.
//!
//! Needs the example binaries (`cargo test --all-features` builds them first; alone, run `cargo
//! build --examples --all-features`), `haproxy` and `redis-server`; without them it fails, saying
//! what to install. Every process it starts is killed when it ends, passing or failing.

mod support;

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use support::processes::{Children, example, free_port, require_haproxy};
use support::store::RedisServer;

const REPLICAS: usize = 3;
const CODES: usize = 50;
const REQUESTS: usize = 1_000;
const AT_ONCE: usize = 16;
/// About the request before which one replica is killed: by then every code was exchanged long
/// ago, so no exchange is in flight on it.
const KILL_AT: usize = 500;
const STORE_SECRET: &str = "balancer-test-store-secret-of-32-bytes-or-more";

/// What request `i` got: its status, the replica that answered, whether the body was its code's
/// user, and when it ran against the kill.
#[derive(Debug)]
struct Answer {
    i: usize,
    status: u16,
    replica: Option<String>,
    right_user: bool,
    started_after_kill: bool,
    finished_before_kill: bool,
}

/// A line `KEY=value` of the fake's printed settings.
fn setting(printed: &str, key: &str) -> String {
    printed
        .lines()
        .find_map(|line| line.trim().strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("the fake printed no {key}: {printed}"))
        .to_owned()
}

/// The address a process printed on its first line, `... http://127.0.0.1:PORT`.
fn url_in(line: &str) -> String {
    let at = line
        .find("http://")
        .unwrap_or_else(|| panic!("no URL in `{line}`"));
    line[at..].trim().to_owned()
}

fn haproxy_config(port: u16, replicas: &[(String, String)]) -> String {
    let mut config = format!(
        "global\n  maxconn 512\n\n\
         defaults\n  mode http\n  timeout connect 1s\n  timeout client 30s\n  timeout server 30s\n\
         \x20 retries 3\n  option redispatch 1\n  retry-on conn-failure empty-response response-timeout\n\n\
         frontend app\n  bind 127.0.0.1:{port}\n  option forwardfor\n  default_backend replicas\n\n\
         backend replicas\n  balance roundrobin\n  option httpchk GET /health\n"
    );
    for (name, url) in replicas {
        let addr = url.trim_start_matches("http://");
        config.push_str(&format!(
            "  server {name} {addr} check inter 200ms fall 1 rise 1\n"
        ));
    }
    config
}

async fn calls(http: &reqwest::Client, fake: &str) -> serde_json::Value {
    let response = http
        .get(format!("{fake}/_fake/calls"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// Polls `url` until it answers 200, for at most 10 s.
async fn until_up(http: &reqwest::Client, url: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match http.get(url).send().await {
            Ok(response) if response.status() == 200 => return,
            other => assert!(Instant::now() < deadline, "{url} is not up: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replica_processes_behind_haproxy_exchange_each_code_once_and_survive_a_kill() {
    let (fake_bin, replica_bin) = (example("fake_dingtalk"), example("replica"));
    require_haproxy();
    let redis = RedisServer::start();
    let mut children = Children::new("balancer");
    let http = reqwest::Client::new();

    // The fake, as a process: its printed settings configure the replicas.
    let printed = children.start(
        "fake",
        Command::new(&fake_bin).args(["--port", "0"]),
        "DINGTALK_APP_SECRET=",
    );
    let fake = url_in(printed.lines().next().unwrap());
    assert_eq!(setting(&printed, "DINGTALK_BASE_URL"), fake);
    let mut replicas = Vec::new();
    for n in 1..=REPLICAS {
        let name = format!("replica{n}");
        let first = children.start(
            &name,
            Command::new(&replica_bin)
                .env("PORT", "0")
                .env("DINGTALK_BASE_URL", &fake)
                .env("DINGTALK_APP_KEY", setting(&printed, "DINGTALK_APP_KEY"))
                .env(
                    "DINGTALK_APP_SECRET",
                    setting(&printed, "DINGTALK_APP_SECRET"),
                )
                .env("REDIS_URL", redis.url())
                .env("DINGTALK_STORE_SECRET", STORE_SECRET)
                // New logins come in a burst here, and a debug build on two busy cores answers
                // Redis slower than in production: neither is what this test is about.
                .env("DINGTALK_RATE_LIMIT", "1000")
                .env("DINGTALK_STORE_TIMEOUT_MS", "1000"),
            "listening on",
        );
        replicas.push((name, url_in(&first)));
    }
    let port_of = |url: &str| url.rsplit(':').next().unwrap().to_owned();
    let all: BTreeSet<String> = replicas.iter().map(|(_, url)| port_of(url)).collect();
    let (victim, victim_port) = (replicas[1].0.clone(), port_of(&replicas[1].1));

    let port = free_port();
    let config = children.dir.join("haproxy.cfg");
    std::fs::write(&config, haproxy_config(port, &replicas)).unwrap();
    children.start_quiet(
        "haproxy",
        Command::new("haproxy").arg("-db").arg("-f").arg(&config),
    );
    let front = format!("http://127.0.0.1:{port}");
    until_up(&http, &format!("{front}/health")).await;

    // 50 codes for 10 users, over the fake's control surface.
    let mut codes = Vec::new();
    for i in 0..CODES {
        let userid = format!("user{}", i % 10);
        let added = http
            .post(format!(
                "{fake}/_fake/users?userid={userid}&name=User%20{}",
                i % 10
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(added.status(), 201);
        let code = http
            .post(format!("{fake}/_fake/codes?userid={userid}"))
            .send()
            .await
            .unwrap();
        assert_eq!(code.status(), 200);
        codes.push((code.text().await.unwrap(), userid));
    }

    // 1,000 requests, 16 at a time, code i % 50: the first 50 exchange every code once. Each
    // notes whether it started after the kill; the loop notes whether it finished before.
    let killed = Arc::new(AtomicBool::new(false));
    let mut answers: Vec<Answer> = Vec::with_capacity(REQUESTS);
    let mut requests = futures_util::stream::iter(0..REQUESTS)
        .map(|i| {
            let (code, userid) = &codes[i % CODES];
            let request = http
                .get(format!("{front}/me"))
                .header("x-dingtalk-code", code);
            let killed = killed.clone();
            async move {
                let started_after_kill = killed.load(Ordering::SeqCst);
                let response = request.send().await.unwrap();
                let status = response.status().as_u16();
                let replica = response
                    .headers()
                    .get("x-replica")
                    .map(|value| value.to_str().unwrap().to_owned());
                let body: serde_json::Value = response.json().await.unwrap_or_default();
                let right_user = body["userid"] == userid.as_str();
                Answer {
                    i,
                    status,
                    replica,
                    right_user,
                    started_after_kill,
                    finished_before_kill: false,
                }
            }
        })
        .buffer_unordered(AT_ONCE);
    while let Some(mut answer) = requests.next().await {
        answer.finished_before_kill = !killed.load(Ordering::SeqCst);
        answers.push(answer);
        // The stream starts request n once n - 16 have finished: kill before request 500 starts,
        // with 15 in flight (some of them on the replica that dies).
        if answers.len() == KILL_AT - AT_ONCE {
            let before = calls(&http, &fake).await;
            assert_eq!(
                before["calls"]["get_user_info"], CODES,
                "every code was exchanged, once, before the kill"
            );
            children.kill(&victim);
            killed.store(true, Ordering::SeqCst);
        }
    }
    drop(requests);

    let in_flight: Vec<&Answer> = answers
        .iter()
        .filter(|a| !a.started_after_kill && !a.finished_before_kill)
        .collect();
    let failed: Vec<&Answer> = answers
        .iter()
        .filter(|a| a.status != 200 || !a.right_user)
        .collect();
    let replicas_of = |which: &dyn Fn(&Answer) -> bool| -> BTreeSet<String> {
        answers
            .iter()
            .filter(|a| which(a))
            .filter_map(|a| a.replica.clone())
            .collect()
    };
    let before = replicas_of(&|a| a.finished_before_kill);
    let after = replicas_of(&|a| a.started_after_kill);
    let exchanges = calls(&http, &fake).await["calls"]["get_user_info"].clone();
    println!(
        "{REQUESTS} requests over {CODES} codes through HAProxy to {REPLICAS} replica processes, \
         {victim} (port {victim_port}) SIGKILLed with {} in flight: {} not 200; replicas before \
         the kill {before:?}, after {after:?}; getuserinfo calls: {exchanges}",
        in_flight.len(),
        failed.len()
    );
    // Every request answered 200 with its code's user, those in flight on the dead replica too:
    // HAProxy re-sent them to a survivor (`retry-on empty-response`), which read the user from Redis.
    assert!(
        failed.is_empty(),
        "not 200 or not the code's user: {failed:?}"
    );
    let mut answered: Vec<usize> = answers.iter().map(|a| a.i).collect();
    answered.sort_unstable();
    assert_eq!(
        answered,
        (0..REQUESTS).collect::<Vec<_>>(),
        "every request, once"
    );
    assert_eq!(exchanges, CODES, "each code exchanged once in all");
    assert_eq!(before, all, "all three replicas answered before the kill");
    let survivors: BTreeSet<String> = all.iter().filter(|p| **p != victim_port).cloned().collect();
    assert_eq!(
        after, survivors,
        "the two survivors answered after the kill"
    );
    let logs = children.logs();
    for (code, _) in &codes {
        assert!(!logs.contains(code.as_str()), "a code in a log: {logs}");
    }
}

#[test]
fn the_fake_as_a_process_takes_a_port_and_refuses_bad_arguments() {
    let fake_bin = example("fake_dingtalk");
    let mut children = Children::new("fake-process");
    let port = free_port();
    let printed = children.start(
        "fake",
        Command::new(&fake_bin).arg(format!("--port={port}")),
        "fake DingTalk at",
    );
    assert_eq!(
        printed,
        format!("fake DingTalk at http://127.0.0.1:{port}\n")
    );

    for (args, says) in [
        (
            &["--port", "nope"][..],
            "--port takes 0 to 65535, not `nope`",
        ),
        (&["--port"][..], "--port needs a number"),
        (&["--verbose"][..], "unknown argument `--verbose`"),
    ] {
        let output = Command::new(&fake_bin).args(args).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert!(output.stdout.is_empty(), "{args:?}");
    }
}
