//! Exact in-memory vector search per collection (contiguous storage, tight
//! dot-product loop). Used by the service until the HNSW index lands.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};

/// Vectors of one collection, L2-normalised, stored contiguously.
#[derive(Debug, Default)]
struct Flat {
    dims: usize,
    ids: Vec<i64>,
    data: Vec<f32>,
    pos: HashMap<i64, usize>,
}

/// A scored id ordered by score (min-heap via `Reverse` semantics below).
#[derive(PartialEq)]
struct Scored(f32, i64);

impl Eq for Scored {}

impl PartialOrd for Scored {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Scored {
    fn cmp(&self, other: &Self) -> Ordering {
        // Reversed: the heap's top is the worst kept hit.
        other.0.total_cmp(&self.0).then(self.1.cmp(&other.1))
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ca, ra) = a.as_chunks::<8>();
    let (cb, rb) = b.as_chunks::<8>();
    for (x, y) in ca.iter().zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let tail: f32 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
    acc.iter().sum::<f32>() + tail
}

fn normalised(v: &[f32]) -> Option<Vec<f32>> {
    if v.iter().any(|x| !x.is_finite()) {
        return None;
    }
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    Some(if norm > 0.0 {
        v.iter().map(|x| x / norm).collect()
    } else {
        v.to_vec()
    })
}

impl Flat {
    fn insert(&mut self, id: i64, v: &[f32]) {
        if let Some(&p) = self.pos.get(&id) {
            self.data[p * self.dims..(p + 1) * self.dims].copy_from_slice(v);
            return;
        }
        self.pos.insert(id, self.ids.len());
        self.ids.push(id);
        self.data.extend_from_slice(v);
    }

    fn remove(&mut self, id: i64) -> bool {
        let Some(p) = self.pos.remove(&id) else {
            return false;
        };
        let last = self.ids.len() - 1;
        if p != last {
            let moved = self.ids[last];
            self.ids[p] = moved;
            self.data
                .copy_within(last * self.dims..(last + 1) * self.dims, p * self.dims);
            self.pos.insert(moved, p);
        }
        self.ids.pop();
        self.data.truncate(last * self.dims);
        true
    }

    fn search_into(&self, q: &[f32], k: usize, heap: &mut BinaryHeap<Scored>) {
        for (i, row) in self.data.chunks_exact(self.dims).enumerate() {
            let s = dot(q, row);
            if heap.len() < k {
                heap.push(Scored(s, self.ids[i]));
            } else if heap.peek().is_some_and(|w| s > w.0) {
                heap.pop();
                heap.push(Scored(s, self.ids[i]));
            }
        }
    }
}

/// Error of the in-memory index.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlatError {
    /// A vector of the wrong length for its collection.
    #[error("vector has {got} dimensions; collection `{collection}` has {expected}")]
    Dimensions {
        /// Collection.
        collection: String,
        /// Its dimension.
        expected: usize,
        /// Given.
        got: usize,
    },
    /// NaN or infinite values.
    #[error("vector has non-finite values")]
    NotFinite,
}

/// One exact index per collection.
#[derive(Debug, Default)]
pub struct Collections {
    by_name: HashMap<String, Flat>,
    owner: HashMap<i64, String>,
}

impl Collections {
    /// Adds or replaces vector `id` in `collection`.
    pub fn insert(&mut self, collection: &str, id: i64, vector: &[f32]) -> Result<(), FlatError> {
        let v = normalised(vector).ok_or(FlatError::NotFinite)?;
        if let Some(old) = self.owner.get(&id)
            && old != collection
        {
            let old = old.clone();
            if let Some(f) = self.by_name.get_mut(&old) {
                f.remove(id);
            }
        }
        let flat = self
            .by_name
            .entry(collection.to_owned())
            .or_insert_with(|| Flat {
                dims: v.len(),
                ..Flat::default()
            });
        if flat.dims != v.len() {
            return Err(FlatError::Dimensions {
                collection: collection.to_owned(),
                expected: flat.dims,
                got: v.len(),
            });
        }
        flat.insert(id, &v);
        self.owner.insert(id, collection.to_owned());
        Ok(())
    }

    /// Removes vector `id`; whether it was there.
    pub fn remove(&mut self, id: i64) -> bool {
        match self.owner.remove(&id) {
            Some(c) => self.by_name.get_mut(&c).is_some_and(|f| f.remove(id)),
            None => false,
        }
    }

    /// The `k` nearest ids by cosine similarity, best first, in `collection`
    /// or in every collection of the query's dimension.
    pub fn search(
        &self,
        query: &[f32],
        k: usize,
        collection: Option<&str>,
    ) -> Result<Vec<(i64, f32)>, FlatError> {
        let q = normalised(query).ok_or(FlatError::NotFinite)?;
        let mut heap = BinaryHeap::with_capacity(k + 1);
        if k == 0 {
            return Ok(Vec::new());
        }
        match collection {
            Some(name) => {
                if let Some(f) = self.by_name.get(name) {
                    if f.dims != q.len() {
                        return Err(FlatError::Dimensions {
                            collection: name.to_owned(),
                            expected: f.dims,
                            got: q.len(),
                        });
                    }
                    f.search_into(&q, k, &mut heap);
                }
            }
            None => {
                for f in self.by_name.values().filter(|f| f.dims == q.len()) {
                    f.search_into(&q, k, &mut heap);
                }
            }
        }
        let mut out: Vec<(i64, f32)> = heap.into_iter().map(|Scored(s, id)| (id, s)).collect();
        out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        Ok(out)
    }

    /// Number of vectors held.
    pub fn len(&self) -> usize {
        self.owner.len()
    }

    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.owner.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_top_k_with_filters() {
        let mut c = Collections::default();
        c.insert("a", 1, &[1.0, 0.0]).unwrap();
        c.insert("a", 2, &[0.7, 0.7]).unwrap();
        c.insert("b", 3, &[0.9, 0.1]).unwrap();
        let all = c.search(&[1.0, 0.0], 2, None).unwrap();
        assert_eq!(all.iter().map(|h| h.0).collect::<Vec<_>>(), vec![1, 3]);
        let a = c.search(&[1.0, 0.0], 5, Some("a")).unwrap();
        assert_eq!(a.iter().map(|h| h.0).collect::<Vec<_>>(), vec![1, 2]);
        assert!(c.remove(1));
        assert!(!c.remove(1));
        assert_eq!(c.search(&[1.0, 0.0], 1, Some("a")).unwrap()[0].0, 2);
        assert!(c.insert("a", 9, &[1.0, 2.0, 3.0]).is_err());
        assert!(c.insert("a", 9, &[f32::NAN, 1.0]).is_err());
        c.insert("b", 2, &[0.0, 1.0]).unwrap();
        assert!(
            c.search(&[1.0, 0.0], 5, Some("a")).unwrap().is_empty(),
            "moved to b"
        );
    }
}
