//! [`LocalChat`]: a GGUF chat model (SmolLM2 by default) running in-process
//! on the CPU with llama.cpp (the `llama-cpp-2` binding, built from source).
//!
//! Work in progress (issue 20, feature `llama`, not enabled by the
//! binaries): written against llama-cpp-2 0.1.160 but not yet compiled or
//! run here (building llama.cpp did not finish in the session). Build with
//! `GGML_AVX=ON GGML_AVX2=ON GGML_FMA=ON GGML_F16C=ON GGML_BMI2=ON` in the
//! environment (llama-cpp-sys-2 passes `GGML_*` to cmake; without them it
//! builds scalar kernels), plus cmake and libclang.
//!
//! One worker thread owns the model and a llama.cpp context with
//! [`LocalChatConfig::slots`] sequences. Requests wait in a bounded queue
//! (a full queue is an immediate [`LlmError::RateLimited`], `busy`) until a
//! slot is free; the worker then runs every active slot in one batch per
//! step: prompt chunks of new requests beside one token of each request
//! that is generating (continuous batching), so a fourth user does not
//! wait for three whole answers. Tokens are streamed as they are produced;
//! dropping the stream frees its slot before the next step.
//!
//! Prompt-prefix reuse: a slot keeps the tokens of its last request in the
//! KV cache after it finishes. A new request goes to the free slot whose
//! cached tokens share the longest prefix with its prompt, and only the
//! rest of the prompt is computed: the second turn of a conversation costs
//! its new messages, not the whole history. Memory is bounded by the
//! context: `slots x context_window` tokens of KV cache.
//!
//! The prompt is rendered with the GGUF's `tokenizer.chat_template` (Jinja,
//! through minijinja), falling back to ChatML, and tokenized by llama.cpp
//! (as its own server does). Context window: when the prompt plus
//! `max_tokens` does not fit, the oldest non-system messages are dropped
//! (the last message is always kept); a prompt that still does not fit is
//! [`LlmError::ContextLength`]. Generation stops (finish `length`) at the
//! end of the window.

use std::collections::HashSet;
use std::fmt;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, OnceLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::token::LlamaToken;
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};

use crate::error::LlmError;
use crate::types::{ChatChunk, ChatMessage, ChatRequest, FinishReason, Role, Usage};
use crate::{ChatModel, ChatStream};

/// The largest context window used (tokens of prompt plus reply per slot).
pub const MAX_CONTEXT: usize = 4096;

/// Settings of a [`LocalChat`].
#[derive(Debug, Clone, PartialEq)]
pub struct LocalChatConfig {
    /// The `.gguf` file.
    pub model_path: PathBuf,
    /// CPU threads of llama.cpp (0 = all cores).
    pub threads: usize,
    /// Requests that may wait for a free slot before callers get `busy`.
    pub queue_capacity: usize,
    /// Requests generated at once (batched decode), and conversations whose
    /// last turn stays in the KV cache for prefix reuse. KV memory is
    /// `slots x context_window` tokens (about 23 KB a token for SmolLM2-135M).
    pub slots: usize,
    /// Tokens of prompt plus reply per slot (0 = the model's training
    /// context, at most [`MAX_CONTEXT`]).
    pub context_window: usize,
    /// Prompt tokens computed per batch (llama.cpp's `n_batch`).
    pub batch_tokens: usize,
    /// Tokens generated when a request gives no `max_tokens`.
    pub max_tokens: u32,
    /// Temperature when a request gives none (0 = greedy).
    pub temperature: f32,
    /// Nucleus sampling mass when a request gives none (1 = off).
    pub top_p: f32,
    /// Only the `top_k` most likely tokens are sampled from (0 = all).
    pub top_k: usize,
    /// Penalty on tokens seen in the last `repeat_last_n` (1 = off).
    pub repeat_penalty: f32,
    /// How many recent tokens the repeat penalty looks at.
    pub repeat_last_n: usize,
    /// Model id to report (default: the file name without its quantization,
    /// lowercased, e.g. `smollm2-135m-instruct`).
    pub model_id: Option<String>,
}

impl LocalChatConfig {
    /// Defaults for a model file: all cores, a queue of 8, 4 slots, a
    /// 2048-token window, 256 tokens, llama.cpp's sampling defaults
    /// (temperature 0.8, top-p 0.95, top-k 40, repeat penalty 1.1 over 64
    /// tokens).
    pub fn new(model_path: impl Into<PathBuf>) -> Self {
        Self {
            model_path: model_path.into(),
            threads: 0,
            queue_capacity: 8,
            slots: 4,
            context_window: 2048,
            batch_tokens: 512,
            max_tokens: 256,
            temperature: 0.8,
            top_p: 0.95,
            top_k: 40,
            repeat_penalty: 1.1,
            repeat_last_n: 64,
            model_id: None,
        }
    }
}

/// A GGUF chat model running in-process on the CPU. Cheap to clone: every
/// clone shares the one loaded model.
#[derive(Clone)]
pub struct LocalChat {
    inner: Arc<Inner>,
}

struct Inner {
    model_id: String,
    description: String,
    context_window: usize,
    config: LocalChatConfig,
    jobs: SyncSender<Job>,
}

/// One request for the worker; chunks go back over `out`.
struct Job {
    request: ChatRequest,
    out: UnboundedSender<Result<ChatChunk, LlmError>>,
}

impl fmt::Debug for LocalChat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalChat")
            .field("model_id", &self.inner.model_id)
            .field("context_window", &self.inner.context_window)
            .field("config", &self.inner.config)
            .finish()
    }
}

fn config_error(path: &Path, what: &str, err: impl fmt::Display) -> LlmError {
    LlmError::Config(format!(
        "local chat model {}: {what}: {err}",
        path.display()
    ))
}

fn inference_error(err: impl fmt::Display) -> LlmError {
    LlmError::Unavailable(format!("local chat model failed: {err}"))
}

/// llama.cpp's backend is process-wide and may be initialised once; every
/// model shares it. (The one static of this crate: it mirrors llama.cpp's
/// own global state, it holds no configuration.)
fn backend() -> Result<&'static LlamaBackend, LlmError> {
    static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            llama_cpp_2::send_logs_to_tracing(llama_cpp_2::LogOptions::default());
            LlamaBackend::init().map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| LlmError::Config(format!("cannot start llama.cpp: {e}")))
}

impl LocalChat {
    /// Loads the model and starts its worker thread. Blocking (reads the
    /// whole file): call it from a blocking context. A missing or invalid
    /// file is an [`LlmError::Config`].
    pub fn load(config: LocalChatConfig) -> Result<Self, LlmError> {
        let started = Instant::now();
        let path = config.model_path.clone();
        if config.queue_capacity == 0 || config.slots == 0 || config.batch_tokens == 0 {
            return Err(config_error(
                &path,
                "settings",
                "queue_capacity, slots and batch_tokens must be at least 1",
            ));
        }
        let mut magic = [0u8; 4];
        std::fs::File::open(&path)
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
            .map_err(|e| config_error(&path, "cannot open (run `make models`)", e))?;
        if &magic != b"GGUF" {
            return Err(config_error(&path, "not a GGUF file", "bad magic"));
        }
        let backend = backend()?;
        let threads = match config.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let model_id = config
            .model_id
            .clone()
            .unwrap_or_else(|| model_id_of(&path));
        let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
        let (jobs, queue) = std::sync::mpsc::sync_channel(config.queue_capacity);
        let worker_config = config.clone();
        std::thread::Builder::new()
            .name("confab-chat".into())
            .spawn(move || {
                let loaded = Loaded::load(backend, &worker_config);
                let model = match loaded {
                    Ok(model) => model,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let params = LlamaContextParams::default()
                    .with_n_ctx(NonZeroU32::new(
                        (model.context_window * worker_config.slots) as u32,
                    ))
                    .with_n_batch(worker_config.batch_tokens.max(worker_config.slots) as u32)
                    .with_n_ubatch(worker_config.batch_tokens as u32)
                    .with_n_seq_max(worker_config.slots as u32)
                    .with_n_threads(threads as i32)
                    .with_n_threads_batch(threads as i32);
                let ctx = match model.model.new_context(backend, params) {
                    Ok(ctx) => ctx,
                    Err(e) => {
                        let _ = ready_tx.send(Err(config_error(
                            &worker_config.model_path,
                            "cannot create a llama.cpp context",
                            e,
                        )));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok((model.context_window, model.description.clone())));
                Worker::new(&model, ctx, &worker_config).run(queue);
            })
            .map_err(|e| config_error(&path, "cannot start the worker thread", e))?;
        let (context_window, description) = ready_rx
            .recv()
            .map_err(|e| config_error(&path, "the worker thread stopped", e))??;
        tracing::info!(
            model = %model_id,
            engine = "llama.cpp",
            about = %description,
            context_window,
            slots = config.slots,
            threads,
            load_ms = started.elapsed().as_millis() as u64,
            "local chat model loaded"
        );
        Ok(Self {
            inner: Arc::new(Inner {
                model_id,
                description,
                context_window,
                config,
                jobs,
            }),
        })
    }

    /// The model's id (e.g. `smollm2-135m-instruct`).
    pub fn model_id(&self) -> &str {
        &self.inner.model_id
    }

    /// What the GGUF says about itself: architecture, parameters, size.
    pub fn description(&self) -> &str {
        &self.inner.description
    }

    /// Tokens of prompt plus reply the model handles per request.
    pub fn context_window(&self) -> usize {
        self.inner.context_window
    }

    /// The settings it was loaded with.
    pub fn config(&self) -> &LocalChatConfig {
        &self.inner.config
    }
}

impl ChatModel for LocalChat {
    fn provider(&self) -> &str {
        "local"
    }

    fn default_model(&self) -> &str {
        &self.inner.model_id
    }

    fn about(&self) -> Option<String> {
        Some(format!(
            "{} in-process on the CPU with llama.cpp ({}): a tiny model, good for trying confab offline and for short answers quoted from the retrieved sources; it gets facts wrong more often than a large model; {}",
            self.inner.model_id,
            self.inner.description,
            crate::SWITCH_HINT
        ))
    }

    fn stream(&self, request: ChatRequest) -> ChatStream {
        let (out, mut rx) = unbounded_channel();
        let queued = match self.inner.jobs.try_send(Job { request, out }) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(LlmError::RateLimited {
                message: "busy: the local chat model's queue is full".into(),
                retry_after: None,
            }),
            Err(TrySendError::Disconnected(_)) => Err(LlmError::Unavailable(
                "local chat worker has stopped".into(),
            )),
        };
        Box::pin(async_stream::stream! {
            if let Err(e) = queued {
                yield Err(e);
                return;
            }
            let mut finished = false;
            while let Some(item) = rx.recv().await {
                let done = matches!(item, Ok(ChatChunk::Finish(_)) | Err(_));
                yield item;
                if done {
                    finished = true;
                    break;
                }
            }
            if !finished {
                yield Err(LlmError::Unavailable("local chat worker dropped the request".into()));
            }
        })
    }
}

/// `raise_exception(msg)` as Hugging Face chat templates use it.
fn raise_exception(msg: String) -> Result<String, minijinja::Error> {
    Err(minijinja::Error::new(
        minijinja::ErrorKind::InvalidOperation,
        msg,
    ))
}

/// `SmolLM2-135M-Instruct.Q4_1.gguf` -> `smollm2-135m-instruct`.
fn model_id_of(path: &Path) -> String {
    let name = path
        .file_name()
        .map_or_else(|| "local".to_owned(), |n| n.to_string_lossy().into_owned());
    let stem = name.split('.').next().unwrap_or(&name);
    if stem.is_empty() {
        "local".to_owned()
    } else {
        stem.to_lowercase()
    }
}

/// The model and what the worker needs from its metadata.
struct Loaded {
    model: LlamaModel,
    template: Option<minijinja::Environment<'static>>,
    context_window: usize,
    description: String,
}

impl Loaded {
    fn load(backend: &LlamaBackend, config: &LocalChatConfig) -> Result<Self, LlmError> {
        let path = &config.model_path;
        let model = LlamaModel::load_from_file(backend, path, &LlamaModelParams::default())
            .map_err(|e| config_error(path, "not a GGUF file llama.cpp can load", e))?;
        let trained = model.n_ctx_train() as usize;
        let context_window = match config.context_window {
            0 => trained.min(MAX_CONTEXT),
            n => n.min(MAX_CONTEXT).min(trained.max(1)),
        };
        let template = model
            .meta_val_str("tokenizer.chat_template")
            .ok()
            .and_then(|source| {
                let mut env = minijinja::Environment::new();
                env.add_function("raise_exception", raise_exception);
                match env.add_template_owned("chat", source) {
                    Ok(()) => Some(env),
                    Err(e) => {
                        tracing::warn!(error = %e, "GGUF chat template does not parse; using ChatML");
                        None
                    }
                }
            });
        let arch = model
            .meta_val_str("general.architecture")
            .unwrap_or_else(|_| "unknown".into());
        let description = format!(
            "{arch}, {:.0}M parameters, {:.0} MB, trained context {trained}",
            model.n_params() as f64 / 1e6,
            model.size() as f64 / 1e6,
        );
        Ok(Self {
            model,
            template,
            context_window,
            description,
        })
    }
}

/// A request being served in a slot.
struct Active {
    out: UnboundedSender<Result<ChatChunk, LlmError>>,
    sampler: Sampler,
    text: TextStream,
    /// The prompt; `slot.tokens` catches up with it during prefill.
    prompt_len: usize,
    pending_prompt: Vec<LlamaToken>,
    /// The sampled token not yet fed back to the model.
    next: Option<LlamaToken>,
    generated: usize,
    max_tokens: usize,
    /// Index of this slot's logits in the current batch.
    logits_at: Option<i32>,
}

/// One sequence of the llama.cpp context.
struct Slot {
    /// Tokens whose keys and values are in the cache, in order.
    tokens: Vec<LlamaToken>,
    active: Option<Active>,
    /// When it last served a request (for picking the least recently used).
    used: u64,
}

/// The model, owned by the worker thread.
struct Worker<'m> {
    model: &'m Loaded,
    ctx: LlamaContext<'m>,
    slots: Vec<Slot>,
    config: LocalChatConfig,
    batch: LlamaBatch<'static>,
    clock: u64,
}

/// How a step ended for one slot.
enum End {
    Finished(FinishReason),
    /// The caller dropped the stream.
    Gone,
}

impl<'m> Worker<'m> {
    fn new(model: &'m Loaded, ctx: LlamaContext<'m>, config: &LocalChatConfig) -> Self {
        let slots = (0..config.slots)
            .map(|_| Slot {
                tokens: Vec::new(),
                active: None,
                used: 0,
            })
            .collect();
        Self {
            model,
            ctx,
            slots,
            config: config.clone(),
            batch: LlamaBatch::new(config.batch_tokens.max(config.slots), 1),
            clock: 0,
        }
    }

    /// Serves jobs until every [`LocalChat`] clone is dropped.
    fn run(mut self, queue: Receiver<Job>) {
        loop {
            let busy = self.slots.iter().any(|s| s.active.is_some());
            // Take new jobs while a slot is free; block only when idle.
            while self.slots.iter().any(|s| s.active.is_none()) {
                let job = if busy || self.slots.iter().any(|s| s.active.is_some()) {
                    match queue.try_recv() {
                        Ok(job) => job,
                        Err(TryRecvError::Empty) => break,
                        Err(TryRecvError::Disconnected) => return,
                    }
                } else {
                    match queue.recv() {
                        Ok(job) => job,
                        Err(_) => return,
                    }
                };
                self.start(job);
            }
            if self.slots.iter().any(|s| s.active.is_some()) {
                self.step();
            }
        }
    }

    /// Puts a job in the free slot with the longest cached common prefix.
    fn start(&mut self, job: Job) {
        if job.out.is_closed() {
            return; // the caller gave up while queued
        }
        let Job { request, out } = job;
        let max_tokens = request.max_tokens.unwrap_or(self.config.max_tokens) as usize;
        let prompt = match self.prompt(&request, max_tokens) {
            Ok(p) => p,
            Err(e) => {
                let _ = out.send(Err(e));
                return;
            }
        };
        let max_tokens = max_tokens.min(self.model.context_window - prompt.len());
        let mut best: Option<(usize, usize, u64)> = None; // (slot, common, used)
        for (i, slot) in self.slots.iter().enumerate() {
            if slot.active.is_some() {
                continue;
            }
            let common = common_prefix(&slot.tokens, &prompt);
            let better = match best {
                None => true,
                Some((_, c, u)) => common > c || (common == c && slot.used < u),
            };
            if better {
                best = Some((i, common, slot.used));
            }
        }
        let Some((index, common, _)) = best else {
            let _ = out.send(Err(inference_error("no free slot")));
            return;
        };
        // At least one prompt token is computed, for its logits.
        let keep = common.min(prompt.len().saturating_sub(1));
        let trimmed = self
            .ctx
            .clear_kv_cache_seq(Some(index as u32), Some(keep as u32), None);
        if !matches!(trimmed, Ok(true)) {
            let _ = self.ctx.clear_kv_cache_seq(Some(index as u32), None, None);
            self.slots[index].tokens.clear();
        }
        self.clock += 1;
        let slot = &mut self.slots[index];
        slot.tokens.truncate(keep);
        let keep = slot.tokens.len();
        if keep > 0 {
            tracing::debug!(
                slot = index,
                reused = keep,
                prompt = prompt.len(),
                "prompt prefix reused"
            );
        }
        slot.used = self.clock;
        slot.active = Some(Active {
            out,
            sampler: Sampler::new(&request, &self.config),
            text: TextStream::new(&request.stop),
            prompt_len: prompt.len(),
            pending_prompt: prompt[keep..].to_vec(),
            next: None,
            generated: 0,
            max_tokens,
            logits_at: None,
        });
        if max_tokens == 0 {
            self.finish(index, End::Finished(FinishReason::Length));
        }
    }

    /// One batch: a token of every generating slot, then prompt chunks.
    fn step(&mut self) {
        self.batch.clear();
        let capacity = self.config.batch_tokens.max(self.config.slots);
        let mut used = 0usize;
        // Generating slots first: one token each.
        for (i, slot) in self.slots.iter_mut().enumerate() {
            let Some(active) = slot.active.as_mut() else {
                continue;
            };
            active.logits_at = None;
            if let Some(next) = active.next.take() {
                let pos = slot.tokens.len() as i32;
                if self.batch.add(next, pos, &[i as i32], true).is_err() {
                    active.next = Some(next);
                    continue;
                }
                slot.tokens.push(next);
                active.logits_at = Some(used as i32);
                used += 1;
            }
        }
        // Then prompts, in chunks, while the batch has room.
        for (i, slot) in self.slots.iter_mut().enumerate() {
            let Some(active) = slot.active.as_mut() else {
                continue;
            };
            if active.pending_prompt.is_empty() || active.logits_at.is_some() {
                continue;
            }
            let room = capacity - used;
            if room == 0 {
                break;
            }
            let take = room.min(active.pending_prompt.len());
            let last = take == active.pending_prompt.len();
            let chunk: Vec<LlamaToken> = active.pending_prompt.drain(..take).collect();
            for (k, &token) in chunk.iter().enumerate() {
                let pos = slot.tokens.len() as i32;
                let logits = last && k + 1 == take;
                if self.batch.add(token, pos, &[i as i32], logits).is_err() {
                    break;
                }
                slot.tokens.push(token);
                if logits {
                    active.logits_at = Some(used as i32);
                }
                used += 1;
            }
        }
        if used == 0 {
            return;
        }
        if let Err(e) = self.ctx.decode(&mut self.batch) {
            // Fail every request of this batch; their caches are unknown.
            for i in 0..self.slots.len() {
                if self.slots[i].active.is_some() {
                    let _ = self.ctx.clear_kv_cache_seq(Some(i as u32), None, None);
                    self.slots[i].tokens.clear();
                    if let Some(active) = self.slots[i].active.take() {
                        let _ = active.out.send(Err(inference_error(&e)));
                    }
                }
            }
            return;
        }
        for i in 0..self.slots.len() {
            let Some(at) = self.slots[i].active.as_ref().and_then(|a| a.logits_at) else {
                // Still prefilling (or nothing this step): has its caller gone?
                if self.slots[i]
                    .active
                    .as_ref()
                    .is_some_and(|a| a.out.is_closed())
                {
                    self.finish(i, End::Gone);
                }
                continue;
            };
            let mut logits = self.ctx.get_logits_ith(at).to_vec();
            let end = self.advance(i, &mut logits);
            if let Some(end) = end {
                self.finish(i, end);
            }
        }
    }

    /// Samples the slot's next token and streams its text; `Some` when done.
    fn advance(&mut self, i: usize, logits: &mut [f32]) -> Option<End> {
        let model: &'m Loaded = self.model;
        let vocab = model.model.vocab();
        let slot = &mut self.slots[i];
        let active = slot.active.as_mut()?;
        let history: Vec<u32> = slot.tokens.iter().map(|t| t.0 as u32).collect();
        let next = active.sampler.sample(logits, &history);
        let token = LlamaToken(next as i32);
        if vocab.is_eog(token) {
            return Some(End::Finished(FinishReason::Stop));
        }
        active.generated += 1;
        let bytes = vocab.token_to_piece(token, false, None);
        let (piece, stopped) = active.text.push(&bytes);
        if !piece.is_empty() && active.out.send(Ok(ChatChunk::Text(piece))).is_err() {
            return Some(End::Gone);
        }
        if stopped {
            return Some(End::Finished(FinishReason::Stop));
        }
        if active.generated >= active.max_tokens
            || slot.tokens.len() + 1 >= self.model.context_window
        {
            return Some(End::Finished(FinishReason::Length));
        }
        if active.out.is_closed() {
            return Some(End::Gone);
        }
        active.next = Some(token);
        None
    }

    /// Ends the slot's request; its cache stays for prefix reuse.
    fn finish(&mut self, i: usize, end: End) {
        let Some(mut active) = self.slots[i].active.take() else {
            return;
        };
        if !active.pending_prompt.is_empty() {
            // Cut short during prefill: the cache holds a partial prompt,
            // still a valid prefix.
            active.pending_prompt.clear();
        }
        if let End::Finished(reason) = end {
            let rest = active.text.finish();
            if !rest.is_empty() {
                let _ = active.out.send(Ok(ChatChunk::Text(rest)));
            }
            let usage = Usage::new(active.prompt_len as u32, active.generated as u32);
            let _ = active.out.send(Ok(ChatChunk::Usage(usage)));
            let _ = active.out.send(Ok(ChatChunk::Finish(reason)));
        }
    }

    /// Renders the conversation to prompt text.
    fn render(&self, messages: &[ChatMessage]) -> String {
        if let Some(env) = &self.model.template {
            let msgs: Vec<minijinja::Value> = messages
                .iter()
                .map(|m| {
                    minijinja::context! { role => m.role.as_str(), content => m.content.as_str() }
                })
                .collect();
            let rendered = env.get_template("chat").and_then(|t| {
                t.render(minijinja::context! {
                    messages => msgs,
                    add_generation_prompt => true,
                    bos_token => "",
                    eos_token => "",
                })
            });
            match rendered {
                Ok(text) => return text,
                Err(e) => {
                    tracing::debug!(error = %e, "chat template failed; using ChatML");
                }
            }
        }
        let mut text = String::new();
        for m in messages {
            text.push_str("<|im_start|>");
            text.push_str(m.role.as_str());
            text.push('\n');
            text.push_str(&m.content);
            text.push_str("<|im_end|>\n");
        }
        text.push_str("<|im_start|>assistant\n");
        text
    }

    fn encode(&self, text: &str) -> Vec<LlamaToken> {
        // As llama.cpp's server: the model's BOS when it wants one, and
        // special tokens of the template parsed as such.
        self.model
            .model
            .vocab()
            .tokenize(text.as_bytes(), true, true)
    }

    /// The prompt tokens, dropping the oldest non-system messages until the
    /// prompt and `max_tokens` fit the window.
    fn prompt(
        &self,
        request: &ChatRequest,
        max_tokens: usize,
    ) -> Result<Vec<LlamaToken>, LlmError> {
        let mut messages = request.messages.clone();
        if messages.is_empty() {
            return Err(LlmError::InvalidRequest("no messages".into()));
        }
        let window = self.model.context_window;
        loop {
            let ids = self.encode(&self.render(&messages));
            if ids.len() + max_tokens <= window {
                return Ok(ids);
            }
            let last = messages.len() - 1;
            match messages[..last].iter().position(|m| m.role != Role::System) {
                Some(i) => {
                    messages.remove(i);
                }
                None if !ids.is_empty() && ids.len() < window => return Ok(ids),
                None => {
                    return Err(LlmError::ContextLength(format!(
                        "the prompt is {} tokens; the local model's window is {window}",
                        ids.len(),
                    )));
                }
            }
        }
    }
}

fn common_prefix(a: &[LlamaToken], b: &[LlamaToken]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// Sampling state of one request (llama.cpp's order: repeat penalty,
/// top-k, temperature, top-p).
struct Sampler {
    temperature: f32,
    top_p: f32,
    top_k: usize,
    repeat_penalty: f32,
    repeat_last_n: usize,
    rng: u64,
    seen: HashSet<u32>,
    candidates: Vec<(u32, f32)>,
}

impl Sampler {
    fn new(request: &ChatRequest, config: &LocalChatConfig) -> Self {
        let seed = request.seed.unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0x5eed, |d| d.as_nanos() as u64)
        });
        Self {
            temperature: request.temperature.unwrap_or(config.temperature),
            top_p: request.top_p.unwrap_or(config.top_p),
            top_k: config.top_k,
            repeat_penalty: config.repeat_penalty,
            repeat_last_n: config.repeat_last_n,
            rng: seed,
            seen: HashSet::new(),
            candidates: Vec::new(),
        }
    }

    /// SplitMix64: a uniform float in [0, 1).
    fn uniform(&mut self) -> f32 {
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z >> 40) as f32 / (1u64 << 24) as f32
    }

    fn sample(&mut self, logits: &mut [f32], context: &[u32]) -> u32 {
        if self.repeat_penalty != 1.0 && self.repeat_last_n > 0 {
            self.seen.clear();
            let from = context.len().saturating_sub(self.repeat_last_n);
            for &id in &context[from..] {
                if self.seen.insert(id)
                    && let Some(l) = logits.get_mut(id as usize)
                {
                    *l = if *l >= 0.0 {
                        *l / self.repeat_penalty
                    } else {
                        *l * self.repeat_penalty
                    };
                }
            }
        }
        if self.temperature <= 1e-6 {
            return argmax(logits);
        }
        let u = self.uniform();
        let cands = &mut self.candidates;
        cands.clear();
        cands.extend(logits.iter().enumerate().map(|(i, &l)| (i as u32, l)));
        let by_logit = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1);
        if self.top_k > 0 && self.top_k < cands.len() {
            cands.select_nth_unstable_by(self.top_k, by_logit);
            cands.truncate(self.top_k);
        }
        cands.sort_unstable_by(by_logit);
        let max = cands.first().map_or(0.0, |c| c.1);
        let mut sum = 0.0f32;
        for c in cands.iter_mut() {
            c.1 = ((c.1 - max) / self.temperature).exp();
            sum += c.1;
        }
        let mut kept = 0.0f32;
        let mut n = 0;
        for c in cands.iter_mut() {
            c.1 /= sum;
            if n == 0 || kept < self.top_p {
                kept += c.1;
                n += 1;
            }
        }
        cands.truncate(n.max(1));
        let mut r = u * kept;
        for c in cands.iter() {
            if r < c.1 {
                return c.0;
            }
            r -= c.1;
        }
        cands.last().map_or(0, |c| c.0)
    }
}

fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &l) in logits.iter().enumerate() {
        if l > logits[best] {
            best = i;
        }
    }
    best as u32
}

/// Turns token bytes into text pieces: only complete UTF-8, and never text
/// that may turn out to be the start of a stop sequence.
struct TextStream {
    stop: Vec<String>,
    /// Bytes not yet forming complete UTF-8.
    pending: Vec<u8>,
    /// All the text decoded so far.
    text: String,
    /// Bytes of `text` already handed out.
    sent: usize,
}

impl TextStream {
    fn new(stop: &[String]) -> Self {
        Self {
            stop: stop.iter().filter(|s| !s.is_empty()).cloned().collect(),
            pending: Vec::new(),
            text: String::new(),
            sent: 0,
        }
    }

    /// Adds a token's bytes; returns the text that may go out now, and
    /// whether a stop sequence was reached (the text is then cut before it).
    fn push(&mut self, bytes: &[u8]) -> (String, bool) {
        self.pending.extend_from_slice(bytes);
        let piece = match std::str::from_utf8(&self.pending) {
            Ok(s) => {
                let s = s.to_owned();
                self.pending.clear();
                s
            }
            Err(e) if e.error_len().is_none() && self.pending.len() < 8 => {
                // An incomplete UTF-8 sequence at the end: wait for more.
                let valid = e.valid_up_to();
                let s = String::from_utf8_lossy(&self.pending[..valid]).into_owned();
                self.pending.drain(..valid);
                s
            }
            Err(_) => {
                let s = String::from_utf8_lossy(&self.pending).into_owned();
                self.pending.clear();
                s
            }
        };
        let search_from = self
            .sent
            .saturating_sub(self.stop.iter().map(String::len).max().unwrap_or(0));
        self.text.push_str(&piece);
        let hit = self
            .stop
            .iter()
            .filter_map(|s| {
                let from = floor_char_boundary(&self.text, search_from);
                self.text[from..].find(s.as_str()).map(|i| from + i)
            })
            .min();
        if let Some(at) = hit {
            let at = at.max(self.sent);
            let out = self.text[self.sent..at].to_owned();
            self.text.truncate(at);
            self.sent = at;
            return (out, true);
        }
        let hold = self.held_back();
        let until = self.text.len() - hold;
        let out = self.text[self.sent..until].to_owned();
        self.sent = until;
        (out, false)
    }

    /// Bytes at the end of `text` that could begin a stop sequence.
    fn held_back(&self) -> usize {
        let mut hold = 0;
        for s in &self.stop {
            for (i, _) in self.text[self.sent..].char_indices() {
                let start = self.sent + i;
                let tail = &self.text[start..];
                if tail.len() < s.len() && s.starts_with(tail) {
                    hold = hold.max(tail.len());
                    break;
                }
            }
        }
        hold
    }

    /// The text still held back (no stop sequence came).
    fn finish(&mut self) -> String {
        if !self.pending.is_empty() {
            let rest = String::from_utf8_lossy(&self.pending).into_owned();
            self.pending.clear();
            self.text.push_str(&rest);
        }
        let out = self.text[self.sent..].to_owned();
        self.sent = self.text.len();
        out
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn model_id_from_file_name() {
        assert_eq!(
            model_id_of(Path::new("/m/SmolLM2-135M-Instruct.Q4_1.gguf")),
            "smollm2-135m-instruct"
        );
    }

    #[test]
    fn text_stream_waits_for_whole_utf8_and_cuts_at_stop() {
        let mut t = TextStream::new(&["END".to_owned()]);
        let e = "é".as_bytes();
        assert_eq!(t.push(&e[..1]), (String::new(), false));
        assert_eq!(t.push(&e[1..]), ("é".to_owned(), false));
        assert_eq!(t.push(b" E"), (" ".to_owned(), false), "E may start END");
        assert_eq!(t.push(b"ND more"), (String::new(), true));
        let mut u = TextStream::new(&[]);
        assert_eq!(u.push(&[0xff]).0, "\u{fffd}");
    }

    #[test]
    fn sampler_is_seeded_and_respects_top_k() {
        let request = ChatRequest {
            temperature: Some(1.0),
            seed: Some(7),
            ..ChatRequest::default()
        };
        let mut config = LocalChatConfig::new("x");
        config.top_k = 2;
        config.repeat_penalty = 1.0;
        let logits = vec![0.0, 5.0, 4.9, -3.0, 1.0];
        let draw = |seed_request: &ChatRequest| {
            let mut s = Sampler::new(seed_request, &config);
            (0..50)
                .map(|_| s.sample(&mut logits.clone(), &[]))
                .collect::<Vec<_>>()
        };
        let a = draw(&request);
        assert_eq!(a, draw(&request), "same seed, same draws");
        assert!(a.iter().all(|&t| t == 1 || t == 2), "{a:?}");
        assert!(a.contains(&1) && a.contains(&2), "{a:?}");
    }
}
