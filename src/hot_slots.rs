//! [`HotSlots`]: a small, fixed-size, set-associative cache in front of a costlier lookup (the
//! identity cache's moka, opening a sealed session), for the hot path of requests that come back.
//!
//! Each key has four slots, picked by a keyed hash (foldhash with a random seed, so nobody can aim
//! at a slot); a new entry takes a free one. So memory is fixed when the layer is built, a lookup
//! is one hash, an uncontended lock per slot read (one when the key sits in its first slot) and
//! one comparison of the whole key, and only entries the caller put there after its own checks
//! are ever served. Callers still check what can change with time (expiry) on every hit.

use std::hash::{BuildHasher, Hash};

use foldhash::fast::RandomState;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// A direct-mapped cache of `N` slots (a power of two) of keys `K` and values `V`.
pub(crate) struct HotSlots<K, V> {
    slots: Box<[Slot<K, V>]>,
    hasher: RandomState,
    /// Inserts that found every slot taken, to let one in [`DISPLACE_EVERY`] through.
    inserts: AtomicU32,
}

/// One slot: empty, or an entry.
type Slot<K, V> = Mutex<Option<Held<K, V>>>;

/// An entry, with its key's whole hash: a lookup compares that first, and reads the key (often
/// out of the CPU's caches) only when the hashes agree.
struct Held<K, V> {
    hash: u64,
    key: K,
    value: V,
}

/// How many inserts into two taken slots it takes to displace an entry: displacing costs an
/// allocation and the drop of an entry long out of the CPU's caches (about 2 µs when lookups spread
/// over 100,000 codes), so a hot set that changes waits its turn rather than making every request pay.
const DISPLACE_EVERY: u32 = 64;

/// How many slots a key may live in.
const WAYS: usize = 4;

impl<K, V: Clone> HotSlots<K, V> {
    /// A cache of `slots` slots, rounded up to a power of two (at least two).
    pub(crate) fn new(slots: usize) -> Self {
        let slots = slots.max(2).next_power_of_two();
        Self {
            slots: (0..slots).map(|_| Mutex::new(None)).collect(),
            hasher: RandomState::default(),
            inserts: AtomicU32::new(0),
        }
    }

    /// The value stored for the key that `hash_key` hashes and `is_key` recognises.
    pub(crate) fn get(&self, hash_key: impl Hash, is_key: impl Fn(&K) -> bool) -> Option<V> {
        let (hash, ways) = self.ways(hash_key);
        ways.into_iter().find_map(|index| match &*self.lock(index) {
            Some(held) if held.hash == hash && is_key(&held.key) => Some(held.value.clone()),
            _ => None,
        })
    }

    /// Stores `value` for `key` (hashed as `hash_key`) in one of its slots that holds nothing
    /// `keep` keeps. When all hold entries worth keeping, one insert in [`DISPLACE_EVERY`] takes
    /// one of them: a hot set keeps its slots, a new one still gets in, and lookups spread over
    /// far more keys than slots do not pay for an entry made and dropped on each request.
    pub(crate) fn insert(
        &self,
        hash_key: impl Hash,
        make: impl FnOnce() -> (K, V),
        keep: impl Fn(&V) -> bool,
    ) {
        let (hash, ways) = self.ways(hash_key);
        let entry = |(key, value): (K, V)| Held { hash, key, value };
        for index in ways {
            let mut slot = self.lock(index);
            if !slot.as_ref().is_some_and(|held| keep(&held.value)) {
                *slot = Some(entry(make()));
                return;
            }
        }
        let inserts = self.inserts.fetch_add(1, Ordering::Relaxed);
        if inserts.is_multiple_of(DISPLACE_EVERY) {
            // Each of the ways in turn, so no way of a hot set is the one always displaced.
            let way = (inserts / DISPLACE_EVERY) as usize % WAYS;
            *self.lock(ways[way]) = Some(entry(make()));
        }
    }

    /// Changes the value of the key that `hash_key` hashes and `is_key` recognises, if held.
    pub(crate) fn update(
        &self,
        hash_key: impl Hash,
        is_key: impl Fn(&K) -> bool,
        change: impl Fn(&mut V),
    ) {
        let (hash, ways) = self.ways(hash_key);
        for index in ways {
            if let Some(held) = &mut *self.lock(index)
                && held.hash == hash
                && is_key(&held.key)
            {
                change(&mut held.value);
            }
        }
    }

    /// Empties the slot of the key that `hash_key` hashes and `is_key` recognises.
    pub(crate) fn remove(&self, hash_key: impl Hash, is_key: impl Fn(&K) -> bool) {
        let (hash, ways) = self.ways(hash_key);
        for index in ways {
            let mut slot = self.lock(index);
            if slot
                .as_ref()
                .is_some_and(|held| held.hash == hash && is_key(&held.key))
            {
                *slot = None;
            }
        }
    }

    /// The four slots a key may live in: two pairs, picked by two parts of its hash. Two
    /// neighbours are one cache line apart at most, and a second pair, anywhere else, takes a key
    /// whose first pair is full: a table filled to three quarters still holds almost every key,
    /// where one pair alone would turn away about a fifth of them.
    fn ways(&self, hash_key: impl Hash) -> (u64, [usize; WAYS]) {
        let hash = self.hasher.hash_one(hash_key);
        // The slots are a power of two: low bits pick the first pair, high bits the second.
        let mask = self.slots.len() - 1;
        let first = (hash as usize) & mask;
        let second = ((hash >> 32) as usize) & mask;
        (hash, [first, first ^ 1, second, second ^ 1])
    }

    fn lock(&self, index: usize) -> MutexGuard<'_, Option<Held<K, V>>> {
        // No code holding the lock can panic, so a poisoned lock holds a whole entry.
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
        let always = |_: &u32| true;
        slots.insert("a", || ("a".to_owned(), 1), |_| false);
        assert_eq!(slots.get("a", |key| key == "a"), Some(1));
        // Same hash input, different key: never served.
        assert_eq!(slots.get("a", |key| key == "b"), None);
        for i in 0..1000 {
            let key = format!("key{i}");
            slots.insert(&key, || (key.clone(), i), |_| false);
        }
        let held = slots
            .slots
            .iter()
            .filter(|slot| slot.lock().unwrap().is_some())
            .count();
        assert!(held <= 4);
        // A kept entry is not evicted by a newcomer while the other way is free.
        let fresh: HotSlots<String, u32> = HotSlots::new(2);
        fresh.insert("x", || ("x".to_owned(), 1), always);
        fresh.insert("y", || ("y".to_owned(), 2), always);
        assert_eq!(fresh.get("x", |key| key == "x"), Some(1));
        assert_eq!(fresh.get("y", |key| key == "y"), Some(2));
        slots.insert("a", || ("a".to_owned(), 1), |_| false);
        slots.remove("a", |key| key == "a");
        assert_eq!(slots.get("a", |key| key == "a"), None);
    }
}
