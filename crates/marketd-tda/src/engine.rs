//! Persistent cohomology of Vietoris–Rips filtrations in the manner of Ripser: implicit
//! coboundaries from simplex indices in the combinatorial number system, clearing, apparent and
//! emergent pairs, H0 by union-find, plus a chunked parallel reduction.
//!
//! Filtration order: diameter ascending, ties broken by simplex index descending. Columns are
//! reduced in the reverse order (cohomology), and the pivot of a coboundary column is its entry
//! of smallest diameter, ties by largest index.

use crate::heap::QuadHeap as BinaryHeap;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering as AtomicOrdering};

use rayon::prelude::*;

use crate::matrix::Metric;

/// Maximum number of vertices of a simplex handled (cofacets of the top dimension included).
pub(crate) const MAX_VERTICES: usize = 16;

/// Simple multiplicative hasher for u64 keys.
#[derive(Default, Clone, Copy)]
pub(crate) struct IdxHasher(u64);

impl Hasher for IdxHasher {
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ b as u64).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        let x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.0 = x ^ (x >> 29);
    }
}

type PivotMap = HashMap<u64, (u32, u32), BuildHasherDefault<IdxHasher>>;

/// A coefficient-carrying simplex with its diameter, packed in one u128 so that comparisons are
/// a single integer comparison: bits 96..128 hold the complemented diameter bits (diameters are
/// non-negative, so their bit patterns order like their values), bits 32..96 the simplex index,
/// bits 0..32 the coefficient. A max-heap thus yields the smallest diameter first and, among
/// equal diameters, the largest index; equal indices are adjacent whatever their coefficients.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Entry(u128);

impl Entry {
    #[inline]
    pub(crate) fn new(diam: f32, idx: u64, coef: u32) -> Self {
        Entry(((!diam.to_bits()) as u128) << 96 | (idx as u128) << 32 | coef as u128)
    }
    #[inline]
    pub(crate) fn diam(self) -> f32 {
        f32::from_bits(!((self.0 >> 96) as u32))
    }
    #[inline]
    pub(crate) fn idx(self) -> u64 {
        (self.0 >> 32) as u64
    }
    #[inline]
    pub(crate) fn coef(self) -> u32 {
        self.0 as u32
    }
    #[inline]
    pub(crate) fn with_coef(self, coef: u32) -> Self {
        Entry((self.0 & !0xffff_ffffu128) | coef as u128)
    }
}

/// Binomial coefficients C(v, k) for k <= kmax, v <= n, stored by k then v.
pub(crate) struct Binomial {
    stride: usize,
    table: Vec<u64>,
}

impl Binomial {
    /// Returns None on overflow of C(n, kmax).
    pub(crate) fn new(n: usize, kmax: usize) -> Option<Self> {
        let stride = n + 1;
        let mut table = vec![0u64; stride * (kmax + 1)];
        let mut overflow = false;
        for v in 0..=n {
            table[v] = 1;
            for k in 1..=kmax.min(v) {
                let a = table[(k - 1) * stride + v - 1];
                let b = if k < v { table[k * stride + v - 1] } else { 0 };
                let (s, o) = a.overflowing_add(b);
                if o || s > (1u64 << 62) {
                    overflow = true;
                }
                table[k * stride + v] = s;
            }
        }
        if overflow {
            None
        } else {
            Some(Binomial { stride, table })
        }
    }

    #[inline]
    pub(crate) fn get(&self, v: u32, k: usize) -> u64 {
        self.table[k * self.stride + v as usize]
    }
}

/// Options of one computation.
#[derive(Clone, Debug)]
pub(crate) struct EngineConfig {
    pub max_dim: usize,
    pub threshold: f32,
    pub ratio: f32,
    pub modulus: u32,
    pub threads: usize,
    pub cocycles: bool,
}

/// Raw result: per dimension the bars in discovery order, and optional H1 cocycles.
#[derive(Debug, Default)]
pub(crate) struct RawBarcode {
    pub bars: Vec<Vec<(f32, f32)>>,
    /// For dimension 1: per bar, list of (vertices, coefficient).
    pub cocycles: Vec<Vec<(Vec<u32>, u32)>>,
}

struct Work {
    cob: BinaryHeap,
    red: Vec<Entry>,
    pivot: Option<Entry>,
    emergent: bool,
    limit: usize,
    /// The working coboundary was released while waiting for commit (it was the plain
    /// coboundary of the column, cheap to rebuild).
    dropped: bool,
    /// Entries of the parked-coboundary budget this column holds while waiting for commit.
    parked: usize,
}

const COMPACT_MIN: usize = 1 << 21;
/// Entries (16 bytes each) of working coboundaries (over 4n entries) that the columns waiting for commit in the
/// parallel reduction may keep in total: beyond it they are released and rebuilt if needed
/// (rarely: most columns commit with the pivot they parked with), so that the parallel
/// reduction does not hold large columns besides the ones it is working on. On o3_2048 dim 1
/// this takes the peak memory at 2 threads from ~1.1 GB (about Ripser's) to ~1.0 GB at the
/// same speed.
const PARK_BUDGET: usize = 1 << 20;
/// Entries of cached reduced columns per dimension (16 bytes each).
const REDUCED_BUDGET: usize = 1 << 23;
/// Only columns with at least this many V entries get their reduced column cached.
const REDUCED_MIN_V: usize = 1;
/// `VMatrix::uses` of a column whose reduced column is never cached (it did not fit).
const NO_CACHE: u32 = 1 << 31;

impl Work {
    fn empty() -> Self {
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

    /// Releases the working coboundary of a column that needed no addition yet.
    fn release_if_plain(&mut self) {
        if self.emergent {
            // empty, but may hold the capacity of a coboundary buffer
            self.cob = BinaryHeap::new();
        } else if self.red.is_empty() && self.cob.len() > 0 {
            self.cob = BinaryHeap::new();
            self.dropped = true;
        }
    }

    fn new() -> Self {
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

#[derive(Clone, Copy)]
enum Outcome {
    Essential,
    Pivot(Entry),
}

pub(crate) struct Engine<'a, M: Metric> {
    m: &'a M,
    n: usize,
    cfg: EngineConfig,
    binom: &'a Binomial,
    inv: &'a [u32],
}

/// Binomial coefficients and inverses mod p, kept between computations of the same size.
#[derive(Default)]
pub(crate) struct Tables {
    binom: Option<((usize, usize), Binomial)>,
    inv: Vec<u32>,
    p: u32,
}

impl Tables {
    /// Makes the tables fit `n` points, simplices up to `kmax` vertices and Z/p; false if the
    /// simplex indices overflow.
    pub(crate) fn prepare(&mut self, n: usize, kmax: usize, p: u32) -> bool {
        let key = (n.max(1), kmax);
        if self.binom.as_ref().map(|b| b.0) != Some(key) {
            self.binom = Binomial::new(key.0, key.1).map(|b| (key, b));
        }
        if self.p != p || self.inv.is_empty() {
            self.inv = multiplicative_inverses(p);
            self.p = p;
        }
        self.binom.is_some()
    }
}

/// Buffers of the sequential engine, reused between computations of small problems (the
/// streaming use: many tiny problems) so that they run without allocating.
#[derive(Default)]
pub(crate) struct Buffers {
    /// Keep the pivot map and V matrix of one dimension for the next (small problems only: for
    /// large ones they are released as soon as possible to keep the peak memory down).
    pub(crate) recycle: bool,
    keys: Vec<u64>,
    tree: Vec<u64>,
    rest: Vec<u32>,
    parent: Vec<u32>,
    rank: Vec<u8>,
    cols: Vec<Entry>,
    map: PivotMap,
    vmat: Option<VMatrix>,
    work: Option<Work>,
}

/// Column storage for the V matrix (reduction coefficients), one column per reduced column.
struct VMatrix {
    offsets: Vec<usize>,
    entries: Vec<Entry>,
    /// Cached reduced coboundary columns R_j (sorted in pivot order) of columns that needed
    /// additions: adding R_j costs |R_j| heap pushes instead of re-enumerating the
    /// coboundaries of all |V_j| + 1 simplices.
    reduced: Vec<OnceLock<Box<[Entry]>>>,
    uses: Vec<AtomicU32>,
    budget: AtomicUsize,
}

impl VMatrix {
    fn new() -> Self {
        VMatrix {
            offsets: vec![0],
            entries: Vec::new(),
            reduced: Vec::new(),
            uses: Vec::new(),
            budget: AtomicUsize::new(REDUCED_BUDGET),
        }
    }
    fn clear(&mut self) {
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

/// Sequential problems of at most this many points get H0 by Prim's algorithm.
const SMALL_DIM0: usize = 256;

/// The larger of two distances (never NaN, see `matrix::fmax`).
#[inline(always)]
fn dmax(a: f32, b: f32) -> f32 {
    if a > b { a } else { b }
}

/// Edge keys ([`edge_key`]) hold vertices in 16 bits each.
pub(crate) const EDGE_KEY_MAX_N: usize = 1 << 16;

/// A u64 key of the edge {i, j} (i > j, both below 2^16) of diameter `d`: ascending keys are the
/// filtration order (diameter ascending, index descending).
#[inline]
pub(crate) fn edge_key(d: f32, i: u32, j: u32) -> u64 {
    ((d.to_bits() as u64) << 32) | (u32::MAX - ((i << 16) | j)) as u64
}

/// Diameter and vertices (i > j) of an edge key.
#[inline]
fn edge_of_key(key: u64) -> (f32, u32, u32) {
    let v = u32::MAX - key as u32;
    (f32::from_bits((key >> 32) as u32), v >> 16, v & 0xffff)
}

#[inline]
fn edge_index(i: u32, j: u32) -> u64 {
    (i as u64) * (i as u64).saturating_sub(1) / 2 + j as u64
}

fn uf_find(parent: &mut [u32], mut x: u32) -> u32 {
    while parent[x as usize] != x {
        let g = parent[parent[x as usize] as usize];
        parent[x as usize] = g;
        x = g;
    }
    x
}

pub(crate) fn multiplicative_inverses(p: u32) -> Vec<u32> {
    let mut inv = vec![0u32; p as usize];
    if p > 1 {
        inv[1] = 1;
    }
    for a in 2..p as u64 {
        let pp = p as u64;
        inv[a as usize] = ((pp - (pp / a) * inv[(pp % a) as usize] as u64 % pp) % pp) as u32;
    }
    inv
}

impl<'a, M: Metric> Engine<'a, M> {
    /// `tables` must have been prepared for `m.n()`, `cfg.max_dim + 2` and `cfg.modulus`.
    pub(crate) fn new(m: &'a M, cfg: EngineConfig, tables: &'a Tables) -> Option<Self> {
        let n = m.n();
        let binom = match &tables.binom {
            Some((key, b)) if *key == (n.max(1), cfg.max_dim + 2) => b,
            _ => return None,
        };
        let inv = &tables.inv[..];
        if tables.p != cfg.modulus {
            return None;
        }
        Some(Engine {
            m,
            n,
            cfg,
            binom,
            inv,
        })
    }

    #[inline]
    fn p(&self) -> u32 {
        self.cfg.modulus
    }

    /// Vertices (decreasing) of the simplex `idx` of dimension `dim`.
    #[inline]
    fn vertices(&self, mut idx: u64, dim: usize, out: &mut [u32]) {
        let mut top = self.n as u32;
        for (t, k) in (1..=dim + 1).rev().enumerate() {
            // largest v < top with C(v, k) <= idx
            let row =
                &self.binom.table[k * self.binom.stride..k * self.binom.stride + top as usize];
            let v = row.partition_point(|&b| b <= idx) as u32 - 1;
            out[t] = v;
            idx -= self.binom.get(v, k);
            top = v;
        }
    }

    /// Vertices (i > j) of the edge with index C(i,2) + j.
    #[inline]
    fn edge_vertices(&self, idx: u64) -> [u32; 2] {
        let mut i = ((1.0 + (1.0 + 8.0 * idx as f64).sqrt()) / 2.0) as u64;
        while i * (i - 1) / 2 > idx {
            i -= 1;
        }
        while (i + 1) * i / 2 <= idx {
            i += 1;
        }
        [i as u32, (idx - i * (i - 1) / 2) as u32]
    }

    #[inline]
    fn index_of(&self, vs: &[u32]) -> u64 {
        let k = vs.len();
        vs.iter()
            .enumerate()
            .map(|(t, &v)| self.binom.get(v, k - t))
            .sum()
    }

    /// First facet (in increasing index order) of the simplex with the same diameter:
    /// returns the position of the removed vertex.
    #[inline]
    fn zero_pivot_facet(&self, vs: &[u32], diam: f32) -> Option<usize> {
        let k = vs.len();
        // edges of maximal length
        let mut maxe = [(0u8, 0u8); MAX_VERTICES * 2];
        let mut cnt = 0usize;
        for a in 0..k {
            for b in a + 1..k {
                if self.m.dist(vs[a], vs[b]) == diam {
                    if cnt < maxe.len() {
                        maxe[cnt] = (a as u8, b as u8);
                    }
                    cnt += 1;
                }
            }
        }
        if cnt > maxe.len() {
            // many maximal edges: any vertex removal leaves one
            return Some(0);
        }
        (0..k).find(|&r| {
            maxe[..cnt]
                .iter()
                .any(|&(a, b)| a as usize != r && b as usize != r)
        })
    }

    /// First cofacet (in decreasing index order) with the same diameter: returns the added vertex.
    #[inline]
    fn zero_pivot_cofacet(&self, vs: &[u32], diam: f32) -> Option<u32> {
        self.m.first_cofacet_within(vs, diam)
    }

    /// Whether the simplex `vs` is the lower element of an apparent pair.
    #[inline]
    fn has_apparent_cofacet(&self, vs: &[u32], diam: f32) -> bool {
        let Some(v) = self.zero_pivot_cofacet(vs, diam) else {
            return false;
        };
        let mut cv = [0u32; MAX_VERTICES];
        let j = vs.iter().take_while(|&&w| w > v).count();
        cv[..j].copy_from_slice(&vs[..j]);
        cv[j] = v;
        cv[j + 1..vs.len() + 1].copy_from_slice(&vs[j..]);
        self.zero_pivot_facet(&cv[..vs.len() + 1], diam) == Some(j)
    }

    /// [`Self::has_apparent_cofacet`] of the edge {i, j} (i > j) of diameter `d`.
    #[inline]
    fn edge_has_apparent_cofacet(&self, i: u32, j: u32, d: f32) -> bool {
        let Some(v) = self.m.first_cofacet_within(&[i, j], d) else {
            return false;
        };
        // the zero-pivot facet of the cofacet (the first facet, removing its vertices from the
        // largest, keeping an edge of length d) must be {i, j}, i.e. removing v
        if v > i {
            true
        } else if v > j {
            self.m.dist(v, j) != d
        } else {
            self.m.dist(j, v) != d && self.m.dist(i, v) != d
        }
    }

    /// If the simplex `vs` is the upper element of an apparent pair, the position of the vertex
    /// whose removal gives its partner facet.
    #[inline]
    fn apparent_facet(&self, vs: &[u32], diam: f32) -> Option<usize> {
        let r = self.zero_pivot_facet(vs, diam)?;
        let k = vs.len();
        let mut fv = [0u32; MAX_VERTICES];
        fv[..r].copy_from_slice(&vs[..r]);
        fv[r..k - 1].copy_from_slice(&vs[r + 1..]);
        (self.zero_pivot_cofacet(&fv[..k - 1], diam) == Some(vs[r])).then_some(r)
    }

    /// Calls `f(entry)` for each cofacet of the simplex (vertices `vs`, diameter `diam`,
    /// coefficient `coef`) within the threshold, in decreasing index order.
    #[inline]
    fn cofacets<F: FnMut(Entry) -> bool>(
        &self,
        vs: &[u32],
        idx: u64,
        diam: f32,
        coef: u32,
        mut f: F,
    ) {
        let k = vs.len();
        let p = self.p();
        let neg = (p - coef) % p;
        if k == 2
            && let (Some(ra), Some(rb)) = (self.m.row(vs[0]), self.m.row(vs[1]))
        {
            // an edge {a, b} (a > b) of a dense matrix: the cofacets {v, a, b} in three runs of
            // v (above a, between, below b), each with a fixed part of the index and sign
            let (a, b) = (vs[0] as usize, vs[1] as usize);
            let t = self.cfg.threshold;
            let runs = [
                (a + 1..self.n, idx, coef, 3),
                (b + 1..a, self.binom.get(vs[0], 3) + b as u64, neg, 2),
                (
                    0..b,
                    self.binom.get(vs[0], 3) + self.binom.get(vs[1], 2),
                    coef,
                    1,
                ),
            ];
            for (range, base, c, kk) in runs {
                let table = &self.binom.table[kk * self.binom.stride..][..self.n];
                for v in range.rev() {
                    let d = dmax(dmax(diam, ra[v]), rb[v]);
                    if d <= t && !f(Entry::new(d, base + table[v], c)) {
                        return;
                    }
                }
            }
            return;
        }
        let mut j = 0usize;
        let mut above = 0u64;
        let mut below = idx;
        self.m
            .for_each_cofacet(vs, diam, self.cfg.threshold, false, |v, d| {
                while j < k && vs[j] > v {
                    above += self.binom.get(vs[j], k + 1 - j);
                    below -= self.binom.get(vs[j], k - j);
                    j += 1;
                }
                let cidx = above + self.binom.get(v, k + 1 - j) + below;
                f(Entry::new(d, cidx, if j & 1 == 1 { neg } else { coef }))
            });
    }

    fn push_coboundary(&self, e: Entry, dim: usize, work: &mut Work) {
        let mut vs = [0u32; MAX_VERTICES];
        self.vertices(e.idx(), dim, &mut vs);
        let cob = &mut work.cob;
        self.cofacets(&vs[..dim + 1], e.idx(), e.diam(), e.coef(), |c| {
            cob.push(c);
            true
        });
    }

    /// Makes a column waiting for commit (parallel reduction) hold less memory: plain
    /// coboundaries are released (rebuilt if the column has to continue), and so are working
    /// coboundaries that do not fit in what is left of `budget` (the column then restarts from
    /// scratch if it has to continue; its V column is kept for the commit).
    fn park(&self, work: &mut Work, budget: &AtomicUsize) {
        work.release_if_plain();
        let len = work.cob.len();
        // small ones (a few coboundaries' worth) are kept in any case
        if len <= 4 * self.n {
            return;
        }
        let fits = budget
            .fetch_update(AtomicOrdering::Relaxed, AtomicOrdering::Relaxed, |b| {
                b.checked_sub(len)
            })
            .is_ok();
        if fits {
            work.parked = len;
        } else {
            work.cob = BinaryHeap::new();
            work.dropped = true;
        }
    }

    /// Returns the budget a parked column held.
    fn unpark(&self, work: &mut Work, budget: &AtomicUsize) {
        budget.fetch_add(std::mem::take(&mut work.parked), AtomicOrdering::Relaxed);
    }

    fn maybe_compact(&self, work: &mut Work) {
        if work.cob.len() <= work.limit {
            return;
        }
        let p = self.p();
        let mut v = std::mem::take(&mut work.cob).into_vec();
        v.sort_unstable();
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
            c %= p as u64;
            if c != 0 {
                e = e.with_coef(c as u32);
                v[out] = e;
                out += 1;
            }
        }
        v.truncate(out);
        work.limit = (4 * out).max(COMPACT_MIN);
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
    fn init_column(&self, col: Entry, dim: usize, map: &PivotMap, work: &mut Work, shortcut: bool) {
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
    fn reduce(
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
        Some(v)
    }

    fn merge_red(&self, red: &mut Vec<Entry>) {
        let p = self.p() as u64;
        red.sort_unstable_by(|a, b| b.cmp(a));
        let mut out = 0usize;
        let mut i = 0usize;
        while i < red.len() {
            let mut e = red[i];
            let mut c = e.coef() as u64;
            i += 1;
            while i < red.len() && red[i].idx() == e.idx() {
                c += red[i].coef() as u64;
                i += 1;
            }
            c %= p;
            if c != 0 {
                e = e.with_coef(c as u32);
                red[out] = e;
                out += 1;
            }
        }
        red.truncate(out);
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
    fn finish(
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

    /// Reduces the columns `cols` of dimension `dim`; fills `map` (empty on entry) with the
    /// pivots.
    fn compute_pairs(
        &self,
        cols: &[Entry],
        dim: usize,
        pool: Option<&rayon::ThreadPool>,
        out: &mut RawBarcode,
        map: &mut PivotMap,
        bufs: &mut Buffers,
    ) {
        match pool {
            None => {
                let mut vmat = bufs.vmat.take().unwrap_or_else(VMatrix::new);
                vmat.clear();
                let mut work = bufs.work.take().unwrap_or_else(Work::new);
                for (ci, &col) in cols.iter().enumerate() {
                    self.init_column(col, dim, map, &mut work, true);
                    let o = self.reduce(col, cols, dim, map, &vmat, &mut work);
                    self.finish(ci, col, o, dim, &mut work, map, &mut vmat, out);
                }
                if bufs.recycle {
                    bufs.vmat = Some(vmat);
                    bufs.work = Some(work);
                }
            }
            Some(pool) => {
                let mut vmat = VMatrix::new();
                // Chunks of columns. Within a chunk, rounds: every column whose current pivot
                // is owned by an already committed column keeps reducing (in parallel); then
                // columns are committed in order while their pivot is new. The first
                // uncommitted column always commits in the next round, so this terminates, and
                // every addition is of a committed (earlier) column: the result equals the
                // sequential reduction.
                let threads = pool.current_num_threads();
                let mut start = 0usize;
                let mut chunk = 64 * threads;
                // columns of a chunk keep their working coboundaries (up to n entries each)
                // until committed: bound that memory (about 16 MB of plain coboundaries)
                let max_chunk =
                    (4096 * threads).min(((1usize << 20) / self.n.max(1)).max(64 * threads));
                let stats = std::env::var_os("MARKETD_TDA_STATS").is_some();
                let park_budget = std::env::var("MARKETD_TDA_PARK_BUDGET")
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(PARK_BUDGET);
                let budget = AtomicUsize::new(park_budget);
                let mut min_budget = park_budget;
                let (mut t_par, mut t_commit, mut rounds) = (0f64, 0f64, 0usize);
                while start < cols.len() {
                    let end = (start + chunk).min(cols.len());
                    let clock = std::time::Instant::now();
                    let mut states: Vec<(Work, Outcome)> = pool.install(|| {
                        cols[start..end]
                            .par_iter()
                            .with_min_len(4)
                            .map(|&col| {
                                let mut w = Work::new();
                                self.init_column(col, dim, map, &mut w, true);
                                let o = self.reduce(col, cols, dim, map, &vmat, &mut w);
                                self.park(&mut w, &budget);
                                (w, o)
                            })
                            .collect()
                    });
                    t_par += clock.elapsed().as_secs_f64();
                    min_budget = min_budget.min(budget.load(AtomicOrdering::Relaxed));
                    let mut next = start;
                    loop {
                        let clock = std::time::Instant::now();
                        while next < end {
                            let (w, o) = &mut states[next - start];
                            let ready = match o {
                                Outcome::Essential => true,
                                Outcome::Pivot(pv) => !map.contains_key(&pv.idx()),
                            };
                            if !ready {
                                break;
                            }
                            let col = cols[next];
                            self.finish(next, col, *o, dim, w, map, &mut vmat, out);
                            self.unpark(w, &budget);
                            *w = Work::empty();
                            next += 1;
                        }
                        t_commit += clock.elapsed().as_secs_f64();
                        if next == end {
                            break;
                        }
                        rounds += 1;
                        let clock = std::time::Instant::now();
                        let window_end = (next + 1024 * threads).min(end);
                        let (map_r, vmat_r, budget_r) = (&*map, &vmat, &budget);
                        pool.install(|| {
                            states[next - start..window_end - start]
                                .par_iter_mut()
                                .enumerate()
                                .with_min_len(1)
                                .for_each(|(k, (w, o))| {
                                    if let Outcome::Pivot(pv) = o
                                        && map_r.contains_key(&pv.idx())
                                    {
                                        let col = cols[next + k];
                                        self.unpark(w, budget_r);
                                        if w.dropped {
                                            self.init_column(col, dim, map_r, w, false);
                                        }
                                        *o = self.reduce(col, cols, dim, map_r, vmat_r, w);
                                        self.park(w, budget_r);
                                    }
                                });
                        });
                        t_par += clock.elapsed().as_secs_f64();
                        min_budget = min_budget.min(budget.load(AtomicOrdering::Relaxed));
                    }
                    start = end;
                    chunk = (chunk * 2).min(max_chunk);
                }
                if stats {
                    eprintln!(
                        "dim {dim}: {} columns, parallel {t_par:.3}s, commit {t_commit:.3}s, {rounds} rounds, V {} entries (capacity {}), cached reduced columns {} entries, parked coboundaries at most {} entries",
                        cols.len(),
                        vmat.entries.len(),
                        vmat.entries.capacity(),
                        REDUCED_BUDGET - vmat.budget.load(AtomicOrdering::Relaxed),
                        park_budget - min_budget,
                    );
                }
            }
        }
    }

    /// Columns of dimension `dim + 1` to reduce, from the simplices of dimension `dim`; also
    /// returns the simplices of dimension `dim + 1` when `keep_next`.
    fn assemble(
        &self,
        simplices: &[Entry],
        dim: usize,
        map: &PivotMap,
        keep_next: bool,
        parallel: bool,
    ) -> (Vec<Entry>, Vec<Entry>) {
        let work = |chunk: &[Entry]| -> (Vec<Entry>, Vec<Entry>) {
            let mut next = Vec::new();
            let mut cols = Vec::new();
            let mut vs = [0u32; MAX_VERTICES];
            let mut cv = [0u32; MAX_VERTICES];
            let k = dim + 1;
            for s in chunk {
                self.vertices(s.idx(), dim, &mut vs);
                let base = s.idx();
                let vsl = &vs[..k];
                self.m
                    .for_each_cofacet(vsl, s.diam(), self.cfg.threshold, true, |v, d| {
                        // v is above all vertices: the cofacet index is C(v, k+1) + idx
                        let cidx = self.binom.get(v, k + 1) + base;
                        let c = Entry::new(d, cidx, 1);
                        if keep_next {
                            next.push(c);
                        }
                        if !map.contains_key(&cidx) {
                            cv[0] = v;
                            cv[1..k + 1].copy_from_slice(vsl);
                            let cvs = &cv[..k + 1];
                            if self.apparent_facet(cvs, d).is_none()
                                && !self.has_apparent_cofacet(cvs, d)
                            {
                                cols.push(c);
                            }
                        }
                        true
                    });
            }
            (next, cols)
        };
        let (mut next, mut cols);
        if parallel {
            let parts: Vec<(Vec<Entry>, Vec<Entry>)> =
                simplices.par_chunks(2048).map(work).collect();
            next = Vec::with_capacity(parts.iter().map(|p| p.0.len()).sum());
            cols = Vec::with_capacity(parts.iter().map(|p| p.1.len()).sum());
            for (a, b) in parts {
                next.extend_from_slice(&a);
                cols.extend_from_slice(&b);
            }
            cols.par_sort_unstable_by(|a, b| b.cmp(a));
        } else {
            (next, cols) = work(simplices);
            cols.sort_unstable_by(|a, b| b.cmp(a));
        }
        // columns in order: diameter descending, index ascending
        cols.reverse();
        (next, cols)
    }

    /// H0 by union-find; returns the edges (all, when `max_dim >= 2`) and the dimension-1
    /// columns to reduce.
    fn dim0(
        &self,
        parallel: bool,
        out: &mut RawBarcode,
        bufs: &mut Buffers,
    ) -> (Vec<Entry>, Vec<Entry>) {
        let n = self.n;
        if n > EDGE_KEY_MAX_N {
            return self.dim0_entries(parallel, out);
        }
        if !parallel && n <= SMALL_DIM0 && self.m.is_dense() {
            return self.dim0_small(out, bufs);
        }
        // edges as u64 keys (diameter, then vertices): sorting them is cheaper than sorting
        // entries, and the union-find needs no index-to-vertex conversion
        let mut keys = std::mem::take(&mut bufs.keys);
        keys.clear();
        self.m.edge_keys(self.cfg.threshold, parallel, &mut keys);
        if parallel {
            keys.par_sort_unstable();
        } else {
            keys.sort_unstable();
        }
        let mut parent = std::mem::take(&mut bufs.parent);
        parent.clear();
        parent.extend(0..n as u32);
        let mut rank = std::mem::take(&mut bufs.rank);
        rank.clear();
        rank.resize(n, 0);
        let mut cols = std::mem::take(&mut bufs.cols);
        cols.clear();
        // sequentially, non-tree edges are filtered right away; in parallel, afterwards
        let filter_now = !parallel;
        for &key in &keys {
            let (d, i, j) = edge_of_key(key);
            let (a, b) = (uf_find(&mut parent, i), uf_find(&mut parent, j));
            if a != b {
                if d != 0.0 {
                    out.bars[0].push((0.0, d));
                }
                if rank[a as usize] < rank[b as usize] {
                    parent[a as usize] = b;
                } else {
                    parent[b as usize] = a;
                    if rank[a as usize] == rank[b as usize] {
                        rank[a as usize] += 1;
                    }
                }
            } else if self.cfg.max_dim >= 1
                && !(filter_now && self.edge_has_apparent_cofacet(i, j, d))
            {
                cols.push(Entry::new(d, edge_index(i, j), 1));
            }
        }
        for i in 0..n as u32 {
            if uf_find(&mut parent, i) == i {
                out.bars[0].push((0.0, f32::INFINITY));
            }
        }
        if !filter_now {
            let keep = |e: &Entry| {
                let [i, j] = self.edge_vertices(e.idx());
                !self.edge_has_apparent_cofacet(i, j, e.diam())
            };
            let flags: Vec<bool> = cols.par_iter().map(keep).collect();
            let mut it = flags.into_iter();
            cols.retain(|_| it.next().unwrap_or(false));
        }
        // the edges are only needed to assemble the columns of dimension 2
        let edges = if self.cfg.max_dim >= 2 {
            keys.iter()
                .map(|&k| {
                    let (d, i, j) = edge_of_key(k);
                    Entry::new(d, edge_index(i, j), 1)
                })
                .collect()
        } else {
            Vec::new()
        };
        if bufs.recycle {
            bufs.keys = keys;
            bufs.parent = parent;
            bufs.rank = rank;
        } else {
            cols.shrink_to_fit();
        }
        cols.reverse();
        (edges, cols)
    }

    /// [`Self::dim0`] for small dense problems: the minimum spanning forest by Prim's algorithm on
    /// the complete graph (O(n^2), no sorting of all edges). Edge weights are edge keys, a
    /// strict total order (the filtration order), so the forest is unique and equals the one
    /// Kruskal's algorithm finds in filtration order: the H0 bars, and the non-tree edges that
    /// become the dimension-1 columns, are those of the union-find path.
    fn dim0_small(&self, out: &mut RawBarcode, bufs: &mut Buffers) -> (Vec<Entry>, Vec<Entry>) {
        let n = self.n;
        let t = self.cfg.threshold;
        // best[v]: smallest key of an edge from the tree to v (u64::MAX: none); from[v]: its
        // tree end (u32::MAX for roots and vertices not reached)
        let mut best = std::mem::take(&mut bufs.keys);
        best.clear();
        best.resize(n, u64::MAX);
        let mut from = std::mem::take(&mut bufs.parent);
        from.clear();
        from.resize(n, u32::MAX);
        // vertices not in the forest yet (the minimum is unique whatever their order)
        let mut rest = std::mem::take(&mut bufs.rest);
        rest.clear();
        rest.extend(0..n as u32);
        let mut tree = std::mem::take(&mut bufs.tree);
        tree.clear();
        let mut components = 0usize;
        while !rest.is_empty() {
            components += 1;
            let mut u = rest.swap_remove(0);
            loop {
                let row = self.m.row(u);
                let mut next = usize::MAX;
                let mut next_key = u64::MAX;
                for (pos, &w) in rest.iter().enumerate() {
                    let d = match row {
                        Some(r) => r[w as usize],
                        None => self.m.dist(u, w),
                    };
                    let b = &mut best[w as usize];
                    // compare the diameters first, the whole keys on ties only
                    if d <= t && d.to_bits() <= (*b >> 32) as u32 {
                        let k = edge_key(d, u.max(w), u.min(w));
                        if k < *b {
                            *b = k;
                            from[w as usize] = u;
                        }
                    }
                    if *b < next_key {
                        next_key = *b;
                        next = pos;
                    }
                }
                if next == usize::MAX {
                    break;
                }
                tree.push(next_key);
                u = rest.swap_remove(next);
            }
        }
        tree.sort_unstable();
        for &k in &tree {
            let d = edge_of_key(k).0;
            if d != 0.0 {
                out.bars[0].push((0.0, d));
            }
        }
        out.bars[0].extend(std::iter::repeat_n((0.0, f32::INFINITY), components));
        let mut cols = std::mem::take(&mut bufs.cols);
        cols.clear();
        let mut edges = Vec::new();
        let keep_edges = self.cfg.max_dim >= 2;
        if self.cfg.max_dim >= 1 {
            for i in 1..n as u32 {
                let row = self.m.row(i);
                for j in 0..i {
                    let d = match row {
                        Some(r) => r[j as usize],
                        None => self.m.dist(i, j),
                    };
                    if d > t {
                        continue;
                    }
                    if keep_edges {
                        edges.push(Entry::new(d, edge_index(i, j), 1));
                    }
                    if from[i as usize] != j
                        && from[j as usize] != i
                        && !self.edge_has_apparent_cofacet(i, j, d)
                    {
                        cols.push(Entry::new(d, edge_index(i, j), 1));
                    }
                }
            }
        }
        // columns in order: diameter descending, index ascending
        cols.sort_unstable();
        bufs.keys = best;
        bufs.parent = from;
        bufs.rest = rest;
        bufs.tree = tree;
        (edges, cols)
    }

    /// [`Self::dim0`] for more than [`EDGE_KEY_MAX_N`] points: edges as entries.
    fn dim0_entries(&self, parallel: bool, out: &mut RawBarcode) -> (Vec<Entry>, Vec<Entry>) {
        let mut edges: Vec<Entry> = self.m.edges(self.cfg.threshold, parallel);
        // filtration order: diameter ascending, index descending == Entry descending
        if parallel {
            edges.par_sort_unstable_by(|a, b| b.cmp(a));
        } else {
            edges.sort_unstable_by(|a, b| b.cmp(a));
        }
        let n = self.n;
        let mut parent: Vec<u32> = (0..n as u32).collect();
        let mut rank = vec![0u8; n];
        let mut candidates = Vec::new();
        for e in &edges {
            let vs = self.edge_vertices(e.idx());
            let (a, b) = (uf_find(&mut parent, vs[0]), uf_find(&mut parent, vs[1]));
            if a != b {
                if e.diam() != 0.0 {
                    out.bars[0].push((0.0, e.diam()));
                }
                if rank[a as usize] < rank[b as usize] {
                    parent[a as usize] = b;
                } else {
                    parent[b as usize] = a;
                    if rank[a as usize] == rank[b as usize] {
                        rank[a as usize] += 1;
                    }
                }
            } else if self.cfg.max_dim >= 1 {
                candidates.push(*e);
            }
        }
        for i in 0..n as u32 {
            if uf_find(&mut parent, i) == i {
                out.bars[0].push((0.0, f32::INFINITY));
            }
        }
        let keep = |e: &Entry| {
            let [i, j] = self.edge_vertices(e.idx());
            !self.edge_has_apparent_cofacet(i, j, e.diam())
        };
        // the edges are only needed to assemble the columns of dimension 2
        if self.cfg.max_dim < 2 {
            edges = Vec::new();
        }
        let mut cols = candidates;
        if parallel {
            let flags: Vec<bool> = cols.par_iter().map(keep).collect();
            let mut it = flags.into_iter();
            cols.retain(|_| it.next().unwrap_or(false));
        } else {
            cols.retain(keep);
        }
        cols.shrink_to_fit();
        cols.reverse();
        (edges, cols)
    }

    pub(crate) fn run(&self, bufs: &mut Buffers) -> RawBarcode {
        let mut out = RawBarcode {
            bars: vec![Vec::new(); self.cfg.max_dim + 1],
            cocycles: Vec::new(),
        };
        if self.n == 0 {
            return out;
        }
        let pool = if self.cfg.threads > 1 {
            crate::pool(self.cfg.threads)
        } else {
            None
        };
        let parallel = pool.is_some();
        let run = |out: &mut RawBarcode, bufs: &mut Buffers| {
            let (mut simplices, mut cols) = self.dim0(parallel, out, bufs);
            let mut map = std::mem::take(&mut bufs.map);
            for dim in 1..=self.cfg.max_dim {
                map.clear();
                map.reserve(cols.len());
                self.compute_pairs(&cols, dim, pool.as_deref(), out, &mut map, bufs);
                if dim < self.cfg.max_dim {
                    let keep_next = dim + 1 < self.cfg.max_dim;
                    let (next, c) = self.assemble(&simplices, dim, &map, keep_next, parallel);
                    if !bufs.recycle {
                        map = PivotMap::default();
                    }
                    cols = c;
                    simplices = next;
                }
            }
            if bufs.recycle {
                map.clear();
                bufs.map = map;
                cols.clear();
                bufs.cols = cols;
            }
        };
        match &pool {
            Some(p) => p.install(|| run(&mut out, bufs)),
            None => run(&mut out, bufs),
        }
        out
    }
}
