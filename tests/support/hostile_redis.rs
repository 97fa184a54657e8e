//! What an attacker or an unlucky operator puts in front of the store: a TCP listener that accepts
//! and never answers, a proxy that can start swallowing every byte, a certificate that has
//! expired, and a look at a cluster's replicas.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::servers::{Ca, Cluster, TempDir, node};

/// A TCP listener that accepts every connection, keeps it open and sends nothing: a TLS server
/// that hangs mid-handshake, a blackholed Redis. Answers its port; the task ends with the runtime.
pub async fn silent_listener() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    port
}

/// A TCP proxy to `upstream` (a port on loopback) that forwards both ways until `hang` is set;
/// from then on it forwards nothing, on old and new connections alike, keeping them open.
pub async fn hanging_proxy(upstream: u16, hang: Arc<AtomicBool>) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await else {
                continue;
            };
            let (client_read, client_write) = client.into_split();
            let (server_read, server_write) = server.into_split();
            for (mut from, mut to) in [
                (
                    Box::new(client_read) as Box<dyn tokio::io::AsyncRead + Send + Unpin>,
                    { Box::new(server_write) as Box<dyn tokio::io::AsyncWrite + Send + Unpin> },
                ),
                (Box::new(server_read) as _, Box::new(client_write) as _),
            ] {
                let hang = hang.clone();
                tokio::spawn(async move {
                    let mut buffer = vec![0; 16 * 1024];
                    loop {
                        if hang.load(Ordering::SeqCst) {
                            // Swallow: keep the connection, say nothing.
                            std::future::pending::<()>().await;
                        }
                        match from.read(&mut buffer).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                if hang.load(Ordering::SeqCst) {
                                    std::future::pending::<()>().await;
                                }
                                if to.write_all(&buffer[..n]).await.is_err() {
                                    break;
                                }
                            }
                        }
                    }
                });
            }
        }
    });
    port
}

/// A certificate `ca` signed for `IP:127.0.0.1` that expired yesterday (`-days -1`): the paths
/// of its PEM and key.
pub fn expired_certificate(dir: &TempDir, ca: &Ca, leaf: &str) -> (PathBuf, PathBuf) {
    let (_, key) = ca.issue(&format!("{leaf}-fresh"), "IP:127.0.0.1");
    let ext = dir.path(&format!("{leaf}.ext"));
    std::fs::write(
        &ext,
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    let csr = dir.path(&format!("{leaf}.csr"));
    let pem = dir.path(&format!("{leaf}.pem"));
    let run = |args: &[&str]| {
        let output = Command::new("openssl")
            .args(args)
            .current_dir(&dir.0)
            .output()
            .expect("openssl");
        assert!(
            output.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    run(&[
        "req",
        "-new",
        "-key",
        key.to_str().unwrap(),
        "-subj",
        &format!("/CN={leaf}"),
        "-out",
        csr.to_str().unwrap(),
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        csr.to_str().unwrap(),
        "-CA",
        &format!("{}-ca.pem", ca.name),
        "-CAkey",
        &format!("{}-ca.key", ca.name),
        "-CAcreateserial",
        "-days",
        "-1",
        "-extfile",
        ext.to_str().unwrap(),
        "-out",
        pem.to_str().unwrap(),
    ]);
    (pem, key)
}

/// The port of a replica that follows the master on `master`.
pub fn replica_of(cluster: &Cluster, master: u16) -> u16 {
    let nodes: String = redis::cmd("CLUSTER")
        .arg("NODES")
        .query(&mut node(master))
        .expect("CLUSTER NODES");
    let id_of = |port: u16| {
        nodes
            .lines()
            .find(|line| line.contains(&format!(":{port}@")))
            .and_then(|line| line.split_whitespace().next())
            .map(str::to_owned)
            .expect("the node's line")
    };
    let master_id = id_of(master);
    let line = nodes
        .lines()
        .find(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields[2].contains("slave") && fields[3] == master_id
        })
        .unwrap_or_else(|| panic!("no replica of {master} in {nodes}"));
    let address = line.split_whitespace().nth(1).unwrap();
    let port = address
        .split('@')
        .next()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap();
    let port = port.parse().unwrap();
    assert!(cluster.nodes.iter().any(|n| n.port == port));
    port
}

/// Every line of a PEM's base64 body (what must never be shown of a key).
pub fn pem_body_lines(pem: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(pem)
        .lines()
        .filter(|line| !line.starts_with("-----") && line.len() > 16)
        .map(str::to_owned)
        .collect()
}
