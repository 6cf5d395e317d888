//! Simplices as the engine, the distance matrices and the heap share them: the packed
//! coefficient-carrying [`Entry`], simplex indices in the combinatorial number system
//! ([`Binomial`]) and the u64 keys of edges. A leaf module (it imports nothing from the crate)
//! so that every other module can build on it without an import circle.

/// Maximum number of vertices of a simplex handled (cofacets of the top dimension included).
pub(crate) const MAX_VERTICES: usize = 16;

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
    // read directly (rows of the table as slices) by the engine's vertex decoding and cofacet
    // enumeration, its hottest loops
    pub(crate) stride: usize,
    pub(crate) table: Vec<u64>,
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
pub(crate) fn edge_of_key(key: u64) -> (f32, u32, u32) {
    let v = u32::MAX - key as u32;
    (f32::from_bits((key >> 32) as u32), v >> 16, v & 0xffff)
}

#[inline]
pub(crate) fn edge_index(i: u32, j: u32) -> u64 {
    (i as u64) * (i as u64).saturating_sub(1) / 2 + j as u64
}

/// Vertices (i > j) of the edge with index C(i,2) + j.
#[inline]
pub(crate) fn edge_vertices(idx: u64) -> [u32; 2] {
    let mut i = ((1.0 + (1.0 + 8.0 * idx as f64).sqrt()) / 2.0) as u64;
    while i * (i - 1) / 2 > idx {
        i -= 1;
    }
    while (i + 1) * i / 2 <= idx {
        i += 1;
    }
    [i as u32, (idx - i * (i - 1) / 2) as u32]
}
