#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The course catalogue: demo load, imports, progress; on SQLite and PostgreSQL.

mod common;

use std::path::Path;

use confab_accounts::{AccountsError, DEMO_TRACKS};
use confab_error::{DomainError, ErrorKind};
use confab_store::Db;

use common::{accounts, user};

fn write(root: &Path, rel: &str, text: &str) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// A small catalogue folder: two tracks, three modules, five lessons.
fn sample(root: &Path) {
    write(
        root,
        "go/track.json",
        r#"{"title": "Go", "description": "Go for beginners", "position": 2}"#,
    );
    write(
        root,
        "go/01-start/module.json",
        r#"{"title": "Getting started"}"#,
    );
    write(
        root,
        "go/01-start/01-install.md",
        "# Installing Go\n\nDownload it.\n",
    );
    write(
        root,
        "go/01-start/02-hello.md",
        "# Hello, world\n\n```go\nfmt.Println(\"hi\")\n```\n",
    );
    write(
        root,
        "go/02-types/01-structs.md",
        "# Structs\n\nGroup fields.\n",
    );
    write(
        root,
        "01-sql/track.json",
        r#"{"id": "sql", "title": "SQL", "description": "Queries"}"#,
    );
    write(
        root,
        "01-sql/01-select/module.json",
        r#"{"title": "SELECT"}"#,
    );
    write(
        root,
        "01-sql/01-select/01-basics.md",
        "# SELECT basics\n\nSELECT * FROM t;\n",
    );
    write(
        root,
        "01-sql/01-select/02-where.md",
        "# WHERE\n\nFilter rows.\n",
    );
    write(root, "notes.txt", "ignored");
}

async fn demo_catalogue_and_progress(db: Db) {
    let acc = accounts(&db);
    let cat = &acc.catalog;
    assert!(cat.is_empty().await.unwrap());
    let loaded = cat.load_demo_if_empty().await.unwrap().expect("loaded");
    let mut changed = loaded.changed.clone();
    changed.sort();
    let mut expected: Vec<String> = DEMO_TRACKS.iter().map(|s| s.to_string()).collect();
    expected.sort();
    assert_eq!(changed, expected);
    assert!(loaded.modules >= 3 && loaded.lessons >= 8, "{loaded:?}");
    assert!(!cat.is_empty().await.unwrap());
    assert!(cat.load_demo_if_empty().await.unwrap().is_none());
    // Loading the demo again changes nothing.
    assert!(cat.load_demo().await.unwrap().changed.is_empty());

    let u = user(&acc, "learner@example.com").await;
    let uid = u.id.to_string();
    let cards = cat.tracks_for_user(&uid).await.unwrap();
    let ids: Vec<&str> = cards.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["rust-basics", "prompting"], "ordered by position");
    let rust = &cards[0];
    assert_eq!(rust.lessons_total, 5);
    assert_eq!(rust.modules_total, 2);
    assert_eq!(rust.lessons_completed, 0);
    assert_eq!(rust.progress_percent, 0.0);
    assert_eq!(
        rust.next_lesson_id.as_deref(),
        Some("rust-basics-ownership")
    );

    let track = cat.track(&uid, "rust-basics").await.unwrap();
    assert_eq!(track.modules.len(), 2);
    assert_eq!(track.modules[0].title, "Ownership and borrowing");
    let first_module: Vec<&str> = track.modules[0]
        .lessons
        .iter()
        .map(|l| l.id.as_str())
        .collect();
    assert_eq!(
        first_module,
        [
            "rust-basics-ownership",
            "rust-basics-borrowing",
            "rust-basics-lifetimes"
        ]
    );

    let lesson = cat.lesson(&uid, "rust-basics-borrowing").await.unwrap();
    assert_eq!(lesson.title, "Borrowing and references");
    assert_eq!(lesson.track_id, "rust-basics");
    assert_eq!(lesson.module_title, "Ownership and borrowing");
    assert!(lesson.content.contains("&mut"));
    assert!(!lesson.completed);
    assert_eq!(
        lesson.previous_lesson_id.as_deref(),
        Some("rust-basics-ownership")
    );
    assert_eq!(
        lesson.next_lesson_id.as_deref(),
        Some("rust-basics-lifetimes")
    );
    // Across a module boundary.
    let last_of_first = cat.lesson(&uid, "rust-basics-lifetimes").await.unwrap();
    assert_eq!(
        last_of_first.next_lesson_id.as_deref(),
        Some("rust-basics-error-handling")
    );

    // Completing: once, twice (idempotent), percentages.
    let done = cat
        .complete_lesson(&uid, "rust-basics-ownership")
        .await
        .unwrap();
    assert!(!done.already_completed);
    assert_eq!(done.track.lessons_completed, 1);
    assert_eq!(done.track.progress_percent, 20.0);
    assert_eq!(
        done.track.next_lesson_id.as_deref(),
        Some("rust-basics-borrowing")
    );
    let twice = cat
        .complete_lesson(&uid, "rust-basics-ownership")
        .await
        .unwrap();
    assert!(twice.already_completed);
    assert_eq!(twice.completed_at, done.completed_at);
    assert_eq!(twice.track.lessons_completed, 1);
    cat.complete_lesson(&uid, "rust-basics-lifetimes")
        .await
        .unwrap();
    cat.complete_lesson(&uid, "prompting-step-by-step")
        .await
        .unwrap();

    let progress = cat.progress(&uid).await.unwrap();
    assert_eq!(progress.total_completed, 3);
    assert_eq!(progress.total_lessons, 9);
    assert_eq!(progress.progress_percent, 33.3);
    assert_eq!(
        progress.completed_lessons,
        [
            "rust-basics-ownership",
            "rust-basics-lifetimes",
            "prompting-step-by-step"
        ]
    );
    assert_eq!(progress.tracks[0].progress_percent, 40.0);
    assert_eq!(progress.tracks[1].progress_percent, 25.0);
    assert_eq!(progress.tracks[1].lessons_completed, 1);

    let track = cat.track(&uid, "rust-basics").await.unwrap();
    let flags: Vec<bool> = track.modules[0]
        .lessons
        .iter()
        .map(|l| l.completed)
        .collect();
    assert_eq!(flags, [true, false, true]);
    assert_eq!(track.lessons_completed, 2);
    assert!(
        cat.lesson(&uid, "rust-basics-ownership")
            .await
            .unwrap()
            .completed
    );

    let lessons = cat.track_lessons(&uid, "prompting").await.unwrap();
    assert_eq!(lessons.len(), 4);
    assert!(
        lessons
            .iter()
            .all(|l| l.track_id == "prompting" && l.content.len() > 1000)
    );
    assert_eq!(lessons.iter().filter(|l| l.completed).count(), 1);

    // Another user sees none of it.
    let other = user(&acc, "other@example.com").await;
    let theirs = cat.progress(&other.id.to_string()).await.unwrap();
    assert_eq!(theirs.total_completed, 0);
    assert!(theirs.tracks.iter().all(|c| c.lessons_completed == 0));

    // Not found.
    assert!(matches!(
        cat.track(&uid, "nope").await,
        Err(AccountsError::TrackNotFound(_))
    ));
    assert!(matches!(
        cat.lesson(&uid, "nope").await,
        Err(AccountsError::LessonNotFound(_))
    ));
    assert!(matches!(
        cat.track_lessons(&uid, "nope").await,
        Err(AccountsError::TrackNotFound(_))
    ));
    let err = cat.complete_lesson(&uid, "nope").await.unwrap_err();
    assert!(matches!(err, AccountsError::LessonNotFound(_)));
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(matches!(
        cat.complete_lesson("not-a-user", "rust-basics-ownership")
            .await,
        Err(AccountsError::UserNotFound(_))
    ));

    // Deleting the user removes their progress.
    acc.users.delete_user(u.id).await.unwrap();
    assert_eq!(cat.progress(&uid).await.unwrap().total_completed, 0);
}

async fn folder_import_is_idempotent(db: Db) {
    let acc = accounts(&db);
    let cat = &acc.catalog;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    sample(root);

    let first = cat.import_dir(root).await.unwrap();
    assert_eq!(first.tracks, ["sql", "go"]);
    assert_eq!(first.changed, ["sql", "go"]);
    assert_eq!((first.modules, first.lessons), (3, 5));
    assert!(first.warnings.is_empty(), "{:?}", first.warnings);
    let again = cat.import_dir(root).await.unwrap();
    assert!(again.changed.is_empty(), "{again:?}");

    let u = user(&acc, "importer@example.com").await;
    let uid = u.id.to_string();
    let cards = cat.tracks_for_user(&uid).await.unwrap();
    let ids: Vec<&str> = cards.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["sql", "go"]);
    assert_eq!(cards[1].description, "Go for beginners");
    let go = cat.track(&uid, "go").await.unwrap();
    assert_eq!(go.modules[0].id, "go-start");
    assert_eq!(go.modules[1].title, "Types");
    let hello = cat.lesson(&uid, "go-hello").await.unwrap();
    assert_eq!(hello.title, "Hello, world");
    assert!(hello.content.starts_with("```go"));
    cat.complete_lesson(&uid, "go-hello").await.unwrap();
    cat.complete_lesson(&uid, "go-structs").await.unwrap();

    // Change one lesson: only its track is reported.
    write(
        root,
        "go/01-start/01-install.md",
        "# Installing Go\n\nUse the official installer.\n",
    );
    let changed = cat.import_dir(root).await.unwrap();
    assert_eq!(changed.changed, ["go"]);
    assert!(
        cat.lesson(&uid, "go-install")
            .await
            .unwrap()
            .content
            .contains("official")
    );

    // Move a lesson to another module (progress kept), delete another (progress gone).
    std::fs::rename(
        root.join("go/01-start/02-hello.md"),
        root.join("go/02-types/00-hello.md"),
    )
    .unwrap();
    std::fs::remove_file(root.join("go/02-types/01-structs.md")).unwrap();
    let moved = cat.import_dir(root).await.unwrap();
    assert_eq!(moved.changed, ["go"]);
    let hello = cat.lesson(&uid, "go-hello").await.unwrap();
    assert_eq!(hello.module_id, "go-types");
    assert!(hello.completed);
    assert!(matches!(
        cat.lesson(&uid, "go-structs").await,
        Err(AccountsError::LessonNotFound(_))
    ));
    let progress = cat.progress(&uid).await.unwrap();
    assert_eq!(progress.completed_lessons, ["go-hello"]);
    let go_card = progress.tracks.iter().find(|c| c.id == "go").unwrap();
    assert_eq!((go_card.lessons_total, go_card.lessons_completed), (2, 1));
    assert_eq!(go_card.progress_percent, 50.0);

    // A module folder that disappears takes its lessons along; the other track is untouched.
    std::fs::remove_dir_all(root.join("go/02-types")).unwrap();
    let removed = cat.import_dir(root).await.unwrap();
    assert_eq!(removed.changed, ["go"]);
    assert_eq!(cat.track(&uid, "go").await.unwrap().modules.len(), 1);

    // Importing one track folder alone leaves the others in place.
    write(
        root,
        "01-sql/01-select/03-order.md",
        "# ORDER BY\n\nSort rows.\n",
    );
    let only_sql = cat.import_dir(root.join("01-sql")).await.unwrap();
    assert_eq!(only_sql.tracks, ["sql"]);
    assert_eq!(only_sql.changed, ["sql"]);
    assert_eq!(cat.tracks_for_user(&uid).await.unwrap().len(), 2);

    // Deleting a track.
    cat.delete_track("go").await.unwrap();
    assert!(matches!(
        cat.delete_track("go").await,
        Err(AccountsError::TrackNotFound(_))
    ));
    assert_eq!(cat.progress(&uid).await.unwrap().total_completed, 0);
}

async fn json_import_and_conflicts(db: Db) {
    let acc = accounts(&db);
    let cat = &acc.catalog;
    let doc = r#"{"tracks": [{"id": "py", "title": "Python", "description": "Basics",
        "modules": [{"title": "Syntax", "lessons": [
            {"title": "Variables", "content": "x = 1"},
            {"id": "py-loops", "title": "Loops", "content": "for i in range(3): ..."}]}]}]}"#;
    let s = cat.import_json(doc).await.unwrap();
    assert_eq!(
        (s.tracks.clone(), s.changed.clone(), s.lessons),
        (vec!["py".to_string()], vec!["py".to_string()], 2)
    );
    assert!(cat.import_json(doc).await.unwrap().changed.is_empty());
    let u = user(&acc, "py@example.com").await;
    let lesson = cat.lesson(&u.id.to_string(), "py-variables").await.unwrap();
    assert_eq!(lesson.module_id, "py-syntax");
    assert_eq!(lesson.content, "x = 1");

    // catalog.json in a folder, or the file itself.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("catalog.json");
    std::fs::write(&file, doc.replace("Basics", "Basics, revised")).unwrap();
    assert_eq!(cat.import_dir(dir.path()).await.unwrap().changed, ["py"]);
    assert!(cat.import_dir(&file).await.unwrap().changed.is_empty());

    // A lesson id that belongs to another track is refused, and nothing is written.
    let steal = r#"[{"id": "other", "title": "Other", "modules": [{"title": "M", "lessons": [
        {"id": "py-loops", "title": "Loops", "content": "mine"}]}]}]"#;
    let err = cat.import_json(steal).await.unwrap_err();
    assert!(matches!(err, AccountsError::InvalidCatalog(_)), "{err:?}");
    assert!(err.to_string().contains("py-loops"), "{err}");
    assert!(matches!(
        cat.track("x", "other").await,
        Err(AccountsError::TrackNotFound(_))
    ));

    // Malformed input.
    for bad in [
        "{",
        r#"{"tracks": [{"title": "T", "unknown": 1}]}"#,
        r#"{"tracks": []}"#,
    ] {
        let res = cat.import_json(bad).await;
        assert!(
            matches!(res, Err(AccountsError::InvalidCatalog(_))),
            "{bad}: {res:?}"
        );
    }
    let empty = tempfile::tempdir().unwrap();
    assert!(matches!(
        cat.import_dir(empty.path()).await,
        Err(AccountsError::InvalidCatalog(_))
    ));
    assert!(matches!(
        cat.import_dir(empty.path().join("missing")).await,
        Err(AccountsError::Io(_))
    ));
}

async fn concurrent_demo_loads_once(db: Db) {
    let acc = accounts(&db);
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let cat = acc.catalog.clone();
        tasks.push(tokio::spawn(async move { cat.load_demo_if_empty().await }));
    }
    let mut loaded = 0;
    for t in tasks {
        if t.await.unwrap().unwrap().is_some() {
            loaded += 1;
        }
    }
    assert_eq!(loaded, 1);
    assert_eq!(
        acc.catalog.tracks_for_user("anyone").await.unwrap().len(),
        2
    );
}

confab_testkit::backend_tests!(
    demo_catalogue_and_progress,
    folder_import_is_idempotent,
    json_import_and_conflicts,
    concurrent_demo_loads_once,
);
