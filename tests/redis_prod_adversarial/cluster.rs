//! The cluster half of `redis_prod_adversarial`: junk node lists, one server's builder pointed at
//! a cluster node, a slot range lost with its replica, and a failover met by many codes at once,
//! a revocation and readiness probes.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use http::header::{COOKIE, SET_COOKIE};
use tower_dingtalk_auth::{RedisStore, RedisStoreBuilder, SessionConfig, SessionKey};

use super::support;
use super::support::hostile_redis::{replica_of, silent_listener};
use super::support::servers::{Cluster, Server, TempDir, free_port, node};
use super::support::store::{
    BACK, DOWN, Replica, SHARING_TEST_TIMEOUT, TEST_SECRET, until_shared_again,
};

fn on(nodes: Vec<String>, prefix: &str) -> RedisStoreBuilder {
    RedisStore::cluster_builder(nodes)
        .secret(TEST_SECRET)
        .key_prefix(prefix)
        .timeout(SHARING_TEST_TIMEOUT)
}

/// Two replicas on `store`s from `builder` exchange a code once.
async fn shares(builder: RedisStoreBuilder, what: &str) {
    let dingtalk = support::dingtalk().await;
    let mut replicas = Vec::new();
    for _ in 0..2 {
        let store = builder
            .clone()
            .connect()
            .await
            .unwrap_or_else(|error| panic!("{what}: {error}"));
        replicas.push(Replica::start(&dingtalk, store, |b| b).await);
    }
    let code = dingtalk.issue_code("boss01");
    replicas[0].expect_user(&code, "boss01").await;
    replicas[1].expect_user(&code, "boss01").await;
    assert_eq!(dingtalk.userinfo_calls(), 1, "{what}: one exchange");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junk_cluster_node_lists_fail_clearly_or_work() {
    let error = on(Vec::new(), "junk:").connect_lazy().unwrap_err();
    assert!(!error.is_unreachable());
    assert!(error.to_string().contains("at least one node"), "{error}");

    let cluster = Cluster::start();
    let dir = TempDir::new("junk-nodes");
    let plain_port = free_port();
    let _plain = Server::start(&dir, plain_port, &["--port", &plain_port.to_string()]);
    let plain = format!("redis://127.0.0.1:{plain_port}");
    let silent = format!("redis://127.0.0.1:{}", silent_listener().await);
    let closed = format!("redis://127.0.0.1:{}", free_port());
    let seed = cluster.urls()[0].clone();

    // A plain Redis given as a cluster: refused at connect, the reason named.
    let error = on(vec![plain.clone()], "junk:")
        .connect()
        .await
        .unwrap_err();
    assert!(error.is_unreachable(), "{error}");
    println!("a plain Redis as a cluster: {error}");
    assert!(
        error.to_string().to_lowercase().contains("cluster"),
        "{error}"
    );

    // The same node thrice; one good node among a closed port and a silent listener.
    shares(on(vec![seed.clone(); 3], "junk-dup:"), "duplicates").await;
    shares(
        on(
            vec![closed.clone(), seed.clone(), silent.clone()],
            "junk-dead:",
        ),
        "a live node among dead ones",
    )
    .await;
    // A node that is not a member next to one that is: the members' map wins.
    shares(
        on(vec![plain.clone(), seed.clone()], "junk-stranger:"),
        "a stranger and a member",
    )
    .await;

    // One server's builder pointed at a cluster node: refused at connect, pointing at
    // cluster_builder (else every script on another node's slots would fail with MOVED).
    let error = RedisStore::builder(&seed)
        .secret(TEST_SECRET)
        .connect()
        .await
        .unwrap_err();
    println!("a cluster node as one server: {error}");
    assert!(!error.is_unreachable(), "{error}");
    assert!(error.to_string().contains("cluster_builder"), "{error}");
}

/// Whether a live node says `cluster_state:fail`.
fn cluster_failed(cluster: &Cluster) -> bool {
    cluster.nodes.iter().filter(|n| n.is_running()).any(|n| {
        let info: String = redis::cmd("CLUSTER")
            .arg("INFO")
            .query(&mut node(n.port))
            .unwrap_or_default();
        info.contains("cluster_state:fail")
    })
}

/// A master and its replica die: the cluster refuses every command (`cluster_state:fail`, full
/// coverage required). Every login is served by the replica alone and readiness says the store is
/// down. Until the cluster declares the failure (`cluster-node-timeout`) the live slots answer, so
/// the store may come back and go down again, once per retry interval at most, warning each time
/// (docs/replicas.md); once the cluster has failed, no new warning.
#[tokio::test]
async fn a_slot_range_lost_with_its_replica_serves_logins_locally_and_stays_down() {
    let (_guard, logs) = support::capture_logs();
    let mut cluster = Cluster::start();
    let dingtalk = support::dingtalk().await;
    let store = on(cluster.urls(), "lost-range:")
        .retry_after(Duration::from_millis(300))
        .connect()
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    let replica = Replica::start(&dingtalk, store, |b| b).await;
    let cached = dingtalk.issue_code("staff01");
    replica.expect_user(&cached, "staff01").await;

    let master = cluster.master_of(0).expect("a master");
    let follower = replica_of(&cluster, master);
    cluster.kill(follower);
    cluster.kill(master);
    let killed = Instant::now();
    let (mut fresh, mut failed_at, mut warned_before) = (0, None, 0);
    while failed_at.is_none_or(|at: Duration| killed.elapsed() < at + Duration::from_secs(2)) {
        assert!(
            killed.elapsed() < Duration::from_secs(20),
            "no cluster_state:fail"
        );
        replica.expect_user(&cached, "staff01").await;
        let code = dingtalk.issue_code("sub01");
        replica.expect_user(&code, "sub01").await;
        replica.expect_user(&code, "sub01").await;
        fresh += 1;
        if failed_at.is_none() && cluster_failed(&cluster) {
            // Past the calls in flight when the cluster said so.
            tokio::time::sleep(Duration::from_millis(600)).await;
            failed_at = Some(killed.elapsed());
            warned_before = logs.contents().matches(DOWN).count();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        dingtalk.userinfo_calls(),
        1 + fresh,
        "one exchange per new code"
    );
    assert!(!replica.store.is_available());
    let ready = replica.layer.client().readiness().await;
    assert_eq!(ready.store, Some(false));
    let logs = logs.contents();
    for line in logs.lines().filter(|l| l.contains("WARN")) {
        println!("{line}");
    }
    let (warned, back) = (logs.matches(DOWN).count(), logs.matches(BACK).count());
    // The outage's first warning may be logged before the capture sees it (another test's
    // subscriber in this binary); what must hold is that warnings only follow returns.
    assert!(
        warned <= back + 1,
        "each warning after the first follows a return: {logs}"
    );
    assert_eq!(
        warned, warned_before,
        "no warning once the cluster has failed: {logs}"
    );
    println!(
        "cluster_state:fail seen {failed_at:?} after the kill; {fresh} new codes served alone; \
         {warned} warnings, {back} returns"
    );
}

/// A master dies while codes arrive on every slot, each sent to two replicas at once, and a user
/// is revoked; readiness is probed with a replica node down, then the master.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn during_a_failover_codes_revocations_and_readiness_keep_their_promises() {
    let mut cluster = Cluster::start();
    let dingtalk = support::dingtalk().await;
    let key = SessionKey::generate();
    let mut replicas = Vec::new();
    for _ in 0..3 {
        let store = on(cluster.urls(), "failover-attack:")
            .retry_after(Duration::from_millis(200))
            .connect()
            .await
            .unwrap_or_else(|error| panic!("{error}"));
        let session = SessionConfig::new(key.clone()).secure(false);
        replicas.push(Replica::start(&dingtalk, store, |l| l.session(session)).await);
    }
    let code = dingtalk.issue_code("super01");
    let started = replicas[0].get(&code).await;
    assert_eq!(started.status(), 200);
    let cookie = started.headers()[SET_COOKIE].to_str().unwrap();
    let cookie = cookie.split(';').next().unwrap().to_owned();
    let with_cookie = |replica: &Replica| {
        let request = replica.http.get(replica.url()).header(COOKIE, &cookie);
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(with_cookie(&replicas[1]).await, 200);

    // A replica node down changes nothing for readiness: it PINGs the masters.
    let revocations_slot = cluster.slot("{revocations}");
    let victim = cluster.master_of(revocations_slot).unwrap();
    let other = [0, 8000, 16000]
        .into_iter()
        .filter_map(|slot| cluster.master_of(slot))
        .find(|&port| port != victim)
        .unwrap();
    cluster.kill(replica_of(&cluster, other));
    let ready = replicas[0].layer.client().readiness().await;
    assert_eq!(ready.store, Some(true), "a replica node down: {ready:?}");

    // The master of the revocation log's slot dies.
    cluster.kill(victim);
    let ready = replicas[0].layer.client().readiness().await;
    assert_eq!(ready.store, Some(false), "a master down: {ready:?}");
    let taken = replicas[2].layer.client().revoke_user("super01").await;
    assert_eq!(with_cookie(&replicas[2]).await, 401, "revoked here at once");

    // Codes across every slot, each to two replicas at once, in waves through the failover.
    let mut statuses = Vec::new();
    for wave in 0..4 {
        let codes: Vec<String> = (0..8).map(|_| dingtalk.issue_code("odd01")).collect();
        let requests = codes.iter().enumerate().flat_map(|(i, code)| {
            [(i + wave) % 3, (i + wave + 1) % 3].map(|r| {
                let replica = &replicas[r];
                async move { (code.clone(), replica.get(code).await.status().as_u16()) }
            })
        });
        statuses.extend(join_all(requests).await);
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    let codes = statuses.len() / 2;
    let calls = dingtalk.userinfo_calls() - 1;
    let twice = statuses
        .chunks(2)
        .filter(|pair| pair[0].1 != pair[1].1)
        .count();
    for pair in statuses.chunks(2) {
        assert_eq!(pair[0].0, pair[1].0);
        let ok = pair.iter().filter(|(_, status)| *status == 200).count();
        assert!(ok >= 1, "the first exchange of a code is served: {pair:?}");
        assert!(pair.iter().all(|(_, s)| *s == 200 || *s == 401), "{pair:?}");
    }
    assert!(
        calls as usize <= 2 * codes,
        "at most one exchange per request: {calls}"
    );

    cluster.wait_failover(revocations_slot, victim, Duration::from_secs(30));
    let deadline = Instant::now() + Duration::from_secs(15);
    while replicas[0].layer.client().readiness().await.store != Some(true) {
        assert!(Instant::now() < deadline, "readiness never came back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The revocation was kept, and reaches the other replicas once the slot is served again.
    let deadline = Instant::now() + Duration::from_secs(15);
    while with_cookie(&replicas[0]).await != 401 || with_cookie(&replicas[1]).await != 401 {
        assert!(Instant::now() < deadline, "the revocation was lost");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    until_shared_again(&dingtalk, &replicas).await;
    println!(
        "failover: revoke_user answered {taken}; {codes} codes sent twice: {calls} exchanges, \
         {twice} codes with one 401 (exchanged by both replicas, DingTalk refused the second)"
    );
}
