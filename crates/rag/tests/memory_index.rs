//! In-memory vector index: exact search against brute force, HNSW recall,
//! removal and replacement in both modes, input errors, collection filters,
//! crossing the exact/HNSW threshold, and sharing across threads.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::sync::{Arc, RwLock};

use confab_rag::index::{
    Collections, GraphQuantization, IndexError, MemoryIndex, MemoryIndexConfig, SearchMode,
};

/// SplitMix64 with Box-Muller normals: deterministic, dependency-free.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn uniform(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 + 0.5) / (1u64 << 24) as f32
    }

    fn normal(&mut self) -> f32 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
    }

    fn vector(&mut self, dims: usize) -> Vec<f32> {
        (0..dims).map(|_| self.normal()).collect()
    }
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let (mut ab, mut aa, mut bb) = (0f64, 0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (f64::from(x), f64::from(y));
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    (ab / (aa.sqrt() * bb.sqrt())) as f32
}

/// Brute-force top-k over `(id, vector)` pairs, best first.
fn brute_force(data: &[(i64, Vec<f32>)], q: &[f32], k: usize) -> Vec<(i64, f32)> {
    let mut all: Vec<(i64, f32)> = data.iter().map(|(id, v)| (*id, cosine(q, v))).collect();
    all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    all.truncate(k);
    all
}

fn dataset(rng: &mut Rng, n: usize, dims: usize) -> Vec<(i64, Vec<f32>)> {
    (0..n)
        .map(|i| (i as i64 * 3 + 1, rng.vector(dims)))
        .collect()
}

fn config(exact_threshold: usize) -> MemoryIndexConfig {
    MemoryIndexConfig {
        exact_threshold,
        ..MemoryIndexConfig::default()
    }
}

fn recall(got: &[(i64, f32)], want: &[(i64, f32)]) -> f64 {
    let want: HashSet<i64> = want.iter().map(|h| h.0).collect();
    got.iter().filter(|h| want.contains(&h.0)).count() as f64 / want.len().max(1) as f64
}

fn assert_sorted_cosines(hits: &[(i64, f32)]) {
    for w in hits.windows(2) {
        assert!(w[0].1 >= w[1].1, "not best first: {hits:?}");
    }
    for h in hits {
        assert!((-1.0..=1.0).contains(&h.1), "score out of range: {h:?}");
    }
}

#[test]
fn exact_search_returns_true_top_k() {
    let mut rng = Rng(1);
    let data = dataset(&mut rng, 3_000, 48);
    let index = MemoryIndex::from_vectors(48, config(usize::MAX), data.iter().cloned()).unwrap();
    assert_eq!(index.mode(), SearchMode::Exact);
    assert_eq!(index.len(), 3_000);
    for _ in 0..30 {
        let q = rng.vector(48);
        for k in [1, 10, 50] {
            let got = index.search(&q, k).unwrap();
            let want = brute_force(&data, &q, k);
            assert_eq!(got.len(), k);
            assert_sorted_cosines(&got);
            let got_ids: Vec<i64> = got.iter().map(|h| h.0).collect();
            let want_ids: Vec<i64> = want.iter().map(|h| h.0).collect();
            assert_eq!(got_ids, want_ids, "k={k}");
            for (g, w) in got.iter().zip(&want) {
                assert!((g.1 - w.1).abs() < 1e-5, "score {g:?} vs {w:?}");
            }
        }
    }
}

#[test]
fn edge_cases_of_k_and_empty() {
    let empty = MemoryIndex::new(4, MemoryIndexConfig::default()).unwrap();
    assert!(empty.is_empty());
    assert!(empty.search(&[1.0, 0.0, 0.0, 0.0], 5).unwrap().is_empty());
    let mut index = MemoryIndex::new(2, MemoryIndexConfig::default()).unwrap();
    index.insert(7, &[1.0, 0.0]).unwrap();
    index.insert(8, &[0.0, 2.0]).unwrap();
    assert!(index.search(&[1.0, 0.0], 0).unwrap().is_empty());
    let all = index.search(&[1.0, 1.0e-3], 10).unwrap();
    assert_eq!(all.iter().map(|h| h.0).collect::<Vec<_>>(), vec![7, 8]);
    // Stored normalised: the scores are cosines.
    assert!((index.get(8).unwrap()[1] - 1.0).abs() < 1e-6);
    let opposite = index.search(&[-1.0, 0.0], 1).unwrap();
    assert_eq!(opposite[0].0, 8);
    assert!((index.search(&[-3.0, 0.0], 2).unwrap()[1].1 + 1.0).abs() < 1e-6);
}

#[test]
fn hnsw_recall_at_10_against_exact() {
    let mut rng = Rng(2);
    let dims = 64;
    let data = dataset(&mut rng, 20_000, dims);
    // Default graph settings; two build threads whatever the machine, so the
    // graph (and the recall) does not depend on the core count.
    let two_threads = MemoryIndexConfig {
        build_threads: 2,
        ..config(1_000)
    };
    let index = MemoryIndex::from_vectors(dims, two_threads, data.iter().cloned()).unwrap();
    assert_eq!(index.mode(), SearchMode::Hnsw);
    assert!(index.graph_memory_bytes() > 0);
    let queries: Vec<Vec<f32>> = (0..200).map(|_| rng.vector(dims)).collect();
    let mut total = 0.0;
    for q in &queries {
        let got = index.search(q, 10).unwrap();
        let want = brute_force(&data, q, 10);
        assert_eq!(got.len(), 10);
        assert_sorted_cosines(&got);
        // Re-scored exactly: every returned score is the true cosine.
        for (id, score) in &got {
            let v = &data[((id - 1) / 3) as usize].1;
            assert!((cosine(q, v) - score).abs() < 1e-5);
        }
        total += recall(&got, &want);
    }
    let r = total / queries.len() as f64;
    eprintln!("hnsw recall@10 on 20k random 64-dim vectors (default config): {r:.3}");
    assert!(r >= 0.95, "recall@10 = {r}");

    // The f32 graph works too.
    let f32_config = MemoryIndexConfig {
        quantization: GraphQuantization::F32,
        ..config(1_000)
    };
    let index = MemoryIndex::from_vectors(dims, f32_config, data.iter().cloned()).unwrap();
    let mut total = 0.0;
    for q in queries.iter().take(50) {
        total += recall(&index.search(q, 10).unwrap(), &brute_force(&data, q, 10));
    }
    assert!(total / 50.0 >= 0.95, "f32 recall@10 = {}", total / 50.0);
}

/// Removal and replacement, checked in the mode `threshold` leads to.
fn remove_and_replace(threshold: usize, mode: SearchMode) {
    let mut rng = Rng(3);
    let dims = 32;
    let mut data = dataset(&mut rng, 3_000, dims);
    let mut index =
        MemoryIndex::from_vectors(dims, config(threshold), data.iter().cloned()).unwrap();
    assert_eq!(index.mode(), mode);

    // Remove every third vector: none of them is ever returned again.
    let removed: HashSet<i64> = data.iter().step_by(3).map(|(id, _)| *id).collect();
    for id in &removed {
        assert!(index.remove(*id));
        assert!(!index.remove(*id), "second removal");
    }
    assert!(!index.remove(-5), "unknown id");
    data.retain(|(id, _)| !removed.contains(id));
    assert_eq!(index.len(), data.len());
    assert_eq!(index.mode(), mode);
    for (id, v) in data.iter().step_by(97) {
        let hits = index.search(v, 10).unwrap();
        assert_eq!(hits[0].0, *id, "a stored vector finds itself");
        assert!(hits[0].1 > 0.9999);
        assert!(hits.iter().all(|h| !removed.contains(&h.0)));
    }
    for id in removed.iter().take(50) {
        assert!(!index.contains(*id));
    }
    // Searching with a removed vector never returns it.
    let gone: Vec<(i64, Vec<f32>)> = dataset(&mut Rng(3), 3_000, dims)
        .into_iter()
        .filter(|(id, _)| removed.contains(id))
        .take(30)
        .collect();
    for (id, v) in &gone {
        let hits = index.search(v, 20).unwrap();
        assert!(hits.iter().all(|h| h.0 != *id));
    }

    // Replace: an id re-inserted with a new vector is found by the new
    // vector and no longer matches its old one perfectly.
    let (id, old) = data[10].clone();
    let new = rng.vector(dims);
    index.insert(id, &new).unwrap();
    assert_eq!(index.len(), data.len(), "replacing does not grow");
    let hits = index.search(&new, 1).unwrap();
    assert_eq!(hits[0].0, id);
    assert!(hits[0].1 > 0.9999);
    let hits = index.search(&old, 5).unwrap();
    assert!(hits.iter().all(|h| h.0 != id || h.1 < 0.9));

    // Re-inserting a removed id brings it back.
    let back = *removed.iter().next().unwrap();
    let v = rng.vector(dims);
    index.insert(back, &v).unwrap();
    assert_eq!(index.search(&v, 1).unwrap()[0].0, back);

    // Bulk replace (with a duplicate inside the batch: the last one wins).
    let (a, b) = (data[20].0, data[21].0);
    let (va, vb, vb2) = (rng.vector(dims), rng.vector(dims), rng.vector(dims));
    let len = index.len();
    index
        .extend([(a, va.clone()), (b, vb), (b, vb2.clone())])
        .unwrap();
    assert_eq!(index.len(), len);
    assert_eq!(index.search(&va, 1).unwrap()[0].0, a);
    assert_eq!(index.search(&vb2, 1).unwrap()[0].0, b);
    assert_eq!(index.mode(), mode);
}

#[test]
fn remove_and_replace_exact() {
    remove_and_replace(usize::MAX, SearchMode::Exact);
}

#[test]
fn remove_and_replace_hnsw() {
    remove_and_replace(100, SearchMode::Hnsw);
}

#[test]
fn invalid_input_is_an_error_and_changes_nothing() {
    let mut index = MemoryIndex::new(3, MemoryIndexConfig::default()).unwrap();
    index.insert(1, &[1.0, 2.0, 3.0]).unwrap();
    assert_eq!(
        index.insert(2, &[1.0, 2.0]),
        Err(IndexError::DimensionMismatch {
            expected: 3,
            actual: 2
        })
    );
    assert_eq!(
        index.insert(2, &[1.0, f32::NAN, 0.0]),
        Err(IndexError::NonFinite { position: 1 })
    );
    assert_eq!(
        index.insert(2, &[f32::INFINITY, 0.0, 0.0]),
        Err(IndexError::NonFinite { position: 0 })
    );
    assert_eq!(
        index.insert(1, &[f32::NEG_INFINITY, 0.0, 0.0]),
        Err(IndexError::NonFinite { position: 0 })
    );
    assert_eq!(index.insert(2, &[0.0; 3]), Err(IndexError::ZeroVector));
    assert_eq!(
        index.insert(i64::MIN, &[1.0; 3]),
        Err(IndexError::ReservedId(i64::MIN))
    );
    assert_eq!(index.len(), 1);
    assert!((index.get(1).unwrap()[2] - 3.0 / 14f32.sqrt()).abs() < 1e-6);

    assert!(matches!(
        index.search(&[1.0; 4], 1),
        Err(IndexError::DimensionMismatch {
            expected: 3,
            actual: 4
        })
    ));
    assert!(matches!(
        index.search(&[1.0, f32::NAN, 1.0], 1),
        Err(IndexError::NonFinite { position: 1 })
    ));
    // A zero query has no direction: no matches, not an error.
    assert!(index.search(&[0.0; 3], 1).unwrap().is_empty());
    // Huge but finite values normalise fine.
    index.insert(3, &[3.0e38, 0.0, 2.0e38]).unwrap();

    // Bulk loads are all-or-nothing.
    let before = index.len();
    let err = index.extend([
        (10, vec![1.0, 0.0, 0.0]),
        (11, vec![0.0, 1.0, 0.0]),
        (12, vec![0.0, f32::NAN, 0.0]),
    ]);
    assert_eq!(err, Err(IndexError::NonFinite { position: 1 }));
    assert_eq!(index.len(), before);
    assert!(!index.contains(10) && !index.contains(11));
    assert!(index.extend([(13, vec![1.0, 0.0])]).is_err());
    assert_eq!(index.len(), before);
    index.extend(Vec::<(i64, Vec<f32>)>::new()).unwrap();

    assert!(matches!(
        MemoryIndex::new(0, MemoryIndexConfig::default()),
        Err(IndexError::InvalidConfig(_))
    ));
    let bad = MemoryIndexConfig {
        m: 1,
        ..MemoryIndexConfig::default()
    };
    assert!(matches!(
        MemoryIndex::new(8, bad),
        Err(IndexError::InvalidConfig(_))
    ));
    assert!(index.set_ef_search(0).is_err());
    assert!(Collections::new(bad).is_err());
}

#[test]
fn collection_filter_never_leaks() {
    for threshold in [usize::MAX, 50] {
        let mut rng = Rng(4);
        let dims = 16;
        let mut cols = Collections::new(config(threshold)).unwrap();
        let a = dataset(&mut rng, 400, dims);
        // `b` holds exact copies of `a`'s vectors (and more), so without the
        // filter it would tie with or beat `a` on every query.
        let b: Vec<(i64, Vec<f32>)> = a
            .iter()
            .map(|(id, v)| (id + 1_000_000, v.clone()))
            .chain(
                dataset(&mut rng, 400, dims)
                    .into_iter()
                    .map(|(id, v)| (id + 2_000_000, v)),
            )
            .collect();
        cols.extend("course:a", dims, a.iter().cloned()).unwrap();
        for (id, v) in &b {
            cols.insert("course:b", *id, v).unwrap();
        }
        cols.insert("other-dims", 9, &[1.0, 2.0]).unwrap();
        let a_ids: HashSet<i64> = a.iter().map(|h| h.0).collect();
        let b_ids: HashSet<i64> = b.iter().map(|h| h.0).collect();
        assert_eq!(cols.len(), a.len() + b.len() + 1);
        assert_eq!(cols.collection_of(a[0].0), Some("course:a"));

        for (_, q) in a.iter().step_by(7).chain(b.iter().step_by(11)) {
            let hits = cols.search(q, 20, Some("course:a")).unwrap();
            assert_eq!(hits.len(), 20);
            assert!(hits.iter().all(|h| a_ids.contains(&h.0)), "leak into a");
            let hits = cols.search(q, 20, Some("course:b")).unwrap();
            assert!(hits.iter().all(|h| b_ids.contains(&h.0)), "leak into b");
            // No filter merges both (but not the 2-dim collection).
            let hits = cols.search(q, 20, None).unwrap();
            assert_sorted_cosines(&hits);
            assert!(hits.iter().any(|h| a_ids.contains(&h.0)));
            assert!(hits.iter().any(|h| b_ids.contains(&h.0)));
            assert!(hits.iter().all(|h| h.0 != 9));
        }
        assert!(cols.search(&a[0].1, 5, Some("nope")).unwrap().is_empty());
        assert!(matches!(
            cols.search(&a[0].1, 5, Some("other-dims")),
            Err(IndexError::CollectionDimensionMismatch { .. })
        ));
        assert!(matches!(
            cols.insert("course:a", 5, &[1.0, 2.0]),
            Err(IndexError::CollectionDimensionMismatch { .. })
        ));
        assert_eq!(cols.search(&[3.0, 6.0], 5, None).unwrap()[0].0, 9);

        // Moving an id to another collection takes it out of the first.
        let (moved, v) = a[3].clone();
        cols.insert("course:b", moved, &v).unwrap();
        assert_eq!(cols.collection_of(moved), Some("course:b"));
        let hits = cols.search(&v, 50, Some("course:a")).unwrap();
        assert!(hits.iter().all(|h| h.0 != moved));
        assert_eq!(cols.search(&v, 1, Some("course:b")).unwrap()[0].0, moved);
        assert!(cols.remove(moved));
        assert!(!cols.remove(moved));
        assert!(
            cols.search(&v, 50, None)
                .unwrap()
                .iter()
                .all(|h| h.0 != moved)
        );

        // A failed first insert does not leave a collection behind.
        assert!(cols.insert("new", 1, &[f32::NAN; 4]).is_err());
        assert!(cols.get("new").is_none());

        // Dropping a collection drops its ids.
        let dropped = cols.remove_collection("course:b").unwrap();
        assert!(!dropped.is_empty());
        assert_eq!(cols.collection_of(b[0].0), None);
        assert!(
            cols.search(&b[0].1, 20, None)
                .unwrap()
                .iter()
                .all(|h| !b_ids.contains(&h.0))
        );
        assert!(cols.memory_bytes() > 0);

        // A prebuilt index installed under a name takes over its ids.
        let (id, v) = a[5].clone();
        let built = MemoryIndex::from_vectors(dims, config(threshold), [(id, v.clone())]).unwrap();
        let old = cols.install("course:a", built).unwrap();
        assert_eq!(old.len(), a.len() - 1, "one id moved out earlier");
        assert_eq!(cols.collection_of(a[6].0), None);
        assert_eq!(cols.collection_of(id), Some("course:a"));
        let hits = cols.search(&v, 5, Some("course:a")).unwrap();
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].0, id);
        assert!(hits[0].1 > 0.9999);
    }
}

#[test]
fn crossing_the_threshold_keeps_results_correct() {
    let mut rng = Rng(5);
    let dims = 24;
    let threshold = 500;
    let data = dataset(&mut rng, 1_200, dims);
    let queries: Vec<Vec<f32>> = (0..20).map(|_| rng.vector(dims)).collect();
    let mut index = MemoryIndex::new(dims, config(threshold)).unwrap();
    let check = |index: &MemoryIndex, upto: usize, min_recall: f64| {
        let live = &data[..upto];
        let mut total = 0.0;
        for q in &queries {
            let got = index.search(q, 10).unwrap();
            assert_sorted_cosines(&got);
            total += recall(&got, &brute_force(live, q, 10));
        }
        let r = total / queries.len() as f64;
        assert!(r >= min_recall, "recall {r} at {upto}");
        for (id, v) in live.iter().step_by(61) {
            assert_eq!(index.search(v, 1).unwrap()[0].0, *id);
        }
    };
    for (i, (id, v)) in data.iter().enumerate() {
        index.insert(*id, v).unwrap();
        let n = i + 1;
        let expected = if n >= threshold {
            SearchMode::Hnsw
        } else {
            SearchMode::Exact
        };
        assert_eq!(index.mode(), expected, "at {n}");
        if [1, 10, threshold - 1].contains(&n) {
            check(&index, n, 1.0);
        }
        if [threshold, threshold + 1, 800, 1_200].contains(&n) {
            check(&index, n, 0.95);
        }
    }
    // Shrinking below half the threshold drops the graph; results are exact.
    for (id, _) in data[200..].iter() {
        assert!(index.remove(*id));
    }
    assert_eq!(index.len(), 200);
    assert_eq!(index.mode(), SearchMode::Exact);
    check(&index, 200, 1.0);
    assert_eq!(index.graph_memory_bytes(), 0);

    // Bulk-loading across the threshold builds the graph once.
    index.extend(data[200..].iter().cloned()).unwrap();
    assert_eq!(index.mode(), SearchMode::Hnsw);
    check(&index, 1_200, 0.95);
    index.rebuild_graph().unwrap();
    check(&index, 1_200, 0.95);
    index.clear();
    assert!(index.is_empty());
    assert_eq!(index.mode(), SearchMode::Exact);
}

#[test]
fn memory_estimate_is_plausible() {
    let mut rng = Rng(6);
    let dims = 128;
    let data = dataset(&mut rng, 5_000, dims);
    let exact = MemoryIndex::from_vectors(dims, config(usize::MAX), data.iter().cloned()).unwrap();
    let raw = 5_000 * dims * 4;
    assert!(exact.memory_bytes() >= raw && exact.memory_bytes() < raw * 2);
    let graph = MemoryIndex::from_vectors(dims, config(1), data.iter().cloned()).unwrap();
    // i8 copies (dims bytes each) plus links: more than the copies alone.
    assert!(graph.graph_memory_bytes() > 5_000 * dims);
    assert!(graph.memory_bytes() > exact.memory_bytes());
}

#[test]
fn shared_across_threads_behind_a_rwlock() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<MemoryIndex>();
    assert_send_sync::<Collections>();
    assert_send_sync::<RwLock<Collections>>();

    let mut rng = Rng(7);
    let dims = 32;
    let data = Arc::new(dataset(&mut rng, 3_000, dims));
    let mut cols = Collections::new(config(500)).unwrap();
    cols.extend("docs", dims, data.iter().cloned()).unwrap();
    assert_eq!(cols.get("docs").unwrap().mode(), SearchMode::Hnsw);
    let shared = Arc::new(RwLock::new(cols));
    // More concurrent searches than the graph has scratch contexts: the
    // surplus falls back to exact scans, and every answer stays right.
    let handles: Vec<_> = (0..48)
        .map(|t| {
            let shared = Arc::clone(&shared);
            let data = Arc::clone(&data);
            std::thread::spawn(move || {
                for (id, v) in data.iter().skip(t).step_by(48).take(40) {
                    let hits = shared.read().unwrap().search(v, 5, Some("docs")).unwrap();
                    // Approximate search: a stored vector must come back among the
                    // top 5 for itself (a near-duplicate may outrank it).
                    assert!(hits.iter().any(|h| h.0 == *id), "{id} not in {hits:?}");
                    assert!(
                        hits[0].1 >= 0.999,
                        "the best hit is (nearly) the query itself"
                    );
                }
            })
        })
        .collect();
    let writer = {
        let shared = Arc::clone(&shared);
        std::thread::spawn(move || {
            let mut rng = Rng(8);
            for i in 0..100 {
                shared
                    .write()
                    .unwrap()
                    .insert("docs", 1_000_000 + i, &rng.vector(dims))
                    .unwrap();
            }
        })
    };
    for h in handles {
        h.join().unwrap();
    }
    writer.join().unwrap();
    assert_eq!(shared.read().unwrap().len(), 3_100);
}
