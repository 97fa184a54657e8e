//! The production Redis surface attacked through the public API: hostile PEM given as
//! certificates, a URL's password hunted in errors, `Debug` and logs, a TLS server that hangs
//! mid-handshake or starts swallowing bytes, a certificate that expires at runtime, junk cluster
//! node lists, a cluster that loses a whole slot range, and many codes and a revocation during a
//! failover. Every server is the test's own (never the shared Redis) and is killed at the end.

mod support;

#[cfg(feature = "rustls")]
mod over_tls {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};

    use tower_dingtalk_auth::{RedisStore, RedisStoreBuilder, RedisStoreError};

    use super::support;
    use super::support::hostile_redis::{
        expired_certificate, hanging_proxy, pem_body_lines, silent_listener,
    };
    use super::support::servers::{Ca, Server, TempDir, free_port};
    use super::support::store::{BACK, DOWN, Replica, TEST_SECRET, until_shared_again};

    const PASSWORD: &str = "pw-Xy7-never-shown";

    fn tls_server(
        dir: &TempDir,
        port: u16,
        cert: &std::path::Path,
        key: &std::path::Path,
    ) -> Server {
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
                "--tls-auth-clients",
                "no",
            ],
        )
    }

    fn builder(url: &str, prefix: &str) -> RedisStoreBuilder {
        RedisStore::builder(url)
            .secret(TEST_SECRET)
            .key_prefix(prefix)
    }

    /// Neither the message nor `Debug` of `error` holds the password, the secret or a line of
    /// `key`.
    fn shows_nothing_secret(error: &RedisStoreError, key: &[u8]) -> String {
        let (shown, debug) = (error.to_string(), format!("{error:?}"));
        let secret = String::from_utf8_lossy(TEST_SECRET).into_owned();
        for text in [&shown, &debug] {
            assert!(!text.contains(PASSWORD), "{text}");
            assert!(!text.contains(&secret), "{text}");
            for line in pem_body_lines(key) {
                assert!(!text.contains(&line), "key material shown: {text}");
            }
        }
        shown
    }

    #[tokio::test]
    async fn hostile_pem_is_refused_with_a_clear_error_and_no_key_material() {
        let dir = TempDir::new("pem-hostile");
        let ca = Ca::new(&dir, "good");
        let (cert_path, key_path) = ca.issue("client", "DNS:client");
        let cert = std::fs::read(&cert_path).unwrap();
        let key = std::fs::read(&key_path).unwrap();
        let ca_key = std::fs::read(dir.path("good-ca.key")).unwrap();
        let mut garbage: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
        garbage.extend_from_slice(b"\0\xff\xfe not PEM");
        let megabyte: Vec<u8> = b"A".repeat(1 << 20);
        let mut fake_blocks = Vec::new();
        while fake_blocks.len() < 1 << 20 {
            fake_blocks.extend_from_slice(
                b"-----BEGIN CERTIFICATE-----\nTm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n",
            );
        }
        let truncated = &cert[..cert.len() / 2];
        let url = format!("rediss://:{PASSWORD}@127.0.0.1:1");
        let all_keys: Vec<u8> = [key.clone(), ca_key.clone()].concat();

        let roots: Vec<(&str, Vec<u8>)> = vec![
            ("empty", Vec::new()),
            ("binary garbage", garbage.clone()),
            ("a private key as CA", ca_key.clone()),
            ("1 MB of garbage", megabyte.clone()),
            (
                "1 MB of certificate blocks that are not certificates",
                fake_blocks.clone(),
            ),
            ("a truncated certificate", truncated.to_vec()),
        ];
        let clients: Vec<(&str, Vec<u8>, Vec<u8>)> = vec![
            ("a certificate without key", cert.clone(), Vec::new()),
            ("the key as certificate", key.clone(), key.clone()),
            ("certificate and key swapped", key.clone(), cert.clone()),
            ("a garbage key", cert.clone(), garbage.clone()),
            ("a 1 MB key", cert.clone(), megabyte.clone()),
            ("a CA as key", cert.clone(), ca.pem()),
        ];
        let mut attempts: Vec<(String, RedisStoreBuilder)> = Vec::new();
        for (what, pem) in roots {
            attempts.push((
                format!("root: {what}"),
                builder(&url, "x:").tls_root_certificate(pem),
            ));
        }
        for (what, certificate, key) in clients {
            let with = builder(&url, "x:")
                .tls_root_certificate(ca.pem())
                .tls_client_certificate(certificate, key);
            attempts.push((format!("client: {what}"), with));
        }
        for (what, attempt) in attempts {
            let debug = format!("{attempt:?}");
            for line in pem_body_lines(&all_keys) {
                assert!(!debug.contains(&line), "{what}: key in Debug: {debug}");
            }
            assert!(!debug.contains(PASSWORD), "{what}: {debug}");
            let error = match attempt.connect_lazy() {
                Ok(store) => panic!("{what}: accepted: {store:?}"),
                Err(error) => error,
            };
            let shown = shows_nothing_secret(&error, &all_keys);
            assert!(
                !error.is_unreachable(),
                "{what}: a setting's fault: {shown}"
            );
            assert!(shown.contains("certificate"), "{what}: {shown}");
            println!("{what}: {shown}");
        }
    }

    /// A URL's password is in no error, no `Debug`, no log line, whatever goes wrong.
    #[tokio::test]
    async fn a_urls_password_never_shows() {
        let (_guard, logs) = support::capture_logs();
        let dir = TempDir::new("pw-hunt");
        let ca = Ca::new(&dir, "good");
        let rogue = Ca::new(&dir, "rogue");
        let (cert, key) = rogue.issue("rogue-server", "IP:127.0.0.1");
        let rogue_server = tls_server(&dir, free_port(), &cert, &key);
        let plain_port = free_port();
        let _plain = Server::start(&dir, plain_port, &["--port", &plain_port.to_string()]);
        let silent = silent_listener().await;
        let closed = free_port();
        let ports = [rogue_server.port, plain_port, silent, closed];

        for port in ports {
            for scheme in ["rediss", "redis"] {
                let url = format!("{scheme}://:{PASSWORD}@127.0.0.1:{port}/0");
                let mut attempt = builder(&url, "pw:").connect_timeout(Duration::from_millis(300));
                if scheme == "rediss" {
                    attempt = attempt.tls_root_certificate(ca.pem());
                }
                if let Err(error) = attempt.clone().connect().await {
                    shows_nothing_secret(&error, b"");
                }
                let store = attempt.connect_lazy().unwrap();
                assert!(!format!("{store:?}").contains(PASSWORD));
                let dingtalk = support::dingtalk().await;
                let replica = Replica::start(&dingtalk, store, |b| b).await;
                let code = dingtalk.issue_code("staff01");
                replica.expect_user(&code, "staff01").await;
                let ready = replica.layer.client().readiness().await;
                assert!(!format!("{ready:?} {}", ready.to_json()).contains(PASSWORD));
            }
            let urls = [
                format!("redis://:{PASSWORD}@127.0.0.1:{port}"),
                format!("redis://:{PASSWORD}@127.0.0.1:{closed}"),
            ];
            let cluster = RedisStore::cluster_builder(urls)
                .secret(TEST_SECRET)
                .connect_timeout(Duration::from_millis(300));
            assert!(!format!("{cluster:?}").contains(PASSWORD));
            if let Err(error) = cluster.connect().await {
                shows_nothing_secret(&error, b"");
            }
        }
        // A malformed URL with a password is not quoted either.
        for url in [
            format!("rediss://:{PASSWORD}@[::1"),
            format!("redis://:{PASSWORD}@127.0.0.1:99999"),
            format!("rediss://user:{PASSWORD}@127.0.0.1:6380/not-a-db"),
        ] {
            if let Err(error) = builder(&url, "pw:").connect_lazy() {
                shows_nothing_secret(&error, b"");
            }
        }
        let logs = logs.contents();
        assert!(logs.contains(DOWN), "the outages were logged: {logs}");
        assert!(!logs.contains(PASSWORD), "{logs}");
    }

    /// A TLS server that accepts and never answers: `connect` gives up at the connect timeout;
    /// a lazily built store costs each request at most the store's timeout, not the connect
    /// timeout, and every login is served.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_server_that_hangs_mid_handshake_costs_a_timeout_not_a_hang() {
        let dir = TempDir::new("tls-hang");
        let ca = Ca::new(&dir, "good");
        let silent = silent_listener().await;
        let url = format!("rediss://127.0.0.1:{silent}");
        let started = Instant::now();
        let error = builder(&url, "hang:")
            .tls_root_certificate(ca.pem())
            .connect_timeout(Duration::from_millis(400))
            .connect()
            .await
            .unwrap_err();
        let took = started.elapsed();
        let shown = shows_nothing_secret(&error, b"");
        assert!(error.is_unreachable(), "{shown}");
        assert!(shown.contains("TLS"), "{shown}");
        assert!(
            took < Duration::from_secs(3),
            "connect hung for {took:?}: {shown}"
        );
        println!("connect to a silent TLS port: {took:?}: {shown}");

        // Lazy: the connect timeout is long; the store's timeout (100 ms) bounds each request.
        let store = builder(&url, "hang:")
            .tls_root_certificate(ca.pem())
            .connect_timeout(Duration::from_secs(20))
            .timeout(Duration::from_millis(100))
            .retry_after(Duration::from_millis(100))
            .connect_lazy()
            .unwrap();
        let dingtalk = support::dingtalk().await;
        let replica = Replica::start(&dingtalk, store, |b| b).await;
        let mut slowest = Duration::ZERO;
        for _ in 0..6 {
            let code = dingtalk.issue_code("sub01");
            slowest = slowest.max(replica.expect_user(&code, "sub01").await);
            slowest = slowest.max(replica.expect_user(&code, "sub01").await);
            tokio::time::sleep(Duration::from_millis(120)).await;
        }
        assert_eq!(dingtalk.userinfo_calls(), 6, "each code exchanged once");
        assert!(!replica.store.is_available());
        let ready = replica.layer.client().readiness().await;
        assert_eq!(ready.store, Some(false));
        assert!(
            slowest < Duration::from_secs(5),
            "a request waited {slowest:?}"
        );
        println!("silent TLS port, lazily: the slowest request took {slowest:?}");
    }

    /// A TLS Redis that starts swallowing every byte at runtime (connections stay open): logins
    /// are all served, none waits for the connect timeout, the store goes down once, and comes
    /// back when the bytes flow again.
    #[tokio::test]
    async fn a_tls_server_that_stops_answering_at_runtime_is_down_once_and_back() {
        let (_guard, logs) = support::capture_logs();
        let dir = TempDir::new("tls-swallow");
        let ca = Ca::new(&dir, "good");
        let (cert, key) = ca.issue("server", "IP:127.0.0.1");
        let server = tls_server(&dir, free_port(), &cert, &key);
        let hang = Arc::new(AtomicBool::new(false));
        let proxy = hanging_proxy(server.port, hang.clone()).await;
        let store = builder(&format!("rediss://127.0.0.1:{proxy}"), "swallow:")
            .tls_root_certificate(ca.pem())
            .connect_timeout(Duration::from_secs(20))
            .timeout(Duration::from_millis(200))
            .retry_after(Duration::from_millis(200))
            .connect()
            .await
            .unwrap_or_else(|error| panic!("{error}"));
        let dingtalk = support::dingtalk().await;
        let replica = Replica::start(&dingtalk, store, |b| b).await;
        let cached = dingtalk.issue_code("staff01");
        replica.expect_user(&cached, "staff01").await;
        assert!(replica.store.is_available());

        hang.store(true, Ordering::SeqCst);
        let mut slowest = Duration::ZERO;
        for _ in 0..6 {
            slowest = slowest.max(replica.expect_user(&cached, "staff01").await);
            let code = dingtalk.issue_code("sub01");
            slowest = slowest.max(replica.expect_user(&code, "sub01").await);
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        assert_eq!(dingtalk.userinfo_calls(), 1 + 6);
        assert!(!replica.store.is_available());
        assert!(
            slowest < Duration::from_secs(5),
            "a request waited {slowest:?}"
        );

        hang.store(false, Ordering::SeqCst);
        until_shared_again(&dingtalk, std::slice::from_ref(&replica)).await;
        let logs = logs.contents();
        assert_eq!(logs.matches(DOWN).count(), 1, "{logs}");
        assert!(logs.contains(BACK), "{logs}");
        println!("swallowed TLS: slowest request {slowest:?}");
    }

    /// Redis restarts with an expired certificate from the trusted CA, then with a good one:
    /// refused at connect while expired, down once at runtime (every login served), back after.
    #[tokio::test]
    async fn a_certificate_that_expires_at_runtime_takes_the_store_down_until_renewed() {
        let (_guard, logs) = support::capture_logs();
        let dir = TempDir::new("tls-expired");
        let ca = Ca::new(&dir, "good");
        let (good_cert, good_key) = ca.issue("server", "IP:127.0.0.1");
        let (old_cert, old_key) = expired_certificate(&dir, &ca, "expired");
        let port = free_port();
        let url = format!("rediss://:{PASSWORD}@127.0.0.1:{port}");
        let expired = tls_server(&dir, port, &old_cert, &old_key);
        let error = builder(&url, "expired:")
            .tls_root_certificate(ca.pem())
            .connect()
            .await
            .unwrap_err();
        let shown = shows_nothing_secret(&error, b"");
        assert!(shown.to_lowercase().contains("expired"), "{shown}");
        drop(expired);

        let mut server = tls_server(&dir, port, &good_cert, &good_key);
        // This Redis has no password: the URL's would be refused at AUTH.
        let url = format!("rediss://127.0.0.1:{port}");
        let store = builder(&url, "expired:")
            .tls_root_certificate(ca.pem())
            .retry_after(Duration::from_millis(100))
            .timeout(Duration::from_millis(500))
            .connect()
            .await
            .unwrap_or_else(|error| panic!("{error}"));
        let dingtalk = support::dingtalk().await;
        let replica = Replica::start(&dingtalk, store, |b| b).await;
        let first = dingtalk.issue_code("staff01");
        replica.expect_user(&first, "staff01").await;

        server.kill();
        let expired = tls_server(&dir, port, &old_cert, &old_key);
        for _ in 0..6 {
            let code = dingtalk.issue_code("odd01");
            replica.expect_user(&code, "odd01").await;
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        replica.expect_user(&first, "staff01").await;
        assert_eq!(dingtalk.userinfo_calls(), 1 + 6);
        assert!(!replica.store.is_available());

        drop(expired);
        let _renewed = tls_server(&dir, port, &good_cert, &good_key);
        until_shared_again(&dingtalk, std::slice::from_ref(&replica)).await;
        let logs = logs.contents();
        assert_eq!(logs.matches(DOWN).count(), 1, "{logs}");
        assert!(logs.contains(BACK), "{logs}");
        assert!(logs.to_lowercase().contains("expired"), "{logs}");
        assert!(!logs.contains(PASSWORD));
    }
}

#[path = "redis_prod_adversarial/cluster.rs"]
mod cluster;
