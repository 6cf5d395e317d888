//! Rayon thread pools by size, shared by the parallel engine and [`crate::compute_batch`].

/// A thread pool of the given size, built once per size and kept for the process.
pub(crate) fn pool(threads: usize) -> Option<std::sync::Arc<rayon::ThreadPool>> {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex, OnceLock};
    static POOLS: OnceLock<Mutex<HashMap<usize, Arc<rayon::ThreadPool>>>> = OnceLock::new();
    let pools = POOLS.get_or_init(Default::default);
    let mut guard = pools.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = guard.get(&threads) {
        return Some(p.clone());
    }
    let p = Arc::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .ok()?,
    );
    guard.insert(threads, p.clone());
    Some(p)
}
