//! The HNSW graph: a thin, panic-free wrapper around `usearch`.
//!
//! The graph only proposes candidates; [`super::MemoryIndex`] re-scores them
//! exactly against its own `f32` rows, so the graph may store quantised
//! (`i8`) copies of the vectors.

use std::fmt;
use std::thread;

use usearch::{Index, IndexOptions, MetricKind, ScalarKind};

use super::IndexError;

/// How the HNSW graph stores its copy of each vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GraphQuantization {
    /// 1 byte per component (4x smaller); candidates are re-scored exactly.
    #[default]
    I8,
    /// 4 bytes per component, as given.
    F32,
}

/// `i64` ids map onto `u64` keys by a shift chosen so that `i64::MIN` lands
/// on `u64::MAX`, the key usearch reserves for freed slots.
const KEY_SHIFT: u64 = i64::MAX as u64;

/// The graph key of an id (`None` for the reserved `i64::MIN`).
pub fn key_of(id: i64) -> Option<u64> {
    (id != i64::MIN).then(|| (id as u64).wrapping_add(KEY_SHIFT))
}

/// The id of a graph key.
pub fn id_of(key: u64) -> i64 {
    key.wrapping_sub(KEY_SHIFT) as i64
}

/// Parameters the graph is built with.
#[derive(Debug, Clone, Copy)]
pub struct GraphParams {
    /// Links per node (HNSW `M`).
    pub m: usize,
    /// Candidate list size while inserting.
    pub ef_construction: usize,
    /// Candidate list size while searching.
    pub ef_search: usize,
    /// Stored vector format.
    pub quantization: GraphQuantization,
}

/// An HNSW graph over unit vectors.
pub struct Graph {
    index: Index,
    /// Concurrent operations the graph has scratch space for.
    contexts: usize,
}

impl fmt::Debug for Graph {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Graph")
            .field("size", &self.index.size())
            .field("capacity", &self.index.capacity())
            .field("contexts", &self.contexts)
            .finish()
    }
}

fn graph_err(e: impl fmt::Display) -> IndexError {
    IndexError::Graph(e.to_string())
}

/// Cores available to this process (at least 1).
pub fn cores() -> usize {
    thread::available_parallelism().map_or(1, |n| n.get())
}

impl Graph {
    /// An empty graph for `dims`-dimensional vectors with room for `capacity`.
    pub fn new(dims: usize, params: GraphParams, capacity: usize) -> Result<Self, IndexError> {
        let (metric, quantization) = match params.quantization {
            // Quantised unit vectors are no longer exactly unit: cosine
            // renormalises them. Exact f32 unit vectors can use the cheaper
            // inner product.
            GraphQuantization::I8 => (MetricKind::Cos, ScalarKind::I8),
            GraphQuantization::F32 => (MetricKind::IP, ScalarKind::F32),
        };
        let options = IndexOptions {
            dimensions: dims,
            metric,
            quantization,
            connectivity: params.m,
            expansion_add: params.ef_construction,
            expansion_search: params.ef_search,
            multi: false,
        };
        let index = Index::new(&options).map_err(graph_err)?;
        // Searches run under a shared lock, so several may be in flight; each
        // needs its own scratch context. One that finds none falls back to
        // exact search (see `MemoryIndex::search`).
        let contexts = (cores() * 4).max(16);
        index
            .reserve_capacity_and_threads(capacity.max(64), contexts)
            .map_err(graph_err)?;
        Ok(Self { index, contexts })
    }

    /// Makes room for `additional` more vectors.
    fn reserve(&self, additional: usize) -> Result<(), IndexError> {
        let needed = self.index.size().saturating_add(additional);
        let capacity = self.index.capacity();
        if needed <= capacity {
            return Ok(());
        }
        let grown = needed.max(capacity.saturating_mul(2)).max(64);
        self.index
            .reserve_capacity_and_threads(grown, self.contexts)
            .map_err(graph_err)
    }

    /// Adds or replaces `key`.
    pub fn upsert(&mut self, key: u64, v: &[f32]) -> Result<(), IndexError> {
        if self.index.contains(key) {
            self.index.remove(key).map_err(graph_err)?;
        }
        self.reserve(1)?;
        self.index.add(key, v).map_err(graph_err)
    }

    /// Removes `key` (its slot is reused by a later insertion).
    pub fn remove(&mut self, key: u64) -> Result<(), IndexError> {
        self.index.remove(key).map(|_| ()).map_err(graph_err)
    }

    /// Adds many new keys (absent from the graph) using up to `threads`
    /// threads; `rows` holds `keys.len()` vectors of `dims` floats.
    pub fn add_many(
        &mut self,
        keys: &[u64],
        rows: &[f32],
        dims: usize,
        threads: usize,
    ) -> Result<(), IndexError> {
        if keys.is_empty() || dims == 0 {
            return Ok(());
        }
        self.reserve(keys.len())?;
        let threads = threads.clamp(1, self.contexts);
        let chunk = keys.len().div_ceil(threads).max(1);
        let index = &self.index;
        let results: Vec<Result<(), IndexError>> = thread::scope(|s| {
            let handles: Vec<_> = keys
                .chunks(chunk)
                .zip(rows.chunks(chunk * dims))
                .map(|(ks, vs)| {
                    s.spawn(move || {
                        for (&k, v) in ks.iter().zip(vs.chunks_exact(dims)) {
                            index.add(k, v).map_err(graph_err)?;
                        }
                        Ok(())
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(IndexError::Graph("insert thread panicked".into())))
                })
                .collect()
        });
        results.into_iter().collect()
    }

    /// Up to `count` candidate keys nearest to unit vector `q`.
    pub fn candidates(&self, q: &[f32], count: usize) -> Result<Vec<u64>, IndexError> {
        self.index
            .search(q, count)
            .map(|m| m.keys)
            .map_err(graph_err)
    }

    /// Changes the search candidate list size.
    pub fn set_ef_search(&self, ef: usize) {
        self.index.change_expansion_search(ef);
    }

    /// Heap bytes held by the graph (links, its vector copies, arenas).
    pub fn memory_bytes(&self) -> usize {
        self.index.memory_usage()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_reserve_min() {
        for id in [0, 1, -1, 42, i64::MAX, i64::MIN + 1, -7_000_000_000] {
            let key = key_of(id).unwrap();
            assert_ne!(key, u64::MAX);
            assert_eq!(id_of(key), id);
        }
        assert_eq!(key_of(i64::MIN), None);
    }
}
