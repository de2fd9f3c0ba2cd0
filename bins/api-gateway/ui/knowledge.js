// Knowledge bases: the user's own documents for retrieval.
//
// #/knowledge lists the bases (the user's, then shared ones) and creates
// new ones; #/knowledge/<id> uploads documents (a file picker or drag and
// drop, many at once), shows each one's ingestion status live (the
// `/events` stream, read with fetch because EventSource cannot send the
// Authorization header), previews a document's text and chunks, searches
// the base and starts a chat that draws on it. Document text is shown as
// plain text only, never rendered as HTML.
import { h, replace, ago, toast } from "./dom.js";
import * as API from "./api.js";

const STATUS = { queued: "Queued", processing: "Processing…", ready: "Ready", failed: "Failed" };
const ACCEPT = ".pdf,.docx,.md,.markdown,.txt,.text,.html,.htm";

/** Bytes as a short human figure. */
export function size(n) {
  if (!Number.isFinite(n)) return "";
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

const enc = (s) => encodeURIComponent(s);

/** The list of bases, with a form to create one. */
export async function knowledgeListView(main) {
  document.title = "Knowledge · confab";
  const box = h("section", { class: "page", "aria-labelledby": "kb-title" }, h("h1", { id: "kb-title" }, "Knowledge"), h("p", { class: "muted" }, "Loading…"));
  replace(main, box);
  const name = h("input", { id: "kb-name", type: "text", maxlength: 200, required: true, placeholder: "e.g. Team handbook" });
  const form = h("form", { class: "ask-box", "aria-label": "New knowledge base" },
    h("label", { for: "kb-name" }, "New knowledge base"),
    h("div", { class: "row" }, name, h("button", { type: "submit", class: "primary" }, "Create")));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    if (!name.value.trim()) return;
    try {
      const kb = await API.api("POST", "/api/knowledge", { name: name.value.trim() });
      location.hash = `#/knowledge/${enc(kb.id)}`;
    } catch (err) { toast(API.explain(err), "error"); }
  });
  try {
    const bases = await API.api("GET", "/api/knowledge");
    replace(box, h("h1", { id: "kb-title" }, "Knowledge"),
      h("p", { class: "muted" }, "Upload your own documents (PDF, Word, Markdown, HTML, text) and chat with them: answers cite the file and page."),
      form,
      bases.items.length
        ? h("ul", { class: "cards kb-list" }, bases.items.map((kb) => h("li", { class: "card kb-card" },
          h("h2", {}, h("a", { href: `#/knowledge/${enc(kb.id)}` }, kb.name)),
          h("p", { class: "muted small" },
            `${kb.document_count} document${kb.document_count === 1 ? "" : "s"} · updated ${ago(kb.updated_at)}`,
            kb.shared ? h("span", { class: "badge" }, "shared") : null),
          kb.reembedding ? h("p", { class: "note" }, "Re-indexing for the current embedding model; keyword search meanwhile.") : null,
          h("div", { class: "card-actions" },
            h("a", { class: "button primary small", href: `#/kbchat/${enc(kb.id)}` }, "Chat with it")))))
        : h("p", { class: "muted empty-kb" }, "No knowledge bases yet."));
  } catch (err) {
    replace(box, h("h1", { id: "kb-title" }, "Knowledge"), h("p", { class: "form-error", role: "alert" }, API.explain(err)));
  }
}

/** One base: its documents (live status), uploads, search, a document's chunks. */
export async function knowledgeView(main, id, docId) {
  const box = h("section", { class: "page kb", "aria-labelledby": "kb-name-title" }, h("p", { class: "muted" }, "Loading…"));
  replace(main, box);
  let kb;
  try {
    kb = await API.api("GET", `/api/knowledge/${enc(id)}`);
  } catch (err) {
    replace(box, h("nav", { class: "crumbs" }, h("a", { href: "#/knowledge" }, "Knowledge")),
      h("h1", { id: "kb-name-title" }, err.status === 404 ? "Knowledge base not found" : "Knowledge"),
      h("p", { class: "form-error", role: "alert" }, err.status === 404 ? "It may have been deleted, or it belongs to another account." : API.explain(err)));
    return;
  }
  document.title = `${kb.name} · confab`;
  const title = h("h1", { id: "kb-name-title" }, kb.name);
  const rows = new Map(); // document id -> { doc, el }
  const docList = h("ul", { class: "kb-docs", "aria-label": "Documents" });
  const docsEmpty = h("li", { class: "muted" }, "No documents yet. Upload some above.");
  const detail = h("div", { class: "kb-detail", hidden: true });

  // --- actions on the base
  const actions = h("div", { class: "card-actions" },
    h("a", { class: "button primary small", href: `#/kbchat/${enc(kb.id)}` }, "Chat with this knowledge base"),
    kb.writable ? h("button", { type: "button", class: "small", onclick: rename }, "Rename") : null,
    kb.writable ? h("button", { type: "button", class: "small danger", onclick: (e) => twice(e, "Click again to delete it all", removeBase) }, "Delete") : null);
  function rename() {
    const input = h("input", { type: "text", value: kb.name, maxlength: 200, "aria-label": "New name", class: "rename" });
    let finished = false;
    const done = async (save) => {
      if (finished) return;
      finished = true;
      if (save && input.value.trim() && input.value.trim() !== kb.name) {
        try {
          kb = await API.api("PATCH", `/api/knowledge/${enc(kb.id)}`, { name: input.value.trim() });
          document.title = `${kb.name} · confab`;
        } catch (err) { toast(API.explain(err), "error"); }
      }
      replace(title, kb.name);
    };
    input.addEventListener("keydown", (e) => {
      if (e.key === "Enter") { e.preventDefault(); done(true); }
      if (e.key === "Escape") { e.preventDefault(); done(false); }
    });
    input.addEventListener("blur", () => done(true), { once: true });
    replace(title, input);
    input.select();
  }
  async function removeBase() {
    try {
      await API.api("DELETE", `/api/knowledge/${enc(kb.id)}`);
      toast(`Deleted “${kb.name}”.`);
      location.hash = "#/knowledge";
    } catch (err) { toast(API.explain(err), "error"); }
  }

  // --- uploads
  const files = h("input", { id: "kb-files", type: "file", multiple: true, accept: ACCEPT });
  const uploadMsg = h("p", { class: "form-msg", role: "status", "aria-live": "polite" });
  const drop = h("form", { class: "kb-drop", "aria-label": "Upload documents" },
    h("label", { for: "kb-files" }, "Add documents: PDF, DOCX, Markdown, HTML or text (drop files here or choose them)"),
    h("div", { class: "row" }, files, h("button", { type: "submit", class: "primary" }, "Upload")), uploadMsg);
  drop.addEventListener("submit", (e) => { e.preventDefault(); upload([...files.files]); });
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); upload([...(e.dataTransfer?.files || [])]); });
  async function upload(list) {
    if (!list.length) { uploadMsg.textContent = "Choose one or more files first."; return; }
    const body = new FormData();
    for (const f of list) body.append("file", f, f.name);
    uploadMsg.className = "form-msg";
    uploadMsg.textContent = `Uploading ${list.length} file${list.length === 1 ? "" : "s"}…`;
    try {
      const res = await API.api("POST", `/api/knowledge/${enc(kb.id)}/documents`, body);
      const same = res.items.filter((r) => r.outcome === "unchanged").length;
      for (const r of res.items) upsert(r.document);
      uploadMsg.textContent = same ? `Uploaded; ${same} unchanged (already here).` : "Uploaded. Processing…";
      files.value = "";
    } catch (err) {
      uploadMsg.className = "form-msg form-error";
      uploadMsg.textContent = API.explain(err);
    }
  }

  // --- search
  const q = h("input", { id: "kb-q", type: "search", placeholder: "Search this knowledge base", "aria-label": "Search this knowledge base" });
  const hits = h("ol", { class: "kb-hits", "aria-label": "Search results" });
  const search = h("form", { class: "ask-box", role: "search" },
    h("div", { class: "row" }, q, h("button", { type: "submit" }, "Search")), hits);
  search.addEventListener("submit", async (e) => {
    e.preventDefault();
    if (!q.value.trim()) { replace(hits); return; }
    try {
      const res = await API.api("GET", `/api/knowledge/${enc(kb.id)}/search?q=${enc(q.value.trim())}&k=5`);
      replace(hits, res.items.length ? res.items.map((s) => h("li", { class: "kb-hit" },
        h("div", { class: "small" }, h("strong", {}, where(s)), typeof s.score === "number" ? h("span", { class: "muted" }, ` ${Math.round(s.score * 100)}%`) : null),
        h("blockquote", { class: "src-text" }, clip(s.content, 400)))) : h("li", { class: "muted" }, "No matches."));
    } catch (err) { replace(hits, h("li", { class: "form-error" }, API.explain(err))); }
  });

  // --- documents
  function upsert(doc) {
    const old = rows.get(doc.id);
    const el = docRow(doc);
    if (old) old.el.replaceWith(el);
    else { docsEmpty.remove(); docList.prepend(el); }
    rows.set(doc.id, { doc, el });
  }
  function docRow(doc) {
    const status = h("span", { class: `kb-status kb-${doc.status}` }, STATUS[doc.status] || doc.status);
    return h("li", { class: "kb-doc", dataset: { id: doc.id, status: doc.status } },
      h("div", { class: "kb-doc-main" },
        h("a", { class: "kb-doc-name", href: `#/knowledge/${enc(kb.id)}/${enc(doc.id)}` }, doc.filename),
        " ", status,
        h("div", { class: "muted small" },
          [size(doc.size_bytes), doc.page_count ? `${doc.page_count} pages` : null,
            doc.status === "ready" ? `${doc.chunk_count} chunks` : null, `added ${ago(doc.created_at)}`].filter(Boolean).join(" · ")),
        doc.status === "failed" && doc.error ? h("div", { class: "form-error small kb-error" }, doc.error) : null),
      kb.writable ? h("button", { type: "button", class: "small danger", "aria-label": `Delete ${doc.filename}`, onclick: (e) => twice(e, "Click again to delete", () => removeDoc(doc)) }, "Delete") : null);
  }
  async function removeDoc(doc) {
    try {
      await API.api("DELETE", `/api/knowledge/${enc(kb.id)}/documents/${enc(doc.id)}`);
      rows.get(doc.id)?.el.remove();
      rows.delete(doc.id);
      if (!rows.size) docList.append(docsEmpty);
      toast(`Deleted “${doc.filename}”.`);
    } catch (err) { toast(API.explain(err), "error"); }
  }
  async function showDoc(did) {
    detail.hidden = false;
    replace(detail, h("p", { class: "muted" }, "Loading…"));
    try {
      const d = await API.api("GET", `/api/knowledge/${enc(kb.id)}/documents/${enc(did)}`);
      // The document's fields, its `preview` and its `chunks`.
      replace(detail,
        h("h2", {}, d.filename),
        h("p", { class: "muted small" }, `${STATUS[d.status] || d.status} · ${size(d.size_bytes)} · ${d.chunks.length} chunks`),
        d.preview ? h("pre", { class: "kb-preview" }, d.preview) : null,
        h("ol", { class: "kb-chunks", "aria-label": "Chunks" }, d.chunks.map((c) => h("li", { class: "kb-chunk", id: `chunk-${c.index}` },
          h("div", { class: "small muted" }, [c.page ? `page ${c.page}` : null, c.heading || null].filter(Boolean).join(" · ") || `chunk ${c.index + 1}`),
          h("div", { class: "kb-chunk-text" }, clip(c.content, 1200))))));
      detail.scrollIntoView({ block: "start" });
    } catch (err) {
      replace(detail, h("p", { class: "form-error", role: "alert" }, err.status === 404 ? "This document is gone." : API.explain(err)));
    }
  }

  replace(box,
    h("nav", { class: "crumbs", "aria-label": "Breadcrumb" }, h("a", { href: "#/knowledge" }, "Knowledge"), " / ", kb.name),
    title,
    h("p", { class: "muted small" }, `Embedded with ${kb.embedding_model} (${kb.dimensions} dimensions)`, kb.shared ? " · shared with every user" : ""),
    kb.reembedding ? h("p", { class: "note" }, "Re-indexing for the current embedding model; answers use keyword search meanwhile.") : null,
    actions,
    kb.writable ? drop : null,
    h("h2", {}, "Documents"), docList, search, detail);

  try {
    const docs = await API.api("GET", `/api/knowledge/${enc(kb.id)}/documents`);
    if (!docs.items.length) docList.append(docsEmpty);
    for (const d of [...docs.items].reverse()) upsert(d);
  } catch (err) { docList.append(h("li", { class: "form-error" }, API.explain(err))); }
  if (docId) showDoc(docId);
  follow(box, kb.id, upsert);
}

/** Runs `fn` on the second click of a button (the first one asks). */
function twice(e, ask, fn) {
  const b = e.currentTarget;
  if (b.dataset.armed) { b.disabled = true; fn(); return; }
  b.dataset.armed = "1";
  b.textContent = ask;
}

/** Where a search hit or source comes from: file, page, heading. */
function where(s) {
  const md = s.metadata || {};
  const parts = [md.filename || s.file_path || "document"];
  if (md.page !== undefined && md.page !== null) parts.push(`page ${md.page}`);
  if (md.heading) parts.push(md.heading);
  return parts.join(" · ");
}

function clip(text, n) {
  const s = String(text ?? "");
  return s.length > n ? `${s.slice(0, n)}…` : s;
}

/**
 * Follows `/api/knowledge/{id}/events` while `box` is on screen: each
 * `document` event updates its row. Reconnects after a drop (backoff up
 * to 30 s); stops when the view is left or the base is gone.
 */
async function follow(box, id, onDoc) {
  const ctrl = new AbortController();
  const gone = () => !box.isConnected;
  const watch = setInterval(() => { if (gone()) { ctrl.abort(); clearInterval(watch); } }, 1000);
  let delay = 1000;
  while (!gone()) {
    try {
      const resp = await API.api("GET", `/api/knowledge/${enc(id)}/events`, undefined, { raw: true, signal: ctrl.signal });
      delay = 1000;
      const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        if (buf.length > 1 << 20) buf = buf.slice(-(1 << 16)); // a runaway line stays bounded
        let cut;
        while ((cut = buf.indexOf("\n\n")) >= 0) {
          const frame = buf.slice(0, cut);
          buf = buf.slice(cut + 2);
          const ev = /^event: (.*)$/m.exec(frame)?.[1];
          const data = frame.split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n");
          if (!data) continue;
          let body;
          try { body = JSON.parse(data); } catch { continue; }
          if (ev === "document" && body.document) onDoc(body.document);
          if (ev === "error") { clearInterval(watch); return; }
        }
      }
    } catch (err) {
      if (gone() || err.name === "AbortError" || err.status === 404 || err.status === 401) break;
    }
    if (gone()) break;
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 30000);
  }
  clearInterval(watch);
}

/**
 * A chooser of knowledge bases for a conversation: a disclosure listing
 * the readable bases with checkboxes. `selected` is the initial set;
 * `onChange(ids)` runs after each change.
 */
export function knowledgePicker(selected, onChange) {
  const chosen = new Set(selected);
  const label = h("span", {}, "Knowledge");
  const list = h("ul", { class: "kb-pick-list" }, h("li", { class: "muted small" }, "Loading…"));
  const box = h("details", { class: "kb-pick" }, h("summary", { id: "kb-pick" }, label), list);
  const count = () => { label.textContent = chosen.size ? `Knowledge (${chosen.size})` : "Knowledge"; };
  count();
  let loaded = false;
  async function load() {
    if (loaded) return;
    loaded = true;
    try {
      const bases = await API.api("GET", "/api/knowledge");
      replace(list, bases.items.length ? bases.items.map((kb) => {
        const box = h("input", { type: "checkbox", id: `kb-pick-${kb.id}`, value: kb.id, checked: chosen.has(kb.id) });
        box.addEventListener("change", () => {
          if (box.checked) chosen.add(kb.id); else chosen.delete(kb.id);
          count();
          onChange([...chosen]);
        });
        return h("li", {}, box, " ", h("label", { for: `kb-pick-${kb.id}` }, kb.name), h("span", { class: "muted small" }, ` ${kb.document_count} docs`));
      }) : h("li", { class: "muted small" }, h("a", { href: "#/knowledge" }, "Create a knowledge base"), " to chat with your documents."));
    } catch (err) { loaded = false; replace(list, h("li", { class: "form-error small" }, API.explain(err))); }
  }
  box.addEventListener("toggle", () => { if (box.open) load(); });
  if (chosen.size) load();
  return box;
}
