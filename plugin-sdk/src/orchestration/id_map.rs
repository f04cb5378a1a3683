//! [`IdMap`]: a map from action ids to values, shaped for how the engine uses its ids.
//!
//! Ids come from one counter (1, 2, 3…), so new entries almost always go in at the high
//! end, and history confirms or completes them mostly from the low end. A `BTreeMap`
//! keyed by id pays for that pattern: taking its first entries shifts the remaining
//! values of a node and merges nodes, which for a fan-out of thousands of calls (and
//! actions of ~300 bytes) is most of the replay's time. Here the live ids sit in a
//! window indexed by `id - start`: insert at the end, look up and remove in O(1), and the
//! window's start moves past ids that are gone. The rare id below the window (a retried
//! call re-sent under its original id) goes to a small ordered side map, whose ids are
//! all below the window's, so iterating side map then window is ascending id order.

use std::collections::{BTreeMap, VecDeque};

pub(crate) struct IdMap<T> {
    /// The id of `window[0]`. Never decreases.
    start: i64,
    /// Slots for ids `start..start + window.len()`; the first slot, if any, is occupied.
    window: VecDeque<Option<T>>,
    /// Entries with ids below `start`.
    below: BTreeMap<i32, T>,
    /// Occupied slots in `window`.
    in_window: usize,
}

impl<T> Default for IdMap<T> {
    fn default() -> Self {
        Self {
            start: i64::from(i32::MIN),
            window: VecDeque::new(),
            below: BTreeMap::new(),
            in_window: 0,
        }
    }
}

impl<T> IdMap<T> {
    /// The window slot of `id`, when `id` is at or above the window's start.
    fn offset(&self, id: i32) -> Option<usize> {
        usize::try_from(i64::from(id) - self.start).ok()
    }

    /// Inserts `value` under `id`, replacing (and returning) any value already there.
    pub(crate) fn insert(&mut self, id: i32, value: T) -> Option<T> {
        let Some(offset) = self.offset(id) else {
            return self.below.insert(id, value);
        };
        if self.window.is_empty() {
            // Nothing in the window: it may as well start here (`start` only grows).
            self.start = i64::from(id);
            self.window.push_back(Some(value));
            self.in_window = 1;
            return None;
        }
        if let Some(slot) = self.window.get_mut(offset) {
            let old = slot.replace(value);
            if old.is_none() {
                self.in_window += 1;
            }
            return old;
        }
        // Past the end: ids skipped by the counter (used without an entry) stay empty.
        let gap = offset - self.window.len();
        self.window
            .extend(std::iter::repeat_with(|| None).take(gap));
        self.window.push_back(Some(value));
        self.in_window += 1;
        None
    }

    pub(crate) fn get(&self, id: i32) -> Option<&T> {
        match self.offset(id) {
            Some(offset) => self.window.get(offset)?.as_ref(),
            None => self.below.get(&id),
        }
    }

    pub(crate) fn remove(&mut self, id: i32) -> Option<T> {
        let Some(offset) = self.offset(id) else {
            return self.below.remove(&id);
        };
        let value = self.window.get_mut(offset)?.take()?;
        self.in_window -= 1;
        if offset == 0 {
            // Move the start past the empty slots, so the window only spans live ids.
            while let Some(None) = self.window.front() {
                self.window.pop_front();
                self.start += 1;
            }
        }
        Some(value)
    }

    pub(crate) fn len(&self) -> usize {
        self.below.len() + self.in_window
    }

    /// Takes every entry out, in ascending id order.
    pub(crate) fn drain_in_order(&mut self) -> Vec<T> {
        let mut values = Vec::with_capacity(self.len());
        values.extend(std::mem::take(&mut self.below).into_values());
        values.extend(std::mem::take(&mut self.window).into_iter().flatten());
        self.in_window = 0;
        values
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same operations on an `IdMap` and a `BTreeMap` give the same answers.
    fn check_against_btree(ops: &[(bool, i32)]) {
        let mut map = IdMap::default();
        let mut model = BTreeMap::new();
        for (step, &(insert, id)) in ops.iter().enumerate() {
            if insert {
                assert_eq!(map.insert(id, step), model.insert(id, step), "insert {id}");
            } else {
                assert_eq!(map.remove(id), model.remove(&id), "remove {id}");
            }
            assert_eq!(map.len(), model.len());
            for probe in -3..40 {
                assert_eq!(map.get(probe), model.get(&probe), "get {probe}");
            }
        }
        let expected: Vec<usize> = model.into_values().collect();
        assert_eq!(map.drain_in_order(), expected);
        assert_eq!(map.len(), 0);
    }

    #[test]
    fn behaves_like_an_ordered_map() {
        // Fan-out: insert many, remove in order, out of order, twice, and unknown ids.
        let mut ops: Vec<(bool, i32)> = (1..=20).map(|id| (true, id)).collect();
        ops.extend([(false, 1), (false, 3), (false, 2), (false, 2), (false, 99)]);
        ops.extend([(false, -1), (false, 0), (false, 20), (false, 4)]);
        check_against_btree(&ops);
    }

    #[test]
    fn ids_below_the_window_stay_in_order() {
        // A retried id comes back after the window moved past it, next to newer ids.
        let ops = [
            (true, 1),
            (true, 2),
            (false, 1),
            (false, 2),
            (true, 5),
            (true, 2),
            (true, 1),
            (true, 7),
            (true, 2),
            (false, 5),
            (true, 3),
            (true, 30),
            (true, -2),
            (false, 7),
            (true, 6),
        ];
        check_against_btree(&ops);
    }

    #[test]
    fn sequential_use_keeps_the_window_small() {
        let mut map = IdMap::default();
        for id in 1..=1_000 {
            map.insert(id, id);
            assert_eq!(map.remove(id), Some(id));
        }
        assert!(map.window.is_empty());
        map.insert(1_005, 0);
        map.insert(1_003, 1);
        assert_eq!(map.window.len(), 1);
        assert_eq!(map.drain_in_order(), [1, 0]);
    }

    #[test]
    fn pseudo_random_operations_match_a_btree_map() {
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..200 {
            let ops: Vec<(bool, i32)> = (0..60)
                .map(|_| {
                    let r = next();
                    (r % 3 != 0, i32::try_from((r >> 8) % 40).unwrap_or(0) - 2)
                })
                .collect();
            check_against_btree(&ops);
        }
    }
}
