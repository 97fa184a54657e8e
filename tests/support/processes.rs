//! Child processes of a test: the example binaries cargo built beside it, HAProxy, and a guard
//! that kills them all when the test ends, however it ends.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const INSTALL_HAPROXY: &str = "apt-get install haproxy";

/// An example binary, `target/<profile>/examples/<name>`: `cargo test` builds the examples before
/// running tests (beside `target/<profile>/deps/`, where this test runs from); `cargo test --test
/// x` alone does not.
pub fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test runs from target/<profile>/deps");
    let path = profile.join("examples").join(name);
    assert!(
        path.is_file(),
        "the example binary {} is missing: run `cargo build --examples --all-features` (or the \
         whole `cargo test --all-features`, which builds the examples first)",
        path.display()
    );
    path
}

/// Fails, saying what to install, when HAProxy is not on the PATH.
pub fn require_haproxy() {
    if Command::new("haproxy").arg("-v").output().is_err() {
        panic!("haproxy is not installed: `{INSTALL_HAPROXY}` (.ci/run installs it)");
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// The processes a test started and a directory for their logs and configuration; dropping it
/// kills and reaps every one, and removes the directory unless the test is failing (then it says
/// where the logs are).
pub struct Children {
    pub dir: PathBuf,
    running: Vec<(String, Child)>,
}

impl Children {
    pub fn new(test: &str) -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_nanos());
        let dir = std::env::temp_dir().join(format!("{test}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        Self {
            dir,
            running: Vec::new(),
        }
    }

    /// Starts `command` as `name`, its standard error into `<dir>/<name>.log`, and returns what
    /// it printed up to the first line that contains `until` (read within 30 s); the
    /// rest of its output is drained.
    pub fn start(&mut self, name: &str, command: &mut Command, until: &str) -> String {
        let log = self.dir.join(format!("{name}.log"));
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("a log file"))
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {name} ({command:?}): {error}"));
        let stdout = BufReader::new(self.keep(name, child).stdout.take().expect("piped"));
        let (send, printed) = mpsc::channel();
        let wanted = until.to_owned();
        std::thread::spawn(move || {
            let mut lines = stdout.lines();
            let mut head = String::new();
            for line in lines.by_ref() {
                let Ok(line) = line else { break };
                head.push_str(&line);
                head.push('\n');
                if line.contains(&wanted) {
                    let _ = send.send(head);
                    break;
                }
            }
            for _ in lines {}
        });
        match printed.recv_timeout(Duration::from_secs(30)) {
            Ok(head) => head,
            Err(error) => panic!(
                "{name} did not print `{until}` ({error}); its log: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            ),
        }
    }

    /// Starts `command` as `name` with its output into `<dir>/<name>.log`.
    pub fn start_quiet(&mut self, name: &str, command: &mut Command) {
        let log = std::fs::File::create(self.dir.join(format!("{name}.log"))).expect("a log file");
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("a log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {name} ({command:?}): {error}"));
        self.keep(name, child);
    }

    fn keep(&mut self, name: &str, child: Child) -> &mut Child {
        self.running.push((name.to_owned(), child));
        &mut self.running.last_mut().expect("just pushed").1
    }

    /// Sends SIGKILL to the child started as `name`.
    pub fn kill(&mut self, name: &str) {
        let (_, child) = self
            .running
            .iter_mut()
            .find(|(running, _)| running == name)
            .unwrap_or_else(|| panic!("no child named {name}"));
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");
    }

    /// Everything the children wrote to their logs.
    pub fn logs(&self) -> String {
        let mut all = String::new();
        for (name, _) in &self.running {
            let log = std::fs::read_to_string(self.dir.join(format!("{name}.log")));
            all.push_str(&log.unwrap_or_default());
        }
        all
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        for (_, child) in &mut self.running {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("the children's logs are kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
