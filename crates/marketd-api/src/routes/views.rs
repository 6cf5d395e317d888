//! Shared shaping of the list routes' answers.

/// Converts stored records into their views and counts them, for the
/// `{count, <items>}` list responses.
pub(crate) fn counted<T, V: From<T>>(records: Vec<T>) -> (usize, Vec<V>) {
    let views: Vec<V> = records.into_iter().map(V::from).collect();
    (views.len(), views)
}
