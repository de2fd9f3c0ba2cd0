//! Compares two PDF text extractors on real files, page by page:
//! `pdf-extract` (what knowledge bases use) and `lopdf`'s own
//! `Document::extract_text`. Prints each page's text from both and the time
//! each took. Usage: `cargo run -p confab-rag --example pdf_compare -- FILE.pdf...`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

fn main() {
    for path in std::env::args().skip(1) {
        let bytes = std::fs::read(&path).expect("readable file");
        println!("==== {path} ({} bytes)", bytes.len());
        let started = Instant::now();
        let a = std::panic::catch_unwind(|| pdf_extract::extract_text_from_mem_by_pages(&bytes));
        let ta = started.elapsed();
        let started = Instant::now();
        let b = std::panic::catch_unwind(|| {
            let doc = lopdf::Document::load_mem(&bytes)?;
            let pages: Vec<u32> = doc.get_pages().keys().copied().collect();
            pages
                .iter()
                .map(|p| doc.extract_text(&[*p]))
                .collect::<Result<Vec<String>, lopdf::Error>>()
        });
        let tb = started.elapsed();
        println!("-- pdf-extract: {ta:?}");
        match a {
            Ok(Ok(pages)) => {
                for (i, p) in pages.iter().enumerate() {
                    println!("[page {}] {:?}", i + 1, p.trim());
                }
            }
            Ok(Err(e)) => println!("error: {e}"),
            Err(_) => println!("panicked"),
        }
        println!("-- lopdf extract_text: {tb:?}");
        match b {
            Ok(Ok(pages)) => {
                for (i, p) in pages.iter().enumerate() {
                    println!("[page {}] {:?}", i + 1, p.trim());
                }
            }
            Ok(Err(e)) => println!("error: {e}"),
            Err(_) => println!("panicked"),
        }
    }
}
