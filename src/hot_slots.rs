//! [`HotSlots`]: a small, fixed-size, direct-mapped cache in front of a costlier lookup (the
//! identity cache's moka, opening a sealed session), for the hot path of requests that come back.
//!
//! Each key has one slot, picked by a keyed hash (SipHash with a random key, so nobody can aim at a
//! slot); a new entry overwrites whatever its slot held. So memory is fixed when the layer is
//! built, a lookup is one hash, one uncontended lock and one comparison of the whole key, and
//! only entries the caller put there after its own checks are ever served. Callers still check
//! what can change with time (expiry) on every hit.

use std::hash::{BuildHasher, Hash, RandomState};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// A direct-mapped cache of `N` slots (a power of two) of keys `K` and values `V`.
pub(crate) struct HotSlots<K, V> {
    slots: Box<[Mutex<Option<(K, V)>>]>,
    hasher: RandomState,
}

impl<K, V: Clone> HotSlots<K, V> {
    /// A cache of `slots` slots, rounded up to a power of two.
    pub(crate) fn new(slots: usize) -> Self {
        let slots = slots.max(1).next_power_of_two();
        Self {
            slots: (0..slots).map(|_| Mutex::new(None)).collect(),
            hasher: RandomState::new(),
        }
    }

    /// The value stored for the key that `hash_key` hashes and `is_key` recognises.
    pub(crate) fn get(&self, hash_key: impl Hash, is_key: impl FnOnce(&K) -> bool) -> Option<V> {
        let slot = self.slot(hash_key);
        match &*slot {
            Some((key, value)) if is_key(key) => Some(value.clone()),
            _ => None,
        }
    }

    /// Stores `value` for `key` (hashed as `hash_key`), in place of what its slot held.
    pub(crate) fn insert(&self, hash_key: impl Hash, key: K, value: V) {
        *self.slot(hash_key) = Some((key, value));
    }

    /// Stores `value` for `key` unless its slot holds an entry that `keep` keeps: a hot set of
    /// entries that would only take each other's slots in turn stays put.
    pub(crate) fn insert_unless(
        &self,
        hash_key: impl Hash,
        make: impl FnOnce() -> (K, V),
        keep: impl FnOnce(&V) -> bool,
    ) {
        let mut slot = self.slot(hash_key);
        if !slot.as_ref().is_some_and(|(_, held)| keep(held)) {
            *slot = Some(make());
        }
    }

    /// Empties the slot of the key that `hash_key` hashes and `is_key` recognises.
    pub(crate) fn remove(&self, hash_key: impl Hash, is_key: impl FnOnce(&K) -> bool) {
        let mut slot = self.slot(hash_key);
        if slot.as_ref().is_some_and(|(key, _)| is_key(key)) {
            *slot = None;
        }
    }

    fn slot(&self, hash_key: impl Hash) -> MutexGuard<'_, Option<(K, V)>> {
        let hash = self.hasher.hash_one(hash_key);
        // The slots are a power of two: the low bits pick one. No code holding the lock can
        // panic, so a poisoned lock holds a whole entry and is used as it is.
        let index = (hash as usize) & (self.slots.len() - 1);
        self.slots[index]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_only_the_whole_key_and_stays_bounded() {
        let slots: HotSlots<String, u32> = HotSlots::new(3);
        assert_eq!(slots.slots.len(), 4);
        slots.insert("a", "a".to_owned(), 1);
        assert_eq!(slots.get("a", |key| key == "a"), Some(1));
        // Same hash input, different key: never served.
        assert_eq!(slots.get("a", |key| key == "b"), None);
        for i in 0..1000 {
            let key = format!("key{i}");
            slots.insert(&key, key.clone(), i);
        }
        let held = slots
            .slots
            .iter()
            .filter(|slot| slot.lock().unwrap().is_some())
            .count();
        assert!(held <= 4);
        slots.insert("a", "a".to_owned(), 1);
        slots.remove("a", |key| key == "a");
        assert_eq!(slots.get("a", |key| key == "a"), None);
    }
}
