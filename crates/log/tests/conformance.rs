//! The ledger suite every backend passes (`dealledger_log::conformance`), on the in-memory
//! store and on sled. JetStream runs the same suite in `dealledger-jetstream`'s tests.
#![allow(clippy::unwrap_used, reason = "test code: a panic is a failing test")]

use dealledger_log::conformance::{self, Backend};
use dealledger_log::{MemStore, SledStore};
use std::sync::Arc;

struct Memory;

impl Backend for Memory {
    type Store = Arc<MemStore>;
    fn fresh(&mut self) -> Arc<MemStore> {
        Arc::new(MemStore::default())
    }
    fn reopen(&mut self, store: Arc<MemStore>) -> Arc<MemStore> {
        store
    }
    fn second_handle(&mut self, _: &Arc<MemStore>) -> Option<Arc<MemStore>> {
        None
    }
}

struct Sled {
    dir: tempfile::TempDir,
    stores: u32,
}

impl Backend for Sled {
    type Store = SledStore;
    fn fresh(&mut self) -> SledStore {
        self.stores += 1;
        SledStore::open(&self.dir.path().join(format!("store{}", self.stores))).unwrap()
    }
    fn reopen(&mut self, store: SledStore) -> SledStore {
        let path = store.path().to_path_buf();
        drop(store);
        SledStore::open(&path).unwrap()
    }
    fn second_handle(&mut self, _: &SledStore) -> Option<SledStore> {
        // sled's own lock keeps a second process out: no second writer to fence.
        None
    }
}

#[test]
fn the_suite_on_memory() {
    conformance::run_all(&mut Memory);
}

#[test]
fn the_suite_on_sled() {
    conformance::run_all(&mut Sled { dir: tempfile::tempdir().unwrap(), stores: 0 });
}
