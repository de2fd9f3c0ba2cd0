//! [`LocalChat`]: a quantized GGUF llama-family chat model (SmolLM2 by
//! default) running in-process on the CPU with candle.
//!
//! One worker thread owns the model and serves requests one at a time, in
//! arrival order, from a bounded queue: a full queue is an immediate
//! [`LlmError::RateLimited`] (`busy`). Tokens are streamed as they are
//! produced; dropping the stream stops generation before the next token.
//!
//! The tokenizer is built from the GGUF metadata (byte-level BPE:
//! `tokenizer.ggml.tokens` + `merges`), or read from a `tokenizer.json`
//! beside the file when there is one. The prompt is rendered with the
//! GGUF's `tokenizer.chat_template` (Jinja), falling back to ChatML.
//!
//! Context window: when the prompt plus `max_tokens` does not fit, the
//! oldest non-system messages are dropped (the last message is always
//! kept); a prompt that still does not fit is [`LlmError::ContextLength`].
//! Generation also stops (finish `length`) at the end of the window.
//!
//! Threads: candle's quantized matrix products run on candle's own
//! process-wide pool, sized once from `CANDLE_NUM_THREADS` (else
//! `RAYON_NUM_THREADS`, else the physical cores); the remaining kernels run
//! on this model's rayon pool of [`LocalChatConfig::threads`].

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use candle_core::quantized::gguf_file;
use candle_core::{Device, Tensor};
use candle_transformers::models::quantized_llama::{MAX_SEQ_LEN, ModelWeights};
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{BPE, Vocab};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::{AddedToken, PreTokenizerWrapper, Tokenizer};
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};

use crate::error::LlmError;
use crate::types::{ChatChunk, ChatMessage, ChatRequest, FinishReason, Role, Usage};
use crate::{ChatModel, ChatStream};

/// Settings of a [`LocalChat`].
#[derive(Debug, Clone, PartialEq)]
pub struct LocalChatConfig {
    /// The `.gguf` file (a `tokenizer.json` beside it is used when present).
    pub model_path: PathBuf,
    /// Threads of the model's rayon pool (0 = all cores). See the module docs
    /// for candle's quantized kernels.
    pub threads: usize,
    /// Requests that may wait behind the running one before callers get `busy`.
    pub queue_capacity: usize,
    /// Tokens of prompt plus reply (0 = the model's context length, at most
    /// candle's 4096).
    pub context_window: usize,
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
    /// Defaults for a model file: all cores, a queue of 8, the model's context
    /// length, 256 tokens, llama.cpp's sampling defaults (temperature 0.8,
    /// top-p 0.95, top-k 40, repeat penalty 1.1 over 64 tokens).
    pub fn new(model_path: impl Into<PathBuf>) -> Self {
        Self {
            model_path: model_path.into(),
            threads: 0,
            queue_capacity: 8,
            context_window: 0,
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

impl LocalChat {
    /// Loads the model and starts its worker thread. Blocking (reads the
    /// whole file): call it from a blocking context. A missing or invalid
    /// file is an [`LlmError::Config`].
    pub fn load(config: LocalChatConfig) -> Result<Self, LlmError> {
        let started = Instant::now();
        let path = config.model_path.clone();
        if config.queue_capacity == 0 {
            return Err(config_error(
                &path,
                "settings",
                "queue_capacity must be at least 1",
            ));
        }
        let mut file = std::fs::File::open(&path)
            .map_err(|e| config_error(&path, "cannot open (run `make models`)", e))?;
        let content = gguf_file::Content::read(&mut file)
            .map_err(|e| config_error(&path, "not a GGUF file", e))?;
        let meta = Metadata::read(&content, &path)?;
        let tokenizer = match path.parent().map(|d| d.join("tokenizer.json")) {
            Some(json) if json.is_file() => Tokenizer::from_file(&json)
                .map_err(|e| config_error(&json, "cannot load tokenizer.json", e))?,
            _ => gguf_tokenizer(&content, &path)?,
        };
        let device = Device::Cpu;
        let model = match requantized(&content, &mut file, &device)
            .map_err(|e| config_error(&path, "cannot requantize the weights", e))?
        {
            Some((content, mut bytes)) => ModelWeights::from_gguf(content, &mut bytes, &device),
            None => ModelWeights::from_gguf(content, &mut file, &device),
        }
        .map_err(|e| config_error(&path, "cannot load the weights", e))?;

        let context_window = match config.context_window {
            0 => meta.context_length.min(MAX_SEQ_LEN),
            n => n.min(MAX_SEQ_LEN),
        };
        let threads = match config.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("confab-chat-{i}"))
            .build()
            .map_err(|e| config_error(&path, "cannot start inference threads", e))?;
        let template = meta.chat_template.as_deref().and_then(|source| {
            let mut env = minijinja::Environment::new();
            env.add_function("raise_exception", raise_exception);
            match env.add_template_owned("chat", source.to_owned()) {
                Ok(()) => Some(env),
                Err(e) => {
                    tracing::warn!(error = %e, "GGUF chat template does not parse; using ChatML");
                    None
                }
            }
        });
        let mut stop_ids: HashSet<u32> = meta.eos.into_iter().collect();
        for special in ["<|im_end|>", "<|endoftext|>", "<|eot_id|>", "</s>"] {
            if let Some(id) = tokenizer.token_to_id(special) {
                stop_ids.insert(id);
            }
        }
        let model_id = config
            .model_id
            .clone()
            .unwrap_or_else(|| model_id_of(&path));
        let worker = Worker {
            model,
            tokenizer,
            template,
            device,
            stop_ids,
            bos: meta.add_bos.then_some(meta.bos).flatten(),
            context_window,
            config: config.clone(),
            cached: Vec::new(),
        };
        let (jobs, queue) = std::sync::mpsc::sync_channel(config.queue_capacity);
        std::thread::Builder::new()
            .name("confab-chat".into())
            .spawn(move || worker.run(pool, queue))
            .map_err(|e| config_error(&path, "cannot start the worker thread", e))?;
        tracing::info!(
            model = %model_id,
            context_window,
            threads,
            load_ms = started.elapsed().as_millis() as u64,
            "local chat model loaded"
        );
        Ok(Self {
            inner: Arc::new(Inner {
                model_id,
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

    /// Tokens of prompt plus reply the model handles.
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
            "{} in-process on the CPU (candle): a tiny model, good for trying confab offline and for short answers from the retrieved sources; slow on long prompts (several seconds to the first token of a 1,000-token RAG prompt on 2 cores) and often wrong; {}",
            self.inner.model_id,
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

/// candle has SIMD kernels for Q4_0 and Q8_0 but multiplies Q4_1, Q5_0
/// and Q5_1 with scalar code (about 4x slower here): such weights are
/// converted to Q8_0 at load (an in-memory GGUF), which costs a little
/// precision. `None` when nothing needs converting.
fn requantized(
    content: &gguf_file::Content,
    file: &mut std::fs::File,
    device: &Device,
) -> candle_core::Result<Option<(gguf_file::Content, std::io::Cursor<Vec<u8>>)>> {
    use candle_core::quantized::{GgmlDType, QTensor};
    let slow = |d: GgmlDType| matches!(d, GgmlDType::Q4_1 | GgmlDType::Q5_0 | GgmlDType::Q5_1);
    if !content.tensor_infos.values().any(|t| slow(t.ggml_dtype)) {
        return Ok(None);
    }
    let mut tensors: Vec<(String, QTensor)> = Vec::with_capacity(content.tensor_infos.len());
    for (name, info) in &content.tensor_infos {
        let t = content.tensor(file, name, device)?;
        let t = if slow(info.ggml_dtype) {
            QTensor::quantize(&t.dequantize(device)?, GgmlDType::Q8_0)?
        } else {
            t
        };
        tensors.push((name.clone(), t));
    }
    let metadata: Vec<(&str, &gguf_file::Value)> = content
        .metadata
        .iter()
        .map(|(k, v)| (k.as_str(), v))
        .collect();
    let refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let mut bytes = std::io::Cursor::new(Vec::new());
    gguf_file::write(&mut bytes, &metadata, &refs)?;
    bytes.set_position(0);
    let converted = gguf_file::Content::read(&mut bytes)?;
    Ok(Some((converted, bytes)))
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

/// The GGUF metadata we need besides the weights.
struct Metadata {
    context_length: usize,
    chat_template: Option<String>,
    bos: Option<u32>,
    eos: Option<u32>,
    add_bos: bool,
}

impl Metadata {
    fn read(content: &gguf_file::Content, path: &Path) -> Result<Self, LlmError> {
        let md = &content.metadata;
        let arch = md
            .get("general.architecture")
            .and_then(|v| v.to_string().ok())
            .cloned()
            .unwrap_or_default();
        if !md.contains_key(&format!("{arch}.block_count")) || arch != "llama" {
            return Err(config_error(
                path,
                "unsupported model",
                format!("architecture {arch:?}: only llama-family GGUF models are supported"),
            ));
        }
        let u32_of = |key: &str| md.get(key).and_then(|v| v.to_u32().ok());
        Ok(Self {
            context_length: u32_of("llama.context_length").map_or(2048, |n| n as usize),
            chat_template: md
                .get("tokenizer.chat_template")
                .and_then(|v| v.to_string().ok())
                .cloned(),
            bos: u32_of("tokenizer.ggml.bos_token_id"),
            eos: u32_of("tokenizer.ggml.eos_token_id"),
            add_bos: md
                .get("tokenizer.ggml.add_bos_token")
                .and_then(|v| v.to_bool().ok())
                .unwrap_or(false),
        })
    }
}

/// A byte-level BPE tokenizer from `tokenizer.ggml.*` (model `gpt2`).
fn gguf_tokenizer(content: &gguf_file::Content, path: &Path) -> Result<Tokenizer, LlmError> {
    let md = &content.metadata;
    let string_of = |key: &str| md.get(key).and_then(|v| v.to_string().ok()).cloned();
    let kind = string_of("tokenizer.ggml.model").unwrap_or_default();
    if kind != "gpt2" {
        return Err(config_error(
            path,
            "unsupported tokenizer",
            format!(
                "tokenizer.ggml.model is {kind:?} (only gpt2/byte-level BPE is built from GGUF; put a tokenizer.json beside the file)"
            ),
        ));
    }
    let strings = |key: &str| -> Result<Vec<String>, LlmError> {
        let values = md
            .get(key)
            .and_then(|v| v.to_vec().ok())
            .ok_or_else(|| config_error(path, "tokenizer metadata", format!("no {key}")))?;
        values
            .iter()
            .map(|v| {
                v.to_string()
                    .cloned()
                    .map_err(|e| config_error(path, key, e))
            })
            .collect()
    };
    let tokens = strings("tokenizer.ggml.tokens")?;
    let merges = strings("tokenizer.ggml.merges")?;
    let types: Vec<i32> = md
        .get("tokenizer.ggml.token_type")
        .and_then(|v| v.to_vec().ok())
        .map(|vs| vs.iter().map(|v| v.to_i32().unwrap_or(1)).collect())
        .unwrap_or_default();
    let vocab: Vocab = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), i as u32))
        .collect();
    let merges: Vec<(String, String)> = merges
        .iter()
        .filter_map(|m| m.split_once(' '))
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .collect();
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .build()
        .map_err(|e| config_error(path, "cannot build the BPE tokenizer", e))?;
    let mut tokenizer = Tokenizer::new(bpe);
    let byte_level = ByteLevel::new(false, true, true);
    let pre: PreTokenizerWrapper = match string_of("tokenizer.ggml.pre").as_deref() {
        // llama.cpp's `smollm` pre-tokenizer: digits one by one, then GPT-2's.
        Some("smollm") => Sequence::new(vec![Digits::new(true).into(), byte_level.into()]).into(),
        _ => byte_level.into(),
    };
    tokenizer.with_pre_tokenizer(Some(pre));
    tokenizer.with_decoder(Some(ByteLevelDecoder::default()));
    // Control (3) and user-defined (4) tokens match whole, never split.
    let special: Vec<AddedToken> = tokens
        .iter()
        .zip(&types)
        .filter(|(_, t)| matches!(**t, 3 | 4))
        .map(|(s, _)| AddedToken::from(s.clone(), true))
        .collect();
    tokenizer
        .add_special_tokens(special)
        .map_err(|e| config_error(path, "cannot add special tokens", e))?;
    Ok(tokenizer)
}

/// The model, owned by the worker thread.
struct Worker {
    model: ModelWeights,
    tokenizer: Tokenizer,
    template: Option<minijinja::Environment<'static>>,
    device: Device,
    stop_ids: HashSet<u32>,
    bos: Option<u32>,
    context_window: usize,
    config: LocalChatConfig,
    /// Tokens whose keys and values are in the model's cache, in order (the
    /// last request's prompt and reply): a prompt that starts with all of
    /// them (the next turn of that conversation) computes only the rest.
    cached: Vec<u32>,
}

/// How one generation ended.
enum End {
    Finished(FinishReason),
    /// The caller dropped the stream.
    Gone,
}

impl Worker {
    /// Serves jobs, one at a time, until every [`LocalChat`] clone is dropped.
    fn run(mut self, pool: rayon::ThreadPool, queue: Receiver<Job>) {
        while let Ok(job) = queue.recv() {
            if job.out.is_closed() {
                continue; // the caller gave up while queued
            }
            let Job { request, out } = job;
            let result = pool.install(|| self.generate(&request, &out));
            if let Err(e) = result {
                let _ = out.send(Err(e));
            }
        }
    }

    /// Renders the conversation to prompt text.
    fn render(&self, messages: &[ChatMessage]) -> String {
        if let Some(env) = &self.template {
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

    fn encode(&self, text: &str) -> Result<Vec<u32>, LlmError> {
        let encoding = self
            .tokenizer
            .encode(text, false)
            .map_err(|e| LlmError::InvalidRequest(format!("cannot tokenize: {e}")))?;
        let mut ids = Vec::with_capacity(encoding.len() + 1);
        ids.extend(self.bos);
        ids.extend_from_slice(encoding.get_ids());
        Ok(ids)
    }

    /// The prompt tokens, dropping the oldest non-system messages until the
    /// prompt and `max_tokens` fit the window.
    fn prompt(&self, request: &ChatRequest, max_tokens: usize) -> Result<Vec<u32>, LlmError> {
        let mut messages = request.messages.clone();
        if messages.is_empty() {
            return Err(LlmError::InvalidRequest("no messages".into()));
        }
        loop {
            let ids = self.encode(&self.render(&messages))?;
            if ids.len() + max_tokens <= self.context_window {
                return Ok(ids);
            }
            let last = messages.len() - 1;
            match messages[..last].iter().position(|m| m.role != Role::System) {
                Some(i) => {
                    messages.remove(i);
                }
                None if ids.len() < self.context_window => return Ok(ids),
                None => {
                    return Err(LlmError::ContextLength(format!(
                        "the prompt is {} tokens; the local model's window is {}",
                        ids.len(),
                        self.context_window
                    )));
                }
            }
        }
    }

    /// Generates one reply, streaming it over `out`.
    fn generate(
        &mut self,
        request: &ChatRequest,
        out: &UnboundedSender<Result<ChatChunk, LlmError>>,
    ) -> Result<(), LlmError> {
        let max_tokens = request.max_tokens.unwrap_or(self.config.max_tokens) as usize;
        let prompt = self.prompt(request, max_tokens)?;
        let max_tokens = max_tokens.min(self.context_window - prompt.len());
        let mut sampler = Sampler::new(request, &self.config);
        let mut text = TextStream::new(&request.stop);
        let mut tokens = prompt.clone();
        let mut generated = 0usize;

        // Prompt-prefix reuse: the cache holds `self.cached`; when the
        // prompt extends it, only the new tokens are computed.
        let reuse = if !self.cached.is_empty()
            && prompt.len() > self.cached.len()
            && prompt.starts_with(&self.cached)
        {
            self.cached.len()
        } else {
            0
        };
        self.cached.clear();
        let end = if max_tokens == 0 {
            End::Finished(FinishReason::Length)
        } else {
            if reuse > 0 {
                tracing::debug!(
                    reused = reuse,
                    prompt = prompt.len(),
                    "prompt prefix reused"
                );
            }
            let mut logits = self.forward(&prompt[reuse..], reuse)?;
            let mut fed = prompt.len();
            let end = loop {
                let next = sampler.sample(&mut logits, &tokens);
                if self.stop_ids.contains(&next) {
                    break End::Finished(FinishReason::Stop);
                }
                tokens.push(next);
                generated += 1;
                let (piece, stopped) = text.push(&self.tokenizer, next)?;
                if !piece.is_empty() && out.send(Ok(ChatChunk::Text(piece))).is_err() {
                    break End::Gone;
                }
                if stopped {
                    break End::Finished(FinishReason::Stop);
                }
                if generated >= max_tokens {
                    break End::Finished(FinishReason::Length);
                }
                if out.is_closed() {
                    break End::Gone;
                }
                logits = self.forward(&[next], tokens.len() - 1)?;
                fed = tokens.len();
            };
            self.cached = tokens[..fed].to_vec();
            end
        };
        match end {
            End::Gone => Ok(()),
            End::Finished(reason) => {
                let rest = text.finish();
                if !rest.is_empty() {
                    let _ = out.send(Ok(ChatChunk::Text(rest)));
                }
                let usage = Usage::new(prompt.len() as u32, generated as u32);
                let _ = out.send(Ok(ChatChunk::Usage(usage)));
                let _ = out.send(Ok(ChatChunk::Finish(reason)));
                Ok(())
            }
        }
    }

    /// Runs `ids` at position `pos`; the last position's logits.
    fn forward(&mut self, ids: &[u32], pos: usize) -> Result<Vec<f32>, LlmError> {
        let input = Tensor::new(ids, &self.device)
            .and_then(|t| t.unsqueeze(0))
            .map_err(inference_error)?;
        self.model
            .forward(&input, pos)
            .and_then(|l| l.squeeze(0))
            .and_then(|l| l.to_vec1::<f32>())
            .map_err(inference_error)
    }
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

/// Turns tokens into text pieces: only complete UTF-8, and never text that
/// may turn out to be the start of a stop sequence.
struct TextStream {
    stop: Vec<String>,
    /// Generated tokens not yet decoded into `text`.
    pending: Vec<u32>,
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

    /// Adds a token; returns the text that may go out now, and whether a
    /// stop sequence was reached (the text is then cut before it).
    fn push(&mut self, tokenizer: &Tokenizer, id: u32) -> Result<(String, bool), LlmError> {
        self.pending.push(id);
        let piece = tokenizer
            .decode(&self.pending, false)
            .map_err(inference_error)?;
        if piece.ends_with('\u{fffd}') && self.pending.len() < 8 {
            return Ok((String::new(), false)); // an incomplete UTF-8 sequence
        }
        self.pending.clear();
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
            return Ok((out, true));
        }
        let hold = self.held_back();
        let until = self.text.len() - hold;
        let out = self.text[self.sent..until].to_owned();
        self.sent = until;
        Ok((out, false))
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
