//! The local sentence embedder (feature `local`) on the real
//! all-MiniLM-L6-v2 weights: semantic ordering, determinism, batching,
//! truncation, the busy queue and load errors.
//!
//! The model folder is `CONFAB_LOCAL_EMBED_MODEL`, else `models/all-MiniLM-L6-v2`
//! at the repository root (`make models` fetches it). When it is missing the
//! model tests print SKIP and pass, and fail instead when
//! `CONFAB_REQUIRE_LOCAL_MODELS=1` (CI).
#![cfg(feature = "local")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use confab_llm::local::{LocalEmbedConfig, LocalEmbedder};
use confab_llm::{EmbeddingModel, LlmError};

fn load_with(tune: impl FnOnce(&mut LocalEmbedConfig)) -> Option<LocalEmbedder> {
    let mut config = LocalEmbedConfig::new(confab_testkit::local_embed_model_dir()?);
    tune(&mut config);
    Some(LocalEmbedder::load(config).unwrap())
}

fn load() -> Option<LocalEmbedder> {
    load_with(|_| {})
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn assert_unit(v: &[f32]) {
    let norm = dot(v, v).sqrt();
    assert!((norm - 1.0).abs() < 1e-4, "norm {norm}");
    assert!(v.iter().all(|x| x.is_finite()));
}

#[test]
fn embedder_is_send_sync_static_debug() {
    fn check<T: Send + Sync + 'static + std::fmt::Debug + Clone>() {}
    check::<LocalEmbedder>();
}

#[tokio::test]
async fn similar_pairs_score_above_unrelated_ones() {
    let Some(model) = load() else { return };
    assert_eq!(model.dimensions(), 384);
    assert_eq!(model.model_id(), "all-MiniLM-L6-v2");
    // (anchor, paraphrase, unrelated)
    let triples = [
        (
            "How do I reset my password?",
            "I forgot my password and need to change it.",
            "The recipe needs two cups of flour.",
        ),
        (
            "The cat is sleeping on the sofa.",
            "A kitten naps on the couch.",
            "Interest rates rose by half a percent.",
        ),
        (
            "Rust's borrow checker prevents data races.",
            "Ownership rules in Rust stop two threads writing the same memory.",
            "The Amazon river flows into the Atlantic Ocean.",
        ),
        (
            "What is the capital of France?",
            "Which city is France's capital?",
            "How many legs does a spider have?",
        ),
        (
            "He plays the guitar in a rock band.",
            "She is a guitarist for a rock group.",
            "Photosynthesis turns light into chemical energy.",
        ),
        (
            "The stock market crashed today.",
            "Share prices fell sharply this afternoon.",
            "My grandmother knits warm scarves.",
        ),
        (
            "It is raining heavily outside.",
            "There is a downpour right now.",
            "The compiler reported a type error.",
        ),
        (
            "Preheat the oven to 200 degrees.",
            "Heat the oven up to 200°C before baking.",
            "The football match ended in a draw.",
        ),
        (
            "A DNS resolver translates domain names into IP addresses.",
            "Name servers map hostnames to numeric addresses.",
            "Caramel forms when sugar is heated.",
        ),
        (
            "The train to Berlin is delayed.",
            "Our rail connection to Berlin is running late.",
            "Derivatives measure the rate of change of a function.",
        ),
        (
            "I love eating fresh strawberries.",
            "Fresh strawberries are my favourite food.",
            "The server returned a 500 error.",
        ),
        (
            "Children are playing in the park.",
            "Kids play outside on the playground.",
            "The contract was signed by both lawyers.",
        ),
    ];
    let mut texts = Vec::new();
    for (a, s, u) in triples {
        texts.extend([a.to_owned(), s.to_owned(), u.to_owned()]);
    }
    let v = model.embed(&texts).await.unwrap();
    assert_eq!(v.len(), texts.len());
    let mut failures = Vec::new();
    for (i, (a, _, _)) in triples.iter().enumerate() {
        let (va, vs, vu) = (&v[3 * i], &v[3 * i + 1], &v[3 * i + 2]);
        assert_eq!(va.len(), 384);
        assert_unit(va);
        let (similar, unrelated) = (dot(va, vs), dot(va, vu));
        eprintln!("{a:?}: similar {similar:.3} unrelated {unrelated:.3}");
        if similar <= unrelated + 0.1 {
            failures.push((a, similar, unrelated));
        }
    }
    assert!(
        failures.is_empty(),
        "similar pair not clearly above unrelated: {failures:?}"
    );
}

#[tokio::test]
async fn same_text_gives_same_vector() {
    let Some(model) = load() else { return };
    let text = "Mean pooling over the attention mask.".to_owned();
    let a = model.embed(std::slice::from_ref(&text)).await.unwrap();
    let b = model.embed(std::slice::from_ref(&text)).await.unwrap();
    assert_eq!(a, b, "two calls, same text");
    let c = model
        .embed(&[text.clone(), text.clone(), "other".into()])
        .await
        .unwrap();
    assert!(max_diff(&c[0], &c[1]) < 1e-6);
    assert!(max_diff(&a[0], &c[0]) < 1e-5);
    // A different text is a different vector.
    assert!(max_diff(&a[0], &c[2]) > 1e-2);
}

#[tokio::test]
async fn batches_equal_one_by_one() {
    // Small batches so that a request is split into several, padded
    // batches of mixed lengths.
    let Some(model) = load_with(|c| c.batch_size = 8) else {
        return;
    };
    let texts: Vec<String> = (0..29)
        .map(|i| {
            let words = ["alpha", "river", "ownership", "yeast", "matrix", "harbour"];
            let n = 1 + (i * 7) % 40;
            let body: Vec<&str> = (0..n).map(|k| words[(i + k) % words.len()]).collect();
            format!("text {i}: {}", body.join(" "))
        })
        .collect();
    let batched = model.embed(&texts).await.unwrap();
    assert_eq!(batched.len(), texts.len());
    let mut worst = 0.0f32;
    for (text, b) in texts.iter().zip(&batched) {
        let single = model.embed(std::slice::from_ref(text)).await.unwrap();
        worst = worst.max(max_diff(&single[0], b));
    }
    eprintln!("batch vs one-by-one: max abs difference {worst:e}");
    assert!(worst < 1e-4, "batch differs from one-by-one by {worst}");
}

#[tokio::test]
async fn edge_inputs() {
    let Some(model) = load() else { return };
    assert!(model.embed(&[]).await.unwrap().is_empty());

    let empty = model.embed(&[String::new()]).await.unwrap();
    assert_eq!(empty.len(), 1);
    assert_eq!(empty[0].len(), 384);
    assert_unit(&empty[0]);

    // Far over 512 word pieces: truncated to the model's maximum positions,
    // so what follows the cut changes nothing.
    assert_eq!(model.max_length(), 512);
    let long = "The quick brown fox jumps over the lazy dog. ".repeat(120);
    let longer = format!("{long} Completely different closing words about volcanoes.");
    let v = model.embed(&[long.clone(), longer]).await.unwrap();
    assert_unit(&v[0]);
    assert!(max_diff(&v[0], &v[1]) < 1e-5, "text after the cut mattered");
    // ... while within the limit the ending does matter.
    let short = "The quick brown fox jumps over the lazy dog.".to_owned();
    let short2 = format!("{short} Completely different closing words about volcanoes.");
    let w = model.embed(&[short, short2]).await.unwrap();
    assert!(max_diff(&w[0], &w[1]) > 1e-2);
}

#[tokio::test]
async fn max_length_setting_truncates_earlier() {
    let Some(model) = load_with(|c| c.max_length = 16) else {
        return;
    };
    assert_eq!(model.max_length(), 16);
    let base = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen";
    let v = model
        .embed(&[base.to_owned(), format!("{base} fifteen sixteen seventeen")])
        .await
        .unwrap();
    assert!(max_diff(&v[0], &v[1]) < 1e-5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_queue_is_busy() {
    let Some(model) = load_with(|c| {
        c.queue_capacity = 1;
        c.threads = 1;
    }) else {
        return;
    };
    let texts: Vec<String> = (0..64)
        .map(|i| format!("sentence number {i} about queues, workers and back-pressure"))
        .collect();
    let expected = model.embed(&texts[..1]).await.unwrap();
    let calls = (0..8).map(|_| model.embed(&texts));
    let results = futures_util::future::join_all(calls).await;
    let mut busy = 0;
    let mut ok = 0;
    for r in results {
        match r {
            Ok(v) => {
                ok += 1;
                assert_eq!(v.len(), texts.len());
                assert!(max_diff(&v[0], &expected[0]) < 1e-4);
            }
            Err(LlmError::RateLimited { message, .. }) => {
                assert_eq!(message, "busy");
                busy += 1;
            }
            Err(e) => panic!("unexpected error {e:?}"),
        }
    }
    eprintln!("8 concurrent requests, queue of 1: {ok} served, {busy} busy");
    assert!(ok >= 1 && busy >= 1, "ok {ok}, busy {busy}");
    // Once the queue has drained the model serves again.
    assert_eq!(model.embed(&texts[..2]).await.unwrap().len(), 2);
}

/// A fresh scratch folder under the system temp dir.
fn scratch(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("confab-local-embed-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn config_error(config: LocalEmbedConfig) -> String {
    match LocalEmbedder::load(config) {
        Err(LlmError::Config(message)) => message,
        other => panic!("expected a Config error, got {other:?}"),
    }
}

#[test]
fn bad_model_folders_are_config_errors() {
    let missing = config_error(LocalEmbedConfig::new("/nonexistent/all-MiniLM-L6-v2"));
    assert!(
        missing.contains("/nonexistent/all-MiniLM-L6-v2"),
        "{missing}"
    );
    assert!(missing.contains("not a folder"), "{missing}");

    let empty = scratch("empty");
    let message = config_error(LocalEmbedConfig::new(&empty));
    assert!(message.contains("config.json"), "{message}");

    let bad_config = scratch("bad-config");
    std::fs::write(bad_config.join("config.json"), "{\"hidden_size\": \"x\"}").unwrap();
    let message = config_error(LocalEmbedConfig::new(&bad_config));
    assert!(message.contains("not a BERT config"), "{message}");

    // A real config and tokenizer but garbage weights.
    if let Some(real) = confab_testkit::local_embed_model_dir() {
        let bad_weights = scratch("bad-weights");
        for f in ["config.json", "tokenizer.json"] {
            std::fs::copy(real.join(f), bad_weights.join(f)).unwrap();
        }
        let message = config_error(LocalEmbedConfig::new(&bad_weights));
        assert!(message.contains("model.safetensors"), "{message}");
        std::fs::write(bad_weights.join("model.safetensors"), b"not safetensors").unwrap();
        let message = config_error(LocalEmbedConfig::new(&bad_weights));
        assert!(message.contains("model.safetensors"), "{message}");
        let _ = std::fs::remove_dir_all(&bad_weights);
    }

    let mut zero_batch = LocalEmbedConfig::new(&empty);
    zero_batch.batch_size = 0;
    assert!(config_error(zero_batch).contains("batch_size"));
    for dir in [empty, bad_config] {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Vectors from an independent NumPy float64 implementation of BERT +
/// mean pooling (`tests/local_embed_reference.py`, output in
/// `tests/fixtures/minilm_reference.json`); its "hello world" vector starts
/// like sentence-transformers' (-0.03447727, 0.03102318, 0.00673500, ...).
#[tokio::test]
async fn matches_the_reference_implementation() {
    let Some(model) = load() else { return };
    #[derive(serde::Deserialize)]
    struct Reference {
        text: String,
        vector: Vec<f32>,
    }
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/minilm_reference.json");
    let references: Vec<Reference> =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert!(references.len() >= 4);
    let texts: Vec<String> = references.iter().map(|r| r.text.clone()).collect();
    let vectors = model.embed(&texts).await.unwrap();
    for (r, v) in references.iter().zip(&vectors) {
        assert_eq!(r.vector.len(), 384);
        let diff = max_diff(&r.vector, v);
        let cosine = dot(&r.vector, v);
        eprintln!("{:?}: max abs diff {diff:e}, cosine {cosine:.7}", r.text);
        assert!(
            diff < 1e-4 && cosine > 0.9999,
            "{:?}: diff {diff}, cosine {cosine}",
            r.text
        );
    }
}
