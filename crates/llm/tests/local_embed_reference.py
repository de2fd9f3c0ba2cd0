#!/usr/bin/env python3
"""Independent reference vectors for tests/local_embed.rs.

A from-scratch NumPy (float64) BERT forward pass over all-MiniLM-L6-v2's
model.safetensors, with a minimal lower-case WordPiece tokenizer read from
tokenizer.json, mean pooling and L2 normalisation as sentence-transformers
does. It shares no code with candle or the tokenizers crate, so agreement
checks weight loading, the forward pass, pooling and tokenization.

    python3 crates/llm/tests/local_embed_reference.py [MODEL_DIR] > crates/llm/tests/fixtures/minilm_reference.json

Needs numpy only (pip install numpy).
"""
import json
import math
import struct
import sys

import numpy as np

SENTENCES = [
    "hello world",
    "the quick brown fox jumps over the lazy dog.",
    "rust ownership rules prevent data races at compile time!",
    "sourdough starters are cultures of wild yeast",
]


def load_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, meta in header.items():
        if name == "__metadata__" or meta["dtype"] != "F32":
            continue
        a, b = meta["data_offsets"]
        out[name] = np.frombuffer(data[a:b], dtype="<f4").astype(np.float64).reshape(meta["shape"])
    return out


def tokenize(text, vocab):
    words = []
    for raw in text.lower().split():
        cur = ""
        for ch in raw:
            if ch.isalnum():
                cur += ch
            else:
                if cur:
                    words.append(cur)
                cur = ""
                words.append(ch)
        if cur:
            words.append(cur)
    ids = [vocab["[CLS]"]]
    for w in words:
        start = 0
        pieces = []
        while start < len(w):
            end = len(w)
            while end > start:
                piece = w[start:end] if start == 0 else "##" + w[start:end]
                if piece in vocab:
                    pieces.append(vocab[piece])
                    break
                end -= 1
            else:
                pieces = [vocab["[UNK]"]]
                break
            start = end
        ids.extend(pieces)
    ids.append(vocab["[SEP]"])
    return ids


def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def linear(x, t, name):
    return x @ t[name + ".weight"].T + t[name + ".bias"]


gelu = np.vectorize(lambda v: 0.5 * v * (1.0 + math.erf(v / math.sqrt(2.0))))


def embed(ids, t, cfg):
    n = len(ids)
    x = t["embeddings.word_embeddings.weight"][ids]
    x = x + t["embeddings.position_embeddings.weight"][:n]
    x = x + t["embeddings.token_type_embeddings.weight"][0]
    eps = cfg["layer_norm_eps"]
    x = layer_norm(x, t["embeddings.LayerNorm.weight"], t["embeddings.LayerNorm.bias"], eps)
    heads = cfg["num_attention_heads"]
    hd = cfg["hidden_size"] // heads
    for i in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        q = linear(x, t, p + "attention.self.query").reshape(n, heads, hd).transpose(1, 0, 2)
        k = linear(x, t, p + "attention.self.key").reshape(n, heads, hd).transpose(1, 0, 2)
        v = linear(x, t, p + "attention.self.value").reshape(n, heads, hd).transpose(1, 0, 2)
        s = q @ k.transpose(0, 2, 1) / math.sqrt(hd)
        s = np.exp(s - s.max(-1, keepdims=True))
        s = s / s.sum(-1, keepdims=True)
        ctx = (s @ v).transpose(1, 0, 2).reshape(n, heads * hd)
        a = linear(ctx, t, p + "attention.output.dense")
        x = layer_norm(a + x, t[p + "attention.output.LayerNorm.weight"], t[p + "attention.output.LayerNorm.bias"], eps)
        h = gelu(linear(x, t, p + "intermediate.dense"))
        o = linear(h, t, p + "output.dense")
        x = layer_norm(o + x, t[p + "output.LayerNorm.weight"], t[p + "output.LayerNorm.bias"], eps)
    m = x.mean(0)
    return m / np.linalg.norm(m)


def main():
    d = sys.argv[1] if len(sys.argv) > 1 else "models/all-MiniLM-L6-v2"
    cfg = json.load(open(f"{d}/config.json"))
    vocab = json.load(open(f"{d}/tokenizer.json"))["model"]["vocab"]
    t = load_safetensors(f"{d}/model.safetensors")
    out = []
    for s in SENTENCES:
        ids = tokenize(s, vocab)
        out.append({"text": s, "ids": ids, "vector": [round(float(v), 7) for v in embed(ids, t, cfg)]})
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
