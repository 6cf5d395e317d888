//! The reduction of one column: its working coboundary (a heap), the V matrix of the reduced
//! columns with its cache of reduced coboundaries, emergent-pair shortcuts, additions of earlier
//! columns, and the recording of the resulting bar. The serial and parallel drivers in
//! [`crate::engine::pairs`] call these per column.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering as AtomicOrdering};

use crate::engine::reducer::{PivotMap, RawBarcode, Reducer};
use crate::heap::QuadHeap as BinaryHeap;
use crate::matrix::Metric;
use crate::simplex::{Entry, MAX_VERTICES};

/// The state of the column being reduced.
pub(super) struct Work {
    /// The working coboundary.
    pub(super) cob: BinaryHeap,
    /// The V entries (the simplices added to the column so far), unmerged.
    red: Vec<Entry>,
    pivot: Option<Entry>,
    /// The pivot is an emergent pair's, found without building the coboundary.
    emergent: bool,
    /// Size of the working coboundary beyond which it is compacted.
    limit: usize,
    /// The working coboundary was released while waiting for commit (it was the plain
    /// coboundary of the column, cheap to rebuild).
    pub(super) dropped: bool,
    /// Entries of the parked-coboundary budget this column holds while waiting for commit.
    pub(super) parked: usize,
}

/// Working coboundaries are compacted (equal entries combined) when they grow beyond this many
/// entries, or beyond four times their size after the last compaction.
const COMPACT_MIN: usize = 1 << 21;
/// Entries of cached reduced columns per dimension (16 bytes each).
pub(super) const REDUCED_BUDGET: usize = 1 << 23;
/// Only columns with at least this many V entries get their reduced column cached.
const REDUCED_MIN_V: usize = 1;
/// `VMatrix::uses` of a column whose reduced column is never cached (it did not fit).
const NO_CACHE: u32 = 1 << 31;

impl Work {
    /// Releases the working coboundary of a column that needed no addition yet.
    pub(super) fn release_if_plain(&mut self) {
        if self.emergent {
            // empty, but may hold the capacity of a coboundary buffer
            self.cob = BinaryHeap::new();
        } else if self.red.is_empty() && self.cob.len() > 0 {
            self.cob = BinaryHeap::new();
            self.dropped = true;
        }
    }

    pub(super) fn new() -> Self {
        Work {
            cob: BinaryHeap::new(),
            red: Vec::new(),
            pivot: None,
            emergent: false,
            limit: COMPACT_MIN,
            dropped: false,
            parked: 0,
        }
    }
}

/// How the reduction of a column ended.
#[derive(Clone, Copy)]
pub(super) enum Outcome {
    /// The column reduced to zero: an essential class.
    Essential,
    /// The column's pivot, new among the pivots of the columns before it.
    Pivot(Entry),
}

/// Column storage for the V matrix (reduction coefficients), one column per reduced column.
pub(super) struct VMatrix {
    offsets: Vec<usize>,
    pub(super) entries: Vec<Entry>,
    /// Cached reduced coboundary columns R_j (sorted in pivot order) of columns that needed
    /// additions: adding R_j costs |R_j| heap pushes instead of re-enumerating the
    /// coboundaries of all |V_j| + 1 simplices.
    reduced: Vec<OnceLock<Box<[Entry]>>>,
    uses: Vec<AtomicU32>,
    /// Entries of cached reduced columns that may still be added.
    pub(super) budget: AtomicUsize,
}

impl VMatrix {
    pub(super) fn new() -> Self {
        VMatrix {
            offsets: vec![0],
            entries: Vec::new(),
            reduced: Vec::new(),
            uses: Vec::new(),
            budget: AtomicUsize::new(REDUCED_BUDGET),
        }
    }
    pub(super) fn clear(&mut self) {
        self.offsets.clear();
        self.offsets.push(0);
        self.entries.clear();
        self.reduced.clear();
        self.uses.clear();
        self.budget = AtomicUsize::new(REDUCED_BUDGET);
    }
    fn col(&self, j: usize) -> &[Entry] {
        &self.entries[self.offsets[j]..self.offsets[j + 1]]
    }
    fn push(&mut self, es: impl IntoIterator<Item = Entry>) {
        self.entries.extend(es);
        self.offsets.push(self.entries.len());
        self.reduced.push(OnceLock::new());
        self.uses.push(AtomicU32::new(0));
    }
}

impl<'a, M: Metric> Reducer<'a, M> {
    fn push_coboundary(&self, e: Entry, dim: usize, work: &mut Work) {
        let mut vs = [0u32; MAX_VERTICES];
        self.vertices(e.idx(), dim, &mut vs);
        let cob = &mut work.cob;
        self.cofacets(&vs[..dim + 1], e.idx(), e.diam(), e.coef(), |c| {
            cob.push(c);
            true
        });
    }

    fn maybe_compact(&self, work: &mut Work) {
        if work.cob.len() <= work.limit {
            return;
        }
        let p = self.p();
        let mut v = std::mem::take(&mut work.cob).into_vec();
        v.sort_unstable();
        combine_equal(&mut v, p as u64);
        work.limit = (4 * v.len()).max(COMPACT_MIN);
        work.cob = BinaryHeap::from(v);
    }

    /// Pops the pivot (combining equal entries); None if the column is zero.
    #[inline]
    fn pop_pivot(&self, cob: &mut BinaryHeap) -> Option<Entry> {
        let p = self.p();
        if p == 2 {
            while let Some(e) = cob.pop() {
                match cob.peek() {
                    Some(t) if t.idx() == e.idx() => {
                        cob.pop();
                    }
                    _ => return Some(e),
                }
            }
            None
        } else {
            let mut pivot: Option<Entry> = None;
            while let Some(&t) = cob.peek() {
                match pivot {
                    None => pivot = Some(t),
                    Some(ref mut pv) => {
                        if pv.idx() != t.idx() {
                            return Some(*pv);
                        }
                        *pv = pv.with_coef((pv.coef() + t.coef()) % p);
                        if pv.coef() == 0 {
                            pivot = None;
                        }
                    }
                }
                cob.pop();
            }
            pivot
        }
    }

    #[inline]
    fn get_pivot(&self, work: &mut Work) -> Option<Entry> {
        let e = self.pop_pivot(&mut work.cob);
        if let Some(e) = e {
            work.cob.push(e);
        }
        e
    }

    /// Initialises the working coboundary of a column. With `shortcut`, stops at an emergent
    /// pair (first equal-diameter cofacet not yet a pivot and not in an apparent pair).
    pub(super) fn init_column(
        &self,
        col: Entry,
        dim: usize,
        map: &PivotMap,
        work: &mut Work,
        shortcut: bool,
    ) {
        work.red.clear();
        work.emergent = false;
        work.dropped = false;
        work.limit = COMPACT_MIN;
        let mut buf = std::mem::take(&mut work.cob).into_vec();
        buf.clear();
        let mut vs = [0u32; MAX_VERTICES];
        self.vertices(col.idx(), dim, &mut vs);
        let mut check = shortcut;
        let mut emergent = None;
        let mut cvs = [0u32; MAX_VERTICES];
        self.cofacets(&vs[..dim + 1], col.idx(), col.diam(), 1, |c| {
            if check && c.diam() == col.diam() {
                check = false;
                if !map.contains_key(&c.idx()) {
                    self.vertices(c.idx(), dim + 1, &mut cvs);
                    if self.apparent_facet(&cvs[..dim + 2], c.diam()).is_none() {
                        emergent = Some(c);
                        return false;
                    }
                }
            }
            buf.push(c);
            true
        });
        if let Some(c) = emergent {
            buf.clear();
            work.cob = BinaryHeap::from(buf);
            work.pivot = Some(c);
            work.emergent = true;
            return;
        }
        work.cob = BinaryHeap::from(buf);
        work.pivot = self.get_pivot(work);
    }

    fn add_column(
        &self,
        cols: &[Entry],
        vmat: &VMatrix,
        j: usize,
        factor: u32,
        dim: usize,
        work: &mut Work,
    ) {
        let p = self.p() as u64;
        let s = cols[j].with_coef(factor);
        work.red.push(s);
        let mut cached = vmat.reduced[j].get();
        let mut temp = None;
        if cached.is_none() && vmat.col(j).len() >= REDUCED_MIN_V {
            let uses = vmat.uses[j].fetch_add(1, AtomicOrdering::Relaxed);
            let room = vmat.budget.load(AtomicOrdering::Relaxed);
            if (1..NO_CACHE).contains(&uses) {
                // second use of a column with a non-trivial V: build and keep its reduced
                // column, if it fits in what is left of the budget (the build stops early
                // when it clearly does not: a column that does not fit is never tried again)
                match self.reduced_column(cols[j], vmat.col(j), dim, room.saturating_mul(2)) {
                    Some(r) => {
                        let fits = vmat
                            .budget
                            .fetch_update(AtomicOrdering::Relaxed, AtomicOrdering::Relaxed, |b| {
                                b.checked_sub(r.len())
                            })
                            .is_ok();
                        if fits {
                            let _ = vmat.reduced[j].set(r.into_boxed_slice());
                            cached = vmat.reduced[j].get();
                        } else {
                            vmat.uses[j].store(NO_CACHE, AtomicOrdering::Relaxed);
                            // built anyway: use it for this addition
                            temp = Some(r);
                        }
                    }
                    None => vmat.uses[j].store(NO_CACHE, AtomicOrdering::Relaxed),
                }
            }
        }
        if let Some(r) = cached.map(|b| &b[..]).or(temp.as_deref()) {
            for &e in vmat.col(j) {
                work.red
                    .push(e.with_coef(((e.coef() as u64 * factor as u64) % p) as u32));
            }
            if p == 2 {
                work.cob.extend(r.iter().copied());
            } else {
                work.cob.extend(
                    r.iter()
                        .map(|&e| e.with_coef(((e.coef() as u64 * factor as u64) % p) as u32)),
                );
            }
        } else {
            self.push_coboundary(s, dim, work);
            for &e in vmat.col(j) {
                let e = e.with_coef(((e.coef() as u64 * factor as u64) % p) as u32);
                work.red.push(e);
                self.push_coboundary(e, dim, work);
            }
        }
        self.maybe_compact(work);
    }

    /// Reduces the working column against the known pivots until its pivot is new.
    pub(super) fn reduce(
        &self,
        col: Entry,
        cols: &[Entry],
        dim: usize,
        map: &PivotMap,
        vmat: &VMatrix,
        work: &mut Work,
    ) -> Outcome {
        let p = self.p();
        let mut cvs = [0u32; MAX_VERTICES];
        loop {
            let Some(pv) = work.pivot else {
                return Outcome::Essential;
            };
            if let Some(&(j, cc)) = map.get(&pv.idx()) {
                if work.emergent {
                    // the shortcut was taken against an incomplete map: rebuild in full
                    self.init_column(col, dim, map, work, false);
                    continue;
                }
                let factor =
                    (p - (pv.coef() as u64 * self.inv[cc as usize] as u64 % p as u64) as u32) % p;
                self.add_column(cols, vmat, j as usize, factor, dim, work);
                work.pivot = self.get_pivot(work);
                continue;
            }
            if !work.emergent {
                self.vertices(pv.idx(), dim + 1, &mut cvs);
                if let Some(r) = self.apparent_facet(&cvs[..dim + 2], pv.diam()) {
                    let mut fv = [0u32; MAX_VERTICES];
                    fv[..r].copy_from_slice(&cvs[..r]);
                    fv[r..dim + 1].copy_from_slice(&cvs[r + 1..dim + 2]);
                    let sign_neg = r & 1 == 1;
                    // coefficient of pv in δe is ±1; choose factor to cancel it
                    let c = if sign_neg {
                        pv.coef()
                    } else {
                        (p - pv.coef()) % p
                    };
                    let e = Entry::new(pv.diam(), self.index_of(&fv[..dim + 1]), c);
                    work.red.push(e);
                    self.push_coboundary(e, dim, work);
                    self.maybe_compact(work);
                    work.pivot = self.get_pivot(work);
                    continue;
                }
            }
            return Outcome::Pivot(pv);
        }
    }

    /// The reduced coboundary δ(s + V) sorted in pivot order, duplicate-free; None if more than
    /// `limit` entries (duplicates included) would have to be gathered.
    fn reduced_column(
        &self,
        s: Entry,
        v: &[Entry],
        dim: usize,
        limit: usize,
    ) -> Option<Vec<Entry>> {
        let p = self.p() as u64;
        let mut out_v = Vec::new();
        let mut vs = [0u32; MAX_VERTICES];
        for &e in std::iter::once(&s).chain(v) {
            self.vertices(e.idx(), dim, &mut vs);
            self.cofacets(&vs[..dim + 1], e.idx(), e.diam(), e.coef(), |c| {
                out_v.push(c);
                true
            });
            if out_v.len() > limit {
                return None;
            }
        }
        let mut v = out_v;
        v.sort_unstable_by(|a, b| b.cmp(a));
        combine_equal(&mut v, p);
        Some(v)
    }

    fn merge_red(&self, red: &mut Vec<Entry>) {
        let p = self.p() as u64;
        red.sort_unstable_by(|a, b| b.cmp(a));
        combine_equal(red, p);
    }

    fn cocycle_of(&self, col: Entry, red: &[Entry], dim: usize) -> Vec<(Vec<u32>, u32)> {
        let mut out = Vec::with_capacity(red.len() + 1);
        let mut vs = [0u32; MAX_VERTICES];
        for e in std::iter::once(&col).chain(red.iter()) {
            self.vertices(e.idx(), dim, &mut vs);
            out.push((vs[..dim + 1].to_vec(), e.coef()));
        }
        out
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn finish(
        &self,
        ci: usize,
        col: Entry,
        outcome: Outcome,
        dim: usize,
        work: &mut Work,
        map: &mut PivotMap,
        vmat: &mut VMatrix,
        out: &mut RawBarcode,
    ) {
        let want_cocycle = self.cfg.cocycles && dim == 1;
        match outcome {
            Outcome::Essential => {
                self.merge_red(&mut work.red);
                out.bars[dim].push((col.diam(), f32::INFINITY));
                if want_cocycle {
                    let c = self.cocycle_of(col, &work.red, dim);
                    out.cocycles.push(c);
                }
                vmat.push(std::iter::empty());
            }
            Outcome::Pivot(pv) => {
                self.merge_red(&mut work.red);
                if pv.diam() > col.diam() * self.cfg.ratio {
                    out.bars[dim].push((col.diam(), pv.diam()));
                    if want_cocycle {
                        let c = self.cocycle_of(col, &work.red, dim);
                        out.cocycles.push(c);
                    }
                }
                map.insert(pv.idx(), (ci as u32, pv.coef()));
                vmat.push(work.red.iter().copied());
            }
        }
    }
}

/// Combines the adjacent entries of equal index of `v` (sorted, either way) by adding their
/// coefficients mod `p`, and drops the entries whose coefficient is zero.
#[inline]
fn combine_equal(v: &mut Vec<Entry>, p: u64) {
    let mut out = 0usize;
    let mut i = 0usize;
    while i < v.len() {
        let mut e = v[i];
        let mut c = e.coef() as u64;
        i += 1;
        while i < v.len() && v[i].idx() == e.idx() {
            c += v[i].coef() as u64;
            i += 1;
        }
        c %= p;
        if c != 0 {
            e = e.with_coef(c as u32);
            v[out] = e;
            out += 1;
        }
    }
    v.truncate(out);
}
