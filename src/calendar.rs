//! A calendar queue: timers and events ordered by (time, sequence number).
//!
//! The core holds a timer per live attempt, most of which become stale when
//! the attempt ends early, and the simulator holds a few events per attempt
//! in flight; with tens of thousands in flight a binary heap spends most of
//! the run in cache-missing sift-downs (it was 38% of the simulator's time).
//! Here time is cut into buckets of 2^22 ns (about 4 ms) on a ring of 2^15
//! buckets (about 137 s ahead, beyond most request deadlines); a bitmap finds the next occupied bucket; only
//! the bucket being drained is sorted. Entries further ahead than the ring
//! wait in a small heap and move onto the ring as time reaches them.
//!
//! An entry pushed for a time before the cursor's bucket (the cursor jumps
//! to the next occupied bucket, which may lie seconds ahead of the driver's
//! clock) goes into the drained bucket's sorted vector only while that is
//! small, and otherwise to a heap beside it: inserting there shifted the
//! whole bucket, and with hedge
//! timers a few seconds out and other timers a minute out that was 39% of a
//! run.
//!
//! Order is exact: entries come out by time, then by insertion order,
//! exactly as a heap ordered by (time, sequence) would give them. A
//! bucket's list is last in, first out, so a drained bucket's keys (time
//! and place in the list, one `u64`) sorted give that order (see
//! `load_sorted`).
//!
//! An entry still on the ring can be cancelled in place
//! ([`CalendarQueue::push_slot`] and [`CalendarQueue::cancel`]): it is marked
//! (sequence number 0) and skipped when its bucket is drained, so it is never
//! sorted, peeked or popped; if it is its bucket's newest, it is unlinked
//! and freed at once. The entries that stay keep their sequence
//! numbers, so the order of the others does not change. Entries off the ring
//! (in the drained bucket, the early heap or the far heap) cannot be
//! cancelled and come out as usual; the caller must still check what it pops.
//!
//! Every event of the simulator and every timer of a client passes through
//! here (about 1.5 million pushes and pops per second of simulated bench
//! traffic), so the usual push and pop are inlined into their callers and
//! the rest is kept out of line.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use crate::units::Nanos;

const SHIFT: u32 = 22;
const BITS: u32 = 15;
const RING: u64 = 1 << BITS;
const MASK: u64 = RING - 1;
/// A time's bits below its bucket number.
const LOW: u64 = (1 << SHIFT) - 1;

const WORDS: usize = (RING / 64) as usize;

const NIL: u32 = u32::MAX;
/// Up to this many entries in the drained bucket, an early entry is
/// inserted in it in order; beyond, it goes to the early heap.
const SMALL: usize = 64;

#[derive(Clone, Copy)]
struct Entry<T> {
    at: Nanos,
    seq: u64,
    value: T,
}

impl<T> Entry<T> {
    fn key(&self) -> (Nanos, u64) {
        (self.at, self.seq)
    }
}

impl<T> PartialEq for Entry<T> {
    fn eq(&self, o: &Self) -> bool {
        self.key() == o.key()
    }
}
impl<T> Eq for Entry<T> {}
impl<T> PartialOrd for Entry<T> {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl<T> Ord for Entry<T> {
    fn cmp(&self, o: &Self) -> Ordering {
        self.key().cmp(&o.key())
    }
}

/// Where [`CalendarQueue::push_slot`] put an entry, for
/// [`CalendarQueue::cancel`]: its node on the ring, or nowhere to cancel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot(u32);

impl Slot {
    /// An entry that cannot be cancelled in place.
    pub const NONE: Self = Self(NIL);
}

/// An entry on the ring: buckets are singly linked lists threaded through
/// one node array, so memory follows the entries alive, not the ring's size,
/// and a push never allocates once the array has grown to the peak.
#[derive(Clone, Copy)]
struct Node<T> {
    entry: Entry<T>,
    next: u32,
}

/// Entries ordered by time, then by insertion.
pub struct CalendarQueue<T: Copy> {
    /// Fixed-size arrays, so that an index masked to the ring needs no
    /// bounds check.
    heads: Box<[u32; RING as usize]>,
    nodes: Vec<Node<T>>,
    free: u32,
    occupied: Box<[u64; WORDS]>,
    /// Absolute number of the bucket being drained; every entry on the ring
    /// lies in [cursor, cursor + RING).
    cursor: u64,
    /// The cursor bucket's entries, sorted so that the next is last.
    current: Vec<Entry<T>>,
    /// A drained bucket's live nodes in list order, and their sort keys
    /// (see `load_sorted`): kept to reuse their memory.
    order: Vec<u32>,
    keys: Vec<u64>,
    /// Entries pushed for the cursor's bucket or before it.
    early: BinaryHeap<Reverse<Entry<T>>>,
    far: BinaryHeap<Reverse<Entry<T>>>,
    seq: u64,
    len: usize,
}

impl<T: Copy> Default for CalendarQueue<T> {
    fn default() -> Self {
        Self {
            heads: Box::new([NIL; RING as usize]),
            nodes: Vec::new(),
            free: NIL,
            occupied: Box::new([0; WORDS]),
            cursor: 0,
            current: Vec::new(),
            order: Vec::new(),
            keys: Vec::new(),
            early: BinaryHeap::new(),
            far: BinaryHeap::new(),
            seq: 0,
            len: 0,
        }
    }
}

impl<T: Copy> CalendarQueue<T> {
    /// Schedules `value` at `at`. Times before the last popped entry's are
    /// treated as that time's bucket (they come out next, in time order).
    ///
    /// The usual case, an entry for a later bucket within the ring, is
    /// inlined into the caller; the others are out of line.
    #[inline]
    pub fn push(&mut self, at: Nanos, value: T) {
        self.push_slot(at, value);
    }

    /// [`Self::push`], returning where the entry went so that it may be
    /// cancelled in place while it waits on the ring.
    #[inline(always)]
    pub fn push_slot(&mut self, at: Nanos, value: T) -> Slot {
        self.seq += 1;
        self.len += 1;
        let e = Entry {
            at,
            seq: self.seq,
            value,
        };
        let b = at >> SHIFT;
        // cursor < b < cursor + RING, in one comparison (wrapping: a b at
        // or before the cursor gives a huge difference).
        if b.wrapping_sub(self.cursor + 1) < RING - 1 {
            Slot(self.put_on_ring(b, e))
        } else {
            self.push_off_ring(b, e);
            Slot::NONE
        }
    }

    /// Cancels the entry at `slot` if it is still waiting on the ring and is
    /// `(at, value)` (a slot's node is reused once its bucket is drained, so
    /// the entry is named as well as placed). Returns whether it was
    /// cancelled; one not cancelled comes out as usual.
    #[inline]
    pub fn cancel(&mut self, slot: Slot, at: Nanos, value: &T) -> bool
    where
        T: PartialEq,
    {
        let idx = slot.0;
        let Some(node) = self.nodes.get_mut(idx as usize) else {
            return false;
        };
        let e = &mut node.entry;
        if e.seq == 0 || e.at != at || e.value != *value {
            return false;
        }
        e.seq = 0;
        self.len -= 1;
        // The last entry pushed into its bucket (often so: an attempt's
        // timers die young) leaves the list at once, so that a driver that
        // never reaches the bucket does not keep it.
        let i = ((at >> SHIFT) & MASK) as usize;
        if self.heads[i] == idx {
            let next = node.next;
            node.next = self.free;
            self.free = idx;
            self.heads[i] = next;
            if next == NIL {
                self.occupied[i / 64] &= !(1 << (i % 64));
            }
        }
        true
    }

    /// [`Self::push`] for an entry in or before the cursor's bucket, or
    /// beyond the ring.
    #[inline(never)]
    fn push_off_ring(&mut self, b: u64, e: Entry<T>) {
        if b <= self.cursor {
            if self.current.len() <= SMALL {
                // Into the bucket being drained, keeping it sorted
                // (descending): cheap while the bucket is small.
                let key = e.key();
                let pos = self.current.partition_point(|x| x.key() > key);
                self.current.insert(pos, e);
            } else {
                self.early.push(Reverse(e));
            }
        } else {
            self.far.push(Reverse(e));
        }
    }

    /// Whether the next entry is the early heap's (`None`: nothing left).
    fn next_is_early(&mut self) -> Option<bool> {
        if self.current.is_empty() && self.early.is_empty() && !self.advance() {
            return None;
        }
        match (self.current.last(), self.early.peek()) {
            (Some(c), Some(Reverse(e))) => Some(e.key() < c.key()),
            (Some(_), None) => Some(false),
            (None, Some(_)) => Some(true),
            (None, None) => None,
        }
    }

    /// The time of the next entry, if any.
    pub fn peek_time(&mut self) -> Option<Nanos> {
        self.peek().map(|(at, _)| at)
    }

    /// The next entry, without removing it.
    #[inline]
    pub fn peek(&mut self) -> Option<(Nanos, &T)> {
        if self.early.is_empty() && !self.current.is_empty() {
            // The usual case, inlined.
            return self.current.last().map(|e| (e.at, &e.value));
        }
        self.peek_slow()
    }

    #[inline(never)]
    fn peek_slow(&mut self) -> Option<(Nanos, &T)> {
        if self.early.is_empty() {
            // Nothing loaded: load the next bucket.
            if self.current.is_empty() && !self.advance() {
                return None;
            }
            return self.current.last().map(|e| (e.at, &e.value));
        }
        if self.next_is_early()? {
            self.early.peek().map(|Reverse(e)| (e.at, &e.value))
        } else {
            self.current.last().map(|e| (e.at, &e.value))
        }
    }

    /// Removes and returns the next entry.
    #[inline]
    pub fn pop(&mut self) -> Option<(Nanos, T)> {
        if self.early.is_empty() {
            // The usual case, inlined.
            if let Some(e) = self.current.pop() {
                self.len -= 1;
                return Some((e.at, e.value));
            }
        }
        self.pop_slow()
    }

    #[inline(never)]
    fn pop_slow(&mut self) -> Option<(Nanos, T)> {
        let e = if self.early.is_empty() {
            if self.current.is_empty() && !self.advance() {
                return None;
            }
            self.current.pop()?
        } else if self.next_is_early()? {
            self.early.pop()?.0
        } else {
            self.current.pop()?
        };
        self.len -= 1;
        Some((e.at, e.value))
    }

    /// Entries waiting.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Puts an entry on the ring and returns its node.
    #[inline]
    fn put_on_ring(&mut self, b: u64, entry: Entry<T>) -> u32 {
        let i = (b & MASK) as usize;
        let node = Node {
            entry,
            next: self.heads[i],
        };
        let idx = if self.free == NIL {
            self.nodes.push(node);
            (self.nodes.len() - 1) as u32
        } else {
            let idx = self.free;
            self.free = self.nodes[idx as usize].next;
            self.nodes[idx as usize] = node;
            idx
        };
        self.heads[i] = idx;
        self.occupied[i / 64] |= 1 << (i % 64);
        idx
    }

    /// The next occupied ring bucket after the cursor, as an absolute number.
    fn next_occupied(&self) -> Option<u64> {
        let start = (self.cursor + 1) & MASK;
        let words = WORDS;
        let (w0, b0) = ((start / 64) as usize, start % 64);
        // The first word from bit b0, then the others in ring order, then
        // the first word's low bits.
        let first = self.occupied[w0] & (!0u64 << b0);
        let mut found = None;
        if first != 0 {
            found = Some(w0 as u64 * 64 + u64::from(first.trailing_zeros()));
        } else {
            for k in 1..=words {
                let w = (w0 + k) % words;
                let mut word = self.occupied[w];
                if k == words {
                    word &= !(!0u64 << b0);
                }
                if word != 0 {
                    found = Some(w as u64 * 64 + u64::from(word.trailing_zeros()));
                    break;
                }
            }
        }
        found.map(|idx| {
            let delta = (idx + RING - (self.cursor & MASK)) & MASK;
            self.cursor + if delta == 0 { RING } else { delta }
        })
    }

    /// Moves the cursor to the next bucket with an entry not cancelled and
    /// loads it.
    fn advance(&mut self) -> bool {
        // Each round drains one bucket (a bucket of cancelled entries only
        // leaves `current` empty), and there are finitely many.
        while self.len > 0 {
            if !self.advance_once() {
                return false;
            }
            if !self.current.is_empty() {
                return true;
            }
        }
        false
    }

    /// Moves the cursor to the next occupied bucket and loads it.
    fn advance_once(&mut self) -> bool {
        let ring_next = self.next_occupied();
        let far_next = self.far.peek().map(|Reverse(e)| e.at >> SHIFT);
        let target = match (ring_next, far_next) {
            (Some(r), Some(f)) => r.min(f),
            (Some(r), None) => r,
            (None, Some(f)) => f,
            (None, None) => return false,
        };
        self.cursor = target;
        // Far entries that now fit on the ring move onto it first. None of
        // them shares a bucket with an entry already on the ring: an entry
        // goes on the ring only once its bucket is within reach, and far
        // entries move as soon as theirs is, so all of a bucket's far
        // entries were pushed before any of its ring entries.
        while let Some(Reverse(e)) = self.far.peek() {
            let b = e.at >> SHIFT;
            if b >= self.cursor + RING {
                break;
            }
            let Some(Reverse(e)) = self.far.pop() else {
                break;
            };
            self.put_on_ring(b, e);
        }
        let i = (target & MASK) as usize;
        let mut idx = std::mem::replace(&mut self.heads[i], NIL);
        // Every node is freed here (no push comes before the entries are
        // copied out in `load_sorted`); a live entry keeps its sequence
        // number until then.
        self.keys.clear();
        self.order.clear();
        while idx != NIL {
            let node = &mut self.nodes[idx as usize];
            let next = node.next;
            let e = &node.entry;
            if e.seq != 0 {
                let j = self.order.len() as u32;
                self.keys
                    .push(((e.at & LOW) << 32) | u64::from(u32::MAX - j));
                self.order.push(idx);
            }
            node.next = self.free;
            self.free = idx;
            idx = next;
        }
        self.occupied[i / 64] &= !(1 << (i % 64));
        self.load_sorted();
        true
    }

    /// Copies the drained bucket's live entries (`order`, their nodes in
    /// list order) into `current`, sorted so that the next entry is last,
    /// and marks their nodes free (sequence 0: a cancel through a stale
    /// slot finds nothing).
    ///
    /// A bucket's list is last in, first out, so its entries lie in
    /// descending sequence (the far entries, pushed first, at the end, in
    /// descending order as the heap gave them), and all share the time's
    /// bits above `SHIFT`. So `(time, sequence)` orders them as one `u64`
    /// (`keys`): the time's low `SHIFT` bits above the complement of the
    /// entry's place in the list. That key is unique and also names the
    /// entry, so sorting the keys (8 bytes each, an unstable sort of
    /// integers) and then copying the entries out in order gives the exact
    /// order for fewer instructions than sorting the entries (40 bytes
    /// for the simulator's events) by time.
    fn load_sorted(&mut self) {
        self.keys.sort_unstable();
        for &k in self.keys.iter().rev() {
            let idx = self.order[(u32::MAX - k as u32) as usize];
            let e = &mut self.nodes[idx as usize].entry;
            self.current.push(*e);
            e.seq = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any interleaving of pushes (never before the last pop) and pops
        /// comes out exactly as a (time, sequence) heap would give it.
        #[test]
        fn matches_a_heap(ops in proptest::collection::vec((0u64..4, 0u64..(1 << 38), any::<bool>()), 1..400)) {
            let mut q = CalendarQueue::default();
            let mut h = BinaryHeap::new();
            let (mut now, mut seq) = (0u64, 0u64);
            for (i, (kind, delta, pop)) in ops.into_iter().enumerate() {
                if kind == 3 && delta % 2 == 0 {
                    // A peek may move the cursor ahead of the clock.
                    let a = q.peek().map(|(at, v)| (at, *v));
                    let b = h.peek().map(|Reverse((at, _, v))| (*at, *v));
                    prop_assert_eq!(a, b);
                }
                if pop {
                    let a = q.pop();
                    let b = h.pop().map(|Reverse((at, _, v))| (at, v));
                    prop_assert_eq!(a, b);
                    if let Some((at, _)) = a { now = at; }
                } else {
                    // Mostly near, sometimes far beyond the ring.
                    let d = match kind { 0 => delta % 1000, 1 => delta % (1 << 24), 2 => delta % (1 << 34), _ => delta };
                    seq += 1;
                    q.push(now + d, i);
                    h.push(Reverse((now + d, seq, i)));
                }
                prop_assert_eq!(q.len(), h.len());
            }
            while let Some(b) = h.pop() {
                let Reverse((at, _, v)) = b;
                prop_assert_eq!(q.pop(), Some((at, v)));
            }
            prop_assert_eq!(q.pop(), None);
        }
    }

    proptest! {
        /// Cancelling entries in place takes exactly those out and leaves
        /// the others' order as a (time, sequence) heap gives it; a cancel
        /// through a stale slot (its entry popped, its node reused) does
        /// nothing.
        #[test]
        fn cancel_matches_a_heap(ops in proptest::collection::vec((0u64..4, 0u64..(1 << 38), 0u8..3, any::<u16>()), 1..400)) {
            let mut q = CalendarQueue::default();
            let mut h = BinaryHeap::new();
            let mut pushed: Vec<(Nanos, u64, usize, Slot)> = Vec::new();
            let (mut now, mut seq) = (0u64, 0u64);
            for (i, (kind, delta, op, pick)) in ops.into_iter().enumerate() {
                match op {
                    0 => {
                        let a = q.pop();
                        let b = h.pop().map(|Reverse((at, _, v))| (at, v));
                        prop_assert_eq!(a, b);
                        if let Some((at, _)) = a { now = at; }
                    }
                    1 if !pushed.is_empty() => {
                        let (at, s, v, slot) = pushed[usize::from(pick) % pushed.len()];
                        let waiting = h.iter().any(|Reverse(e)| *e == (at, s, v));
                        if q.cancel(slot, at, &v) {
                            prop_assert!(waiting, "cancelled an entry no longer waiting");
                            h.retain(|Reverse(e)| *e != (at, s, v));
                        }
                    }
                    _ => {
                        let d = match kind { 0 => delta % 1000, 1 => delta % (1 << 24), 2 => delta % (1 << 34), _ => delta };
                        seq += 1;
                        let slot = q.push_slot(now + d, i);
                        h.push(Reverse((now + d, seq, i)));
                        pushed.push((now + d, seq, i, slot));
                    }
                }
                prop_assert_eq!(q.len(), h.len());
                let a = q.peek().map(|(at, v)| (at, *v));
                let b = h.peek().map(|Reverse((at, _, v))| (*at, *v));
                prop_assert_eq!(a, b);
            }
            while let Some(b) = h.pop() {
                let Reverse((at, _, v)) = b;
                prop_assert_eq!(q.pop(), Some((at, v)));
            }
            prop_assert_eq!(q.pop(), None);
        }
    }

    #[test]
    fn a_bucket_of_cancelled_entries_is_skipped() {
        let mut q = CalendarQueue::default();
        let a = q.push_slot(10 << SHIFT, 'a');
        let b = q.push_slot(20 << SHIFT, 'b');
        q.push(30 << SHIFT, 'c');
        assert!(q.cancel(a, 10 << SHIFT, &'a'));
        assert!(!q.cancel(a, 10 << SHIFT, &'a'), "twice");
        assert!(!q.cancel(b, 20 << SHIFT, &'x'), "another entry");
        assert!(q.cancel(b, 20 << SHIFT, &'b'));
        assert_eq!(q.len(), 1);
        assert_eq!(q.pop(), Some((30 << SHIFT, 'c')));
        assert_eq!(q.pop(), None);
        // The nodes are reused; the old slots name nothing now.
        let d = q.push_slot(40 << SHIFT, 'd');
        assert!(!q.cancel(a, 10 << SHIFT, &'a'));
        assert!(q.cancel(d, 40 << SHIFT, &'d'));
        assert_eq!(q.pop(), None);
        assert!(q.is_empty());
    }

    #[test]
    fn a_cancelled_entry_under_a_newer_one_is_skipped_when_drained() {
        let mut q = CalendarQueue::default();
        let x = q.push_slot(10 << SHIFT, 'x');
        let y = q.push_slot((10 << SHIFT) + 1, 'y');
        q.push((10 << SHIFT) + 2, 'w');
        q.push(20 << SHIFT, 'z');
        // x lies under y and w in its bucket's list: marked, not unlinked.
        assert!(q.cancel(x, 10 << SHIFT, &'x'));
        assert!(q.cancel(y, (10 << SHIFT) + 1, &'y'));
        assert_eq!(q.len(), 2);
        assert_eq!(q.pop(), Some(((10 << SHIFT) + 2, 'w')));
        assert_eq!(q.pop(), Some((20 << SHIFT, 'z')));
        assert_eq!(q.pop(), None);
        // Drained, the nodes are free: the old slots name nothing.
        q.push(30 << SHIFT, 'v');
        q.push(30 << SHIFT, 'u');
        assert!(!q.cancel(x, 10 << SHIFT, &'x'));
        assert_eq!(q.len(), 2);
    }

    #[test]
    fn entries_before_a_full_cursor_bucket_come_out_in_order() {
        let mut q = CalendarQueue::default();
        q.push(0, 0u64);
        for i in 0..100 {
            q.push((1000 << SHIFT) + i, 1000 + i);
        }
        assert_eq!(q.pop(), Some((0, 0)));
        // The peek moves the cursor to bucket 1000, with 100 entries in it.
        assert_eq!(q.peek_time(), Some(1000 << SHIFT));
        let mut want: Vec<(Nanos, u64)> =
            (0..100).map(|i| ((1000 << SHIFT) + i, 1000 + i)).collect();
        for i in (1..200).rev() {
            // Earlier than the cursor's bucket: these go to the early heap.
            q.push((i * 5) << SHIFT, i);
            want.push(((i * 5) << SHIFT, i));
        }
        want.sort_unstable();
        let got: Vec<_> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn same_time_keeps_insertion_order_across_buckets() {
        let mut q = CalendarQueue::default();
        q.push(5 << SHIFT, 'b');
        q.push(1, 'a');
        q.push(5 << SHIFT, 'c');
        q.push(RING << SHIFT << 2, 'e');
        q.push(5 << SHIFT, 'd');
        let order: Vec<char> = std::iter::from_fn(|| q.pop().map(|(_, e)| e)).collect();
        assert_eq!(order, ['a', 'b', 'c', 'd', 'e']);
    }
}
