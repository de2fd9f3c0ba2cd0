//! [`Collections`]: one [`MemoryIndex`] per collection name.

use std::collections::HashMap;
use std::sync::Arc;

use super::IndexError;
use super::memory::{MemoryIndex, MemoryIndexConfig};
use super::vector::{self, TopK};

/// One [`MemoryIndex`] per collection name; an id lives in one collection at a time.
#[derive(Debug, Default)]
pub struct Collections {
    config: MemoryIndexConfig,
    indexes: HashMap<Arc<str>, MemoryIndex>,
    owner: HashMap<i64, Arc<str>>,
}

impl Collections {
    /// No collections yet; new ones use `config`.
    pub fn new(config: MemoryIndexConfig) -> Result<Self, IndexError> {
        config.validate()?;
        Ok(Self {
            config,
            ..Self::default()
        })
    }

    /// The configuration new collections get.
    pub fn config(&self) -> &MemoryIndexConfig {
        &self.config
    }

    /// The index of `collection`, if it exists.
    pub fn get(&self, collection: &str) -> Option<&MemoryIndex> {
        self.indexes.get(collection)
    }

    /// Collection names, in no particular order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.indexes.keys().map(|k| &**k)
    }

    /// The collection holding `id`.
    pub fn collection_of(&self, id: i64) -> Option<&str> {
        self.owner.get(&id).map(|c| &**c)
    }

    /// Creates `collection` for `dimensions`-long vectors (an error if it exists with another).
    pub fn create(&mut self, collection: &str, dimensions: usize) -> Result<(), IndexError> {
        self.entry(collection, dimensions).map(|_| ())
    }

    /// The collection's name and index, created for `dimensions` if absent.
    fn entry(
        &mut self,
        collection: &str,
        dimensions: usize,
    ) -> Result<(Arc<str>, &mut MemoryIndex), IndexError> {
        let name = match self.indexes.get_key_value(collection) {
            Some((name, index)) => {
                if index.dimensions() != dimensions {
                    return Err(IndexError::CollectionDimensionMismatch {
                        collection: collection.to_owned(),
                        expected: index.dimensions(),
                        actual: dimensions,
                    });
                }
                Arc::clone(name)
            }
            None => {
                let index = MemoryIndex::new(dimensions, self.config)?;
                let name: Arc<str> = Arc::from(collection);
                self.indexes.insert(Arc::clone(&name), index);
                name
            }
        };
        let index = self
            .indexes
            .get_mut(collection)
            .ok_or_else(|| IndexError::InvalidConfig("collection vanished".into()))?;
        Ok((name, index))
    }

    /// Drops `collection` if it was created by a failed first insert.
    fn drop_if_empty(&mut self, collection: &str) {
        if self
            .indexes
            .get(collection)
            .is_some_and(MemoryIndex::is_empty)
        {
            self.indexes.remove(collection);
        }
    }

    /// Moves ownership of `ids` to `name`, removing them from any other
    /// collection they were in.
    fn claim(&mut self, name: &Arc<str>, ids: impl IntoIterator<Item = i64>) {
        for id in ids {
            if let Some(old) = self.owner.insert(id, Arc::clone(name))
                && old != *name
                && let Some(index) = self.indexes.get_mut(&*old)
            {
                index.remove(id);
            }
        }
    }

    /// Adds or replaces `id` in `collection` (created if new), moving it out of any other.
    pub fn insert(&mut self, collection: &str, id: i64, vector: &[f32]) -> Result<(), IndexError> {
        let (name, index) = self.entry(collection, vector.len())?;
        if let Err(e) = index.insert(id, vector) {
            self.drop_if_empty(collection);
            return Err(e);
        }
        self.claim(&name, [id]);
        Ok(())
    }

    /// Bulk-loads `items` into `collection`, created for `dimensions` if new.
    pub fn extend<I, V>(
        &mut self,
        collection: &str,
        dimensions: usize,
        items: I,
    ) -> Result<(), IndexError>
    where
        I: IntoIterator<Item = (i64, V)>,
        V: AsRef<[f32]>,
    {
        let (name, index) = self.entry(collection, dimensions)?;
        let before = index.len();
        let mut ids = Vec::new();
        let result = index.extend(items.into_iter().inspect(|(id, _)| ids.push(*id)));
        if let Err(e) = result {
            if before == 0 {
                self.drop_if_empty(collection);
            }
            return Err(e);
        }
        self.claim(&name, ids);
        Ok(())
    }

    /// Removes `id` from whichever collection holds it; whether it was there.
    pub fn remove(&mut self, id: i64) -> bool {
        match self.owner.remove(&id) {
            Some(c) => self
                .indexes
                .get_mut(&*c)
                .is_some_and(|index| index.remove(id)),
            None => false,
        }
    }

    /// Puts a prebuilt index (e.g. loaded outside the lock) under `collection`, returning the old one.
    pub fn install(&mut self, collection: &str, index: MemoryIndex) -> Option<MemoryIndex> {
        let old = self.remove_collection(collection);
        let name: Arc<str> = Arc::from(collection);
        let ids = index.ids().to_vec();
        self.indexes.insert(Arc::clone(&name), index);
        self.claim(&name, ids);
        old
    }

    /// Drops `collection` and its vectors, returning its index.
    pub fn remove_collection(&mut self, collection: &str) -> Option<MemoryIndex> {
        let index = self.indexes.remove(collection)?;
        for id in index.ids() {
            self.owner.remove(id);
        }
        Some(index)
    }

    /// Rebuilds every collection's graph (see [`MemoryIndex::rebuild_graph`]).
    pub fn rebuild_graphs(&mut self) -> Result<(), IndexError> {
        self.indexes
            .values_mut()
            .try_for_each(MemoryIndex::rebuild_graph)
    }

    /// Total number of vectors.
    pub fn len(&self) -> usize {
        self.owner.len()
    }

    /// Whether there are no vectors.
    pub fn is_empty(&self) -> bool {
        self.owner.is_empty()
    }

    /// Estimated heap bytes of every index plus the id-to-collection map.
    pub fn memory_bytes(&self) -> usize {
        let owner_buckets = self.owner.capacity() * 8 / 7;
        self.indexes
            .values()
            .map(MemoryIndex::memory_bytes)
            .sum::<usize>()
            + owner_buckets * (std::mem::size_of::<(i64, Arc<str>)>() + 1)
    }

    /// Top-`k` `(id, cosine)` in `collection`, or across all collections of the query's dimension.
    // An unknown collection matches nothing; one of another dimension is an
    // error. Results of one collection never include another's ids.
    pub fn search(
        &self,
        query: &[f32],
        k: usize,
        collection: Option<&str>,
    ) -> Result<Vec<(i64, f32)>, IndexError> {
        let dims = query.len();
        vector::validate(query, dims)?;
        let mut unit = Vec::with_capacity(dims);
        if !vector::normalise_into(query, &mut unit) || k == 0 {
            return Ok(Vec::new());
        }
        match collection {
            Some(name) => {
                let Some(index) = self.indexes.get(name) else {
                    return Ok(Vec::new());
                };
                if index.dimensions() != dims {
                    return Err(IndexError::CollectionDimensionMismatch {
                        collection: name.to_owned(),
                        expected: index.dimensions(),
                        actual: dims,
                    });
                }
                Ok(index.search_unit(&unit, k))
            }
            None => Ok(self.search_unit_where(&unit, k, &|_| true)),
        }
    }

    /// The `k` nearest of `query` among the collections whose name passes
    /// `keep` (and whose dimension matches), best first.
    pub fn search_where(
        &self,
        query: &[f32],
        k: usize,
        keep: &dyn Fn(&str) -> bool,
    ) -> Result<Vec<(i64, f32)>, IndexError> {
        let dims = query.len();
        vector::validate(query, dims)?;
        let mut unit = Vec::with_capacity(dims);
        if !vector::normalise_into(query, &mut unit) || k == 0 {
            return Ok(Vec::new());
        }
        Ok(self.search_unit_where(&unit, k, keep))
    }

    fn search_unit_where(
        &self,
        unit: &[f32],
        k: usize,
        keep: &dyn Fn(&str) -> bool,
    ) -> Vec<(i64, f32)> {
        let mut top = TopK::new(k);
        for (_, index) in self
            .indexes
            .iter()
            .filter(|(name, i)| i.dimensions() == unit.len() && keep(name))
        {
            for (id, score) in index.search_unit(unit, k) {
                top.push(id, score);
            }
        }
        top.into_sorted()
    }
}
