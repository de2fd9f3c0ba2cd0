//! The built-in embedder: a hashed bag of words and character 3-grams.
//!
//! Vectors are fixed by this code alone: changing a weight, the hash or the
//! tokenising changes every stored `builtin` vector, so it needs a new model
//! name (bases record the model that embedded them).

use super::{DIMENSIONS, is_stop_word, words};

/// Embedding weight of a content word.
const WORD_WEIGHT: f32 = 1.0;
/// Embedding weight of a character 3-gram of a content word.
const NGRAM_WEIGHT: f32 = 0.35;
/// Factor applied to stop words (and their n-grams) in embeddings.
const STOP_WORD_FACTOR: f32 = 0.2;

/// FNV-1a (64-bit), fixed so vectors never change between runs or builds.
struct Fnv(u64);

impl Fnv {
    /// A hasher seeded with a feature kind.
    fn new(kind: u8) -> Self {
        let mut h = Self(0xcbf2_9ce4_8422_2325);
        h.byte(kind);
        h
    }

    /// Mixes in one byte.
    fn byte(&mut self, b: u8) {
        self.0 ^= u64::from(b);
        self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
    }

    /// Mixes in one character's UTF-8 bytes.
    fn char(&mut self, c: char) {
        let mut buf = [0u8; 4];
        for &b in c.encode_utf8(&mut buf).as_bytes() {
            self.byte(b);
        }
    }

    /// The hash, with a final avalanche so low bits are well spread.
    fn finish(&self) -> u64 {
        let mut x = self.0;
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
        x ^= x >> 33;
        x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        x ^= x >> 33;
        x
    }
}

/// Adds `weight` to the feature's bucket with the feature's sign.
fn add_feature(vector: &mut [f32], hasher: &Fnv, weight: f32) {
    let h = hasher.finish();
    let bucket = (h % DIMENSIONS as u64) as usize;
    let sign = if h >> 63 == 0 { 1.0 } else { -1.0 };
    if let Some(slot) = vector.get_mut(bucket) {
        *slot += sign * weight;
    }
}

/// A deterministic hashed bag-of-words + character 3-gram vector,
/// L2-normalised (the zero vector for text without words).
pub(super) fn embed_text(text: &str) -> Vec<f32> {
    let mut vector = vec![0.0f32; DIMENSIONS];
    for word in words(text) {
        let factor = if is_stop_word(&word) {
            STOP_WORD_FACTOR
        } else {
            1.0
        };
        let mut h = Fnv::new(b'w');
        for c in stem(&word).chars() {
            h.char(c);
        }
        add_feature(&mut vector, &h, WORD_WEIGHT * factor);

        let chars: Vec<char> = std::iter::once('<')
            .chain(word.chars())
            .chain(std::iter::once('>'))
            .collect();
        for gram in chars.windows(3) {
            let mut h = Fnv::new(b'g');
            for &c in gram {
                h.char(c);
            }
            add_feature(&mut vector, &h, NGRAM_WEIGHT * factor);
        }
    }
    let norm = vector
        .iter()
        .map(|&x| f64::from(x) * f64::from(x))
        .sum::<f64>()
        .sqrt();
    if norm > 0.0 && norm.is_finite() {
        for x in &mut vector {
            *x = (f64::from(*x) / norm) as f32;
        }
    } else {
        vector.iter_mut().for_each(|x| *x = 0.0);
    }
    vector
}

/// A crude plural strip so `passwords` matches `password` (part of the
/// vector definition: the reply rules use a real stemmer).
fn stem(word: &str) -> &str {
    if word.is_ascii() && word.len() > 3 && word.ends_with('s') && !word.ends_with("ss") {
        word.get(..word.len() - 1).unwrap_or(word)
    } else {
        word
    }
}
