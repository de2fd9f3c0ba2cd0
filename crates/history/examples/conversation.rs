//! Keeps a conversation with `confab-history` in a SQLite file: stores it,
//! pages through it, searches it and exports it as Markdown.
//!
//! ```text
//! cargo run -p confab-history --example conversation
//! ```

use confab_history::{HistoryConfig, Services};
use confab_models::{MessageQuery, MessageRole, NewMessage, NewSession};
use confab_store::{Db, DbConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A SQLite file in a temp dir (a `postgres://` URL works the same way);
    // migrations are applied on connect.
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}", dir.path().join("history.db").display());
    let db = Db::connect(DbConfig::new(url)).await?;
    let services = Services::new(db, HistoryConfig::default());

    // Store: a session of user `ada` with five questions and answers.
    let new = NewSession {
        title: Some("Rust questions".into()),
        ..NewSession::default()
    };
    let session = services.sessions.create("ada", new).await?;
    let sid = session.id.to_string();
    for i in 1..=5 {
        let question = format!("Question {i}: how does borrowing work?");
        let answer = format!("Answer {i}: a reference borrows a value without owning it.");
        for (role, text) in [
            (MessageRole::User, question),
            (MessageRole::Assistant, answer),
        ] {
            let message = NewMessage::new(role, text);
            services.history.save_message("ada", &sid, message).await?;
        }
    }

    // Page: newest first, four at a time, following the cursors.
    let mut query = MessageQuery {
        limit: Some(4),
        ..MessageQuery::default()
    };
    let (mut pages, mut messages) = (0, 0);
    loop {
        let page = services
            .history
            .get_session_messages("ada", &sid, query.clone())
            .await?;
        pages += 1;
        messages += page.items.len();
        match page.older_cursor {
            Some(cursor) => query.before = Some(cursor),
            None => break,
        }
    }
    println!("paged {messages} messages in {pages} pages");

    // Search: full text over the user's messages, best first.
    let hits = services
        .history
        .search_messages("ada", "borrows", None, None)
        .await?;
    let best = hits.first().ok_or("no search hit")?;
    println!(
        "search `borrows`: {} hits, best: {}",
        hits.len(),
        best.snippet
    );

    // Export: Markdown, with a file name from the title.
    let export = services
        .history
        .export_session("ada", &sid, "markdown")
        .await?;
    println!("exported {} ({} bytes)", export.filename, export.body.len());
    println!("{}", export.body.lines().next().unwrap_or_default());
    Ok(())
}
