//! In-memory vector index benchmark: exact scan vs HNSW on 384-dim vectors.
//!
//! `cargo bench -p confab-rag --bench index` (100,000 vectors, 1,000
//! queries); `CONFAB_BENCH_QUICK=1` for a 10,000-vector smoke run;
//! `CONFAB_BENCH_UNIFORM=1` adds a worst case on uniformly random vectors;
//! `CONFAB_BENCH_M` / `CONFAB_BENCH_EF_CONSTRUCTION` override graph settings.
//!
//! Data: 1,000 random unit centroids; each vector is a centroid plus
//! Gaussian noise (sigma 0.05 per component, about 0.72 cosine to its
//! centroid), normalised. Queries are fresh draws from the same
//! distribution. All searches run on this one thread; latencies are also
//! given as multiples of a baseline measured in the same run: computing
//! 1,000 dot products of 384-dim vectors held in cache.

use std::collections::HashSet;
use std::error::Error;
use std::hint::black_box;
use std::time::{Duration, Instant};

use confab_rag::index::{GraphQuantization, MemoryIndex, MemoryIndexConfig, SearchMode, dot};

const DIMS: usize = 384;

type BenchResult<T> = Result<T, Box<dyn Error>>;

/// Result ids per query, median and p99 latency.
struct Run {
    ids: Vec<Vec<i64>>,
    median: Duration,
    p99: Duration,
}

/// A sweep point meeting the targets.
#[derive(Clone, Copy)]
struct Tuned {
    oversample: usize,
    ef: usize,
    recall: f64,
    median: Duration,
    p99: Duration,
}
const K: usize = 10;

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
}

fn normalise(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
}

/// Clustered, embedding-like unit vectors.
struct Clustered {
    centroids: Vec<Vec<f32>>,
    sigma: f32,
}

impl Clustered {
    fn new(rng: &mut Rng, count: usize, sigma: f32) -> Self {
        let centroids = (0..count)
            .map(|_| {
                let mut c: Vec<f32> = (0..DIMS).map(|_| rng.normal()).collect();
                normalise(&mut c);
                c
            })
            .collect();
        Self { centroids, sigma }
    }

    fn draw(&self, rng: &mut Rng) -> Vec<f32> {
        let c = &self.centroids[(rng.next_u64() % self.centroids.len() as u64) as usize];
        let mut v: Vec<f32> = c.iter().map(|x| x + self.sigma * rng.normal()).collect();
        normalise(&mut v);
        v
    }
}

fn uniform_vector(rng: &mut Rng) -> Vec<f32> {
    let mut v: Vec<f32> = (0..DIMS).map(|_| rng.normal()).collect();
    normalise(&mut v);
    v
}

/// Resident set size of this process in bytes (0 where /proc is absent).
fn rss() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<usize>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Median and 99th percentile.
fn percentiles(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    if samples.is_empty() {
        return (Duration::ZERO, Duration::ZERO);
    }
    let median = samples[samples.len() / 2];
    let p99 = samples[(samples.len() * 99).div_ceil(100).saturating_sub(1)];
    (median, p99)
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Times `k`-NN searches of every query (after a short warm-up).
fn run_queries(index: &MemoryIndex, queries: &[Vec<f32>]) -> BenchResult<Run> {
    for q in queries.iter().take(20) {
        black_box(index.search(q, K)?);
    }
    let mut lat = Vec::with_capacity(queries.len());
    let mut results = Vec::with_capacity(queries.len());
    for q in queries {
        let t = Instant::now();
        let hits = index.search(black_box(q), K)?;
        lat.push(t.elapsed());
        results.push(hits.into_iter().map(|h| h.0).collect());
    }
    let (median, p99) = percentiles(lat);
    Ok(Run {
        ids: results,
        median,
        p99,
    })
}

fn recall(got: &[Vec<i64>], truth: &[Vec<i64>]) -> f64 {
    let mut hits = 0usize;
    let mut total = 0usize;
    for (g, t) in got.iter().zip(truth) {
        let t: HashSet<&i64> = t.iter().collect();
        hits += g.iter().filter(|id| t.contains(id)).count();
        total += t.len();
    }
    hits as f64 / total.max(1) as f64
}

/// Median time of 1,000 dot products over 1,000 cached 384-dim rows.
fn baseline(rng: &mut Rng) -> Duration {
    let rows: Vec<f32> = (0..1_000 * DIMS).map(|_| rng.normal()).collect();
    let q: Vec<f32> = (0..DIMS).map(|_| rng.normal()).collect();
    let mut samples = Vec::with_capacity(300);
    for rep in 0..350 {
        let t = Instant::now();
        let mut s = 0.0f32;
        for row in rows.chunks_exact(DIMS) {
            s += dot(black_box(&q), black_box(row));
        }
        black_box(s);
        if rep >= 50 {
            samples.push(t.elapsed());
        }
    }
    percentiles(samples).0
}

struct Table {
    rows: Vec<[String; 7]>,
}

impl Table {
    fn new() -> Self {
        let head = [
            "index",
            "setting",
            "recall@10",
            "median µs",
            "p99 µs",
            "median/base",
            "p99/base",
        ];
        Self {
            rows: vec![head.map(str::to_owned)],
        }
    }

    fn push(
        &mut self,
        index: &str,
        setting: &str,
        recall: Option<f64>,
        median: Duration,
        p99: Duration,
        base: Duration,
    ) {
        let ratio = |d: Duration| format!("{:.2}x", d.as_secs_f64() / base.as_secs_f64());
        self.rows.push([
            index.to_owned(),
            setting.to_owned(),
            recall.map_or_else(|| "1 (truth)".into(), |r| format!("{r:.4}")),
            format!("{:.0}", us(median)),
            format!("{:.0}", us(p99)),
            ratio(median),
            ratio(p99),
        ]);
    }

    fn print(&self) {
        let widths: Vec<usize> = (0..7)
            .map(|c| {
                self.rows
                    .iter()
                    .map(|r| r[c].chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        for (i, row) in self.rows.iter().enumerate() {
            let cells: Vec<String> = row
                .iter()
                .zip(&widths)
                .enumerate()
                .map(|(c, (cell, w))| {
                    if c < 2 {
                        format!("{cell:<w$}")
                    } else {
                        format!("{cell:>w$}")
                    }
                })
                .collect();
            println!("| {} |", cells.join(" | "));
            if i == 0 {
                let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
                println!("|-{}-|", rule.join("-|-"));
            }
        }
    }
}

/// Builds a graph index and reports build time and memory.
fn build_graph(
    config: MemoryIndexConfig,
    data: &[Vec<f32>],
    label: &str,
) -> BenchResult<MemoryIndex> {
    let before = rss();
    let t = Instant::now();
    let index = MemoryIndex::from_vectors(
        DIMS,
        config,
        data.iter().enumerate().map(|(i, v)| (i as i64, v)),
    )?;
    let build = t.elapsed();
    if index.mode() != SearchMode::Hnsw {
        return Err("expected an HNSW index".into());
    }
    println!(
        "{label}: build {:.1} s ({} threads), memory_bytes {:.1} MiB (graph {:.1} MiB), VmRSS +{:.1} MiB",
        build.as_secs_f64(),
        if config.build_threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            config.build_threads
        },
        mib(index.memory_bytes()),
        mib(index.graph_memory_bytes()),
        mib(rss().saturating_sub(before)),
    );
    Ok(index)
}

/// Sweeps `(oversample, ef_search)`; returns the cheapest setting reaching
/// recall 0.95 with p99 under 10 ms.
fn sweep(
    index: &mut MemoryIndex,
    name: &str,
    queries: &[Vec<f32>],
    truth: &[Vec<i64>],
    base: Duration,
    table: &mut Table,
) -> BenchResult<Option<Tuned>> {
    let mut best: Option<Tuned> = None;
    for oversample in [1, 2, 4] {
        for ef in [16, 32, 64, 96, 128, 192, 256] {
            if ef < K * oversample {
                continue;
            }
            index.set_oversample(oversample)?;
            index.set_ef_search(ef)?;
            let Run {
                ids: got,
                median,
                p99,
            } = run_queries(index, queries)?;
            let r = recall(&got, truth);
            table.push(
                name,
                &format!("oversample {oversample}, ef {ef}"),
                Some(r),
                median,
                p99,
                base,
            );
            let ok = r >= 0.95 && p99 < Duration::from_millis(10);
            if ok && best.is_none_or(|b| median < b.median) {
                best = Some(Tuned {
                    oversample,
                    ef,
                    recall: r,
                    median,
                    p99,
                });
            }
        }
    }
    Ok(best)
}

fn main() -> BenchResult<()> {
    // `cargo bench` passes `--bench`; any other argument is ignored.
    let quick = std::env::var("CONFAB_BENCH_QUICK").is_ok_and(|v| v == "1");
    let uniform = std::env::var("CONFAB_BENCH_UNIFORM").is_ok_and(|v| v == "1");
    let (n, nq) = if quick {
        (10_000, 200)
    } else {
        (100_000, 1_000)
    };
    let mut rng = Rng(0x5EED);

    println!(
        "# confab-rag in-memory index benchmark{}",
        if quick { " (quick)" } else { "" }
    );
    let t = Instant::now();
    let dist = Clustered::new(&mut rng, 1_000, 0.05);
    let data: Vec<Vec<f32>> = (0..n).map(|_| dist.draw(&mut rng)).collect();
    let queries: Vec<Vec<f32>> = (0..nq).map(|_| dist.draw(&mut rng)).collect();
    let own: f64 = data
        .iter()
        .take(1_000)
        .map(|v| {
            dist.centroids
                .iter()
                .map(|c| dot(c, v))
                .fold(f32::MIN, f32::max) as f64
        })
        .sum::<f64>()
        / 1_000.0;
    let pair: f64 = (0..1_000)
        .map(|i| dot(&data[i], &data[(i * 7919 + 13) % n]) as f64)
        .sum::<f64>()
        / 1_000.0;
    println!(
        "data: {n} x {DIMS} clustered (1,000 centroids + N(0, 0.05^2) noise, normalised); \
         {nq} queries from the same distribution; mean cos to own centroid {own:.2}, \
         mean cos of random pairs {pair:.3}; generated in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let base = baseline(&mut rng);
    println!(
        "baseline: 1,000 dot products of {DIMS} dims (in cache) = {:.1} µs (median); \
         ratios below are latency / baseline",
        us(base)
    );

    let mut table = Table::new();

    // Exact.
    let before = rss();
    let t = Instant::now();
    let exact = MemoryIndex::from_vectors(
        DIMS,
        MemoryIndexConfig {
            exact_threshold: usize::MAX,
            ..MemoryIndexConfig::default()
        },
        data.iter().enumerate().map(|(i, v)| (i as i64, v)),
    )?;
    let build = t.elapsed();
    println!(
        "exact: load {:.2} s, memory_bytes {:.1} MiB, VmRSS +{:.1} MiB",
        build.as_secs_f64(),
        mib(exact.memory_bytes()),
        mib(rss().saturating_sub(before)),
    );
    let Run {
        ids: truth,
        median,
        p99,
    } = run_queries(&exact, &queries)?;
    table.push("exact scan", "-", None, median, p99, base);
    // Cross-check the ground truth with a naive f64 scan on a few queries.
    for (q, t) in queries.iter().zip(&truth).take(3) {
        let mut all: Vec<(f64, i64)> = data
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let s: f64 = q
                    .iter()
                    .zip(v)
                    .map(|(a, b)| f64::from(*a) * f64::from(*b))
                    .sum();
                (s, i as i64)
            })
            .collect();
        all.sort_by(|a, b| b.0.total_cmp(&a.0));
        let naive: HashSet<i64> = all.iter().take(K).map(|h| h.1).collect();
        let overlap = t.iter().filter(|id| naive.contains(id)).count();
        if overlap < K - 1 {
            return Err(format!("exact search disagrees with a naive scan ({overlap}/{K})").into());
        }
    }
    drop(exact);

    // HNSW, default (i8 graph + exact re-scoring).
    let mut config = MemoryIndexConfig::default();
    if quick {
        // 10k vectors sit below the default threshold: force the graph.
        config.exact_threshold = 1_000;
    }
    // Tuning knobs: CONFAB_BENCH_M, CONFAB_BENCH_EF_CONSTRUCTION.
    let knob = |name: &str| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
    };
    if let Some(m) = knob("CONFAB_BENCH_M") {
        config.m = m;
    }
    if let Some(ef) = knob("CONFAB_BENCH_EF_CONSTRUCTION") {
        config.ef_construction = ef;
    }
    println!(
        "hnsw config: m {}, ef_construction {}, quantization {:?}, exact_threshold {}",
        config.m, config.ef_construction, config.quantization, config.exact_threshold
    );
    let mut hnsw = build_graph(config, &data, "hnsw i8")?;
    let Run {
        ids: got,
        median,
        p99,
    } = run_queries(&hnsw, &queries)?;
    let default_row = format!(
        "default: oversample {}, ef {}",
        config.oversample, config.ef_search
    );
    table.push(
        "hnsw i8",
        &default_row,
        Some(recall(&got, &truth)),
        median,
        p99,
        base,
    );
    let best = sweep(&mut hnsw, "hnsw i8", &queries, &truth, base, &mut table)?;

    // Writes against the built graph.
    let extra: Vec<Vec<f32>> = (0..1_000).map(|_| dist.draw(&mut rng)).collect();
    let mut insert_lat = Vec::with_capacity(extra.len());
    for (i, v) in extra.iter().enumerate() {
        let t = Instant::now();
        hnsw.insert((n + i) as i64, v)?;
        insert_lat.push(t.elapsed());
    }
    let mut remove_lat = Vec::with_capacity(extra.len());
    for i in 0..extra.len() {
        let t = Instant::now();
        hnsw.remove((n + i) as i64);
        remove_lat.push(t.elapsed());
    }
    let (im, ip) = percentiles(insert_lat);
    let (rm, rp) = percentiles(remove_lat);
    println!(
        "hnsw i8 writes (one thread): insert median {:.0} µs p99 {:.0} µs; remove median {:.0} µs p99 {:.0} µs",
        us(im),
        us(ip),
        us(rm),
        us(rp)
    );
    drop(hnsw);

    // HNSW with an f32 graph, for comparison.
    let f32_config = MemoryIndexConfig {
        quantization: GraphQuantization::F32,
        ..config
    };
    let mut hnsw_f32 = build_graph(f32_config, &data, "hnsw f32")?;
    for (oversample, ef) in [(config.oversample, config.ef_search), (1, 64), (4, 64)] {
        hnsw_f32.set_oversample(oversample)?;
        hnsw_f32.set_ef_search(ef)?;
        let Run {
            ids: got,
            median,
            p99,
        } = run_queries(&hnsw_f32, &queries)?;
        table.push(
            "hnsw f32",
            &format!("oversample {oversample}, ef {ef}"),
            Some(recall(&got, &truth)),
            median,
            p99,
            base,
        );
    }
    drop(hnsw_f32);

    if uniform {
        let data: Vec<Vec<f32>> = (0..n).map(|_| uniform_vector(&mut rng)).collect();
        let queries: Vec<Vec<f32>> = (0..nq.min(200)).map(|_| uniform_vector(&mut rng)).collect();
        let exact = MemoryIndex::from_vectors(
            DIMS,
            MemoryIndexConfig {
                exact_threshold: usize::MAX,
                ..config
            },
            data.iter().enumerate().map(|(i, v)| (i as i64, v)),
        )?;
        let Run {
            ids: truth,
            median,
            p99,
        } = run_queries(&exact, &queries)?;
        drop(exact);
        table.push("uniform: exact", "-", None, median, p99, base);
        let mut index = build_graph(config, &data, "uniform hnsw i8")?;
        for ef in [128, 512, 2_048] {
            index.set_ef_search(ef)?;
            let Run {
                ids: got,
                median,
                p99,
            } = run_queries(&index, &queries)?;
            table.push(
                "uniform: hnsw i8",
                &format!("oversample {}, ef {ef}", config.oversample),
                Some(recall(&got, &truth)),
                median,
                p99,
                base,
            );
        }
    }

    println!();
    table.print();
    println!();
    match best {
        Some(Tuned {
            oversample,
            ef,
            recall: r,
            median,
            p99,
        }) => println!(
            "tuned: oversample {oversample}, ef_search {ef} is the fastest setting with recall@10 >= 0.95 \
             and p99 < 10 ms: recall {r:.4}, median {:.0} µs, p99 {:.0} µs",
            us(median),
            us(p99)
        ),
        None => println!("tuned: no setting reached recall@10 >= 0.95 with p99 < 10 ms"),
    }
    Ok(())
}
