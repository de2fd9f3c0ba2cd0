//! The agent's `search_knowledge` tool searches only the knowledge bases
//! the conversation was given, whatever collection the model asks for.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use confab_agents::tools::builtin::SearchKnowledge;
use confab_agents::tools::{DynTool, ToolContext};
use confab_llm::BuiltinProvider;
use confab_models::knowledge::NewKnowledgeBase;
use confab_rag::knowledge::{Actor, KnowledgeConfig};
use confab_rag::{KnowledgeService, Rag, RagConfig};
use confab_store::Db;
use serde_json::json;

async fn only_the_conversation_s_bases(db: Db) {
    let rag = Rag::open(db, Arc::new(BuiltinProvider::new()), RagConfig::default())
        .await
        .unwrap();
    let k = KnowledgeService::new(rag.clone(), KnowledgeConfig::default());
    let alice = Actor::new("alice", false);
    let kb = k
        .create_base(
            &alice,
            NewKnowledgeBase {
                name: "alice's".into(),
                shared: false,
            },
        )
        .await
        .unwrap()
        .id;
    k.add_text(
        &alice,
        kb,
        "secret.md",
        "# Vault\n\nThe vault code is 7341.",
    )
    .await
    .unwrap();
    k.drain().await.unwrap();
    let collection = format!("kb:{kb}");
    let tool = SearchKnowledge::new(Arc::new(rag));

    // Bob's conversation was given no base: naming Alice's is refused...
    let bob = ToolContext::for_user("bob");
    let asked = json!({"query": "vault code", "collection": collection});
    assert!(tool.call_json(asked.clone(), &bob).await.is_err());
    // ...and without a collection nothing of hers is found.
    let out = tool
        .call_json(json!({"query": "vault code 7341"}), &bob)
        .await
        .unwrap();
    assert!(out.sources.is_empty(), "{:?}", out.sources);
    assert!(!out.content.contains("7341"));

    // Alice's conversation with the base: found, with its source.
    let mut ctx = ToolContext::for_user("alice");
    ctx.knowledge = vec![collection.clone()];
    let out = tool.call_json(asked, &ctx).await.unwrap();
    assert_eq!(out.sources[0].file_path, "secret.md");
    let out = tool
        .call_json(json!({"query": "vault code"}), &ctx)
        .await
        .unwrap();
    assert_eq!(out.sources[0].metadata["knowledge_base_id"], kb.to_string());
}

confab_testkit::backend_tests!(only_the_conversation_s_bases);
