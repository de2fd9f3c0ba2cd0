//! Reading a catalogue to import: a folder of tracks, modules and Markdown
//! lessons, or one `catalog.json`, into a checked [`CatalogTree`].
//!
//! Folder layout (one folder per track, one sub-folder per module):
//!
//! ```text
//! rust-basics/track.json            {"id"?, "title", "description"?, "position"?}
//! rust-basics/01-ownership/module.json   {"id"?, "title"?, "position"?}
//! rust-basics/01-ownership/01-moves.md   "# Moves\n\n..."  (title from the first `# ` heading)
//! ```
//!
//! A leading number (`01-`) gives the position; the rest of the name is the
//! slug. Ids default to the track's slug, `{track}-{module slug}` and
//! `{track}-{lesson slug}`. `catalog.json` holds the same tree:
//! `{"tracks": [{"id"?, "title", "description"?, "position"?, "modules":
//! [{"id"?, "title", "position"?, "lessons": [{"id"?, "title", "content",
//! "position"?}]}]}]}` (or just the array of tracks).

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use serde::Deserialize;

use crate::error::AccountsError;
use crate::validate::{self, is_slug, slugify};

/// Largest file read from a catalogue folder.
pub(crate) const MAX_FILE_BYTES: u64 = 1024 * 1024;
/// Most files read from a catalogue folder.
const MAX_FILES: usize = 5000;
/// Longest title.
const MAX_TITLE: usize = 200;
/// Longest track description.
const MAX_DESCRIPTION: usize = 4000;

/// A whole catalogue to import, checked: ids are slugs and unique, titles
/// present, positions set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct CatalogTree {
    pub tracks: Vec<TrackDef>,
    pub warnings: Vec<String>,
}

/// A track to import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TrackDef {
    pub id: String,
    pub title: String,
    pub description: String,
    pub position: i32,
    pub modules: Vec<ModuleDef>,
}

/// A module to import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ModuleDef {
    pub id: String,
    pub title: String,
    pub position: i32,
    pub lessons: Vec<LessonDef>,
}

/// A lesson to import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LessonDef {
    pub id: String,
    pub title: String,
    pub content: String,
    pub position: i32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TrackJson {
    #[serde(default)]
    id: Option<String>,
    title: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    position: Option<i32>,
    #[serde(default)]
    modules: Vec<ModuleJson>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ModuleJson {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    position: Option<i32>,
    #[serde(default)]
    lessons: Vec<LessonJson>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LessonJson {
    #[serde(default)]
    id: Option<String>,
    title: String,
    content: String,
    #[serde(default)]
    position: Option<i32>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum CatalogJson {
    Object { tracks: Vec<TrackJson> },
    Array(Vec<TrackJson>),
}

fn invalid(msg: impl Into<String>) -> AccountsError {
    AccountsError::InvalidCatalog(msg.into())
}

/// `01-name` -> (Some(1), "name"); `name` -> (None, "name").
fn split_position(name: &str) -> (Option<i32>, &str) {
    let digits = name.bytes().take_while(u8::is_ascii_digit).count();
    if digits > 0 && digits < 9 {
        let rest = &name[digits..];
        if let Some(r) = rest.strip_prefix(['-', '_', ' ', '.']) {
            return (name[..digits].parse().ok(), r);
        }
        if rest.is_empty() {
            return (name.parse().ok(), name);
        }
    }
    (None, name)
}

/// `ownership-and-borrowing` -> `Ownership and borrowing`.
fn humanize(slug: &str) -> String {
    let words = slug.replace(['-', '_'], " ");
    let mut chars = words.trim().chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn check_title(what: &str, title: &str) -> Result<String, AccountsError> {
    let t = title.trim();
    if t.is_empty() {
        return Err(invalid(format!("{what}: the title is empty")));
    }
    if t.chars().count() > MAX_TITLE || t.chars().any(char::is_control) {
        return Err(invalid(format!(
            "{what}: the title must be at most {MAX_TITLE} printable characters"
        )));
    }
    Ok(t.to_owned())
}

fn check_id(what: &str, id: &str) -> Result<String, AccountsError> {
    if is_slug(id) {
        Ok(id.to_owned())
    } else {
        Err(invalid(format!(
            "{what}: id `{id}` must be 1 to {} characters of a-z, 0-9, - and _",
            validate::MAX_SLUG
        )))
    }
}

/// An id from an explicit value, or `prefix-slug`, or `slug`.
fn derive_id(
    what: &str,
    explicit: Option<&str>,
    prefix: Option<&str>,
    slug_source: &str,
) -> Result<String, AccountsError> {
    if let Some(id) = explicit {
        return check_id(what, id.trim());
    }
    let slug = slugify(slug_source);
    if slug.is_empty() {
        return Err(invalid(format!(
            "{what}: cannot derive an id from `{slug_source}`; give an explicit id"
        )));
    }
    let id = match prefix {
        Some(p) => format!("{p}-{slug}"),
        None => slug,
    };
    let id: String = id.chars().take(validate::MAX_SLUG).collect();
    check_id(what, id.trim_end_matches('-'))
}

/// The title of a Markdown lesson (its first `# ` heading) and its content
/// without that heading.
pub(crate) fn split_markdown(text: &str) -> (Option<String>, String) {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text.lines();
    for line in lines.by_ref() {
        if line.trim().is_empty() {
            continue;
        }
        if let Some(title) = line.strip_prefix("# ") {
            let rest: Vec<&str> = lines.collect();
            let body = rest.join("\n");
            let body = body.trim_start_matches(['\n', '\r']).trim_end();
            return (Some(title.trim().to_owned()), format!("{body}\n"));
        }
        break;
    }
    (None, format!("{}\n", text.trim()))
}

fn from_json_tracks(tracks: Vec<TrackJson>) -> Result<CatalogTree, AccountsError> {
    let mut out = Vec::with_capacity(tracks.len());
    for (ti, t) in tracks.into_iter().enumerate() {
        let what = format!("track #{}", ti + 1);
        let title = check_title(&what, &t.title)?;
        let id = derive_id(&what, t.id.as_deref(), None, &title)?;
        let mut modules = Vec::with_capacity(t.modules.len());
        for (mi, m) in t.modules.into_iter().enumerate() {
            let what = format!("track `{id}` module #{}", mi + 1);
            let title = check_title(&what, m.title.as_deref().unwrap_or(""))?;
            let mid = derive_id(&what, m.id.as_deref(), Some(&id), &title)?;
            let mut lessons = Vec::with_capacity(m.lessons.len());
            for (li, l) in m.lessons.into_iter().enumerate() {
                let what = format!("module `{mid}` lesson #{}", li + 1);
                let title = check_title(&what, &l.title)?;
                lessons.push(LessonDef {
                    id: derive_id(&what, l.id.as_deref(), Some(&id), &title)?,
                    title,
                    content: l.content,
                    position: l.position.unwrap_or(position_of(li)),
                });
            }
            modules.push(ModuleDef {
                id: mid,
                title,
                position: m.position.unwrap_or(position_of(mi)),
                lessons,
            });
        }
        out.push(TrackDef {
            id,
            title,
            description: t.description.unwrap_or_default().trim().to_owned(),
            position: t.position.unwrap_or(position_of(ti)),
            modules,
        });
    }
    Ok(CatalogTree {
        tracks: out,
        warnings: Vec::new(),
    })
}

/// 1-based position of the `i`-th item.
fn position_of(i: usize) -> i32 {
    i32::try_from(i + 1).unwrap_or(i32::MAX)
}

/// Parses a `catalog.json` document.
pub(crate) fn parse_catalog_json(text: &str) -> Result<CatalogTree, AccountsError> {
    let doc: CatalogJson =
        serde_json::from_str(text).map_err(|e| invalid(format!("catalog.json: {e}")))?;
    let tracks = match doc {
        CatalogJson::Object { tracks } | CatalogJson::Array(tracks) => tracks,
    };
    if tracks.is_empty() {
        return Err(invalid("catalog.json: no tracks"));
    }
    let tree = from_json_tracks(tracks)?;
    check_tree(&tree)?;
    Ok(tree)
}

/// Files of a catalogue folder: relative `/`-separated path -> text.
pub(crate) type FileMap = BTreeMap<String, String>;

/// Parses a catalogue from its files. `root_name` is the folder's own name
/// (used when the folder is a single track).
pub(crate) fn parse_files(files: &FileMap, root_name: &str) -> Result<CatalogTree, AccountsError> {
    if let Some(text) = files.get("catalog.json") {
        return parse_catalog_json(text);
    }
    let mut tree = CatalogTree::default();
    if files.contains_key("track.json") {
        let track = parse_track_dir(files, "", root_name, 0, &mut tree.warnings)?;
        tree.tracks.push(track);
    } else {
        let mut dirs: Vec<&str> = files
            .keys()
            .filter_map(|p| p.split_once('/').map(|(d, _)| d))
            .collect();
        dirs.dedup();
        for (i, dir) in dirs.into_iter().enumerate() {
            if files.contains_key(&format!("{dir}/track.json")) {
                let track = parse_track_dir(files, &format!("{dir}/"), dir, i, &mut tree.warnings)?;
                tree.tracks.push(track);
            } else {
                tree.warnings
                    .push(format!("skipped folder `{dir}`: it has no track.json"));
            }
        }
    }
    if tree.tracks.is_empty() {
        return Err(invalid(
            "no tracks found: expected catalog.json, or folders with a track.json",
        ));
    }
    check_tree(&tree)?;
    Ok(tree)
}

fn parse_track_dir(
    files: &FileMap,
    prefix: &str,
    dir_name: &str,
    index: usize,
    warnings: &mut Vec<String>,
) -> Result<TrackDef, AccountsError> {
    let where_ = format!("{prefix}track.json");
    let meta: TrackJson = serde_json::from_str(files.get(&where_).map_or("", String::as_str))
        .map_err(|e| invalid(format!("{where_}: {e}")))?;
    if !meta.modules.is_empty() {
        return Err(invalid(format!(
            "{where_}: modules go in sub-folders, not in track.json"
        )));
    }
    let (dir_pos, dir_slug) = split_position(dir_name);
    let title = check_title(&where_, &meta.title)?;
    let id = derive_id(&where_, meta.id.as_deref(), None, dir_slug)?;
    // Module folders: direct sub-folders holding module.json or lessons.
    let mut module_dirs: Vec<&str> = Vec::new();
    for path in files.keys() {
        let Some(rest) = path.strip_prefix(prefix) else {
            continue;
        };
        match rest.split('/').collect::<Vec<_>>().as_slice() {
            [_file] => {
                if rest.ends_with(".md") {
                    warnings.push(format!("ignored {path}: lessons belong in module folders"));
                }
            }
            [dir, file] if *file == "module.json" || file.ends_with(".md") => {
                if module_dirs.last() != Some(dir) {
                    module_dirs.push(dir);
                }
            }
            [_, _] => {}
            _ => warnings.push(format!("ignored {path}: nested too deep")),
        }
    }
    module_dirs.dedup();
    let mut modules = Vec::with_capacity(module_dirs.len());
    for (mi, dir) in module_dirs.into_iter().enumerate() {
        modules.push(parse_module_dir(
            files,
            &format!("{prefix}{dir}/"),
            dir,
            mi,
            &id,
        )?);
    }
    Ok(TrackDef {
        id,
        title,
        description: meta.description.unwrap_or_default().trim().to_owned(),
        position: meta.position.or(dir_pos).unwrap_or(position_of(index)),
        modules,
    })
}

fn parse_module_dir(
    files: &FileMap,
    prefix: &str,
    dir_name: &str,
    index: usize,
    track_id: &str,
) -> Result<ModuleDef, AccountsError> {
    let where_ = format!("{prefix}module.json");
    let meta: ModuleJson = match files.get(&where_) {
        Some(text) => serde_json::from_str(text).map_err(|e| invalid(format!("{where_}: {e}")))?,
        None => ModuleJson::default(),
    };
    if !meta.lessons.is_empty() {
        return Err(invalid(format!(
            "{where_}: lessons go in Markdown files, not in module.json"
        )));
    }
    let (dir_pos, dir_slug) = split_position(dir_name);
    let title = match meta.title.as_deref() {
        Some(t) => check_title(&where_, t)?,
        None => check_title(&where_, &humanize(dir_slug))?,
    };
    let id = derive_id(&where_, meta.id.as_deref(), Some(track_id), dir_slug)?;
    let mut lessons = Vec::new();
    let lesson_files = files.iter().filter(|(p, _)| {
        p.strip_prefix(prefix)
            .is_some_and(|f| !f.contains('/') && f.ends_with(".md"))
    });
    for (li, (path, text)) in lesson_files.enumerate() {
        let file = path.rsplit('/').next().unwrap_or(path);
        let stem = file.strip_suffix(".md").unwrap_or(file);
        let (pos, slug) = split_position(stem);
        let (heading, content) = split_markdown(text);
        let title = match heading {
            Some(h) => check_title(path, &h)?,
            None => check_title(path, &humanize(slug))?,
        };
        if content.trim().is_empty() {
            return Err(invalid(format!("{path}: the lesson has no content")));
        }
        lessons.push(LessonDef {
            id: derive_id(path, None, Some(track_id), slug)?,
            title,
            content,
            position: pos.unwrap_or(position_of(li)),
        });
    }
    Ok(ModuleDef {
        id,
        title,
        position: meta.position.or(dir_pos).unwrap_or(position_of(index)),
        lessons,
    })
}

/// Ids unique across the import; sizes within limits.
fn check_tree(tree: &CatalogTree) -> Result<(), AccountsError> {
    let (mut t_ids, mut m_ids, mut l_ids) = (HashSet::new(), HashSet::new(), HashSet::new());
    for t in &tree.tracks {
        if !t_ids.insert(t.id.as_str()) {
            return Err(invalid(format!("track id `{}` is used twice", t.id)));
        }
        if t.description.chars().count() > MAX_DESCRIPTION {
            return Err(invalid(format!(
                "track `{}`: the description is longer than {MAX_DESCRIPTION} characters",
                t.id
            )));
        }
        for m in &t.modules {
            if !m_ids.insert(m.id.as_str()) {
                return Err(invalid(format!("module id `{}` is used twice", m.id)));
            }
            for l in &m.lessons {
                if !l_ids.insert(l.id.as_str()) {
                    return Err(invalid(format!(
                        "lesson id `{}` is used twice (give lessons of one track different file names)",
                        l.id
                    )));
                }
                if l.content.len() as u64 > MAX_FILE_BYTES {
                    return Err(invalid(format!(
                        "lesson `{}` is larger than {MAX_FILE_BYTES} bytes",
                        l.id
                    )));
                }
                if l.content.contains('\0') {
                    return Err(invalid(format!(
                        "lesson `{}` contains a NUL character",
                        l.id
                    )));
                }
            }
        }
    }
    Ok(())
}

/// Reads the `.json` and `.md` files of a catalogue folder (hidden entries
/// skipped, at most three levels deep). Blocking.
pub(crate) fn read_dir(root: &Path) -> Result<FileMap, AccountsError> {
    let io = |p: &Path, e: std::io::Error| AccountsError::Io(format!("{}: {e}", p.display()));
    let meta = std::fs::metadata(root).map_err(|e| io(root, e))?;
    if meta.is_file() {
        // A catalog.json given directly.
        let text = std::fs::read_to_string(root).map_err(|e| io(root, e))?;
        return Ok(FileMap::from([("catalog.json".to_owned(), text)]));
    }
    let mut files = FileMap::new();
    let mut stack = vec![(root.to_path_buf(), String::new(), 0usize)];
    while let Some((dir, rel, depth)) = stack.pop() {
        for entry in std::fs::read_dir(&dir).map_err(|e| io(&dir, e))? {
            let entry = entry.map_err(|e| io(&dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let path = entry.path();
            let rel_path = format!("{rel}{name}");
            let meta = std::fs::metadata(&path).map_err(|e| io(&path, e))?;
            if meta.is_dir() {
                if depth < 2 {
                    stack.push((path, format!("{rel_path}/"), depth + 1));
                }
                continue;
            }
            if !(name.ends_with(".md") || name.ends_with(".json")) {
                continue;
            }
            if meta.len() > MAX_FILE_BYTES {
                return Err(invalid(format!(
                    "{}: larger than {MAX_FILE_BYTES} bytes",
                    path.display()
                )));
            }
            if files.len() >= MAX_FILES {
                return Err(invalid(format!("more than {MAX_FILES} files")));
            }
            let bytes = std::fs::read(&path).map_err(|e| io(&path, e))?;
            let text = String::from_utf8(bytes)
                .map_err(|_| invalid(format!("{}: not UTF-8 text", path.display())))?;
            files.insert(rel_path, text);
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(list: &[(&str, &str)]) -> FileMap {
        list.iter()
            .map(|(p, t)| ((*p).to_owned(), (*t).to_owned()))
            .collect()
    }

    #[test]
    fn positions_and_titles() {
        assert_eq!(split_position("01-intro"), (Some(1), "intro"));
        assert_eq!(split_position("12_x"), (Some(12), "x"));
        assert_eq!(split_position("intro"), (None, "intro"));
        assert_eq!(split_position("2024"), (Some(2024), "2024"));
        assert_eq!(split_position("3d-graphics"), (None, "3d-graphics"));
        assert_eq!(humanize("error-handling"), "Error handling");
        assert_eq!(
            split_markdown("\n# Moves\n\nText.\n\n## More\nx\n"),
            (Some("Moves".to_owned()), "Text.\n\n## More\nx\n".to_owned())
        );
        assert_eq!(
            split_markdown("No heading\n"),
            (None, "No heading\n".to_owned())
        );
    }

    #[test]
    fn folder_tree() {
        let f = files(&[
            ("b-track/track.json", r#"{"title": "B", "position": 2}"#),
            ("b-track/01-one/module.json", r#"{"title": "One"}"#),
            ("b-track/01-one/02-second.md", "# Second\n\nTwo."),
            ("b-track/01-one/01-first.md", "# First\n\nOne."),
            ("b-track/02-two/03-third.md", "Three, no heading."),
            ("b-track/README.md", "ignored"),
            ("assets/x.json", "{}"),
            ("01-a/track.json", r#"{"title": "A", "description": " d "}"#),
            ("01-a/m/x.md", "# X\nx"),
        ]);
        let tree = parse_files(&f, "root").unwrap();
        assert_eq!(tree.tracks.len(), 2);
        let a = &tree.tracks[0];
        assert_eq!(
            (a.id.as_str(), a.position, a.description.as_str()),
            ("a", 1, "d")
        );
        assert_eq!(a.modules[0].id, "a-m");
        assert_eq!(a.modules[0].lessons[0].id, "a-x");
        let b = &tree.tracks[1];
        assert_eq!((b.id.as_str(), b.position), ("b-track", 2));
        assert_eq!(b.modules.len(), 2);
        let one = &b.modules[0];
        assert_eq!(
            (one.id.as_str(), one.title.as_str(), one.position),
            ("b-track-one", "One", 1)
        );
        let titles: Vec<_> = one
            .lessons
            .iter()
            .map(|l| (l.id.as_str(), l.title.as_str(), l.position))
            .collect();
        assert_eq!(
            titles,
            [
                ("b-track-first", "First", 1),
                ("b-track-second", "Second", 2)
            ]
        );
        assert_eq!(one.lessons[0].content, "One.\n");
        let two = &b.modules[1];
        assert_eq!((two.title.as_str(), two.position), ("Two", 2));
        assert_eq!(two.lessons[0].title, "Third");
        assert_eq!(two.lessons[0].position, 3);
        assert_eq!(tree.warnings.len(), 2, "{:?}", tree.warnings);
    }

    #[test]
    fn single_track_folder_and_json() {
        let f = files(&[
            ("track.json", r#"{"title": "Solo"}"#),
            ("01-m/01-l.md", "# L\nbody"),
        ]);
        let tree = parse_files(&f, "02-solo-course").unwrap();
        assert_eq!(tree.tracks[0].id, "solo-course");
        assert_eq!(tree.tracks[0].position, 2);

        let json = r#"{"tracks": [{"title": "Go Basics!", "modules": [
            {"title": "Start", "lessons": [{"title": "Hello, World", "content": "Hi"},
                                           {"id": "go-x", "title": "X", "content": "x", "position": 9}]}]}]}"#;
        let tree = parse_catalog_json(json).unwrap();
        let t = &tree.tracks[0];
        assert_eq!((t.id.as_str(), t.position), ("go-basics", 1));
        assert_eq!(t.modules[0].id, "go-basics-start");
        assert_eq!(t.modules[0].lessons[0].id, "go-basics-hello-world");
        assert_eq!(t.modules[0].lessons[1].position, 9);
        assert!(parse_catalog_json(r#"[{"title": "T", "modules": []}]"#).is_ok());
    }

    #[test]
    fn refuses_bad_catalogues() {
        let bad_json = [
            r#"{"tracks": [{"title": ""}]}"#,
            r#"{"tracks": [{"id": "Bad Id", "title": "T"}]}"#,
            r#"{"tracks": [{"title": "T"}, {"title": "T"}]}"#,
            r#"{"tracks": [{"title": "T", "colour": "red"}]}"#,
            r#"{"tracks": [{"title": "Привет"}]}"#,
            r#"{"tracks": [{"title": "T", "modules": [{"title": "M", "lessons": [
                {"title": "A", "content": "a"}, {"title": "a", "content": "b"}]}]}]}"#,
            "not json",
        ];
        for j in bad_json {
            assert!(
                matches!(parse_catalog_json(j), Err(AccountsError::InvalidCatalog(_))),
                "{j}"
            );
        }
        let none = files(&[("x/readme.md", "hi")]);
        assert!(parse_files(&none, "r").is_err());
        let dup = files(&[
            ("t/track.json", r#"{"title": "T"}"#),
            ("t/01-a/01-x.md", "# X\nx"),
            ("t/02-b/01-x.md", "# X\nx"),
        ]);
        let err = parse_files(&dup, "r").unwrap_err().to_string();
        assert!(err.contains("t-x"), "{err}");
        let empty = files(&[("t/track.json", r#"{"title": "T"}"#), ("t/a/x.md", "# X\n")]);
        assert!(parse_files(&empty, "r").is_err());
    }
}
