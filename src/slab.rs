//! A generational slab: O(1) insert and remove, handles that go stale when
//! their slot is reused. The simulator, the core and the world keep their
//! live objects here, so memory follows what is in flight, not run length.

/// A handle into a [`Slab`]: slot index and the generation it was issued for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Handle {
    /// Slot index.
    pub index: u32,
    /// Generation of the slot when the handle was issued.
    pub gen: u32,
}

impl Handle {
    /// Packs the handle into one integer (for ids that cross the core's boundary).
    pub fn to_u64(self) -> u64 {
        (u64::from(self.gen) << 32) | u64::from(self.index)
    }

    /// The inverse of [`Handle::to_u64`].
    pub fn from_u64(v: u64) -> Self {
        Self {
            index: v as u32,
            gen: (v >> 32) as u32,
        }
    }
}

struct Entry<T> {
    gen: u32,
    value: Option<T>,
}

/// Generational storage.
pub struct Slab<T> {
    entries: Vec<Entry<T>>,
    free: Vec<u32>,
    len: usize,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
            free: Vec::new(),
            len: 0,
        }
    }
}

impl<T> Slab<T> {
    /// Stores a value and returns its handle.
    pub fn insert(&mut self, value: T) -> Handle {
        self.len += 1;
        if let Some(index) = self.free.pop() {
            let e = &mut self.entries[index as usize];
            e.gen = e.gen.wrapping_add(1);
            e.value = Some(value);
            Handle { index, gen: e.gen }
        } else {
            let index = self.entries.len() as u32;
            self.entries.push(Entry {
                gen: 0,
                value: Some(value),
            });
            Handle { index, gen: 0 }
        }
    }

    /// The value behind a handle, if the handle is still current.
    pub fn get(&self, h: Handle) -> Option<&T> {
        match self.entries.get(h.index as usize) {
            Some(e) if e.gen == h.gen => e.value.as_ref(),
            _ => None,
        }
    }

    /// Mutable access behind a current handle.
    pub fn get_mut(&mut self, h: Handle) -> Option<&mut T> {
        match self.entries.get_mut(h.index as usize) {
            Some(e) if e.gen == h.gen => e.value.as_mut(),
            _ => None,
        }
    }

    /// Removes and returns the value behind a current handle.
    pub fn remove(&mut self, h: Handle) -> Option<T> {
        match self.entries.get_mut(h.index as usize) {
            Some(e) if e.gen == h.gen && e.value.is_some() => {
                self.len -= 1;
                self.free.push(h.index);
                e.value.take()
            }
            _ => None,
        }
    }

    /// The current handle of slot `index`, if it holds a value.
    pub fn handle_at(&self, index: u32) -> Option<Handle> {
        match self.entries.get(index as usize) {
            Some(e) if e.value.is_some() => Some(Handle { index, gen: e.gen }),
            _ => None,
        }
    }

    /// Number of stored values.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_handles_miss() {
        let mut s = Slab::default();
        let a = s.insert(1);
        assert_eq!(s.remove(a), Some(1));
        let b = s.insert(2);
        assert_eq!(a.index, b.index);
        assert_eq!(s.get(a), None);
        assert_eq!(s.get(b), Some(&2));
        assert_eq!(Handle::from_u64(b.to_u64()), b);
        assert_eq!(s.len(), 1);
    }
}
