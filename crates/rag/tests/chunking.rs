#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Chunking and extraction: headings kept as titles, size limits, overlap,
//! no empty chunks, Unicode safety, code fences, HTML reduction, skipped files.

use confab_rag::chunk::{Chunk, ChunkConfig, ChunkError, chunk_markdown, chunk_text, count_tokens};
use confab_rag::extract::{
    DocumentKind, MAX_DOCUMENT_BYTES, Skip, chunk_document, extract_bytes,
    extract_bytes_with_limit, extract_file, html_to_text,
};

fn config(max: usize, overlap: usize) -> ChunkConfig {
    ChunkConfig::new(max, overlap).unwrap()
}

/// Invariants every chunk list must satisfy.
fn check_invariants(chunks: &[Chunk], config: &ChunkConfig) {
    for (i, chunk) in chunks.iter().enumerate() {
        assert_eq!(chunk.index, i, "indexes run 0..n");
        assert!(!chunk.text.trim().is_empty(), "empty chunk {chunk:?}");
        assert_eq!(chunk.text, chunk.text.trim(), "chunk text is trimmed");
        assert_eq!(chunk.tokens, count_tokens(&chunk.text));
        assert!(
            chunk.tokens <= config.max_tokens,
            "chunk {i} has {} tokens > {}: {:?}",
            chunk.tokens,
            config.max_tokens,
            chunk.text
        );
    }
}

/// The number of bytes at the start of `next` that repeat the end of `prev`.
fn overlap_len(prev: &str, next: &str) -> usize {
    (1..=prev.len().min(next.len()))
        .rev()
        .find(|&n| {
            prev.is_char_boundary(prev.len() - n)
                && next.is_char_boundary(n)
                && prev.ends_with(&next[..n])
        })
        .unwrap_or(0)
}

/// Rebuilds a single-paragraph text from its chunks by dropping each overlap.
fn reassemble(chunks: &[Chunk]) -> String {
    let mut out = String::new();
    let mut prev: Option<&str> = None;
    for chunk in chunks {
        let skip = prev.map_or(0, |p| overlap_len(p, &chunk.text));
        out.push_str(&chunk.text[skip..]);
        prev = Some(&chunk.text);
    }
    out
}

fn sentence(i: usize) -> String {
    format!("Sentence number {i} explains one more detail about the configuration of the system.")
}

fn long_paragraph(sentences: usize) -> String {
    (0..sentences).map(sentence).collect::<Vec<_>>().join(" ")
}

/// A deterministic xorshift generator for the fuzz tests.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

// ---------------------------------------------------------------------------
// Configuration and token counting

#[test]
fn config_defaults_and_validation() {
    let default = ChunkConfig::default();
    assert_eq!((default.max_tokens, default.overlap_tokens), (200, 30));
    assert_eq!(ChunkConfig::new(200, 30).unwrap(), default);
    assert!(ChunkConfig::new(16, 15).is_ok());
    assert_eq!(ChunkConfig::new(15, 0), Err(ChunkError::MaxTooSmall(15)));
    assert!(matches!(
        ChunkConfig::new(100, 100),
        Err(ChunkError::OverlapTooLarge { .. })
    ));
    assert!(!ChunkError::MaxTooSmall(3).to_string().is_empty());
}

#[test]
fn invalid_configs_set_directly_do_not_panic() {
    let text = format!("# T\n\n{}", long_paragraph(20));
    for (max, overlap) in [(0, 0), (1, 5), (2, 2), (3, 1000), (usize::MAX, usize::MAX)] {
        let config = ChunkConfig {
            max_tokens: max,
            overlap_tokens: overlap,
        };
        let chunks = chunk_markdown(&text, &config);
        assert!(!chunks.is_empty());
        for chunk in &chunks {
            assert!(chunk.tokens <= max.max(1));
            assert!(!chunk.text.trim().is_empty());
        }
    }
}

#[test]
fn token_counts() {
    assert_eq!(count_tokens(""), 0);
    assert_eq!(count_tokens("  \n\t "), 0);
    assert_eq!(count_tokens("hello world"), 2);
    assert_eq!(
        count_tokens("The quick brown fox jumps over the lazy dog."),
        10
    );
    assert_eq!(count_tokens("chunking"), 2, "long words cost more");
    assert_eq!(count_tokens("a, b"), 3);
    assert_eq!(count_tokens("你好世界"), 4, "one per CJK character");
    assert_eq!(count_tokens("こんにちは"), 5);
    assert_eq!(count_tokens("Привет мир"), 3);
    assert_eq!(count_tokens("e\u{301}"), 1, "combining marks are free");
    assert_eq!(count_tokens("👍🏽"), 1);
    // Additive across whitespace.
    let (a, b) = ("Some words, here.", "And 你好 there!");
    assert_eq!(
        count_tokens(&format!("{a} {b}")),
        count_tokens(a) + count_tokens(b)
    );
}

// ---------------------------------------------------------------------------
// Headings

#[test]
fn headings_become_nested_titles() {
    let doc = "\
Preface before any heading.

# Guide

Intro to the guide.

## Install

How to install.

### Linux ###

apt install confab

### macOS

brew install confab

## Empty section

## Usage

Run it.

# Appendix
Appendix text right under the heading.
";
    let chunks = chunk_markdown(doc, &ChunkConfig::default());
    check_invariants(&chunks, &ChunkConfig::default());
    let got: Vec<(&str, &str)> = chunks
        .iter()
        .map(|c| (c.title.as_str(), c.text.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("", "Preface before any heading."),
            ("Guide", "Intro to the guide."),
            ("Guide > Install", "How to install."),
            ("Guide > Install > Linux", "apt install confab"),
            ("Guide > Install > macOS", "brew install confab"),
            ("Guide > Usage", "Run it."),
            ("Appendix", "Appendix text right under the heading."),
        ]
    );
}

#[test]
fn setext_headings_and_rules() {
    let doc = "\
Title
=====

Intro.

Part one
--------

Body one.

---

After a rule, same section.

- a list item
---

####### not a heading

#hashtag is not a heading either

    # indented four spaces is not a heading
";
    let chunks = chunk_markdown(doc, &config(16, 0));
    check_invariants(&chunks, &config(16, 0));
    assert_eq!(chunks[0].title, "Title");
    assert_eq!(chunks[0].text, "Intro.");
    assert!(chunks[1..].iter().all(|c| c.title == "Title > Part one"));
    let all: String = chunks[1..]
        .iter()
        .map(|c| c.text.as_str())
        .collect::<Vec<_>>()
        .join("\n\n");
    assert!(all.contains("After a rule, same section."));
    assert!(all.contains("- a list item"));
    assert!(all.contains("####### not a heading"));
    assert!(all.contains("#hashtag is not a heading either"));
    assert!(all.contains("# indented four spaces"));
    assert!(!all.contains("---"), "rules are dropped");
}

#[test]
fn heading_only_sections_produce_no_chunks() {
    assert!(chunk_markdown("# A\n## B\n### C\n", &ChunkConfig::default()).is_empty());
    assert!(chunk_markdown("", &ChunkConfig::default()).is_empty());
    assert!(chunk_markdown(" \n\n\t\n", &ChunkConfig::default()).is_empty());
    assert!(chunk_text("\n \n", &ChunkConfig::default()).is_empty());
}

#[test]
fn plain_text_has_no_headings() {
    let text = "# not a heading\n\nFirst paragraph.\nStill first.\n\n\nSecond paragraph.";
    let chunks = chunk_text(text, &config(16, 0));
    check_invariants(&chunks, &config(16, 0));
    assert!(chunks.iter().all(|c| c.title.is_empty()));
    assert_eq!(
        chunks[0].text,
        "# not a heading\n\nFirst paragraph.\nStill first."
    );
    assert_eq!(chunks[1].text, "Second paragraph.");
}

// ---------------------------------------------------------------------------
// Size limits and overlap

#[test]
fn size_limits_respected() {
    let mut doc = String::new();
    for s in 0..6 {
        doc.push_str(&format!("## Section {s}\n\n"));
        for p in 0..8 {
            doc.push_str(&long_paragraph(1 + (s * 7 + p * 3) % 25));
            doc.push_str("\n\n");
        }
        doc.push_str("```rust\nfn main() {\n    println!(\"hi\");\n}\n```\n\n");
        doc.push_str(&"x".repeat(3000));
        doc.push_str("\n\n");
    }
    for (max, overlap) in [(16, 0), (16, 15), (50, 10), (200, 30), (1000, 100)] {
        let config = config(max, overlap);
        let chunks = chunk_markdown(&doc, &config);
        check_invariants(&chunks, &config);
        assert!(chunks.len() > 6);
        let chunks = chunk_text(&doc, &config);
        check_invariants(&chunks, &config);
    }
}

#[test]
fn paragraphs_are_packed_whole() {
    let paragraphs: Vec<String> = (0..12)
        .map(|i| format!("Paragraph {i} is short."))
        .collect();
    let doc = paragraphs.join("\n\n");
    let config = config(30, 0);
    let chunks = chunk_markdown(&doc, &config);
    check_invariants(&chunks, &config);
    assert!(chunks.len() > 1);
    for chunk in &chunks {
        for part in chunk.text.split("\n\n") {
            assert!(
                paragraphs.contains(&part.to_owned()),
                "split paragraph {part:?}"
            );
        }
    }
}

#[test]
fn long_paragraph_splits_at_sentences() {
    let text = long_paragraph(40);
    let config = config(60, 0);
    let chunks = chunk_markdown(&text, &config);
    check_invariants(&chunks, &config);
    assert!(chunks.len() > 3);
    for chunk in &chunks {
        assert!(
            chunk.text.starts_with("Sentence number"),
            "{:?}",
            chunk.text
        );
        assert!(chunk.text.ends_with("system."), "{:?}", chunk.text);
    }
    assert_eq!(reassemble(&chunks).replace(' ', ""), text.replace(' ', ""));
}

#[test]
fn overlap_present_within_a_section() {
    let doc = format!("# Only\n\n{}", long_paragraph(40));
    let config = config(80, 20);
    let chunks = chunk_markdown(&doc, &config);
    check_invariants(&chunks, &config);
    assert!(chunks.len() > 3);
    for pair in chunks.windows(2) {
        let n = overlap_len(&pair[0].text, &pair[1].text);
        assert!(
            n > 0,
            "no overlap between {:?} and {:?}",
            pair[0].text,
            pair[1].text
        );
        let repeated = &pair[1].text[..n];
        let tokens = count_tokens(repeated);
        assert!(
            (10..=20).contains(&tokens),
            "overlap of {tokens} tokens: {repeated:?}"
        );
        // The overlap starts at a word boundary of the previous chunk.
        let before = &pair[0].text[..pair[0].text.len() - n];
        assert!(
            before.ends_with(' '),
            "overlap cut inside a word: {repeated:?}"
        );
    }
    // Dropping the overlaps gives back the paragraph.
    assert_eq!(
        reassemble(&chunks).split_whitespace().collect::<Vec<_>>(),
        long_paragraph(40).split_whitespace().collect::<Vec<_>>()
    );
}

#[test]
fn overlap_between_packed_paragraphs() {
    let doc = (0..30)
        .map(|i| format!("Paragraph {i} has a few words in it."))
        .collect::<Vec<_>>()
        .join("\n\n");
    let config = config(40, 8);
    let chunks = chunk_markdown(&doc, &config);
    check_invariants(&chunks, &config);
    assert!(chunks.len() > 3);
    for pair in chunks.windows(2) {
        let n = overlap_len(&pair[0].text, &pair[1].text);
        assert!(n > 0);
        assert!(count_tokens(&pair[1].text[..n]) <= 8);
    }
}

#[test]
fn no_overlap_across_sections() {
    let doc = format!(
        "# A\n\n{}\n\n# B\n\n{}\n\n## C\n\nShort.",
        long_paragraph(15),
        long_paragraph(15)
    );
    let config = config(60, 20);
    let chunks = chunk_markdown(&doc, &config);
    check_invariants(&chunks, &config);
    for pair in chunks.windows(2) {
        if pair[0].title != pair[1].title {
            assert!(
                pair[1].text.starts_with("Sentence number 0 ") || pair[1].text == "Short.",
                "section starts with overlap: {:?}",
                pair[1].text
            );
        }
    }
    let titles: Vec<&str> = chunks.iter().map(|c| c.title.as_str()).collect();
    assert!(titles.contains(&"A") && titles.contains(&"B") && titles.contains(&"B > C"));
    // Sections are contiguous runs: no title comes back after another.
    let mut seen: Vec<&str> = Vec::new();
    for t in titles {
        if seen.last() != Some(&t) {
            assert!(!seen.contains(&t), "section {t} split around another");
            seen.push(t);
        }
    }
}

#[test]
fn giant_word_is_cut_by_characters() {
    let word = "abcdefghij".repeat(500);
    let config = config(16, 4);
    let chunks = chunk_text(&word, &config);
    check_invariants(&chunks, &config);
    assert!(chunks.len() > 10);
    // No whitespace anywhere, so no word-boundary overlap: the pieces concatenate back.
    assert_eq!(
        chunks.iter().map(|c| c.text.as_str()).collect::<String>(),
        word
    );
}

#[test]
fn long_lines_without_sentences_split_at_lines_then_words() {
    let list: String = (0..200)
        .map(|i| format!("- item {i} with words\n"))
        .collect();
    let config = config(30, 5);
    let chunks = chunk_markdown(&list, &config);
    check_invariants(&chunks, &config);
    for chunk in &chunks {
        // Cut at line ends: every chunk ends with a complete item.
        assert!(chunk.text.ends_with("with words"), "{:?}", chunk.text);
    }
}

// ---------------------------------------------------------------------------
// Code fences

#[test]
fn code_fences_kept_intact_and_headings_inside_ignored() {
    let code = "```bash\n# install it\napt install confab\n\n# run it\nconfab serve\n```";
    let doc = format!(
        "# Setup\n\n{}\n\n{code}\n\n~~~\n## not a heading either\n~~~\n\n## Next\n\nDone.",
        long_paragraph(3)
    );
    let config = config(60, 10);
    let chunks = chunk_markdown(&doc, &config);
    check_invariants(&chunks, &config);
    assert!(
        chunks.iter().any(|c| c.text.contains(code)),
        "fence split: {chunks:#?}"
    );
    assert!(
        chunks
            .iter()
            .any(|c| c.text.contains("~~~\n## not a heading either\n~~~"))
    );
    let titles: Vec<&str> = chunks.iter().map(|c| c.title.as_str()).collect();
    assert!(
        titles.iter().all(|t| *t == "Setup" || *t == "Setup > Next"),
        "{titles:?}"
    );
    assert_eq!(chunks.last().unwrap().text, "Done.");
}

#[test]
fn no_overlap_taken_from_code() {
    let doc = format!(
        "Intro words here.\n\n```\n{}\n```\n\n{}",
        "let x = 1;\n".repeat(10).trim_end(),
        long_paragraph(4)
    );
    let config = config(60, 20);
    let chunks = chunk_markdown(&doc, &config);
    check_invariants(&chunks, &config);
    for pair in chunks.windows(2) {
        if pair[0].text.ends_with("```") {
            assert!(!pair[1].text.contains("let x"), "{:?}", pair[1].text);
        }
    }
}

#[test]
fn unclosed_fence_and_oversized_code() {
    let doc = "# A\n\ntext\n\n```\n# not a heading\ncode\n\n## still code\n";
    let chunks = chunk_markdown(doc, &ChunkConfig::default());
    check_invariants(&chunks, &ChunkConfig::default());
    assert!(chunks.iter().all(|c| c.title == "A"));
    assert!(chunks.iter().any(|c| c.text.contains("## still code")));

    let big = format!(
        "```\n{}```\n",
        (0..300)
            .map(|i| format!("let value_{i} = {i};\n"))
            .collect::<String>()
    );
    let config = config(50, 10);
    let chunks = chunk_markdown(&big, &config);
    check_invariants(&chunks, &config);
    assert!(chunks.len() > 5);
    assert!(chunks[0].text.starts_with("```\nlet value_0 = 0;"));
    for chunk in &chunks[1..] {
        assert!(chunk.text.starts_with("let value_") || chunk.text == "```");
    }
}

// ---------------------------------------------------------------------------
// Unicode

#[test]
fn unicode_safe() {
    let cyrillic = "Съешь же ещё этих мягких французских булок, да выпей чаю. ".repeat(30);
    let hebrew = "שלום עולם, זהו משפט בעברית עם כמה מילים. ".repeat(30);
    let emoji = "Emoji 👍🏽 and 👨‍👩‍👧 families 🇺🇦 flags 🎉! ".repeat(30);
    let cjk_sentences = "日本語の文章には空白がありません。中文句子也没有空格！".repeat(40);
    // Distinct ideographs (not a repeated phrase) so the overlap can be located exactly.
    let cjk_bare: String = (0..800u32)
        .filter_map(|i| char::from_u32(0x4E00 + (i * 37) % 20000))
        .collect();
    let doc = format!(
        "# Кириллица\n\n{cyrillic}\n\n# עברית\n\n{hebrew}\n\n# Emoji 🎉\n\n{emoji}\n\n# 日本語\n\n{cjk_sentences}\n\n## 中文\n\n{cjk_bare}"
    );
    let config = config(40, 8);
    let chunks = chunk_markdown(&doc, &config);
    check_invariants(&chunks, &config);
    let titles: Vec<&str> = chunks.iter().map(|c| c.title.as_str()).collect();
    for t in ["Кириллица", "עברית", "Emoji 🎉", "日本語", "日本語 > 中文"] {
        assert!(titles.contains(&t), "missing {t}");
    }
    for chunk in &chunks {
        // Never starts or ends inside an emoji ZWJ sequence or before a modifier.
        assert!(!chunk.text.starts_with(['\u{200D}', '\u{1F3FD}']));
        assert!(!chunk.text.ends_with('\u{200D}'));
    }
    // CJK without spaces or punctuation is still split, and overlaps by characters.
    let bare: Vec<&Chunk> = chunks
        .iter()
        .filter(|c| c.title == "日本語 > 中文")
        .collect();
    assert!(bare.len() > 5);
    for pair in bare.windows(2) {
        assert!(overlap_len(&pair[0].text, &pair[1].text) > 0);
    }
    let bare: Vec<Chunk> = bare.into_iter().cloned().collect();
    assert_eq!(reassemble(&bare), cjk_bare);
    // Japanese sentences end at 。 / ！ even without spaces.
    let japanese: Vec<&Chunk> = chunks.iter().filter(|c| c.title == "日本語").collect();
    assert!(japanese.len() > 1);
    assert!(japanese.iter().all(|c| c.text.ends_with(['。', '！'])));
}

#[test]
fn bom_and_crlf() {
    let doc = "\u{feff}# Title\r\n\r\nLine one.\r\nLine two.\r\n";
    let chunks = chunk_markdown(doc, &ChunkConfig::default());
    assert_eq!(chunks.len(), 1);
    assert_eq!(chunks[0].title, "Title");
    assert_eq!(chunks[0].text, "Line one.\nLine two.");
}

#[test]
fn front_matter_is_not_chunked() {
    let doc = "---\ntitle: Front\ntags: [a, b]\n---\n# Real\n\nBody.";
    let chunks = chunk_markdown(doc, &ChunkConfig::default());
    assert_eq!(chunks.len(), 1);
    assert_eq!(
        (chunks[0].title.as_str(), chunks[0].text.as_str()),
        ("Real", "Body.")
    );
}

// ---------------------------------------------------------------------------
// Determinism and fuzzing

#[test]
fn deterministic() {
    let doc = format!(
        "# A\n\n{}\n\n## B\n\n```\ncode\n```\n\n{}",
        long_paragraph(30),
        "词".repeat(500)
    );
    let config = config(50, 12);
    let first = chunk_markdown(&doc, &config);
    for _ in 0..3 {
        assert_eq!(chunk_markdown(&doc, &config), first);
    }
    assert_eq!(chunk_text(&doc, &config), chunk_text(&doc, &config));
}

const PIECES: &[&str] = &[
    "#",
    "# ",
    "## Heading",
    "####### not a heading",
    "---",
    "===",
    "***",
    "- - -",
    "```",
    "```rust",
    "~~~",
    "````",
    "\n",
    "\n\n",
    "\n\n\n",
    " ",
    "  ",
    "\t",
    "\r\n",
    "\r",
    "word",
    "Sentence. ",
    "Why? ",
    "Wow! ",
    "…",
    "e\u{301}",
    "é",
    "👍🏽",
    "👨‍👩‍👧",
    "🇺🇦",
    "\u{200D}",
    "\u{FE0F}",
    "\u{301}",
    "你好。",
    "世界",
    "こんにちは！",
    "שלום",
    "Привет.",
    "\u{feff}",
    "\u{0}",
    "\u{7}",
    "<p>",
    "</p>",
    "<h2>",
    "</h2>",
    "<script>",
    "</script>",
    "<pre>",
    "</pre>",
    "<!--",
    "-->",
    "&amp;",
    "&#x1F600;",
    "&#99999999;",
    "&#0;",
    "&",
    "<",
    ">",
    "\"",
    "'",
    "title: x",
    "+++",
    "- item",
    "> quote",
    "1. one",
    "|a|b|",
];

fn random_doc(rng: &mut Rng) -> String {
    let mut doc = String::new();
    for _ in 0..rng.below(120) {
        match rng.below(20) {
            0 => doc.push_str(&"y".repeat(rng.below(2000))),
            1 => doc.push_str(&"字".repeat(rng.below(500))),
            2 => doc.push_str(&"👨‍👩‍👧".repeat(rng.below(100))),
            _ => doc.push_str(PIECES[rng.below(PIECES.len())]),
        }
    }
    doc
}

#[test]
fn fuzz_never_panics_and_keeps_invariants() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let configs = [
        config(16, 0),
        config(16, 15),
        config(40, 10),
        ChunkConfig::default(),
    ];
    for round in 0..250 {
        let doc = random_doc(&mut rng);
        let config = configs[round % configs.len()];
        check_invariants(&chunk_markdown(&doc, &config), &config);
        check_invariants(&chunk_text(&doc, &config), &config);
        let html = html_to_text(&doc);
        check_invariants(&chunk_markdown(&html, &config), &config);
        for name in ["a.md", "a.txt", "a.html", "README"] {
            if let Ok(extracted) = extract_bytes(name, doc.as_bytes()) {
                let chunks = chunk_document(extracted.kind, &extracted.text, &config);
                check_invariants(&chunks, &config);
            }
        }
        // Arbitrary bytes, including invalid UTF-8.
        let bytes: Vec<u8> = (0..rng.below(300)).map(|_| rng.next() as u8).collect();
        let _ = extract_bytes("b.md", &bytes);
    }
}

// ---------------------------------------------------------------------------
// HTML

#[test]
fn html_reduction() {
    let html = r#"<!DOCTYPE html>
<html><head>
  <meta charset="utf-8"><title>Confab &amp; Docs</title>
  <style>body { color: red; } h1 { }</style>
  <script>var x = "<h1>not a heading</h1>"; if (a < b) {}</script>
</head>
<body>
<nav><a href="/">Home</a> <a href="/x">Menu entry</a></nav>
<!-- a comment <h2>hidden</h2> -->
<h1>Getting   started</h1>
<p>Fish &amp; chips &lt;tasty&gt; &quot;quoted&quot; it&#39;s&nbsp;fine &#8364; &#x263A;.</p>
<div>First<br>second line</div>
<h2 class="x">Install <code>confab</code></h2>
<ul><li>one</li><li>two <b>bold</b></li><li></li></ul>
<pre><code># comment in code
fn main() {
    println!("&lt;hi&gt;");
}</code></pre>
<p># looks like a heading</p>
<table><tr><th>Name</th><th>Value</th></tr><tr><td>a</td><td>1</td></tr></table>
<h3>Linux</h3><p>apt   install
confab</p>
</body></html>"#;
    let text = html_to_text(html);
    for dropped in [
        "color: red",
        "var x",
        "not a heading",
        "a comment",
        "hidden",
        "Menu entry",
    ] {
        assert!(!text.contains(dropped), "{dropped:?} kept in {text}");
    }
    assert!(text.contains("# Getting started\n"), "{text}");
    assert!(
        text.contains("Fish & chips <tasty> \"quoted\" it's fine € ☺."),
        "{text}"
    );
    assert!(text.contains("First\nsecond line"), "{text}");
    assert!(text.contains("## Install confab\n"), "{text}");
    assert!(text.contains("- one\n- two bold\n"), "{text}");
    assert!(
        text.contains("```\n# comment in code\nfn main() {\n    println!(\"<hi>\");\n}\n```"),
        "{text}"
    );
    assert!(text.contains("\\# looks like a heading"), "{text}");
    assert!(text.contains("Name Value\na 1"), "{text}");
    assert!(text.contains("apt install confab"), "{text}");
    assert!(
        !text.contains("Confab & Docs"),
        "the title is metadata, not body text"
    );

    let extracted = extract_bytes("page.html", html.as_bytes()).unwrap();
    assert_eq!(extracted.kind, DocumentKind::Html);
    assert_eq!(extracted.title.as_deref(), Some("Confab & Docs"));
    let chunks = chunk_document(extracted.kind, &extracted.text, &ChunkConfig::default());
    check_invariants(&chunks, &ChunkConfig::default());
    let titles: Vec<&str> = chunks.iter().map(|c| c.title.as_str()).collect();
    assert_eq!(
        titles,
        [
            "Getting started",
            "Getting started > Install confab",
            "Getting started > Install confab > Linux"
        ]
    );
    assert!(
        chunks[1].text.contains("# comment in code"),
        "code stays in its section"
    );
}

#[test]
fn html_edge_cases() {
    assert_eq!(html_to_text(""), "");
    assert_eq!(html_to_text("plain & simple"), "plain & simple");
    assert_eq!(html_to_text("a < b > c"), "a < b > c");
    assert_eq!(html_to_text("<p>unclosed <b>tags"), "unclosed tags");
    assert_eq!(html_to_text("<script>never closed"), "");
    assert_eq!(html_to_text("<!-- never closed"), "");
    assert_eq!(html_to_text("<p>x</p><p>---</p>"), "x\n\n\\---");
    assert_eq!(html_to_text("<h2></h2><p>text</p>"), "text");
    assert_eq!(html_to_text("<H1>Upper</H1><SCRIPT>x</SCRIPT>"), "# Upper");
    assert_eq!(html_to_text("<h1>a<br>b</h1>"), "# a b");
    assert_eq!(
        html_to_text("<pre>```\ncode\n```</pre>"),
        "````\n```\ncode\n```\n````"
    );
    assert_eq!(html_to_text(r#"<a title="x > y">link</a>"#), "link");
    assert_eq!(
        html_to_text("<svg><title>icon</title><text>no</text></svg>ok"),
        "ok"
    );
    // No <head> end tag: body content still comes through.
    assert_eq!(html_to_text("<head><title>T</title><p>body"), "body");
}

// ---------------------------------------------------------------------------
// Extraction and skipped files

#[test]
fn kinds_from_extensions() {
    for (name, kind) in [
        ("a.md", DocumentKind::Markdown),
        ("dir/B.MARKDOWN", DocumentKind::Markdown),
        ("c.mdx", DocumentKind::Markdown),
        ("notes.txt", DocumentKind::Text),
        ("x.text", DocumentKind::Text),
        ("doc.rst", DocumentKind::Text),
        ("doc.adoc", DocumentKind::Text),
        ("LICENSE", DocumentKind::Text),
        ("page.html", DocumentKind::Html),
        ("page.HTM", DocumentKind::Html),
    ] {
        assert_eq!(DocumentKind::from_name(name), Ok(kind), "{name}");
    }
    assert_eq!(DocumentKind::from_name("img.png"), Err(Skip::Binary));
    assert_eq!(DocumentKind::from_name("lib.so"), Err(Skip::Binary));
    assert_eq!(DocumentKind::from_name("a.wasm"), Err(Skip::Binary));
    assert_eq!(
        DocumentKind::from_name("data.JSON"),
        Err(Skip::Unsupported("json".into()))
    );
    assert_eq!(DocumentKind::Markdown.as_str(), "markdown");
}

#[test]
fn extract_markdown_and_text() {
    let md = extract_bytes(
        "guide.md",
        "\u{feff}Intro\r\n\r\n# Guide\r\n\r\nText.\r\n".as_bytes(),
    )
    .unwrap();
    assert_eq!(md.kind, DocumentKind::Markdown);
    assert_eq!(md.title.as_deref(), Some("Guide"));
    assert_eq!(
        md.text, "Intro\n\n# Guide\n\nText.\n",
        "BOM dropped, CRLF normalised"
    );

    let md = extract_bytes("x.md", b"## Only a subheading\n\nText").unwrap();
    assert_eq!(md.title, None);
    let md = extract_bytes("x.md", b"---\ntitle: From front matter\n---\nText").unwrap();
    assert_eq!(md.title.as_deref(), Some("From front matter"));

    let txt = extract_bytes("notes.txt", "# not a title\n\nПривет".as_bytes()).unwrap();
    assert_eq!(txt.kind, DocumentKind::Text);
    assert_eq!(txt.title, None);
    let chunks = chunk_document(txt.kind, &txt.text, &ChunkConfig::default());
    assert_eq!(chunks.len(), 1);
    assert!(chunks[0].title.is_empty());
}

#[test]
fn skipped_files() {
    assert_eq!(extract_bytes("a.png", b"text really"), Err(Skip::Binary));
    assert_eq!(extract_bytes("a.md", b"hello\0world"), Err(Skip::Binary));
    let controls: Vec<u8> = (0..1000)
        .map(|i| if i % 5 == 0 { 0x01 } else { b'a' })
        .collect();
    assert_eq!(extract_bytes("a.txt", &controls), Err(Skip::Binary));
    // A few control bytes (ANSI colours, form feeds) are still text.
    let ansi = "\u{1b}[31mred\u{1b}[0m plain text\u{c} more text";
    assert!(extract_bytes("log.txt", ansi.as_bytes()).is_ok());

    assert_eq!(
        extract_bytes("a.md", b"caf\xe9 latin-1"),
        Err(Skip::NotUtf8)
    );
    assert_eq!(extract_bytes("a.md", b"\xff\xfeh\0i\0"), Err(Skip::NotUtf8));
    assert_eq!(extract_bytes("a.md", b"\xef\xbb\xbfok").unwrap().text, "ok");

    assert_eq!(extract_bytes("a.md", b""), Err(Skip::Empty));
    assert_eq!(extract_bytes("a.txt", b" \n\t\r\n "), Err(Skip::Empty));
    assert_eq!(extract_bytes("a.md", b"\xef\xbb\xbf"), Err(Skip::Empty));
    assert_eq!(
        extract_bytes(
            "a.html",
            b"<html><head><title>T</title></head><script>x()</script></html>"
        ),
        Err(Skip::Empty)
    );

    assert_eq!(
        extract_bytes_with_limit("a.md", b"0123456789", 9),
        Err(Skip::TooLarge(10))
    );
    assert!(extract_bytes_with_limit("a.md", b"0123456789", 10).is_ok());
    let big = vec![b'a'; usize::try_from(MAX_DOCUMENT_BYTES).unwrap() + 1];
    assert_eq!(
        extract_bytes("big.txt", &big),
        Err(Skip::TooLarge(MAX_DOCUMENT_BYTES + 1))
    );

    assert_eq!(
        extract_bytes("data.json", b"{}"),
        Err(Skip::Unsupported("json".into()))
    );

    for skip in [
        Skip::Binary,
        Skip::Unsupported("json".into()),
        Skip::TooLarge(11_000_000),
        Skip::NotUtf8,
        Skip::Empty,
    ] {
        assert!(skip.to_string().len() > 5, "{skip:?}");
    }
    assert_eq!(
        Skip::Unsupported("json".into()).to_string(),
        "unsupported file type .json"
    );
    assert_eq!(Skip::TooLarge(42).to_string(), "file too large (42 bytes)");
}

#[test]
fn extract_from_files() {
    let dir = std::env::temp_dir().join(format!("confab-rag-chunking-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let md = dir.join("doc.md");
    std::fs::write(&md, "# Title\n\nBody.").unwrap();
    let extracted = extract_file(&md, MAX_DOCUMENT_BYTES).unwrap().unwrap();
    assert_eq!(extracted.title.as_deref(), Some("Title"));
    assert_eq!(extract_file(&md, 3).unwrap(), Err(Skip::TooLarge(14)));
    let bin = dir.join("blob.bin");
    std::fs::write(&bin, [0u8, 1, 2]).unwrap();
    assert_eq!(
        extract_file(&bin, MAX_DOCUMENT_BYTES).unwrap(),
        Err(Skip::Binary)
    );
    assert!(extract_file(&dir.join("missing.md"), MAX_DOCUMENT_BYTES).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}
