//! Vietoris–Rips persistent homology with Ripser's barcodes.
//!
//! ```
//! use marketd_tda::{Data, Options, compute};
//! // four points on a square: one H1 bar [1, sqrt 2)
//! let pts = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]];
//! let data = Data::from_points(&pts).unwrap();
//! let out = compute(&data, &Options { max_dim: 1, ..Options::default() }).unwrap();
//! assert_eq!(out.barcode.dim(1).len(), 1);
//! ```
//!
//! The engine follows Ripser (Bauer 2021): persistent cohomology with implicit coboundaries
//! from simplex indices in the combinatorial number system, clearing, apparent and emergent
//! pairs, H0 by union-find, dense (full, row-major) or sparse (neighbour lists under a
//! threshold) distances, coefficients in Z/p. On 2+ threads the edge sort, the H0 apparent-pair
//! filter, the column assembly and the reduction (chunked: columns reduced in parallel against
//! the pivots of earlier chunks, then finished in order) run in parallel.
//!
//! [`compute_controlled`] runs the same computation under a [`Control`]: another thread can
//! cancel it (the job service's `DELETE`) and read its stage and progress. The engine looks at
//! the flag every few dozen columns, so a cancel takes effect well within a second without a
//! measurable cost (see `docs/benchmarks.md`).
//!
//! [`summaries`] turns barcodes into the vectors and numbers that the API and the streaming
//! signals serve (landscapes, silhouettes, Betti curves, images, entropy, amplitudes,
//! distances), following giotto-tda's conventions where the reference libraries disagree.

pub mod barcode;
pub mod cli;
mod control;
mod engine;
mod error;
mod heap;
pub mod input;
mod matrix;
mod pool;
mod simplex;
pub mod summaries;

pub use barcode::{Bar, Barcode, Cocycle};
pub use control::{Control, Stage};
pub use error::Error;
pub use input::{Data, Format, parse};

use matrix::{DenseMatrix, Metric, SparseMatrix};
use rayon::prelude::*;

/// Options of a computation (Ripser's, plus threads and cocycles).
#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    /// Compute barcodes in dimensions 0..=max_dim.
    pub max_dim: usize,
    /// Maximal diameter; default: the enclosing radius for dense input, none for sparse input.
    pub threshold: Option<f32>,
    /// Only report bars with death > ratio * birth.
    pub ratio: f32,
    /// Coefficients in Z/p (p prime).
    pub modulus: u32,
    /// Worker threads (1 = sequential).
    pub threads: usize,
    /// Also compute representative cocycles of the H1 bars.
    pub cocycles: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_dim: 1,
            threshold: None,
            ratio: 1.0,
            modulus: 2,
            threads: 1,
            cocycles: false,
        }
    }
}

/// Result of [`compute`]: the barcode, Ripser's header lines and optional H1 cocycles.
#[derive(Clone, Debug, PartialEq)]
pub struct Computation {
    pub barcode: Barcode,
    /// The informational lines Ripser prints before the intervals.
    pub header: Vec<String>,
    /// Representative cocycles of the H1 bars, in the order of `barcode.dim(1)`.
    pub cocycles: Option<Vec<Cocycle>>,
}

/// Largest coefficient modulus (a prime; the field's inverses are tabled).
pub const MAX_MODULUS: u32 = 65521;

/// Whether `p` is a prime, as a coefficient modulus must be.
pub fn is_prime(p: u32) -> bool {
    p >= 2
        && (2..)
            .take_while(|d| d * d <= p)
            .all(|d| !p.is_multiple_of(d))
}

/// Euclidean distances of a point cloud as a full matrix, computed in f32 like Ripser, in the
/// allocation of `data`.
fn point_distances_dense(
    n: usize,
    dim: usize,
    coords: &[f32],
    parallel: bool,
    mut data: Vec<f32>,
) -> DenseMatrix {
    data.clear();
    data.resize(n * n, 0.0);
    let row = |i: usize, out: &mut [f32]| match dim {
        1 => row_distances::<1>(coords, i, &mut out[..i]),
        2 => row_distances::<2>(coords, i, &mut out[..i]),
        3 => row_distances::<3>(coords, i, &mut out[..i]),
        4 => row_distances::<4>(coords, i, &mut out[..i]),
        5 => row_distances::<5>(coords, i, &mut out[..i]),
        6 => row_distances::<6>(coords, i, &mut out[..i]),
        8 => row_distances::<8>(coords, i, &mut out[..i]),
        _ => {
            let a = &coords[i * dim..(i + 1) * dim];
            for (o, b) in out[..i].iter_mut().zip(coords.chunks_exact(dim.max(1))) {
                *o = euclid(a, b);
            }
        }
    };
    if parallel {
        data.par_chunks_mut(n.max(1))
            .enumerate()
            .for_each(|(i, o)| row(i, o));
    } else {
        data.chunks_mut(n.max(1))
            .enumerate()
            .for_each(|(i, o)| row(i, o));
    }
    for i in 0..n {
        for j in 0..i {
            data[j * n + i] = data[i * n + j];
        }
    }
    DenseMatrix::from_full(n, data)
}

/// Distances from point `i` to the points before it, for points of dimension `D` (the same
/// arithmetic, in the same order, as [`euclid`]).
#[inline]
fn row_distances<const D: usize>(coords: &[f32], i: usize, out: &mut [f32]) {
    let Ok(a) = <&[f32; D]>::try_from(&coords[i * D..(i + 1) * D]) else {
        return;
    };
    for (o, b) in out.iter_mut().zip(coords.chunks_exact(D)) {
        let Ok(b) = <&[f32; D]>::try_from(b) else {
            return;
        };
        let mut s = 0f32;
        for t in 0..D {
            let d = a[t] - b[t];
            s += d * d;
        }
        *o = s.sqrt();
    }
}

#[inline]
fn euclid(a: &[f32], b: &[f32]) -> f32 {
    let mut s = 0f32;
    for (x, y) in a.iter().zip(b) {
        let d = x - y;
        s += d * d;
    }
    s.sqrt()
}

fn point_distances_sparse(
    n: usize,
    dim: usize,
    coords: &[f32],
    threshold: f32,
    parallel: bool,
) -> SparseMatrix {
    let row = |i: usize| -> Vec<(u32, f32)> {
        let a = &coords[i * dim..(i + 1) * dim];
        (0..n)
            .filter(|&j| j != i)
            .filter_map(|j| {
                let d = euclid(a, &coords[j * dim..(j + 1) * dim]);
                (d <= threshold).then_some((j as u32, d))
            })
            .collect()
    };
    let lists: Vec<Vec<(u32, f32)>> = if parallel {
        (0..n).into_par_iter().map(row).collect()
    } else {
        (0..n).map(row).collect()
    };
    SparseMatrix::from_lists(lists)
}

fn run_engine<M: Metric>(
    m: &M,
    opts: &Options,
    threshold: f32,
    ws: &mut Workspace,
    ctl: &Control,
) -> Result<engine::RawBarcode, Error> {
    let cfg = engine::RipsConfig {
        max_dim: opts.max_dim,
        threshold,
        ratio: opts.ratio,
        modulus: opts.modulus,
        threads: opts.threads.max(1),
        cocycles: opts.cocycles,
    };
    let too_large = || {
        Error::TooLarge(format!(
            "simplex indices of dimension {} on {} points overflow 64 bits",
            opts.max_dim + 1,
            m.n()
        ))
    };
    if !ws.tables.prepare(m.n(), opts.max_dim + 2, opts.modulus) {
        return Err(too_large());
    }
    let e = engine::Reducer::new(m, cfg, &ws.tables, ctl).ok_or_else(too_large)?;
    let raw = e.run(&mut ws.bufs);
    if ctl.is_canceled() {
        return Err(Error::Canceled);
    }
    Ok(raw)
}

/// Problems of at most this many points run on one thread whatever `Options::threads` says
/// (the parallel machinery costs more than it saves), and keep their buffers between calls.
pub const SMALL_PROBLEM: usize = 128;

/// Tables and buffers of the engine.
#[derive(Default)]
struct Workspace {
    tables: engine::Tables,
    bufs: engine::Buffers,
    /// Storage of the dense distance matrix.
    dist: Vec<f32>,
}

/// A reusable computer: keeps the engine's tables and buffers between calls, so that many small
/// problems (sliding windows of a stream) run without allocating. [`compute`] uses one per
/// thread for problems of at most [`SMALL_PROBLEM`] points; larger problems release their
/// buffers when done, so a `Computer` does not hold on to the memory of a large computation.
#[derive(Default)]
pub struct Computer {
    ws: Workspace,
}

impl Computer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Computes the Vietoris–Rips barcode of `data` (as [`compute`]).
    pub fn compute(&mut self, data: &Data, opts: &Options) -> Result<Computation, Error> {
        self.compute_controlled(data, opts, &Control::new())
    }

    /// Computes the Vietoris–Rips barcode of `data` under `control` (as
    /// [`compute_controlled`]).
    pub fn compute_controlled(
        &mut self,
        data: &Data,
        opts: &Options,
        control: &Control,
    ) -> Result<Computation, Error> {
        let small = data.len() <= SMALL_PROBLEM;
        self.ws.bufs.recycle = small;
        let res = if small {
            let single = Options {
                threads: 1,
                ..opts.clone()
            };
            compute_in(data, &single, &mut self.ws, control)
        } else {
            compute_in(data, opts, &mut self.ws, control)
        };
        if !small {
            self.ws = Workspace::default();
        }
        control.finish();
        res
    }
}

fn fmt(x: f32) -> String {
    barcode::format_g(x as f64)
}

/// Computes the Vietoris–Rips barcode of `data`.
pub fn compute(data: &Data, opts: &Options) -> Result<Computation, Error> {
    compute_controlled(data, opts, &Control::new())
}

/// Computes the Vietoris–Rips barcode of `data` under `control`: returns
/// [`Error::Canceled`] soon after [`Control::cancel`] is called from another thread, and
/// publishes its stage and progress (readable by [`Control::progress`]; [`Stage::Done`] and 1
/// at the end, whether it succeeded, failed or was canceled). The one gap: sorting the edges
/// for H0 is not interruptible (a fraction of a second even for the largest inputs accepted).
pub fn compute_controlled(
    data: &Data,
    opts: &Options,
    control: &Control,
) -> Result<Computation, Error> {
    if control.is_canceled() {
        control.finish();
        return Err(Error::Canceled);
    }
    if data.len() <= SMALL_PROBLEM {
        thread_local! {
            static COMPUTER: std::cell::RefCell<Computer> = std::cell::RefCell::default();
        }
        COMPUTER.with(|c| match c.try_borrow_mut() {
            Ok(mut c) => c.compute_controlled(data, opts, control),
            Err(_) => Computer::new().compute_controlled(data, opts, control),
        })
    } else {
        Computer::new().compute_controlled(data, opts, control)
    }
}

fn compute_in(
    data: &Data,
    opts: &Options,
    ws: &mut Workspace,
    ctl: &Control,
) -> Result<Computation, Error> {
    if !is_prime(opts.modulus) {
        return Err(Error::invalid(format!(
            "modulus {} is not a prime",
            opts.modulus
        )));
    }
    if opts.modulus > MAX_MODULUS {
        return Err(Error::invalid(format!(
            "modulus {} too large (at most {MAX_MODULUS})",
            opts.modulus
        )));
    }
    if opts.max_dim + 2 > simplex::MAX_VERTICES {
        return Err(Error::invalid(format!(
            "dimension {} too large (at most {})",
            opts.max_dim,
            simplex::MAX_VERTICES - 2
        )));
    }
    if let Some(t) = opts.threshold
        && (t.is_nan() || t < 0.0)
    {
        return Err(Error::invalid(format!(
            "threshold {t} must be non-negative"
        )));
    }
    if opts.ratio.is_nan() || opts.ratio < 0.0 {
        return Err(Error::invalid(format!("ratio {} is invalid", opts.ratio)));
    }
    let parallel = opts.threads > 1;
    let mut header = Vec::new();
    ctl.set(Stage::Distances, 0.0);
    let raw = match data {
        Data::PointCloud { n, dim, coords } => {
            header.push(format!("point cloud with {n} points in dimension {dim}"));
            match opts.threshold {
                Some(t) => {
                    let m = point_distances_sparse(*n, *dim, coords, t, parallel);
                    run_engine(&m, opts, t, ws, ctl)?
                }
                None => {
                    let buf = std::mem::take(&mut ws.dist);
                    let m = point_distances_dense(*n, *dim, coords, parallel, buf);
                    dense_path(m, opts, &mut header, ws, ctl)?
                }
            }
        }
        Data::LowerTriangle { n, values } => {
            if values.len() != n * n.saturating_sub(1) / 2 {
                return Err(Error::invalid("lower triangle has the wrong length".into()));
            }
            let buf = std::mem::take(&mut ws.dist);
            let m = DenseMatrix::from_lower_in(*n, values, buf);
            dense_path(m, opts, &mut header, ws, ctl)?
        }
        Data::Sparse { n, edges } => {
            let t = opts.threshold.unwrap_or(f32::INFINITY);
            let m = SparseMatrix::from_edges(*n, edges, t);
            header.push(format!(
                "sparse distance matrix with {n} points and {} entries",
                m.num_entries()
            ));
            run_engine(&m, opts, t, ws, ctl)?
        }
    };
    let barcode = Barcode::from_raw(&raw.bars);
    if opts.cocycles {
        ctl.set(Stage::Cocycles, 0.99);
    }
    let cocycles = opts.cocycles.then(|| {
        raw.cocycles
            .into_iter()
            .map(|c| Cocycle { simplices: c })
            .collect()
    });
    Ok(Computation {
        barcode,
        header,
        cocycles,
    })
}

/// Computes many small problems (e.g. sliding windows of a stream), in parallel over the
/// problems on `opts.threads` workers; each problem itself runs sequentially.
pub fn compute_batch(data: &[Data], opts: &Options) -> Vec<Result<Computation, Error>> {
    let single = Options {
        threads: 1,
        ..opts.clone()
    };
    if opts.threads <= 1 || data.len() < 2 {
        return data.iter().map(|d| compute(d, &single)).collect();
    }
    match pool::pool(opts.threads) {
        Some(pool) => pool.install(|| data.par_iter().map(|d| compute(d, &single)).collect()),
        None => data.iter().map(|d| compute(d, &single)).collect(),
    }
}

fn dense_path(
    m: DenseMatrix,
    opts: &Options,
    header: &mut Vec<String>,
    ws: &mut Workspace,
    ctl: &Control,
) -> Result<engine::RawBarcode, Error> {
    let n = m.n();
    let (lo, hf) = m.value_range();
    if n >= 2 {
        header.push(format!("value range: [{},{}]", fmt(lo), fmt(hf)));
    }
    match opts.threshold {
        None => {
            let r = if n >= 2 { m.enclosing_radius() } else { 0.0 };
            header.push(format!(
                "distance matrix with {n} points, using threshold at enclosing radius {}",
                fmt(r)
            ));
            let res = run_engine(&m, opts, r, ws, ctl);
            if ws.bufs.recycle {
                ws.dist = m.into_data();
            }
            res
        }
        Some(t) => {
            let s = m.to_sparse(t);
            header.push(format!(
                "sparse distance matrix with {n} points and {}/{} entries",
                s.num_entries(),
                n * n.saturating_sub(1) / 2
            ));
            if ws.bufs.recycle {
                ws.dist = m.into_data();
            } else {
                drop(m);
            }
            run_engine(&s, opts, t, ws, ctl)
        }
    }
}
