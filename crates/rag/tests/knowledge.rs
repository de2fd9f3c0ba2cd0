//! Knowledge bases at library level, on SQLite, PostgreSQL (in-memory
//! vector fallback) and PostgreSQL with pgvector: CRUD and isolation,
//! uploads of every format (fixtures made by reportlab, fpdf2, python-docx,
//! pandoc and qpdf: scripts/make-kb-fixtures.sh), bad inputs, durable jobs
//! resumed after a lost worker, and an embedder switch.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use confab_error::DomainError as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use confab_llm::{BoxFuture, BuiltinProvider, EmbeddingModel, LlmError};
use confab_models::knowledge::{DocumentStatus, KnowledgeBaseUpdate, NewKnowledgeBase};
use confab_rag::knowledge::{Actor, KnowledgeConfig, UploadFile};
use confab_rag::{KnowledgeService, Rag, RagConfig, RagError};
use confab_store::Db;
use uuid::Uuid;

fn fixture(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/kb")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn file(name: &str) -> UploadFile {
    UploadFile {
        filename: name.to_owned(),
        bytes: fixture(name),
    }
}

async fn service_with(db: &Db, config: KnowledgeConfig) -> KnowledgeService {
    let rag = Rag::open(
        db.clone(),
        Arc::new(BuiltinProvider::new()),
        RagConfig::default(),
    )
    .await
    .unwrap();
    KnowledgeService::new(rag, config)
}

async fn service(db: &Db) -> KnowledgeService {
    service_with(db, KnowledgeConfig::default()).await
}

fn alice() -> Actor {
    Actor::new("alice", false)
}
fn bob() -> Actor {
    Actor::new("bob", false)
}
fn admin() -> Actor {
    Actor::new("root", true)
}

async fn base(k: &KnowledgeService, a: &Actor, name: &str) -> Uuid {
    k.create_base(
        a,
        NewKnowledgeBase {
            name: name.into(),
            shared: false,
        },
    )
    .await
    .unwrap()
    .id
}

fn is_not_found<T: std::fmt::Debug>(r: Result<T, RagError>) -> bool {
    matches!(r, Err(RagError::NotFound(_)))
}

async fn statuses(k: &KnowledgeService, a: &Actor, kb: Uuid) -> Vec<(String, DocumentStatus)> {
    k.list_documents(a, kb)
        .await
        .unwrap()
        .into_iter()
        .map(|d| (d.filename, d.status))
        .collect()
}

async fn every_format_is_ingested_with_locations(db: Db) {
    let k = service(&db).await;
    let kb = base(&k, &alice(), "mixed").await;
    let names = [
        "handbook.pdf",
        "orchard.pdf",
        "fieldguide.docx",
        "kitchen.docx",
        "notes.md",
        "page.html",
        "plain.txt",
    ];
    let up = k
        .upload(&alice(), kb, names.iter().map(|n| file(n)).collect())
        .await
        .unwrap();
    assert!(up.iter().all(|u| u.outcome == "queued"));
    assert_eq!(k.drain().await.unwrap(), names.len());
    let docs = k.list_documents(&alice(), kb).await.unwrap();
    for d in &docs {
        assert_eq!(
            d.status,
            DocumentStatus::Ready,
            "{}: {:?}",
            d.filename,
            d.error
        );
        assert!(d.chunk_count > 0, "{}", d.filename);
    }
    let handbook = docs.iter().find(|d| d.filename == "handbook.pdf").unwrap();
    assert_eq!(handbook.page_count, Some(10));

    // The page-7 fact is found, with its page and file.
    let hits = k
        .search(
            &alice(),
            kb,
            "What is the name of the lighthouse keeper's cat?",
            3,
        )
        .await
        .unwrap();
    let top = &hits[0];
    assert!(top.content.contains("Bartholomew Quince"), "{hits:#?}");
    assert_eq!(top.metadata["page"], 7);
    assert_eq!(top.metadata["filename"], "handbook.pdf");
    assert_eq!(top.metadata["knowledge_base_id"], kb.to_string());
    assert_eq!(
        top.metadata["knowledge_document_id"],
        handbook.id.to_string()
    );

    // DOCX headings (python-docx and pandoc) become the heading path.
    let hits = k
        .search(&alice(), kb, "Kestrel Spring drinking water", 3)
        .await
        .unwrap();
    assert!(hits[0].content.contains("Kestrel Spring"));
    assert_eq!(hits[0].metadata["heading"], "Field Guide > Water Supply");
    let hits = k
        .search(&alice(), kb, "bakery oven preheated rye", 3)
        .await
        .unwrap();
    assert_eq!(hits[0].metadata["heading"], "Kitchen Rules > Ovens");
    let hits = k
        .search(&alice(), kb, "irrigation valve code", 3)
        .await
        .unwrap();
    assert!(hits[0].content.contains("VX-42"));
    assert_eq!(hits[0].metadata["page"], 2);
    let hits = k.search(&alice(), kb, "pumpkin prize", 3).await.unwrap();
    assert_eq!(hits[0].metadata["heading"], "Garden Club > Prizes");

    // One document's detail: chunks carry their page.
    let detail = k.get_document(&alice(), kb, handbook.id).await.unwrap();
    assert_eq!(detail.chunks.len() as i64, handbook.chunk_count);
    assert!(
        detail
            .chunks
            .iter()
            .any(|c| c.page == Some(7) && c.content.contains("Quince"))
    );
    assert!(detail.preview.contains("Chapter 1"));

    // Unscoped retrieval (a chat naming no base) never sees knowledge bases.
    let unscoped = k
        .rag()
        .search("Bartholomew Quince", &confab_rag::SearchOptions::default())
        .await
        .unwrap();
    assert!(unscoped.is_empty(), "{unscoped:#?}");
}

async fn private_bases_are_invisible_to_others(db: Db) {
    let k = service(&db).await;
    let kb = base(&k, &alice(), "alice's").await;
    k.add_text(&alice(), kb, "secret", "The vault code is 7-7-1.")
        .await
        .unwrap();
    k.drain().await.unwrap();
    let doc = k.list_documents(&alice(), kb).await.unwrap()[0].id;

    assert!(k.list_bases(&bob()).await.unwrap().is_empty());
    assert!(is_not_found(k.get_base(&bob(), kb).await));
    assert!(is_not_found(
        k.update_base(
            &bob(),
            kb,
            KnowledgeBaseUpdate {
                name: Some("mine".into())
            }
        )
        .await
    ));
    assert!(is_not_found(k.delete_base(&bob(), kb).await));
    assert!(is_not_found(
        k.upload(&bob(), kb, vec![file("notes.md")]).await
    ));
    assert!(is_not_found(k.add_text(&bob(), kb, "x", "y").await));
    assert!(is_not_found(k.list_documents(&bob(), kb).await));
    assert!(is_not_found(k.get_document(&bob(), kb, doc).await));
    assert!(is_not_found(k.delete_document(&bob(), kb, doc).await));
    assert!(is_not_found(k.search(&bob(), kb, "vault code", 5).await));
    assert!(is_not_found(k.readable_collections(&bob(), &[kb]).await));
    // An administrator is no exception for private bases.
    assert!(is_not_found(k.get_base(&admin(), kb).await));
    // A document id under another base is not found either.
    let other = base(&k, &bob(), "bob's").await;
    assert!(is_not_found(k.get_document(&bob(), other, doc).await));

    // Alice's data is unchanged.
    let docs = k.list_documents(&alice(), kb).await.unwrap();
    assert_eq!(docs.len(), 1);
    assert_eq!(k.get_base(&alice(), kb).await.unwrap().name, "alice's");
    assert!(
        !k.search(&alice(), kb, "vault code", 5)
            .await
            .unwrap()
            .is_empty()
    );

    // Shared bases: published by administrators, read by all, changed by administrators.
    assert!(matches!(
        k.create_base(
            &alice(),
            NewKnowledgeBase {
                name: "pub".into(),
                shared: true
            }
        )
        .await,
        Err(RagError::Forbidden(_))
    ));
    let shared = k
        .create_base(
            &admin(),
            NewKnowledgeBase {
                name: "handbook".into(),
                shared: true,
            },
        )
        .await
        .unwrap();
    k.add_text(&admin(), shared.id, "rules", "Quiet hours start at ten.")
        .await
        .unwrap();
    k.drain().await.unwrap();
    let listed = k.list_bases(&bob()).await.unwrap();
    assert!(listed.iter().any(|b| b.id == shared.id && !b.writable));
    assert!(
        !k.search(&bob(), shared.id, "quiet hours", 3)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        k.upload(&bob(), shared.id, vec![file("notes.md")]).await,
        Err(RagError::Forbidden(_))
    ));
    assert!(matches!(
        k.delete_base(&bob(), shared.id).await,
        Err(RagError::Forbidden(_))
    ));
}

async fn bad_uploads_are_refused_and_store_nothing(db: Db) {
    let mut config = KnowledgeConfig::default();
    config.files.max_file_bytes = 8 * 1024;
    config.max_documents_per_user = 2;
    config.max_bytes_per_user = 6 * 1024;
    let k = service_with(&db, config).await;
    let kb = base(&k, &alice(), "strict").await;
    // One document already there, which no refused upload may touch.
    k.add_text(
        &alice(),
        kb,
        "keep.md",
        "# Keep\n\nThe lighthouse is white.",
    )
    .await
    .unwrap();
    k.drain().await.unwrap();
    let before = k.list_documents(&alice(), kb).await.unwrap();
    let before_chunks = k.get_document(&alice(), kb, before[0].id).await.unwrap();
    let f = |name: &str, bytes: &[u8]| UploadFile {
        filename: name.into(),
        bytes: bytes.to_vec(),
    };
    let cases: Vec<(Vec<UploadFile>, &str)> = vec![
        (vec![f("empty.md", b"")], "validation_error"),
        (vec![f("blank.txt", b"   \n\n ")], "validation_error"),
        (vec![f("../../etc/passwd.md", b"x")], "validation_error"),
        (vec![f("dir/a.md", b"x")], "validation_error"),
        (vec![f("bad\u{7}name.md", b"x")], "validation_error"),
        (vec![f("fake.pdf", b"# not a pdf")], "validation_error"),
        (
            vec![f("fake.docx", &fixture("orchard.pdf"))],
            "validation_error",
        ),
        (
            vec![f("pdf-bytes.txt", &fixture("orchard.pdf"))],
            "validation_error",
        ),
        (
            vec![f("zip-bytes.md", &fixture("kitchen.docx")[..4096])],
            "validation_error",
        ),
        (
            vec![f("binary.txt", &[0u8, 159, 146, 150, 0, 1, 2])],
            "validation_error",
        ),
        (vec![f("program.exe", b"MZ")], "unsupported_media_type"),
        (
            vec![f("big.md", &vec![b'a'; 9 * 1024])],
            "payload_too_large",
        ),
        // One bad file refuses the whole upload.
        (
            vec![f("good.md", b"# Fine"), f("", b"x")],
            "validation_error",
        ),
        (
            vec![f("a.md", b"# A"), f("a.md", b"# A again")],
            // 422 over HTTP, as it always was on the knowledge routes.
            "validation_error",
        ),
        // Quotas (one document is stored): documents, then bytes.
        (
            vec![f("1.md", b"# one"), f("2.md", b"# two")],
            "quota_exceeded",
        ),
        (vec![f("x.md", &vec![b'x'; 7 * 1024])], "quota_exceeded"),
    ];
    for (files, code) in cases {
        let names: Vec<String> = files.iter().map(|f| f.filename.clone()).collect();
        let err = k.upload(&alice(), kb, files).await.unwrap_err();
        assert_eq!(err.code(), code, "{names:?}: {err}");
        // Nothing else changed: the same documents, chunks, no job.
        assert_eq!(
            k.list_documents(&alice(), kb).await.unwrap(),
            before,
            "{names:?}"
        );
        assert_eq!(
            k.get_document(&alice(), kb, before[0].id).await.unwrap(),
            before_chunks,
            "{names:?}"
        );
        assert_eq!(k.pending_jobs().await.unwrap(), 0, "{names:?}");
    }
}

async fn unreadable_documents_fail_with_a_reason(db: Db) {
    let mut config = KnowledgeConfig::default();
    config.files.max_pdf_pages = 5;
    let k = service_with(&db, config).await;
    let kb = base(&k, &alice(), "bad files").await;
    k.upload(
        &alice(),
        kb,
        vec![
            file("corrupt.pdf"),
            file("encrypted.pdf"),
            file("bomb.docx"),
            file("handbook.pdf"),
            file("orchard.pdf"),
        ],
    )
    .await
    .unwrap();
    k.drain().await.unwrap();
    let docs = k.list_documents(&alice(), kb).await.unwrap();
    let reason = |name: &str| {
        let d = docs.iter().find(|d| d.filename == name).unwrap();
        assert_eq!(d.status, DocumentStatus::Failed, "{name}");
        assert_eq!(d.chunk_count, 0);
        d.error.clone().unwrap()
    };
    assert!(
        reason("corrupt.pdf").contains("corrupt"),
        "{}",
        reason("corrupt.pdf")
    );
    assert!(
        reason("encrypted.pdf").contains("encrypted"),
        "{}",
        reason("encrypted.pdf")
    );
    assert!(
        reason("bomb.docx").contains("zip bomb"),
        "{}",
        reason("bomb.docx")
    );
    assert!(
        reason("handbook.pdf").contains("10 pages"),
        "{}",
        reason("handbook.pdf")
    );
    // The good one is unaffected; failed ones left nothing in the index.
    let ok = docs.iter().find(|d| d.filename == "orchard.pdf").unwrap();
    assert_eq!(ok.status, DocumentStatus::Ready);
    assert!(
        k.search(&alice(), kb, "lighthouse keeper cat", 5)
            .await
            .unwrap()
            .iter()
            .all(|s| s.metadata["filename"] == "orchard.pdf")
    );
    assert_eq!(k.pending_jobs().await.unwrap(), 0);
}

async fn reupload_is_a_no_op_and_changes_replace(db: Db) {
    let k = service(&db).await;
    let kb = base(&k, &alice(), "versions").await;
    let first = k
        .add_text(
            &alice(),
            kb,
            "notes.md",
            "# Notes\n\nThe ferry leaves at six.",
        )
        .await
        .unwrap();
    k.drain().await.unwrap();
    let again = k
        .add_text(
            &alice(),
            kb,
            "notes.md",
            "# Notes\n\nThe ferry leaves at six.",
        )
        .await
        .unwrap();
    assert_eq!(again.outcome, "unchanged");
    assert_eq!(k.pending_jobs().await.unwrap(), 0);
    let changed = k
        .add_text(
            &alice(),
            kb,
            "notes.md",
            "# Notes\n\nThe ferry now leaves at seven.",
        )
        .await
        .unwrap();
    assert_eq!(changed.outcome, "queued");
    assert_eq!(changed.document.id, first.document.id);
    k.drain().await.unwrap();
    let detail = k
        .get_document(&alice(), kb, first.document.id)
        .await
        .unwrap();
    assert_eq!(detail.chunks.len(), 1);
    assert!(detail.chunks[0].content.contains("seven"));
    let hits = k.search(&alice(), kb, "ferry leaves", 5).await.unwrap();
    assert_eq!(hits.len(), 1, "old chunks replaced, not added: {hits:#?}");

    // Deleting the document takes its chunks out of the index at once.
    k.delete_document(&alice(), kb, first.document.id)
        .await
        .unwrap();
    assert!(
        k.search(&alice(), kb, "ferry leaves", 5)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(is_not_found(
        k.get_document(&alice(), kb, first.document.id).await
    ));

    // Deleting the base removes everything under it.
    k.add_text(&alice(), kb, "more", "The harbour master is Ines.")
        .await
        .unwrap();
    k.drain().await.unwrap();
    k.delete_base(&alice(), kb).await.unwrap();
    assert!(is_not_found(k.get_base(&alice(), kb).await));
    assert!(k.list_bases(&alice()).await.unwrap().is_empty());
}

async fn a_lost_worker_s_job_is_resumed_without_duplicates(db: Db) {
    let config = KnowledgeConfig {
        lease: Duration::from_millis(300),
        ..KnowledgeConfig::default()
    };
    let k = service_with(&db, config).await;
    let kb = base(&k, &alice(), "resume").await;
    k.upload(&alice(), kb, vec![file("handbook.pdf")])
        .await
        .unwrap();
    // A worker claims the job and dies (the claim is dropped, never run).
    let job = k.claim().await.unwrap().unwrap();
    assert_eq!(job.attempts, 1);
    assert_eq!(
        statuses(&k, &alice(), kb).await,
        [("handbook.pdf".to_owned(), DocumentStatus::Processing)]
    );
    // Nobody else gets it while the lease holds...
    assert!(k.claim().await.unwrap().is_none());
    // ...and once it ran out, it is claimed again and finishes.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let again = loop {
        if let Some(j) = k.claim().await.unwrap() {
            break j;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the job was never claimed again"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(again.id, job.id);
    assert_eq!(again.attempts, 2);
    k.run(again).await.unwrap();
    let doc = &k.list_documents(&alice(), kb).await.unwrap()[0];
    assert_eq!(doc.status, DocumentStatus::Ready);

    // The same file ingested cleanly in another base: same chunks.
    let clean = base(&k, &alice(), "clean").await;
    k.upload(&alice(), clean, vec![file("handbook.pdf")])
        .await
        .unwrap();
    k.drain().await.unwrap();
    let clean_doc = &k.list_documents(&alice(), clean).await.unwrap()[0];
    assert_eq!(doc.chunk_count, clean_doc.chunk_count);
    let a = k.get_document(&alice(), kb, doc.id).await.unwrap().chunks;
    let b = k
        .get_document(&alice(), clean, clean_doc.id)
        .await
        .unwrap()
        .chunks;
    assert_eq!(a, b);

    // A job whose worker keeps dying ends as a failed document.
    let kb2 = base(&k, &alice(), "poison").await;
    k.upload(&alice(), kb2, vec![file("notes.md")])
        .await
        .unwrap();
    for _ in 0..3 {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while k.claim().await.unwrap().is_none() {
            assert!(std::time::Instant::now() < deadline);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let docs = k.list_documents(&alice(), kb2).await.unwrap();
        if docs[0].status == DocumentStatus::Failed {
            assert!(docs[0].error.as_deref().unwrap().contains("3 attempts"));
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{docs:?}");
        let _ = k.claim().await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(k.pending_jobs().await.unwrap(), 0);
}

/// A 16-dimensional embedder (hashed word lengths) standing in for "another model".
struct Small;

impl EmbeddingModel for Small {
    fn dimensions(&self) -> usize {
        16
    }
    fn embed<'a>(&'a self, texts: &'a [String]) -> BoxFuture<'a, Result<Vec<Vec<f32>>, LlmError>> {
        Box::pin(async move {
            Ok(texts
                .iter()
                .map(|t| {
                    let mut v = vec![0.0f32; 16];
                    for w in t.split_whitespace() {
                        v[w.len() % 16] += 1.0;
                    }
                    v[0] += 0.01;
                    v
                })
                .collect())
        })
    }
}

async fn an_embedder_switch_re_embeds_in_the_background(db: Db) {
    let builtin = service(&db).await;
    let kb = base(&builtin, &alice(), "switch").await;
    builtin
        .upload(&alice(), kb, vec![file("notes.md"), file("handbook.pdf")])
        .await
        .unwrap();
    builtin.drain().await.unwrap();
    assert!(builtin.check_embedder().await.unwrap().is_empty());

    // Restart with another embedder.
    let rag = Rag::open(
        db.clone(),
        Arc::new(Small),
        RagConfig {
            embedding_model: "small-16".into(),
            ..RagConfig::default()
        },
    )
    .await
    .unwrap();
    let small = KnowledgeService::new(rag, KnowledgeConfig::default());
    let mismatched = small.check_embedder().await.unwrap();
    assert_eq!(mismatched.len(), 1);
    assert_eq!(mismatched[0].stored, ("builtin".to_owned(), 384));
    let b = small.get_base(&alice(), kb).await.unwrap();
    assert!(b.reembedding);
    // Meanwhile: keyword search, never the other model's vectors.
    let hits = small
        .search(&alice(), kb, "Bartholomew Quince", 3)
        .await
        .unwrap();
    assert_eq!(hits[0].metadata["page"], 7);
    // A new upload waits for the re-embed (it runs first) and then uses the new model.
    small
        .upload(&alice(), kb, vec![file("plain.txt")])
        .await
        .unwrap();
    small.drain().await.unwrap();
    let b = small.get_base(&alice(), kb).await.unwrap();
    assert!(!b.reembedding);
    assert_eq!((b.embedding_model.as_str(), b.dimensions), ("small-16", 16));
    assert!(small.check_embedder().await.unwrap().is_empty());
    let docs = small.list_documents(&alice(), kb).await.unwrap();
    assert!(
        docs.iter().all(|d| d.status == DocumentStatus::Ready),
        "{docs:?}"
    );
    let hits = small
        .search(&alice(), kb, "Bartholomew Quince", 3)
        .await
        .unwrap();
    // A toy embedder: the keyword side of the hybrid search finds them.
    assert!(hits.iter().any(|h| h.metadata["page"] == 7), "{hits:#?}");
    let hits = small
        .search(&alice(), kb, "telescope room", 3)
        .await
        .unwrap();
    assert!(
        hits.iter().any(|h| h.content.contains("telescope")),
        "{hits:#?}"
    );
}

async fn deleting_a_user_row_removes_their_bases(db: Db) {
    use confab_store::diesel::RunQueryDsl;
    let k = service(&db).await;
    let kb = base(&k, &Actor::new("u-1", false), "mine").await;
    k.add_text(&Actor::new("u-1", false), kb, "a", "Some text here.")
        .await
        .unwrap();
    k.drain().await.unwrap();
    db.run(|conn| {
        confab_store::diesel::sql_query(
            "INSERT INTO users (id, email, display_name, password_hash, created_at, updated_at) \
             VALUES ('u-1', 'u1@example.com', 'U', 'x', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
        )
        .execute(conn)?;
        confab_store::diesel::sql_query("DELETE FROM users WHERE id = 'u-1'").execute(conn)?;
        Ok::<_, RagError>(())
    })
    .await
    .unwrap();
    assert!(is_not_found(
        k.get_base(&Actor::new("u-1", false), kb).await
    ));
    assert!(
        k.list_bases(&Actor::new("u-1", false))
            .await
            .unwrap()
            .is_empty()
    );
}

async fn a_renamed_base_s_sources_carry_its_new_name(db: Db) {
    let k = service(&db).await;
    let kb = base(&k, &alice(), "Old handbook").await;
    k.add_text(
        &alice(),
        kb,
        "ferry",
        "The ferry to Quillon leaves at dawn.",
    )
    .await
    .unwrap();
    k.drain().await.unwrap();
    let name_of = |hits: &[confab_models::SourceInfo]| -> Vec<String> {
        hits.iter()
            .map(|h| h.metadata["knowledge_base"].as_str().unwrap().to_owned())
            .collect()
    };
    let before = k.search(&alice(), kb, "ferry Quillon", 3).await.unwrap();
    assert!(!before.is_empty());
    assert!(
        name_of(&before).iter().all(|n| n == "Old handbook"),
        "{before:#?}"
    );

    k.update_base(
        &alice(),
        kb,
        KnowledgeBaseUpdate {
            name: Some("Station handbook".into()),
        },
    )
    .await
    .unwrap();
    let after = k.search(&alice(), kb, "ferry Quillon", 3).await.unwrap();
    assert_eq!(after.len(), before.len());
    assert!(
        name_of(&after).iter().all(|n| n == "Station handbook"),
        "{after:#?}"
    );
    // The conversation path (collections checked readable, then retrieval) too.
    let collections = k.readable_collections(&alice(), &[kb]).await.unwrap();
    let chat = k
        .rag()
        .search_knowledge("ferry Quillon", &collections, None, 3)
        .await
        .unwrap();
    assert!(
        name_of(&chat).iter().all(|n| n == "Station handbook"),
        "{chat:#?}"
    );
}

confab_testkit::backend_tests!(
    a_renamed_base_s_sources_carry_its_new_name,
    every_format_is_ingested_with_locations,
    private_bases_are_invisible_to_others,
    bad_uploads_are_refused_and_store_nothing,
    unreadable_documents_fail_with_a_reason,
    reupload_is_a_no_op_and_changes_replace,
    a_lost_worker_s_job_is_resumed_without_duplicates,
    an_embedder_switch_re_embeds_in_the_background,
    deleting_a_user_row_removes_their_bases,
);
