//! Redis over TLS, against `redis-server`s these tests start themselves (never the shared
//! Redis), with certificates `openssl` makes in a temporary directory: replicas share a code over
//! `rediss://`; a certificate from another CA, for another name, or a server that wants a client
//! certificate that is not given is refused at connect with the TLS error named; `rediss://` to a
//! plaintext server fails without sending it a command; `redis://` to a TLS port fails; a
//! certificate that stops verifying on reconnection takes the store down with one warning while
//! every login is still served. Without `redis-server` (with TLS) or `openssl` they fail, saying
//! what to install.

mod support;

#[cfg(feature = "rustls")]
mod over_tls {
    use std::time::Duration;

    use redis::Commands;
    use tower_dingtalk_auth::{RedisStore, RedisStoreBuilder, RedisStoreError};

    use super::support;
    use super::support::servers::{Ca, Server, TempDir, free_port};
    use super::support::store::{DOWN, Replica, SHARING_TEST_TIMEOUT, TEST_SECRET, digest};

    const PASSWORD: &str = "url-password-never-shown";

    /// A `redis-server` that speaks only TLS, with a certificate `ca` issues for `names`.
    fn tls_server(dir: &TempDir, ca: &Ca, leaf: &str, names: &str, port: u16) -> Server {
        let (cert, key) = ca.issue(leaf, names);
        let ca_path = ca.pem_path();
        let port_arg = port.to_string();
        Server::start(
            dir,
            port,
            &[
                "--port",
                "0",
                "--tls-port",
                &port_arg,
                "--tls-cert-file",
                cert.to_str().unwrap(),
                "--tls-key-file",
                key.to_str().unwrap(),
                "--tls-ca-cert-file",
                ca_path.to_str().unwrap(),
                "--tls-auth-clients",
                "no",
            ],
        )
    }

    fn builder(url: &str, prefix: &str) -> RedisStoreBuilder {
        RedisStore::builder(url)
            .secret(TEST_SECRET)
            .key_prefix(prefix)
            .timeout(SHARING_TEST_TIMEOUT)
    }

    /// The error's message and `Debug` name TLS and hold neither the URL's password nor the
    /// store's secret.
    fn refused(error: &RedisStoreError) -> String {
        let (shown, debug) = (error.to_string(), format!("{error:?}"));
        assert!(error.is_unreachable(), "{shown}");
        assert!(shown.contains("over TLS"), "names TLS: {shown}");
        let secret = String::from_utf8_lossy(TEST_SECRET);
        for text in [&shown, &debug] {
            assert!(!text.contains(PASSWORD), "{text}");
            assert!(!text.contains(secret.as_ref()), "{text}");
        }
        shown
    }

    /// A look into a TLS Redis from the test, trusting `ca`.
    fn inspector(url: &str, ca: &Ca) -> redis::Connection {
        let certificates = redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(ca.pem()),
        };
        redis::Client::build_with_tls(url, certificates)
            .and_then(|client| client.get_connection_with_timeout(Duration::from_secs(2)))
            .expect("the test's own TLS connection")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_replicas_over_rediss_exchange_a_code_once() {
        let dir = TempDir::new("tls-share");
        let ca = Ca::new(&dir, "good");
        let server = tls_server(
            &dir,
            &ca,
            "server",
            "IP:127.0.0.1,DNS:localhost",
            free_port(),
        );
        let url = format!("rediss://127.0.0.1:{}", server.port);
        let dingtalk = support::dingtalk().await;
        let mut replicas = Vec::new();
        for _ in 0..2 {
            let store = builder(&url, "tls-share:")
                .tls_root_certificate(ca.pem())
                .connect()
                .await
                .unwrap_or_else(|error| panic!("{error}"));
            replicas.push(Replica::start(&dingtalk, store, |b| b).await);
        }

        let code = dingtalk.issue_code("staff01");
        tokio::join!(
            replicas[0].expect_user(&code, "staff01"),
            replicas[1].expect_user(&code, "staff01"),
        );
        replicas[1].expect_user(&code, "staff01").await;
        assert_eq!(
            dingtalk.userinfo_calls(),
            1,
            "one exchange for both replicas"
        );
        assert!(replicas.iter().all(|r| r.store.is_available()));

        // The identity is in that server, named id:{<digest>}.
        let key = format!(
            "tls-share:id:{{{}}}",
            digest(&dingtalk.app_key(), None, &code)
        );
        let ttl: i64 = inspector(&url, &ca).pttl(&key).unwrap();
        assert!((1..=300_000).contains(&ttl), "{key}: {ttl}");
        // `localhost` is a name in the certificate too.
        let by_name = format!("rediss://localhost:{}", server.port);
        builder(&by_name, "tls-share:")
            .tls_root_certificate(ca.pem())
            .connect()
            .await
            .unwrap_or_else(|error| panic!("{error}"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn certificates_that_do_not_verify_are_refused_at_connect() {
        let dir = TempDir::new("tls-refused");
        let good = Ca::new(&dir, "good");
        let rogue = Ca::new(&dir, "rogue");
        let other_ca = tls_server(&dir, &rogue, "rogue-server", "IP:127.0.0.1", free_port());
        let other_name = tls_server(&dir, &good, "named", "DNS:redis.internal", free_port());

        let url = |port: u16| format!("rediss://:{PASSWORD}@127.0.0.1:{port}");
        // Signed by a CA the store was not given.
        let error = builder(&url(other_ca.port), "tls-refused:")
            .tls_root_certificate(good.pem())
            .connect()
            .await
            .unwrap_err();
        let shown = refused(&error);
        assert!(shown.contains("certificate"), "{shown}");
        println!("another CA: {shown}");
        // Signed by that CA but for another name.
        let error = builder(&url(other_name.port), "tls-refused:")
            .tls_root_certificate(good.pem())
            .connect()
            .await
            .unwrap_err();
        let shown = refused(&error);
        assert!(shown.contains("certificate"), "{shown}");
        println!("another name: {shown}");
        // The test CA is not among the platform's roots.
        let error = builder(&url(other_ca.port), "tls-refused:")
            .connect()
            .await
            .unwrap_err();
        refused(&error);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn mutual_tls_needs_the_client_certificate() {
        let dir = TempDir::new("tls-mutual");
        let ca = Ca::new(&dir, "good");
        let (cert, key) = ca.issue("server", "IP:127.0.0.1");
        let (client_cert, client_key) = ca.issue("client", "DNS:dingtalk-auth.client");
        let port = free_port();
        let port_arg = port.to_string();
        let ca_path = ca.pem_path();
        let server = Server::start(
            &dir,
            port,
            &[
                "--port",
                "0",
                "--tls-port",
                &port_arg,
                "--tls-cert-file",
                cert.to_str().unwrap(),
                "--tls-key-file",
                key.to_str().unwrap(),
                "--tls-ca-cert-file",
                ca_path.to_str().unwrap(),
                "--tls-auth-clients",
                "yes",
            ],
        );
        let url = format!("rediss://127.0.0.1:{}", server.port);

        let error = builder(&url, "tls-mutual:")
            .tls_root_certificate(ca.pem())
            .connect()
            .await
            .unwrap_err();
        refused(&error);

        let key_pem = std::fs::read(&client_key).unwrap();
        let with_client = builder(&url, "tls-mutual:")
            .tls_root_certificate(ca.pem())
            .tls_client_certificate(std::fs::read(&client_cert).unwrap(), &key_pem);
        let shown = format!("{with_client:?}");
        let key_text = String::from_utf8_lossy(&key_pem);
        let key_body = key_text.lines().nth(1).unwrap();
        assert!(
            !shown.contains(key_body),
            "the key is not in Debug: {shown}"
        );
        let store = with_client
            .connect()
            .await
            .unwrap_or_else(|error| panic!("{error}"));
        let dingtalk = support::dingtalk().await;
        let replica = Replica::start(&dingtalk, store, |b| b).await;
        let code = dingtalk.issue_code("boss01");
        replica.expect_user(&code, "boss01").await;
        assert!(replica.store.is_available());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rediss_to_a_plaintext_redis_fails_and_sends_it_no_command() {
        let dir = TempDir::new("tls-plain");
        let port = free_port();
        let _plain = Server::start(&dir, port, &["--port", &port.to_string()]);
        let url = format!("rediss://:{PASSWORD}@127.0.0.1:{port}");
        let error = builder(&url, "tls-plain:").connect().await.unwrap_err();
        println!("TLS to plaintext: {}", refused(&error));

        // A replica built lazily serves its logins alone, and Redis never hears a command.
        let store = builder(&url, "tls-plain:").connect_lazy().unwrap();
        let dingtalk = support::dingtalk().await;
        let replica = Replica::start(&dingtalk, store, |b| b).await;
        for _ in 0..3 {
            let code = dingtalk.issue_code("sub01");
            replica.expect_user(&code, "sub01").await;
        }
        assert_eq!(dingtalk.userinfo_calls(), 3);
        assert!(!replica.store.is_available());
        let mut redis = redis::Client::open(format!("redis://127.0.0.1:{port}"))
            .and_then(|client| client.get_connection_with_timeout(Duration::from_secs(2)))
            .unwrap();
        let stats: String = redis::cmd("INFO")
            .arg("commandstats")
            .query(&mut redis)
            .unwrap();
        let commands: Vec<&str> = stats
            .lines()
            .filter(|line| line.starts_with("cmdstat_") && !line.starts_with("cmdstat_info:"))
            .collect();
        assert!(commands.is_empty(), "commands reached it: {commands:?}");
        let keys: Vec<String> = redis.keys("*").unwrap();
        assert!(keys.is_empty(), "{keys:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn redis_to_a_tls_port_fails() {
        let dir = TempDir::new("tls-port-plain");
        let ca = Ca::new(&dir, "good");
        let server = tls_server(&dir, &ca, "server", "IP:127.0.0.1", free_port());
        let url = format!("redis://:{PASSWORD}@127.0.0.1:{}", server.port);
        let error = builder(&url, "tls-port:").connect().await.unwrap_err();
        let (shown, debug) = (error.to_string(), format!("{error:?}"));
        assert!(error.is_unreachable(), "{shown}");
        assert!(
            !shown.contains(PASSWORD) && !debug.contains(PASSWORD),
            "{debug}"
        );
        println!("plaintext to TLS: {shown}");
    }

    #[tokio::test]
    async fn settings_that_would_weaken_tls_are_refused() {
        let dir = TempDir::new("tls-settings");
        let ca = Ca::new(&dir, "good");
        let (cert, key) = ca.issue("client", "DNS:client");
        let check = |builder: RedisStoreBuilder, says: &str| {
            let error = builder.connect_lazy().unwrap_err();
            assert!(!error.is_unreachable());
            let shown = error.to_string();
            assert!(shown.contains(says), "{says}: {shown}");
            assert!(!shown.contains(PASSWORD) && !format!("{error:?}").contains(PASSWORD));
        };
        let tls = format!("rediss://:{PASSWORD}@127.0.0.1:6380");
        check(builder(&format!("{tls}/#insecure"), "x:"), "#insecure");
        check(
            builder("redis://127.0.0.1:6379", "x:").tls_root_certificate(ca.pem()),
            "plaintext",
        );
        check(
            builder(&tls, "x:").tls_root_certificate("not a certificate"),
            "tls_root_certificate",
        );
        check(
            builder(&tls, "x:").tls_client_certificate(std::fs::read(&key).unwrap(), "key"),
            "tls_client_certificate",
        );
        let bad_key = builder(&tls, "x:")
            .tls_client_certificate(std::fs::read(&cert).unwrap(), "-----BEGIN PRIVATE KEY-----");
        check(bad_key, "do not parse");
        check(
            RedisStore::cluster_builder([tls.as_str(), "redis://127.0.0.1:6379"])
                .secret(TEST_SECRET),
            "redis:// or all rediss://",
        );
    }

    /// Redis restarts with a certificate the store does not trust (replaced by someone else's):
    /// the store goes down, warned once, and every login is served by the replica alone.
    #[tokio::test]
    async fn a_certificate_that_stops_verifying_takes_the_store_down_once() {
        let (_guard, logs) = support::capture_logs();
        let dir = TempDir::new("tls-replaced");
        let good = Ca::new(&dir, "good");
        let rogue = Ca::new(&dir, "rogue");
        let port = free_port();
        let mut server = tls_server(&dir, &good, "server", "IP:127.0.0.1", port);
        let url = format!("rediss://127.0.0.1:{port}");
        let store = builder(&url, "tls-replaced:")
            .tls_root_certificate(good.pem())
            .retry_after(Duration::from_millis(100))
            .connect()
            .await
            .unwrap_or_else(|error| panic!("{error}"));
        let dingtalk = support::dingtalk().await;
        let replica = Replica::start(&dingtalk, store, |b| b).await;
        let first = dingtalk.issue_code("staff01");
        replica.expect_user(&first, "staff01").await;
        assert!(replica.store.is_available());

        server.kill();
        let _impostor = tls_server(&dir, &rogue, "impostor", "IP:127.0.0.1", port);
        for _ in 0..8 {
            let code = dingtalk.issue_code("odd01");
            replica.expect_user(&code, "odd01").await;
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        replica.expect_user(&first, "staff01").await;
        assert_eq!(
            dingtalk.userinfo_calls(),
            1 + 8,
            "each new code exchanged once"
        );
        assert!(!replica.store.is_available());
        let logs = logs.contents();
        for line in logs
            .lines()
            .filter(|l| l.contains(DOWN) || l.contains("certificate"))
        {
            println!("{line}");
        }
        assert_eq!(logs.matches(DOWN).count(), 1, "{logs}");
        assert!(
            logs.contains("certificate"),
            "a probe's failure names the certificate: {logs}"
        );
    }
}

/// Without feature `rustls` (`cargo test --no-default-features --features
/// testing,axum,redis,tower-http --test redis_tls`), `rediss://` is refused when the store is
/// built, saying what to do, and quoting no password.
#[cfg(not(feature = "rustls"))]
#[tokio::test]
async fn rediss_is_refused_without_rustls() {
    let error = tower_dingtalk_auth::RedisStore::builder("rediss://:hunter2-pw@127.0.0.1:6380")
        .secret(support::store::TEST_SECRET)
        .connect_lazy()
        .unwrap_err();
    assert!(!error.is_unreachable());
    let message = error.to_string();
    assert!(message.contains("feature `rustls`"), "{message}");
    assert!(!message.contains("hunter2") && !format!("{error:?}").contains("hunter2"));
}
