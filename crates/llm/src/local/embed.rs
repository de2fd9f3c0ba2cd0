//! [`LocalEmbedder`]: BERT-family sentence-transformer embeddings on the CPU
//! with candle (default model: all-MiniLM-L6-v2, 384 dimensions).
//!
//! A model folder holds `model.safetensors`, `tokenizer.json` and
//! `config.json` (a Hugging Face BERT config). Texts are tokenized with
//! truncation to `max_length` word pieces (default: the model's
//! `max_position_embeddings`), sorted by length and grouped into batches of
//! similar length (see [`plan_batches`]), each padded to its longest text,
//! run through candle's `BertModel`, mean-pooled over the attention mask and
//! L2-normalised, as sentence-transformers does.
//!
//! One dedicated worker thread owns the model and a rayon pool of
//! `threads` threads that candle's kernels run on; requests reach it through
//! a bounded queue (full: [`LlmError::RateLimited`] `busy`) and results come
//! back over a oneshot channel, so the async runtime never computes.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config as BertConfig};
use tokenizers::{Tokenizer, TruncationParams};
use tokio::sync::oneshot;

use crate::error::LlmError;
use crate::{BoxFuture, EmbeddingModel};

/// Settings of a [`LocalEmbedder`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalEmbedConfig {
    /// Folder with `model.safetensors`, `tokenizer.json` and `config.json`.
    pub model_dir: PathBuf,
    /// CPU threads for inference (0 = all cores).
    pub threads: usize,
    /// Most texts per forward pass (requests are split into batches of
    /// similar length, each at most this big).
    pub batch_size: usize,
    /// Requests that may wait for the worker before callers get `busy`.
    pub queue_capacity: usize,
    /// Word pieces kept per text, special tokens included (0 = the model's
    /// `max_position_embeddings`; longer texts are truncated).
    pub max_length: usize,
}

impl LocalEmbedConfig {
    /// Defaults for a model folder: all cores, batches of 32, a queue of
    /// 32 requests, truncation at the model's maximum positions.
    pub fn new(model_dir: impl Into<PathBuf>) -> Self {
        Self {
            model_dir: model_dir.into(),
            threads: 0,
            batch_size: 32,
            queue_capacity: 32,
            max_length: 0,
        }
    }
}

/// A sentence embedder running in-process on the CPU. Cheap to clone.
#[derive(Clone)]
pub struct LocalEmbedder {
    inner: Arc<Inner>,
}

struct Inner {
    model_id: String,
    dimensions: usize,
    max_length: usize,
    config: LocalEmbedConfig,
    jobs: SyncSender<Job>,
}

/// One request for the worker: texts in, vectors (or an error) out.
struct Job {
    texts: Vec<String>,
    reply: oneshot::Sender<Result<Vec<Vec<f32>>, LlmError>>,
}

impl fmt::Debug for LocalEmbedder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalEmbedder")
            .field("model_id", &self.inner.model_id)
            .field("dimensions", &self.inner.dimensions)
            .field("max_length", &self.inner.max_length)
            .field("config", &self.inner.config)
            .finish()
    }
}

fn config_error(dir: &Path, what: &str, err: impl fmt::Display) -> LlmError {
    LlmError::Config(format!(
        "local embedding model {}: {what}: {err}",
        dir.display()
    ))
}

impl LocalEmbedder {
    /// Loads the model and starts its worker thread. Blocking (reads about
    /// 90 MB for all-MiniLM-L6-v2): call it from a blocking context. A
    /// missing or unreadable folder or file is an [`LlmError::Config`].
    pub fn load(config: LocalEmbedConfig) -> Result<Self, LlmError> {
        let started = Instant::now();
        let dir = config.model_dir.clone();
        if config.batch_size == 0 || config.queue_capacity == 0 {
            return Err(config_error(
                &dir,
                "settings",
                "batch_size and queue_capacity must be at least 1",
            ));
        }
        if !dir.is_dir() {
            return Err(config_error(
                &dir,
                "not a folder",
                "expected model.safetensors, tokenizer.json and config.json (run `make models`)",
            ));
        }
        let config_path = dir.join("config.json");
        let text = std::fs::read_to_string(&config_path)
            .map_err(|e| config_error(&dir, "cannot read config.json", e))?;
        let bert: BertConfig = serde_json::from_str(&text)
            .map_err(|e| config_error(&dir, "config.json is not a BERT config", e))?;
        let max_length = match config.max_length {
            0 => bert.max_position_embeddings,
            n => n.min(bert.max_position_embeddings),
        };
        if max_length < 2 {
            return Err(config_error(
                &dir,
                "settings",
                "max_length must be at least 2",
            ));
        }

        let mut tokenizer = Tokenizer::from_file(dir.join("tokenizer.json"))
            .map_err(|e| config_error(&dir, "cannot load tokenizer.json", e))?;
        // The shipped tokenizer pads every text to 128 and truncates there:
        // we pad per batch ourselves and truncate at `max_length`.
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length,
                ..TruncationParams::default()
            }))
            .map_err(|e| config_error(&dir, "tokenizer truncation", e))?;

        let weights = std::fs::read(dir.join("model.safetensors"))
            .map_err(|e| config_error(&dir, "cannot read model.safetensors", e))?;
        let device = Device::Cpu;
        let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &device)
            .map_err(|e| config_error(&dir, "model.safetensors is not valid safetensors", e))?;
        let model = BertModel::load(vb, &bert)
            .map_err(|e| config_error(&dir, "model.safetensors does not match config.json", e))?;

        let threads = match config.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("confab-embed-{i}"))
            .build()
            .map_err(|e| config_error(&dir, "cannot start inference threads", e))?;

        let model_id = dir.file_name().map_or_else(
            || dir.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let worker = Worker {
            model,
            tokenizer,
            pool,
            device,
            batch_size: config.batch_size,
            pad_id: u32::try_from(bert.pad_token_id).unwrap_or(0),
        };
        let (jobs, queue) = std::sync::mpsc::sync_channel(config.queue_capacity);
        std::thread::Builder::new()
            .name("confab-embed".into())
            .spawn(move || worker.run(queue))
            .map_err(|e| config_error(&dir, "cannot start the worker thread", e))?;
        tracing::info!(
            model = %model_id,
            dimensions = bert.hidden_size,
            max_length,
            threads,
            load_ms = started.elapsed().as_millis() as u64,
            "local embedding model loaded"
        );
        Ok(Self {
            inner: Arc::new(Inner {
                model_id,
                dimensions: bert.hidden_size,
                max_length,
                config,
                jobs,
            }),
        })
    }

    /// The model's name (its folder name, e.g. `all-MiniLM-L6-v2`).
    pub fn model_id(&self) -> &str {
        &self.inner.model_id
    }

    /// Word pieces kept per text (longer texts are truncated).
    pub fn max_length(&self) -> usize {
        self.inner.max_length
    }

    /// The settings it was loaded with.
    pub fn config(&self) -> &LocalEmbedConfig {
        &self.inner.config
    }

    async fn run(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, LlmError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, answer) = oneshot::channel();
        match self.inner.jobs.try_send(Job { texts, reply }) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                return Err(LlmError::RateLimited {
                    message: "busy".into(),
                    retry_after: None,
                });
            }
            Err(TrySendError::Disconnected(_)) => {
                return Err(LlmError::Unavailable(
                    "local embedding worker has stopped".into(),
                ));
            }
        }
        answer.await.map_err(|_| {
            LlmError::Unavailable("local embedding worker dropped the request".into())
        })?
    }
}

impl EmbeddingModel for LocalEmbedder {
    fn dimensions(&self) -> usize {
        self.inner.dimensions
    }

    fn embed<'a>(&'a self, texts: &'a [String]) -> BoxFuture<'a, Result<Vec<Vec<f32>>, LlmError>> {
        Box::pin(self.run(texts.to_vec()))
    }
}

/// The model, owned by the worker thread.
struct Worker {
    model: BertModel,
    tokenizer: Tokenizer,
    pool: rayon::ThreadPool,
    device: Device,
    batch_size: usize,
    pad_id: u32,
}

/// Fixed cost of one forward pass, in padded tokens: about what one pass
/// costs beyond its tokens (six layers of small kernels, each waking the
/// inference threads). Measured on 2 cores with all-MiniLM-L6-v2: a lone
/// text costs about 7 ms plus 0.35 ms per token, batched tokens about
/// 0.33 ms each, so one pass is worth about 20 tokens of padding.
const FORWARD_COST_TOKENS: usize = 20;

/// Splits texts sorted by ascending token count into consecutive batches of
/// at most `max_batch`, minimising the padded work: each batch costs
/// [`FORWARD_COST_TOKENS`] plus its size times its longest length. One
/// batch of 32 texts of 10 to 90 tokens pads to 90 and wastes most of its
/// work (measured: slower than one text at a time); a few batches of similar
/// lengths keep the bigger matrix products without the padding. Returns the
/// end index of each batch.
fn plan_batches(sorted_lengths: &[usize], max_batch: usize) -> Vec<usize> {
    let n = sorted_lengths.len();
    let max_batch = max_batch.max(1);
    // best[j]: least cost of the first j texts; from[j]: where its last batch starts.
    let mut best = vec![0usize; n + 1];
    let mut from = vec![0usize; n + 1];
    for j in 1..=n {
        let longest = sorted_lengths[j - 1];
        best[j] = usize::MAX;
        for i in j.saturating_sub(max_batch)..j {
            let cost = best[i] + FORWARD_COST_TOKENS + (j - i) * longest;
            // `<=` prefers the earliest start: fewer, bigger batches on ties.
            if cost <= best[j] {
                best[j] = cost;
                from[j] = i;
            }
        }
    }
    let mut ends = Vec::new();
    let mut j = n;
    while j > 0 {
        ends.push(j);
        j = from[j];
    }
    ends.reverse();
    ends
}

fn inference_error(err: impl fmt::Display) -> LlmError {
    LlmError::Unavailable(format!("local embedding failed: {err}"))
}

impl Worker {
    /// Serves jobs until every [`LocalEmbedder`] clone is dropped.
    fn run(self, queue: Receiver<Job>) {
        while let Ok(job) = queue.recv() {
            if job.reply.is_closed() {
                continue; // the caller gave up while queued
            }
            let result = self.pool.install(|| self.embed(&job.texts, &job.reply));
            // The caller may have gone away meanwhile: nothing to do then.
            let _ = job.reply.send(result);
        }
    }

    /// Embeds `texts`, shortest first in batches of similar length (at most
    /// `batch_size`, see [`plan_batches`]), returned in the original order.
    fn embed(
        &self,
        texts: &[String],
        reply: &oneshot::Sender<Result<Vec<Vec<f32>>, LlmError>>,
    ) -> Result<Vec<Vec<f32>>, LlmError> {
        let inputs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let encodings = self
            .tokenizer
            .encode_batch(inputs, true)
            .map_err(|e| LlmError::InvalidRequest(format!("cannot tokenize: {e}")))?;
        let mut order: Vec<usize> = (0..encodings.len()).collect();
        order.sort_by_key(|&i| encodings[i].get_ids().len());
        let lengths: Vec<usize> = order
            .iter()
            .map(|&i| encodings[i].get_ids().len())
            .collect();
        let mut out: Vec<Vec<f32>> = vec![Vec::new(); texts.len()];
        let mut start = 0;
        for end in plan_batches(&lengths, self.batch_size) {
            let chunk = &order[start..end];
            start = end;
            if reply.is_closed() {
                return Err(LlmError::Cancelled);
            }
            let batch: Vec<(&[u32], &[u32])> = chunk
                .iter()
                .map(|&i| (encodings[i].get_ids(), encodings[i].get_type_ids()))
                .collect();
            let vectors = self.forward(&batch).map_err(inference_error)?;
            for (&i, v) in chunk.iter().zip(vectors) {
                out[i] = v;
            }
        }
        Ok(out)
    }

    /// One padded forward pass: mean pooling over the mask, L2 norm.
    fn forward(&self, batch: &[(&[u32], &[u32])]) -> candle_core::Result<Vec<Vec<f32>>> {
        let n = batch.len();
        let len = batch.iter().map(|(ids, _)| ids.len()).max().unwrap_or(0);
        let mut ids = Vec::with_capacity(n * len);
        let mut types = Vec::with_capacity(n * len);
        let mut mask = Vec::with_capacity(n * len);
        for (row_ids, row_types) in batch {
            let pad = len - row_ids.len();
            ids.extend_from_slice(row_ids);
            ids.extend(std::iter::repeat_n(self.pad_id, pad));
            types.extend_from_slice(row_types);
            types.extend(std::iter::repeat_n(0u32, pad));
            mask.extend(std::iter::repeat_n(1u32, row_ids.len()));
            mask.extend(std::iter::repeat_n(0u32, pad));
        }
        let ids = Tensor::from_vec(ids, (n, len), &self.device)?;
        let types = Tensor::from_vec(types, (n, len), &self.device)?;
        let mask = Tensor::from_vec(mask, (n, len), &self.device)?;
        let hidden = self.model.forward(&ids, &types, Some(&mask))?; // (n, len, dim)
        let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?; // (n, len, 1)
        let summed = hidden.broadcast_mul(&mask)?.sum(1)?; // (n, dim)
        let counts = mask.sum(1)?.clamp(1e-9f32, f32::MAX)?; // (n, 1)
        let mean = summed.broadcast_div(&counts)?;
        let norms = mean
            .sqr()?
            .sum_keepdim(1)?
            .sqrt()?
            .clamp(1e-12f32, f32::MAX)?;
        mean.broadcast_div(&norms)?.to_vec2::<f32>()
    }
}

#[cfg(test)]
mod tests {
    use super::{FORWARD_COST_TOKENS, plan_batches};

    /// Checks the plan covers every text once, in order, within the cap.
    fn check(lengths: &[usize], cap: usize) -> Vec<usize> {
        let ends = plan_batches(lengths, cap);
        let mut start = 0;
        for &end in &ends {
            assert!(end > start && end - start <= cap, "{ends:?}");
            start = end;
        }
        assert_eq!(start, lengths.len(), "{ends:?}");
        ends
    }

    #[test]
    fn equal_lengths_fill_batches_to_the_cap() {
        assert_eq!(check(&[12; 70], 32), vec![32, 64, 70]);
        assert_eq!(check(&[12; 5], 1), vec![1, 2, 3, 4, 5]);
        assert!(check(&[], 32).is_empty());
    }

    #[test]
    fn very_different_lengths_go_to_different_batches() {
        let mut lengths = vec![10; 16];
        lengths.extend([90; 16]);
        assert_eq!(check(&lengths, 32), vec![16, 32]);
        // One long outlier is not worth padding 31 short texts to its length.
        let mut lengths = vec![10; 31];
        lengths.push(200);
        assert_eq!(check(&lengths, 32), vec![31, 32]);
    }

    #[test]
    fn small_differences_stay_in_one_batch() {
        // Splitting would save less padding than one more pass costs.
        let mut lengths = vec![20; 8];
        lengths.extend([21; 8]);
        const { assert!(8 < FORWARD_COST_TOKENS) };
        assert_eq!(check(&lengths, 32), vec![16]);
    }

    #[test]
    fn spread_lengths_cost_less_than_one_padded_batch() {
        let lengths: Vec<usize> = (0..32).map(|i| 12 + i * 2).collect();
        let ends = check(&lengths, 32);
        assert!(ends.len() > 1, "{ends:?}");
        let mut start = 0;
        let mut cost = 0;
        for &end in &ends {
            cost += FORWARD_COST_TOKENS + (end - start) * lengths[end - 1];
            start = end;
        }
        assert!(cost < FORWARD_COST_TOKENS + 32 * lengths[31], "{cost}");
    }
}
