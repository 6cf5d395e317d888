//! Buffers of the sequential engine, kept between computations by [`crate::Computer`].

use crate::engine::column::{VMatrix, Work};
use crate::engine::reducer::PivotMap;
use crate::simplex::Entry;

/// Buffers of the sequential engine, reused between computations of small problems (the
/// streaming use: many tiny problems) so that they run without allocating.
#[derive(Default)]
pub(crate) struct Buffers {
    /// Keep the pivot map and V matrix of one dimension for the next (small problems only: for
    /// large ones they are released as soon as possible to keep the peak memory down).
    pub(crate) recycle: bool,
    pub(super) keys: Vec<u64>,
    pub(super) tree: Vec<u64>,
    pub(super) rest: Vec<u32>,
    pub(super) parent: Vec<u32>,
    pub(super) rank: Vec<u8>,
    pub(super) cols: Vec<Entry>,
    pub(super) map: PivotMap,
    pub(super) vmat: Option<VMatrix>,
    pub(super) work: Option<Work>,
}
