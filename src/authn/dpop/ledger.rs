//! The proofs a request's outer layers recorded: nested layers judging one
//! request with one replay store must not call its one proof a replay.
//!
//! RFC 9449 §11.1 asks that a proof be accepted once, by the server, for
//! one request. Two layers around one route (an application-wide one and a
//! route's own, each with its chain) judge that one request twice; when
//! their DPoP authenticators share a replay store, the inner one found the
//! `jti` its outer layer had just recorded and answered `dpop_replayed`.
//! The outer layer now leaves, in the request's extensions, which proof it
//! recorded in which store; an inner authenticator still checks everything
//! else (signature, binding, `htm`, `htu`, `iat`, `ath`, nonce) and skips
//! only the insert, and only for that proof in that very store. A proof
//! recorded in another store (a layer with a local cache outside one with
//! the fleet's) is recorded again: a replay on another instance is then
//! still found in the shared store.

use std::sync::{Arc, Mutex, Weak};

use crate::state::replay::{MemoryReplayStore, ReplayKey, ReplayStore};

/// Recordings kept per request: one per nested layer is plenty.
const MAX_RECORDINGS: usize = 8;

/// A replay store, as the ledger names it: a weak reference, which keeps
/// the store's allocation (never the store) alive while the request
/// lives, so that no store built meanwhile can take its address.
#[derive(Clone)]
pub(crate) enum StoreRef {
    Memory(Weak<MemoryReplayStore>),
    Custom(Weak<dyn ReplayStore>),
}

impl StoreRef {
    pub(crate) fn memory(store: &Arc<MemoryReplayStore>) -> StoreRef {
        StoreRef::Memory(Arc::downgrade(store))
    }

    pub(crate) fn custom(store: &Arc<dyn ReplayStore>) -> StoreRef {
        StoreRef::Custom(Arc::downgrade(store))
    }

    fn same(&self, other: &StoreRef) -> bool {
        match (self, other) {
            (StoreRef::Memory(a), StoreRef::Memory(b)) => Weak::ptr_eq(a, b),
            (StoreRef::Custom(a), StoreRef::Custom(b)) => std::ptr::addr_eq(a.as_ptr(), b.as_ptr()),
            _ => false,
        }
    }
}

impl std::fmt::Debug for StoreRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StoreRef::Memory(_) => "StoreRef::Memory",
            StoreRef::Custom(_) => "StoreRef::Custom",
        })
    }
}

/// Which proofs were recorded, in which store, for one request. Lives in
/// the request's extensions; only this crate's layers create one, so a
/// client cannot claim a recording.
#[derive(Debug, Default)]
pub(crate) struct ProofLedger(Mutex<Vec<(StoreRef, ReplayKey)>>);

impl ProofLedger {
    /// Whether the proof `key` was recorded in the store `store` for this
    /// request. A poisoned lock holds nothing (the proof is then recorded
    /// again: at worst a replay refusal, never a pass).
    pub(crate) fn holds(&self, store: &StoreRef, key: &ReplayKey) -> bool {
        self.0
            .lock()
            .is_ok_and(|l| l.iter().any(|(s, k)| s.same(store) && k == key))
    }

    /// Notes that `key` was recorded, new, in `store`.
    pub(crate) fn record(&self, store: StoreRef, key: ReplayKey) {
        if let Ok(mut l) = self.0.lock() {
            if l.len() < MAX_RECORDINGS {
                l.push((store, key));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recording_counts_for_its_store_and_proof_only() {
        let ledger = ProofLedger::default();
        let one = Arc::new(MemoryReplayStore::new(10));
        let two = Arc::new(MemoryReplayStore::new(10));
        let shared: Arc<dyn ReplayStore> = one.clone();
        let a = ReplayKey::new(&[b"jkt", b"jti-a"]);
        let b = ReplayKey::new(&[b"jkt", b"jti-b"]);
        ledger.record(StoreRef::memory(&one), a);
        assert!(ledger.holds(&StoreRef::memory(&one), &a));
        assert!(!ledger.holds(&StoreRef::memory(&two), &a), "another store");
        assert!(
            !ledger.holds(&StoreRef::custom(&shared), &a),
            "another kind"
        );
        assert!(!ledger.holds(&StoreRef::memory(&one), &b), "another proof");
    }

    /// Review finding: a store dropped while a request lives must not be
    /// mistaken for one built later at its address.
    #[test]
    fn a_dropped_store_is_not_the_one_built_after_it() {
        let ledger = ProofLedger::default();
        let key = ReplayKey::new(&[b"jkt", b"jti"]);
        let first = Arc::new(MemoryReplayStore::new(10));
        ledger.record(StoreRef::memory(&first), key);
        drop(first);
        for _ in 0..100 {
            let later = Arc::new(MemoryReplayStore::new(10));
            assert!(!ledger.holds(&StoreRef::memory(&later), &key));
        }
    }

    #[test]
    fn recordings_are_bounded() {
        let ledger = ProofLedger::default();
        let store = Arc::new(MemoryReplayStore::new(10));
        for i in 0..100u32 {
            ledger.record(
                StoreRef::memory(&store),
                ReplayKey::new(&[&i.to_be_bytes()]),
            );
        }
        assert_eq!(
            ledger.0.lock().map(|l| l.len()).unwrap_or(0),
            MAX_RECORDINGS
        );
    }
}
