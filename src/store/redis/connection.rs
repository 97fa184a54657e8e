//! [`Connection`]: the one connection every store operation goes through, to one Redis server or
//! to a Redis Cluster, so that the scripts in `backend.rs` are written once; and [`Target`], what
//! the builder was told to connect to, checked and turned into that connection.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterClientBuilder, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::{Client, Cmd, ConnectionInfo, IntoConnectionInfo, Pipeline, RedisError};
use redis::{RedisFuture, Value};

use super::error::ErrorKind;
use super::single::Single;
use super::tls::{TlsSettings, wants_tls};

/// What to connect to: one server's URL, or a cluster's seed nodes (any of its nodes; the others
/// are found through them).
#[derive(Clone)]
pub(super) enum Target {
    Single(String),
    Cluster(Vec<String>),
}

/// How long connecting, and then each answer, may take.
#[derive(Clone, Copy)]
pub(super) struct Timeouts {
    pub(super) connect: Duration,
    pub(super) response: Duration,
}

/// A target checked, ready to connect: its client, and where it is without credentials (for
/// `Debug`, the logs and errors).
pub(super) struct Plan {
    client: PlanClient,
    pub(super) address: String,
    pub(super) tls: bool,
}

enum PlanClient {
    Single(Client),
    Cluster(ClusterClient),
}

impl Target {
    /// Checks the URLs and the TLS settings, without contacting Redis.
    pub(super) fn plan(&self, tls: &TlsSettings) -> Result<Plan, ErrorKind> {
        match self {
            Self::Single(url) => {
                let info = parse(url)?;
                let secure = wants_tls(&info)?;
                let address = describe(&[info.addr().to_string()], secure);
                let client = tls.client(info, secure)?;
                Ok(Plan {
                    client: PlanClient::Single(client),
                    address,
                    tls: secure,
                })
            }
            Self::Cluster(urls) => {
                let infos = urls
                    .iter()
                    .map(|url| parse(url))
                    .collect::<Result<Vec<_>, _>>()?;
                let Some(first) = infos.first() else {
                    return Err(ErrorKind::NoClusterNodes);
                };
                let secure = wants_tls(first)?;
                for info in &infos {
                    if wants_tls(info)? != secure {
                        return Err(ErrorKind::InvalidClusterNodes);
                    }
                }
                let nodes: Vec<String> = infos.iter().map(|i| i.addr().to_string()).collect();
                let address = format!("cluster {}", describe(&nodes, secure));
                let builder =
                    tls.cluster(ClusterClientBuilder::new(infos.clone()), first, secure)?;
                // The redis crate's reasons are fixed sentences (unix sockets, mixed passwords);
                // ours says what the nodes must be.
                let client = builder
                    .build()
                    .map_err(|_| ErrorKind::InvalidClusterNodes)?;
                Ok(Plan {
                    client: PlanClient::Cluster(client),
                    address,
                    tls: secure,
                })
            }
        }
    }
}

impl Plan {
    /// The connection, established on first use.
    pub(super) fn lazy(self, timeouts: Timeouts) -> Result<Connection, RedisError> {
        match self.client {
            PlanClient::Single(client) => {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(timeouts.connect))
                    .set_response_timeout(Some(timeouts.response))
                    // Our own calls give up at the timeout; reconnecting is tried on the next.
                    .set_number_of_retries(0);
                Single::new(client, config, timeouts.response)
                    .map(|single| Connection::Single(Arc::new(single)))
            }
            PlanClient::Cluster(client) => Ok(Connection::Cluster(
                client.get_pending_async_connection_with_config(cluster_config(timeouts)),
            )),
        }
    }

    /// The connection, established now: one server answers a `PING` (and is not a node of a
    /// cluster with several masters, whose other slots it would refuse with `MOVED`); a
    /// cluster's seed nodes answer and give their map of slots.
    pub(super) async fn connect(self, timeouts: Timeouts) -> Result<Connection, ConnectError> {
        let connect = async move {
            match self.client {
                PlanClient::Single(_) => {
                    let mut connection = self.lazy(timeouts)?;
                    redis::cmd("PING")
                        .query_async::<String>(&mut connection)
                        .await?;
                    if is_multi_master_node(&mut connection).await {
                        return Err(ConnectError::ClusterNode);
                    }
                    Ok(connection)
                }
                PlanClient::Cluster(client) => client
                    .get_async_connection_with_config(cluster_config(timeouts))
                    .await
                    .map(Connection::Cluster)
                    .map_err(ConnectError::from),
            }
        };
        match tokio::time::timeout(timeouts.connect, connect).await {
            Ok(result) => result,
            Err(_elapsed) => Err(ConnectError::Unreachable(None)),
        }
    }
}

/// Why [`Plan::connect`] failed: no answer (`None`: not within the connect timeout), or one
/// server's URL naming a node of a cluster.
pub(super) enum ConnectError {
    Unreachable(Option<RedisError>),
    ClusterNode,
}

impl From<RedisError> for ConnectError {
    fn from(error: RedisError) -> Self {
        Self::Unreachable(Some(error))
    }
}

/// Whether this server is a node of a Redis Cluster whose slots several masters share. A server
/// that refuses `INFO` or `CLUSTER INFO` (renamed on some managed services) is taken as it is.
async fn is_multi_master_node(connection: &mut Connection) -> bool {
    let info: Option<String> = redis::cmd("INFO")
        .arg("cluster")
        .query_async(&mut *connection)
        .await
        .ok();
    if !info.is_some_and(|info| info.contains("cluster_enabled:1")) {
        return false;
    }
    let cluster: Option<String> = redis::cmd("CLUSTER")
        .arg("INFO")
        .query_async(connection)
        .await
        .ok();
    cluster.is_some_and(|info| {
        info.lines()
            .filter_map(|line| line.trim().strip_prefix("cluster_size:"))
            .any(|size| size.parse::<u32>().is_ok_and(|size| size > 1))
    })
}

fn cluster_config(timeouts: Timeouts) -> ClusterConfig {
    // The seed nodes are connected side by side and all awaited: one that accepts and never
    // answers must time out well within the whole connect timeout, or it fails the others.
    ClusterConfig::new()
        .set_connection_timeout(timeouts.connect / 2)
        .set_response_timeout(timeouts.response)
}

/// The parse error is left out: it may quote the URL, password included. Without TLS the redis
/// crate does not parse `rediss://` at all: that is said as what it is.
fn parse(url: &str) -> Result<ConnectionInfo, ErrorKind> {
    let rediss = url
        .get(..9)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("rediss://"));
    if rediss && !cfg!(feature = "rustls") {
        return Err(ErrorKind::TlsUnsupported);
    }
    url.into_connection_info()
        .map_err(|_| ErrorKind::InvalidUrl)
}

fn describe(nodes: &[String], tls: bool) -> String {
    let nodes = nodes.join(", ");
    if tls { format!("{nodes} (TLS)") } else { nodes }
}

/// A connection to Redis that re-establishes itself: to one server (a [`Single`]) or
/// to a cluster (a [`ClusterConnection`], which follows `MOVED` and `ASK` and refreshes its map of
/// slots when a node is lost). Cloning is cheap: clones share the connection.
#[derive(Clone)]
pub(super) enum Connection {
    Single(Arc<Single>),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(single) => Box::pin(async move {
                let mut manager = single.manager();
                single.watched(manager.req_packed_command(cmd)).await
            }),
            Self::Cluster(connection) => connection.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(single) => Box::pin(async move {
                let mut manager = single.manager();
                let answer = manager.req_packed_commands(cmd, offset, count);
                single.watched(answer).await
            }),
            Self::Cluster(connection) => connection.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(single) => single.manager().get_db(),
            Self::Cluster(connection) => connection.get_db(),
        }
    }
}
