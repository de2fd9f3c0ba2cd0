//! Vector kernels: the dot product, normalisation and a bounded top-k heap.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use super::IndexError;

/// Lanes per step of [`dot`]: eight independent accumulators let the compiler
/// keep two SSE (or one AVX) register of partial sums without a loop-carried
/// dependency on a single float, so the loop auto-vectorises.
const LANES: usize = 8;

/// Dot product, auto-vectorised (extra elements of the longer slice are ignored).
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f32; LANES];
    let ca = a.chunks_exact(LANES);
    let cb = b.chunks_exact(LANES);
    let mut tail = 0.0f32;
    for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
        tail += x * y;
    }
    for (x, y) in ca.zip(cb) {
        for ((s, &x), &y) in acc.iter_mut().zip(x).zip(y) {
            *s += x * y;
        }
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

/// Checks `v` has `dims` finite components.
pub fn validate(v: &[f32], dims: usize) -> Result<(), IndexError> {
    if v.len() != dims {
        return Err(IndexError::DimensionMismatch {
            expected: dims,
            actual: v.len(),
        });
    }
    if let Some(position) = v.iter().position(|x| !x.is_finite()) {
        return Err(IndexError::NonFinite { position });
    }
    Ok(())
}

/// Writes `v / |v|` into `out` (cleared first); `false` if `v` is all zeros.
pub fn normalise_into(v: &[f32], out: &mut Vec<f32>) -> bool {
    out.clear();
    append_normalised(v, out)
}

/// Appends `v / |v|` to `out`; `false` (and nothing appended) if `v` is all
/// zeros.
///
/// The norm is accumulated in `f64` so huge finite components cannot
/// overflow it. `v` must already be validated as finite.
pub fn append_normalised(v: &[f32], out: &mut Vec<f32>) -> bool {
    let sq: f64 = v.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
    if sq <= 0.0 || !sq.is_finite() {
        return false;
    }
    let inv = 1.0 / sq.sqrt();
    out.extend(v.iter().map(|&x| (f64::from(x) * inv) as f32));
    true
}

/// Clamps a dot product of unit vectors to the cosine range.
#[inline]
pub fn clamp_cosine(s: f32) -> f32 {
    s.clamp(-1.0, 1.0)
}

/// A scored id; ordered so that the *worst* hit is the greatest, which makes
/// `BinaryHeap<Hit>` a min-heap on score (ties: the larger id is worse).
#[derive(Debug, Clone, Copy)]
struct Hit {
    score: f32,
    id: i64,
}

impl PartialEq for Hit {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Hit {}

impl PartialOrd for Hit {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Hit {
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .score
            .total_cmp(&self.score)
            .then(self.id.cmp(&other.id))
    }
}

/// Keeps the `k` best `(id, score)` pairs seen so far.
#[derive(Debug)]
pub struct TopK {
    k: usize,
    heap: BinaryHeap<Hit>,
}

impl TopK {
    /// An empty collector for the best `k`.
    pub fn new(k: usize) -> Self {
        Self {
            k,
            heap: BinaryHeap::with_capacity(k.saturating_add(1).min(1 << 16)),
        }
    }

    /// The score a candidate must beat to enter, once full.
    #[inline]
    pub fn floor(&self) -> Option<f32> {
        if self.heap.len() < self.k {
            None
        } else {
            self.heap.peek().map(|h| h.score)
        }
    }

    /// Offers a candidate.
    #[inline]
    pub fn push(&mut self, id: i64, score: f32) {
        if self.k == 0 {
            return;
        }
        let hit = Hit { score, id };
        if self.heap.len() < self.k {
            self.heap.push(hit);
        } else if let Some(worst) = self.heap.peek()
            && hit < *worst
        {
            self.heap.pop();
            self.heap.push(hit);
        }
    }

    /// The kept pairs, best first (ties by ascending id).
    pub fn into_sorted(self) -> Vec<(i64, f32)> {
        // `into_sorted_vec` is ascending in `Ord`, i.e. best first here.
        self.heap
            .into_sorted_vec()
            .into_iter()
            .map(|h| (h.id, clamp_cosine(h.score)))
            .collect()
    }
}

/// Exact top-`k` of unit vector `q` over row-major `rows` (`dims` floats each)
/// whose ids are `ids`, best first.
pub fn exact_top_k(q: &[f32], rows: &[f32], ids: &[i64], dims: usize, k: usize) -> Vec<(i64, f32)> {
    let mut top = TopK::new(k);
    if k == 0 || dims == 0 {
        return Vec::new();
    }
    let mut floor = f32::NEG_INFINITY;
    for (row, &id) in rows.chunks_exact(dims).zip(ids) {
        let s = dot(q, row);
        // `>=` keeps ties so the id tie-break in `push` decides.
        if s >= floor {
            top.push(id, s);
            if let Some(f) = top.floor() {
                floor = f;
            }
        }
    }
    top.into_sorted()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_matches_naive_for_all_tails() {
        for n in 0..40 {
            let a: Vec<f32> = (0..n).map(|i| i as f32 * 0.5 - 3.0).collect();
            let b: Vec<f32> = (0..n).map(|i| 1.0 - i as f32 * 0.25).collect();
            let naive: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert!(
                (dot(&a, &b) - naive).abs() <= 1e-3 * (1.0 + naive.abs()),
                "n={n}"
            );
        }
    }

    #[test]
    fn top_k_keeps_best_sorted() {
        let mut t = TopK::new(3);
        for (id, s) in [(1, 0.1), (2, 0.9), (3, 0.5), (4, 0.7), (5, -0.2), (6, 0.7)] {
            t.push(id, s);
        }
        assert_eq!(t.into_sorted(), vec![(2, 0.9), (4, 0.7), (6, 0.7)]);
        let mut t = TopK::new(0);
        t.push(1, 1.0);
        assert!(t.into_sorted().is_empty());
    }

    #[test]
    fn normalise_handles_huge_and_zero() {
        let mut out = Vec::new();
        assert!(normalise_into(&[3.0e38, 2.25e38], &mut out));
        assert!((out[0] - 0.8).abs() < 1e-6 && (out[1] - 0.6).abs() < 1e-6);
        assert!(!normalise_into(&[0.0, 0.0], &mut out));
    }
}
