//! [`MemoryIndex`]: the vectors of one collection, searched exactly below a
//! size threshold and through an HNSW graph above it.
//!
//! Rows live contiguously in one `Vec<f32>` (ids in a parallel `Vec`,
//! swap-remove on delete); that storage is the source of truth. Once the
//! index holds `exact_threshold` vectors an HNSW graph is built over it, and
//! searches take the graph's `k * oversample` best candidates and re-score
//! them exactly, so scores are always exact cosine similarities. The graph
//! is dropped again when the index shrinks below half the threshold, and
//! disabled (searches stay exact) if the graph library ever fails.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;
use std::mem::size_of;

use super::IndexError;
use super::hnsw::{self, Graph, GraphParams, GraphQuantization};
use super::vector::{self, TopK};

/// Tuning of a [`MemoryIndex`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryIndexConfig {
    /// From this many vectors on, searches go through the HNSW graph.
    pub exact_threshold: usize,
    /// HNSW links per node (`M`), 2..=128.
    pub m: usize,
    /// HNSW candidate list size while inserting.
    pub ef_construction: usize,
    /// HNSW candidate list size while searching (raised to `k * oversample`).
    pub ef_search: usize,
    /// Graph candidates fetched per requested hit, then re-scored exactly.
    pub oversample: usize,
    /// How the graph stores its copy of the vectors.
    pub quantization: GraphQuantization,
    /// Threads used to build the graph in bulk (0: one per core). Default 1:
    /// parallel bulk builds were seen to leave nodes unreachable (self-queries
    /// missing from their own top 5), so parallelism is opt-in.
    pub build_threads: usize,
}

impl Default for MemoryIndexConfig {
    fn default() -> Self {
        Self {
            exact_threshold: 20_000,
            m: 32,
            ef_construction: 64,
            ef_search: 128,
            oversample: 4,
            quantization: GraphQuantization::I8,
            build_threads: 1,
        }
    }
}

impl MemoryIndexConfig {
    /// Checks the parameters are in range.
    pub fn validate(&self) -> Result<(), IndexError> {
        let bad = |what: &str| Err(IndexError::InvalidConfig(what.to_owned()));
        if !(2..=128).contains(&self.m) {
            return bad("m must be in 2..=128");
        }
        if !(1..=100_000).contains(&self.ef_construction) {
            return bad("ef_construction must be in 1..=100000");
        }
        if !(1..=100_000).contains(&self.ef_search) {
            return bad("ef_search must be in 1..=100000");
        }
        if !(1..=1_000).contains(&self.oversample) {
            return bad("oversample must be in 1..=1000");
        }
        Ok(())
    }

    fn graph_params(&self) -> GraphParams {
        GraphParams {
            m: self.m,
            ef_construction: self.ef_construction,
            ef_search: self.ef_search,
            quantization: self.quantization,
        }
    }

    fn threads(&self) -> usize {
        if self.build_threads == 0 {
            hnsw::cores()
        } else {
            self.build_threads
        }
    }
}

/// How a [`MemoryIndex`] currently answers searches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchMode {
    /// A scan over every vector.
    Exact,
    /// HNSW candidates re-scored exactly.
    Hnsw,
}

/// The L2-normalised vectors of one collection, keyed by `i64` id (see the module docs).
pub struct MemoryIndex {
    dims: usize,
    config: MemoryIndexConfig,
    rows: Vec<f32>,
    ids: Vec<i64>,
    slots: HashMap<i64, usize>,
    graph: Option<Graph>,
    /// Set when the graph failed; searches stay exact until `rebuild_graph`.
    graph_failed: bool,
}

impl fmt::Debug for MemoryIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryIndex")
            .field("dimensions", &self.dims)
            .field("len", &self.ids.len())
            .field("mode", &self.mode())
            .field("config", &self.config)
            .finish()
    }
}

impl MemoryIndex {
    /// An empty index for `dimensions`-long vectors.
    pub fn new(dimensions: usize, config: MemoryIndexConfig) -> Result<Self, IndexError> {
        if dimensions == 0 {
            return Err(IndexError::InvalidConfig(
                "dimensions must be at least 1".into(),
            ));
        }
        config.validate()?;
        Ok(Self {
            dims: dimensions,
            config,
            rows: Vec::new(),
            ids: Vec::new(),
            slots: HashMap::new(),
            graph: None,
            graph_failed: false,
        })
    }

    /// An index bulk-loaded from `items` (see [`MemoryIndex::extend`]).
    pub fn from_vectors<I, V>(
        dimensions: usize,
        config: MemoryIndexConfig,
        items: I,
    ) -> Result<Self, IndexError>
    where
        I: IntoIterator<Item = (i64, V)>,
        V: AsRef<[f32]>,
    {
        let mut index = Self::new(dimensions, config)?;
        index.extend(items)?;
        Ok(index)
    }

    /// Vector length.
    pub fn dimensions(&self) -> usize {
        self.dims
    }

    /// Number of vectors.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether the index holds no vectors.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The configuration.
    pub fn config(&self) -> &MemoryIndexConfig {
        &self.config
    }

    /// Whether searches currently scan or go through the graph.
    pub fn mode(&self) -> SearchMode {
        if self.graph.is_some() {
            SearchMode::Hnsw
        } else {
            SearchMode::Exact
        }
    }

    /// Whether `id` is indexed.
    pub fn contains(&self, id: i64) -> bool {
        self.slots.contains_key(&id)
    }

    /// The stored (normalised) vector of `id`.
    pub fn get(&self, id: i64) -> Option<&[f32]> {
        self.slots.get(&id).and_then(|&s| self.row(s))
    }

    /// The indexed ids, in storage order.
    pub fn ids(&self) -> &[i64] {
        &self.ids
    }

    fn row(&self, slot: usize) -> Option<&[f32]> {
        self.rows.get(slot * self.dims..(slot + 1) * self.dims)
    }

    /// Validates, normalises and checks the id of one input vector.
    fn prepare(&self, id: i64, vector: &[f32], out: &mut Vec<f32>) -> Result<(), IndexError> {
        if id == i64::MIN {
            return Err(IndexError::ReservedId(id));
        }
        vector::validate(vector, self.dims)?;
        if vector::normalise_into(vector, out) {
            Ok(())
        } else {
            Err(IndexError::ZeroVector)
        }
    }

    /// Puts a prepared row into the store; whether `id` was already there.
    fn store(&mut self, id: i64, unit: &[f32]) -> bool {
        match self.slots.entry(id) {
            Entry::Occupied(e) => {
                let at = *e.get() * self.dims;
                if let Some(row) = self.rows.get_mut(at..at + self.dims) {
                    row.copy_from_slice(unit);
                }
                true
            }
            Entry::Vacant(e) => {
                e.insert(self.ids.len());
                self.ids.push(id);
                self.rows.extend_from_slice(unit);
                false
            }
        }
    }

    /// Adds or replaces `id`; a wrong length, NaN/infinity, all zeros or `i64::MIN` is an error.
    // The insert that brings the index to `exact_threshold` builds the graph
    // (seconds at 20k x 384); bulk loads should use `extend`.
    pub fn insert(&mut self, id: i64, vector: &[f32]) -> Result<(), IndexError> {
        let mut unit = Vec::with_capacity(self.dims);
        self.prepare(id, vector, &mut unit)?;
        self.store(id, &unit);
        if let Some(graph) = self.graph.as_mut() {
            let result = hnsw::key_of(id)
                .ok_or(IndexError::ReservedId(id))
                .and_then(|key| graph.upsert(key, &unit));
            if let Err(e) = result {
                self.fail_graph(&e);
            }
        } else {
            self.maybe_build_graph();
        }
        Ok(())
    }

    /// Bulk-adds vectors (later duplicates win), all or nothing, building the graph once.
    // Rows are normalised straight into the store, so loading needs no second
    // copy of the data; the graph is built with `build_threads` threads.
    pub fn extend<I, V>(&mut self, items: I) -> Result<(), IndexError>
    where
        I: IntoIterator<Item = (i64, V)>,
        V: AsRef<[f32]>,
    {
        let dims = self.dims;
        let base = self.ids.len();
        let items = items.into_iter();
        let hint = items.size_hint().0;
        self.rows.reserve(hint.saturating_mul(dims));
        let mut staged = Vec::with_capacity(hint);
        for (id, v) in items {
            let checked = if id == i64::MIN {
                Err(IndexError::ReservedId(id))
            } else {
                vector::validate(v.as_ref(), dims).and_then(|()| {
                    if vector::append_normalised(v.as_ref(), &mut self.rows) {
                        Ok(())
                    } else {
                        Err(IndexError::ZeroVector)
                    }
                })
            };
            if let Err(e) = checked {
                self.rows.truncate(base * dims);
                return Err(e);
            }
            staged.push(id);
        }
        if staged.is_empty() {
            return Ok(());
        }
        // Commit: staged row j sits at slot base + j. New ids are compacted
        // down to the next free slot (never after their source), replaced
        // ones are copied over their existing slot.
        self.ids.reserve(staged.len());
        self.slots.reserve(staged.len());
        let mut replaced = Vec::new();
        let mut next = base;
        for (j, &id) in staged.iter().enumerate() {
            let src = (base + j) * dims;
            let dst = match self.slots.entry(id) {
                Entry::Occupied(e) => {
                    replaced.push(id);
                    *e.get()
                }
                Entry::Vacant(e) => {
                    e.insert(next);
                    self.ids.push(id);
                    next += 1;
                    next - 1
                }
            };
            if dst * dims != src {
                self.rows.copy_within(src..src + dims, dst * dims);
            }
        }
        self.rows.truncate(next * dims);
        if self.graph.is_some() {
            if let Err(e) = self.add_to_graph(&staged, &replaced) {
                self.fail_graph(&e);
            }
        } else {
            self.maybe_build_graph();
        }
        Ok(())
    }

    /// Adds the final rows of `ids` to the existing graph, after unlinking
    /// the `replaced` ones (and collapsing duplicates in `ids`).
    fn add_to_graph(&mut self, ids: &[i64], replaced: &[i64]) -> Result<(), IndexError> {
        let Some(graph) = self.graph.as_mut() else {
            return Ok(());
        };
        for &id in replaced {
            if let Some(key) = hnsw::key_of(id) {
                graph.remove(key)?;
            }
        }
        let mut seen = std::collections::HashSet::with_capacity(ids.len());
        let mut keys = Vec::with_capacity(ids.len());
        let mut rows = Vec::with_capacity(ids.len() * self.dims);
        for &id in ids.iter().rev() {
            if !seen.insert(id) {
                continue;
            }
            let (Some(key), Some(&slot)) = (hnsw::key_of(id), self.slots.get(&id)) else {
                continue;
            };
            if let Some(row) = self.rows.get(slot * self.dims..(slot + 1) * self.dims) {
                keys.push(key);
                rows.extend_from_slice(row);
            }
        }
        let threads = if keys.len() >= 1_000 {
            self.config.threads()
        } else {
            1
        };
        graph.add_many(&keys, &rows, self.dims, threads)
    }

    /// Removes `id`; whether it was there.
    pub fn remove(&mut self, id: i64) -> bool {
        let Some(slot) = self.slots.remove(&id) else {
            return false;
        };
        let last = self.ids.len() - 1;
        if slot != last {
            let moved = self.ids[last];
            self.ids[slot] = moved;
            self.rows
                .copy_within(last * self.dims..(last + 1) * self.dims, slot * self.dims);
            self.slots.insert(moved, slot);
        }
        self.ids.pop();
        self.rows.truncate(last * self.dims);
        if self.ids.len() < self.config.exact_threshold / 2 {
            // Small again: a scan is cheap and the graph's memory is not.
            self.graph = None;
            self.graph_failed = false;
        } else if let Some(graph) = self.graph.as_mut()
            && let Some(key) = hnsw::key_of(id)
            && let Err(e) = graph.remove(key)
        {
            self.fail_graph(&e);
        }
        true
    }

    /// Drops every vector (and the graph).
    pub fn clear(&mut self) {
        self.rows.clear();
        self.ids.clear();
        self.slots.clear();
        self.graph = None;
        self.graph_failed = false;
    }

    /// Changes the search candidate list size of the graph.
    pub fn set_ef_search(&mut self, ef_search: usize) -> Result<(), IndexError> {
        let config = MemoryIndexConfig {
            ef_search,
            ..self.config
        };
        config.validate()?;
        self.config = config;
        if let Some(g) = &self.graph {
            g.set_ef_search(ef_search);
        }
        Ok(())
    }

    /// Changes how many graph candidates are re-scored per requested hit.
    pub fn set_oversample(&mut self, oversample: usize) -> Result<(), IndexError> {
        let config = MemoryIndexConfig {
            oversample,
            ..self.config
        };
        config.validate()?;
        self.config = config;
        Ok(())
    }

    /// Rebuilds the graph from the stored rows (e.g. after many deletions or a graph failure).
    pub fn rebuild_graph(&mut self) -> Result<(), IndexError> {
        self.graph = None;
        self.graph_failed = false;
        if self.wants_graph() {
            self.graph = Some(self.build_graph()?);
        }
        Ok(())
    }

    fn wants_graph(&self) -> bool {
        !self.ids.is_empty() && self.ids.len() >= self.config.exact_threshold
    }

    fn maybe_build_graph(&mut self) {
        if self.graph.is_none() && !self.graph_failed && self.wants_graph() {
            match self.build_graph() {
                Ok(g) => self.graph = Some(g),
                Err(e) => self.fail_graph(&e),
            }
        }
    }

    fn build_graph(&self) -> Result<Graph, IndexError> {
        let n = self.ids.len();
        let mut graph = Graph::new(self.dims, self.config.graph_params(), n + n / 4)?;
        let keys: Vec<u64> = self.ids.iter().filter_map(|&id| hnsw::key_of(id)).collect();
        graph.add_many(&keys, &self.rows, self.dims, self.config.threads())?;
        tracing::debug!(vectors = n, dims = self.dims, "built HNSW graph");
        Ok(graph)
    }

    /// Drops a graph that failed; searches stay exact (and correct).
    fn fail_graph(&mut self, e: &IndexError) {
        tracing::warn!(error = %e, "HNSW graph disabled; searching exactly until rebuilt");
        self.graph = None;
        self.graph_failed = true;
    }

    /// The `k` most cosine-similar `(id, similarity)`, best first; an all-zero query matches nothing.
    pub fn search(&self, query: &[f32], k: usize) -> Result<Vec<(i64, f32)>, IndexError> {
        vector::validate(query, self.dims)?;
        let mut unit = Vec::with_capacity(self.dims);
        if !vector::normalise_into(query, &mut unit) {
            return Ok(Vec::new());
        }
        Ok(self.search_unit(&unit, k))
    }

    /// [`MemoryIndex::search`] for an already validated unit-length query.
    pub(crate) fn search_unit(&self, q: &[f32], k: usize) -> Vec<(i64, f32)> {
        if k == 0 || self.ids.is_empty() {
            return Vec::new();
        }
        let wanted = k.saturating_mul(self.config.oversample);
        if let Some(graph) = &self.graph
            && wanted < self.ids.len()
        {
            match graph.candidates(q, wanted) {
                Ok(keys) => return self.rescore(q, &keys, k),
                Err(e) => {
                    // Typically: more concurrent searches than scratch
                    // contexts. The scan is slower but exact.
                    tracing::debug!(error = %e, "HNSW search failed; scanning");
                }
            }
        }
        self.exact(q, k)
    }

    /// Exact top-`k` of unit vector `q` by scanning every row.
    fn exact(&self, q: &[f32], k: usize) -> Vec<(i64, f32)> {
        vector::exact_top_k(q, &self.rows, &self.ids, self.dims, k)
    }

    fn rescore(&self, q: &[f32], keys: &[u64], k: usize) -> Vec<(i64, f32)> {
        let mut top = TopK::new(k);
        for &key in keys {
            let id = hnsw::id_of(key);
            if let Some(row) = self.get(id) {
                top.push(id, vector::dot(q, row));
            }
        }
        top.into_sorted()
    }

    /// Estimated heap bytes: the rows, ids, id map and graph.
    pub fn memory_bytes(&self) -> usize {
        // hashbrown: one entry plus one control byte per bucket; capacity()
        // is 7/8 of the buckets.
        let buckets = self.slots.capacity() * 8 / 7;
        self.rows.capacity() * size_of::<f32>()
            + self.ids.capacity() * size_of::<i64>()
            + buckets * (size_of::<(i64, usize)>() + 1)
            + self.graph_memory_bytes()
    }

    /// Estimated heap bytes of the HNSW graph alone (0 in exact mode).
    pub fn graph_memory_bytes(&self) -> usize {
        self.graph.as_ref().map_or(0, Graph::memory_bytes)
    }
}
