//! Redis servers a test starts for itself, never the shared one: over TLS with certificates made
//! by `openssl` in a temporary directory, and a six-node Redis Cluster. Every process is killed
//! and every directory removed on drop, when a test fails too.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub const INSTALL_TLS: &str = "apt-get install redis-server redis-tools openssl (Debian's \
     redis-server is built with TLS; elsewhere build Redis with BUILD_TLS=yes)";

/// Fails the test, saying what to install, unless `program --version` (`openssl version`) runs.
pub fn require(program: &str) {
    let version = if program == "openssl" {
        "version"
    } else {
        "--version"
    };
    let ran = Command::new(program)
        .arg(version)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    assert!(
        matches!(ran, Ok(status) if status.success()),
        "this test needs `{program}`: {INSTALL_TLS}"
    );
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// A directory of its own under the system's temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(what: &str) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "tda-{what}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).expect("a temporary directory");
        Self(path)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|error| panic!("cannot run openssl ({error}): {INSTALL_TLS}"));
    assert!(
        output.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A certificate authority made for one test: `<name>-ca.pem` in `dir`, and what it signs.
pub struct Ca {
    pub name: String,
    dir: PathBuf,
}

impl Ca {
    pub fn new(dir: &TempDir, name: &str) -> Self {
        require("openssl");
        openssl(
            &dir.0,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-days",
                "2",
                "-subj",
                &format!("/CN={name} test CA"),
                "-keyout",
                &format!("{name}-ca.key"),
                "-out",
                &format!("{name}-ca.pem"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
        Self {
            name: name.to_owned(),
            dir: dir.0.clone(),
        }
    }

    pub fn pem_path(&self) -> PathBuf {
        self.dir.join(format!("{}-ca.pem", self.name))
    }

    pub fn pem(&self) -> Vec<u8> {
        std::fs::read(self.pem_path()).expect("the CA's PEM")
    }

    /// A certificate and key signed by this CA for `names` (`IP:127.0.0.1`, `DNS:localhost`),
    /// good for servers and clients: the paths of `<leaf>.pem` and `<leaf>.key`.
    pub fn issue(&self, leaf: &str, names: &str) -> (PathBuf, PathBuf) {
        let ext = self.dir.join(format!("{leaf}.ext"));
        std::fs::write(
            &ext,
            format!(
                "subjectAltName={names}\nbasicConstraints=CA:FALSE\n\
                 keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n"
            ),
        )
        .unwrap();
        openssl(
            &self.dir,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-subj",
                &format!("/CN={leaf}"),
                "-keyout",
                &format!("{leaf}.key"),
                "-out",
                &format!("{leaf}.csr"),
            ],
        );
        openssl(
            &self.dir,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{leaf}.csr"),
                "-CA",
                &format!("{}-ca.pem", self.name),
                "-CAkey",
                &format!("{}-ca.key", self.name),
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                &format!("{leaf}.ext"),
                "-out",
                &format!("{leaf}.pem"),
            ],
        );
        (
            self.dir.join(format!("{leaf}.pem")),
            self.dir.join(format!("{leaf}.key")),
        )
    }
}

/// One `redis-server` of the test's own, killed on drop. Its log is in its directory, and a
/// server that exits before it is ready fails the test with that log.
pub struct Server {
    pub port: u16,
    child: Option<Child>,
    log: PathBuf,
}

impl Server {
    /// Starts `redis-server` with `args` (after a port, no persistence, its log in `dir`) and
    /// waits until it accepts connections.
    pub fn start(dir: &TempDir, port: u16, args: &[&str]) -> Self {
        require("redis-server");
        static STARTS: AtomicU64 = AtomicU64::new(0);
        // A log per start: a restart on the same port must not find the last one's "Ready".
        let start = STARTS.fetch_add(1, Ordering::Relaxed);
        let log = dir.path(&format!("redis-{port}-{start}.log"));
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--dir", dir.0.to_str().unwrap()])
            .args(["--logfile", log.to_str().unwrap()])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|error| panic!("cannot run redis-server ({error}): {INSTALL_TLS}"));
        let mut server = Self {
            port,
            child: Some(child),
            log,
        };
        server.wait_ready();
        server
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            if log.contains("Ready to accept connections") {
                return;
            }
            let child = self.child.as_mut().unwrap();
            if let Ok(Some(status)) = child.try_wait() {
                let mut stderr = String::new();
                if let Some(mut pipe) = child.stderr.take() {
                    use std::io::Read;
                    let _ = pipe.read_to_string(&mut stderr);
                }
                // A redis-server built without TLS refuses the `tls-*` options and exits.
                let tls = if (log.clone() + &stderr).to_lowercase().contains("tls") {
                    format!(" (is redis-server built with TLS? {INSTALL_TLS})")
                } else {
                    String::new()
                };
                panic!(
                    "redis-server on port {} exited ({status}) before it was ready{tls}:\n{stderr}\n{log}",
                    self.port
                );
            }
            assert!(
                Instant::now() < deadline,
                "redis-server on port {} not ready within 10 s:\n{log}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL: no goodbye to clients or to the cluster.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A port for a cluster node: free, and its bus port (10,000 above) free too.
fn cluster_port() -> u16 {
    loop {
        let port = free_port();
        if port < 55_000 && std::net::TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

/// A plain connection to one node.
pub fn node(port: u16) -> redis::Connection {
    redis::Client::open(format!("redis://127.0.0.1:{port}"))
        .and_then(|client| client.get_connection_with_timeout(Duration::from_secs(2)))
        .unwrap_or_else(|error| panic!("cluster node {port}: {error}"))
}

fn query(port: u16, command: &[&str]) -> redis::RedisResult<String> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}"))?;
    let mut connection = client.get_connection_with_timeout(Duration::from_millis(500))?;
    let mut cmd = redis::cmd(command[0]);
    for arg in &command[1..] {
        cmd.arg(*arg);
    }
    cmd.query(&mut connection)
}

/// A Redis Cluster of six nodes of the test's own, three masters each with a replica, on
/// loopback, with a one-second `cluster-node-timeout` so that a lost master's replica is promoted
/// within seconds.
pub struct Cluster {
    pub nodes: Vec<Server>,
    _dir: TempDir,
}

impl Cluster {
    pub fn start() -> Self {
        require("redis-cli");
        let dir = TempDir::new("cluster");
        let nodes: Vec<Server> = (0..6)
            .map(|_| {
                let port = cluster_port().to_string();
                let config = dir.path(&format!("nodes-{port}.conf"));
                Server::start(
                    &dir,
                    port.parse().unwrap(),
                    &[
                        "--port",
                        &port,
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        config.to_str().unwrap(),
                        "--cluster-node-timeout",
                        "1000",
                    ],
                )
            })
            .collect();
        let addresses: Vec<String> = nodes
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.port))
            .collect();
        let created = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
            .unwrap_or_else(|error| panic!("cannot run redis-cli ({error}): {INSTALL_TLS}"));
        assert!(
            created.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&created.stdout),
            String::from_utf8_lossy(&created.stderr)
        );
        let cluster = Self { nodes, _dir: dir };
        cluster.wait_ok(Duration::from_secs(20));
        cluster
    }

    pub fn urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|node| format!("redis://127.0.0.1:{}", node.port))
            .collect()
    }

    fn live_ports(&self) -> Vec<u16> {
        self.nodes
            .iter()
            .filter(|node| node.is_running())
            .map(|node| node.port)
            .collect()
    }

    /// Waits until every live node says `cluster_state:ok` with every slot served, and every
    /// replica follows a live master; answers how long that took.
    pub fn wait_ok(&self, within: Duration) -> Duration {
        let started = Instant::now();
        loop {
            let ok = self.live_ports().iter().all(|&port| {
                let info = query(port, &["CLUSTER", "INFO"]).unwrap_or_default();
                let replication = query(port, &["INFO", "replication"]).unwrap_or_default();
                info.contains("cluster_state:ok")
                    && info.contains("cluster_slots_ok:16384")
                    && (replication.contains("role:master")
                        || replication.contains("master_link_status:up"))
            });
            if ok {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < within,
                "the cluster is not ok within {within:?}: {:?}",
                self.live_ports()
                    .iter()
                    .map(|&port| query(port, &["CLUSTER", "NODES"]))
                    .collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The hash slot of `key`.
    pub fn slot(&self, key: &str) -> u16 {
        let port = self.live_ports()[0];
        let slot: u16 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query(&mut node(port))
            .expect("CLUSTER KEYSLOT");
        slot
    }

    /// The port of the master that serves `slot` now, as a live node sees it; `None` while the
    /// master that served it has failed and no replica has taken over.
    pub fn master_of(&self, slot: u16) -> Option<u16> {
        let port = self.live_ports()[0];
        let nodes = query(port, &["CLUSTER", "NODES"]).expect("CLUSTER NODES");
        for line in nodes.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if !fields[2].contains("master") || fields[2].contains("fail") {
                continue;
            }
            let serves = fields[8..].iter().any(|range| {
                let mut bounds = range.split('-').map(|b| b.parse::<u16>());
                match (bounds.next(), bounds.next()) {
                    (Some(Ok(low)), Some(Ok(high))) => (low..=high).contains(&slot),
                    (Some(Ok(only)), None) => only == slot,
                    _ => false,
                }
            });
            if serves {
                let address = fields[1].split('@').next().unwrap();
                return address.rsplit(':').next().unwrap().parse().ok();
            }
        }
        None
    }

    /// Waits until a node other than `lost` serves `slot` and the cluster is ok again; answers
    /// that node's port.
    pub fn wait_failover(&self, slot: u16, lost: u16, within: Duration) -> u16 {
        let started = Instant::now();
        loop {
            if let Some(port) = self.master_of(slot).filter(|port| *port != lost) {
                self.wait_ok(within.saturating_sub(started.elapsed()));
                return port;
            }
            assert!(
                started.elapsed() < within,
                "no replica took over slot {slot} within {within:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL to the node on `port`.
    pub fn kill(&mut self, port: u16) {
        let node = self.nodes.iter_mut().find(|node| node.port == port);
        node.expect("a node of this cluster").kill();
    }
}
