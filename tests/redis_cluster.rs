//! A Redis Cluster of the tests' own (six `redis-server`s: three masters, three replicas; never
//! the shared Redis): codes whose keys fall on every master are exchanged once each across three
//! replicas; sessions and revocations work across them (the revocation log's keys share a slot);
//! and a master killed mid-run costs no login (every request a replica alone would serve is
//! served) while its replica is promoted, after which the replicas share through the cluster
//! again. Without `redis-server` or `redis-cli` they fail, saying what to install.

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use http::header::{COOKIE, SET_COOKIE};
use support::servers::Cluster;
use support::store::{Replica, SHARING_TEST_TIMEOUT, TEST_SECRET, digest, until_shared_again};
use tower_dingtalk_auth::testing::MockDingTalk;
use tower_dingtalk_auth::{RedisStore, SessionConfig, SessionKey};

const PREFIX: &str = "cluster-test:";

/// A store on the cluster; `lazy`: built with `connect_lazy`, connecting on first use.
async fn store(cluster: &Cluster, retry_after: Duration, lazy: bool) -> RedisStore {
    let builder = RedisStore::cluster_builder(cluster.urls())
        .secret(TEST_SECRET)
        .key_prefix(PREFIX)
        .timeout(SHARING_TEST_TIMEOUT)
        .retry_after(retry_after);
    let store = if lazy {
        builder.connect_lazy()
    } else {
        builder.connect().await
    };
    store.unwrap_or_else(|error| panic!("{error}"))
}

async fn replicas(
    dingtalk: &MockDingTalk,
    cluster: &Cluster,
    n: usize,
    key: &SessionKey,
    retry_after: Duration,
) -> Vec<Replica> {
    let mut replicas = Vec::new();
    for i in 0..n {
        // The first replica's store connects on first use.
        let store = store(cluster, retry_after, i == 0).await;
        let session = SessionConfig::new(key.clone()).secure(false);
        replicas.push(Replica::start(dingtalk, store, |layer| layer.session(session)).await);
    }
    replicas
}

/// The slot of a code's identity key.
fn slot_of(cluster: &Cluster, dingtalk: &MockDingTalk, code: &str) -> u16 {
    let key = format!("{PREFIX}id:{{{}}}", digest(&dingtalk.app_key(), None, code));
    cluster.slot(&key)
}

/// Every replica gets every code, all at once; every answer is the code's user.
async fn all_get_all(replicas: &[Replica], codes: &[(String, &str)]) {
    let requests = codes.iter().flat_map(|(code, userid)| {
        replicas
            .iter()
            .map(move |replica| async move { (replica.get(code).await, *userid) })
    });
    for (response, userid) in join_all(requests).await {
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
        assert_eq!(support::json(response).await["userid"], userid);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codes_on_every_master_are_exchanged_once_and_revocations_reach_every_replica() {
    let cluster = Cluster::start();
    let dingtalk = support::dingtalk().await;
    let key = SessionKey::generate();
    let replicas = replicas(&dingtalk, &cluster, 3, &key, Duration::from_secs(1)).await;

    let users = ["staff01", "boss01", "sub01", "odd01"];
    let codes: Vec<(String, &str)> = (0..30)
        .map(|i| (dingtalk.issue_code(users[i % 4]), users[i % 4]))
        .collect();
    all_get_all(&replicas, &codes).await;
    assert_eq!(dingtalk.userinfo_calls(), 30, "one exchange per code");
    assert!(replicas.iter().all(|replica| replica.store.is_available()));
    let masters: BTreeSet<u16> = codes
        .iter()
        .map(|(code, _)| {
            cluster
                .master_of(slot_of(&cluster, &dingtalk, code))
                .unwrap()
        })
        .collect();
    assert_eq!(masters.len(), 3, "the codes' keys fall on every master");
    // DingTalk's shared budget ran on the cluster too: its keys share the app's slot (a script
    // over keys of several slots would be refused with CROSSSLOT, and nothing written).
    let mut budget_keys = BTreeSet::new();
    for url in cluster.urls() {
        let port = url.rsplit(':').next().unwrap().parse().unwrap();
        let found: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{PREFIX}budget*"))
            .query(&mut support::servers::node(port))
            .unwrap();
        budget_keys.extend(found);
    }
    let kinds: BTreeSet<&str> = budget_keys
        .iter()
        .filter_map(|key| key.strip_prefix(PREFIX)?.split(':').next())
        .collect();
    assert!(
        kinds.contains("budget") && kinds.contains("budget-replicas"),
        "{budget_keys:?}"
    );
    let slots: BTreeSet<u16> = budget_keys.iter().map(|key| cluster.slot(key)).collect();
    assert_eq!(
        slots.len(),
        1,
        "one app's budget on one slot: {budget_keys:?}"
    );

    // A session started on one replica is good on another; revoked on a third, it ends on all.
    let code = dingtalk.issue_code("super01");
    let started = replicas[0].get(&code).await;
    assert_eq!(started.status(), 200);
    let cookie = started.headers()[SET_COOKIE].to_str().unwrap();
    let cookie = cookie.split(';').next().unwrap().to_owned();
    let with_cookie = |replica: &Replica| {
        replica
            .http
            .get(replica.url())
            .header(COOKIE, &cookie)
            .send()
    };
    assert_eq!(with_cookie(&replicas[1]).await.unwrap().status(), 200);
    assert!(replicas[2].layer.client().revoke_user("super01").await);
    // Past the log's poll (250 ms).
    tokio::time::sleep(Duration::from_millis(600)).await;
    for replica in &replicas {
        assert_eq!(with_cookie(replica).await.unwrap().status(), 401);
        assert_eq!(replica.get(&code).await.status(), 401);
    }
    // Everyone else is still signed in.
    all_get_all(&replicas, &codes[..4]).await;
    assert_eq!(dingtalk.userinfo_calls(), 31);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_killed_mid_run_costs_no_login_and_sharing_resumes_after_failover() {
    let mut cluster = Cluster::start();
    let dingtalk = support::dingtalk().await;
    let key = SessionKey::generate();
    let replicas = replicas(&dingtalk, &cluster, 3, &key, Duration::from_millis(200)).await;

    let before: Vec<(String, &str)> = (0..9)
        .map(|_| (dingtalk.issue_code("staff01"), "staff01"))
        .collect();
    all_get_all(&replicas, &before).await;
    assert_eq!(dingtalk.userinfo_calls(), 9);

    // The master of the first code's slot dies without a word.
    let victim_slot = slot_of(&cluster, &dingtalk, &before[0].0);
    let victim = cluster.master_of(victim_slot).expect("a master");
    cluster.kill(victim);
    let killed_at = Instant::now();

    // Meanwhile: every code a replica holds is served from its cache, and every new code is
    // served by the replica it reaches, through the store where its slot answers, else alone.
    let mut served = 0;
    let mut rounds = 0;
    let mut fresh = Vec::new();
    let (mut promoted_after, mut store_down_seen) = (None, false);
    while rounds < 10 || killed_at.elapsed() < Duration::from_secs(3) {
        for (i, replica) in replicas.iter().enumerate() {
            let (code, userid) = &before[(rounds + i) % before.len()];
            replica.expect_user(code, userid).await;
            let code = dingtalk.issue_code("boss01");
            replica.expect_user(&code, "boss01").await;
            replica.expect_user(&code, "boss01").await;
            fresh.push(code);
            served += 3;
        }
        rounds += 1;
        store_down_seen |= replicas.iter().any(|replica| !replica.store.is_available());
        if promoted_after.is_none()
            && cluster
                .master_of(victim_slot)
                .is_some_and(|port| port != victim)
        {
            promoted_after = Some(killed_at.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let promoted = cluster.wait_failover(victim_slot, victim, Duration::from_secs(30));
    let failover = promoted_after.unwrap_or_else(|| killed_at.elapsed());
    let calls_during = dingtalk.userinfo_calls() - 9;
    assert!(
        calls_during <= fresh.len() as u64,
        "no more than one exchange per new code: {calls_during} for {}",
        fresh.len()
    );

    // After the failover the store is used again: shared by every replica, on the promoted
    // master's slots too.
    let resumed = until_shared_again(&dingtalk, &replicas).await;
    let on_promoted = loop {
        let code = dingtalk.issue_code("odd01");
        if cluster.master_of(slot_of(&cluster, &dingtalk, &code)) == Some(promoted) {
            break code;
        }
    };
    let calls = dingtalk.userinfo_calls();
    all_get_all(&replicas, &[(on_promoted, "odd01")]).await;
    assert_eq!(
        dingtalk.userinfo_calls(),
        calls + 1,
        "one exchange on the promoted master"
    );
    println!(
        "master on port {victim} killed: {served} requests served (all 200) in {rounds} rounds \
         during the outage, {calls_during} exchanges for {} new codes; a store seen down: \
         {store_down_seen}; replica promoted within {failover:?} of the kill; sharing resumed \
         after {} more codes",
        fresh.len(),
        resumed.len()
    );
}
