//! A 4-ary max-heap of entries: half the depth of a binary heap and the four children of a
//! node adjacent in memory, which matters for the very large working columns of hard cases.

use crate::simplex::Entry;

#[derive(Debug, Default, Clone)]
pub(crate) struct QuadHeap {
    v: Vec<Entry>,
}

impl QuadHeap {
    pub(crate) fn new() -> Self {
        QuadHeap { v: Vec::new() }
    }

    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.v.len()
    }

    #[inline]
    pub(crate) fn peek(&self) -> Option<&Entry> {
        self.v.first()
    }

    #[inline]
    pub(crate) fn push(&mut self, e: Entry) {
        let mut i = self.v.len();
        self.v.push(e);
        while i > 0 {
            let parent = (i - 1) / 4;
            let pe = self.v[parent];
            if pe >= e {
                break;
            }
            self.v[i] = pe;
            i = parent;
        }
        self.v[i] = e;
    }

    #[inline]
    pub(crate) fn pop(&mut self) -> Option<Entry> {
        let last = self.v.pop()?;
        let n = self.v.len();
        if n == 0 {
            return Some(last);
        }
        let top = self.v[0];
        sift_down(&mut self.v, 0, last);
        Some(top)
    }

    pub(crate) fn extend<I: IntoIterator<Item = Entry>>(&mut self, it: I) {
        for e in it {
            self.push(e);
        }
    }

    pub(crate) fn into_vec(self) -> Vec<Entry> {
        self.v
    }
}

impl From<Vec<Entry>> for QuadHeap {
    fn from(mut v: Vec<Entry>) -> Self {
        let n = v.len();
        if n > 1 {
            // heapify bottom-up
            let mut start = (n - 2) / 4 + 1;
            while start > 0 {
                start -= 1;
                let e = v[start];
                sift_down(&mut v, start, e);
            }
        }
        QuadHeap { v }
    }
}

/// Puts `e` at slot `i` of the heap `v` and moves it down past every larger child; the
/// slot's old value is overwritten (it is `e`, or was just removed by `pop`).
#[inline]
fn sift_down(v: &mut [Entry], mut i: usize, e: Entry) {
    let n = v.len();
    loop {
        let c = 4 * i + 1;
        if c >= n {
            break;
        }
        let end = (c + 4).min(n);
        let mut best = c;
        let mut bv = v[c];
        for (k, &x) in v.iter().enumerate().take(end).skip(c + 1) {
            if x > bv {
                bv = x;
                best = k;
            }
        }
        if bv <= e {
            break;
        }
        v[i] = bv;
        i = best;
    }
    v[i] = e;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_in_order() {
        let mut seed = 3u64;
        let mut vals = Vec::new();
        for _ in 0..2000 {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
            vals.push(Entry::new((seed >> 40) as f32 / 7.0, seed >> 50, 1));
        }
        let mut h = QuadHeap::from(vals[..700].to_vec());
        h.extend(vals[700..].iter().copied());
        let mut sorted = vals.clone();
        sorted.sort_unstable_by(|a, b| b.cmp(a));
        let mut out = Vec::new();
        while let Some(e) = h.pop() {
            out.push(e);
        }
        assert_eq!(out, sorted);
    }
}
