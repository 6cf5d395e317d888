//! The reducer of one computation: its configuration, the tables it borrows (binomial
//! coefficients, inverses mod p), the pivot map type, and the decoding of simplex indices into
//! vertices that everything else in the engine builds on.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::control::Control;
use crate::matrix::Metric;
use crate::simplex::Binomial;

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

pub(super) type PivotMap = HashMap<u64, (u32, u32), BuildHasherDefault<IdxHasher>>;

/// Options of one computation (the resolved [`crate::Options`]: a threshold always set, at
/// least one thread).
#[derive(Clone, Debug)]
pub(crate) struct RipsConfig {
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

/// Persistent cohomology of the Vietoris–Rips filtration of one distance matrix: H0 by
/// union-find, then the columns of each dimension reduced in turn (see the module docs of
/// [`crate::engine`]). Its methods are spread over the engine's modules by stage.
pub(crate) struct Reducer<'a, M: Metric> {
    pub(super) m: &'a M,
    pub(super) n: usize,
    pub(super) cfg: RipsConfig,
    pub(super) binom: &'a Binomial,
    pub(super) inv: &'a [u32],
    /// Cancel flag (read every few dozen columns) and progress of the computation.
    pub(super) ctl: &'a Control,
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

impl<'a, M: Metric> Reducer<'a, M> {
    /// `tables` must have been prepared for `m.n()`, `cfg.max_dim + 2` and `cfg.modulus`.
    pub(crate) fn new(
        m: &'a M,
        cfg: RipsConfig,
        tables: &'a Tables,
        ctl: &'a Control,
    ) -> Option<Self> {
        let n = m.n();
        let binom = match &tables.binom {
            Some((key, b)) if *key == (n.max(1), cfg.max_dim + 2) => b,
            _ => return None,
        };
        let inv = &tables.inv[..];
        if tables.p != cfg.modulus {
            return None;
        }
        Some(Reducer {
            m,
            n,
            cfg,
            binom,
            inv,
            ctl,
        })
    }

    #[inline]
    pub(super) fn p(&self) -> u32 {
        self.cfg.modulus
    }

    /// Vertices (decreasing) of the simplex `idx` of dimension `dim`.
    #[inline]
    pub(super) fn vertices(&self, mut idx: u64, dim: usize, out: &mut [u32]) {
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

    #[inline]
    pub(super) fn index_of(&self, vs: &[u32]) -> u64 {
        let k = vs.len();
        vs.iter()
            .enumerate()
            .map(|(t, &v)| self.binom.get(v, k - t))
            .sum()
    }
}
