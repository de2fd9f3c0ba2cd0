// confab web client: sign-in, conversations, streaming chat with sources,
// courses, settings. Plain ES modules, no build step (the gateway's
// build.rs only renames files by content hash). Rules: no inline handlers
// or styles (the CSP forbids them), model output only through markdown.js,
// requests to this origin only. Routes live in the URL hash (#/chat/<id>).
import { h, replace, ago, debounce, toast, icon } from "./dom.js";
import * as API from "./api.js";
import { ChatConnection } from "./chat.js";
import { render, plain, highlight } from "./markdown.js";
import { knowledgeListView, knowledgeView, knowledgePicker } from "./knowledge.js";

const app = document.getElementById("app");
const PAGE = 30;

// ---------------------------------------------------------------- routing

function route() {
  const parts = location.hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
  return { name: parts[0] || "chat", args: parts.slice(1) };
}

function go(hash) {
  if (location.hash === hash) show();
  else location.hash = hash;
}

window.addEventListener("hashchange", () => show());
API.onSignedOut((message) => authScreen(message));

// ------------------------------------------------------------------ auth

function authScreen(message = null, mode = "login") {
  closeChat();
  shell = null;
  document.title = "Sign in · confab";
  const error = h("p", { class: "form-error", role: "alert", id: "auth-error" });
  if (message) error.textContent = message;
  const email = h("input", { id: "auth-email", type: "email", name: "email", autocomplete: "username", required: true });
  const password = h("input", {
    id: "auth-password", type: "password", name: "password", required: true, minlength: 1,
    autocomplete: mode === "login" ? "current-password" : "new-password",
    "aria-describedby": mode === "register" ? "password-hint" : null,
  });
  const name = h("input", { id: "auth-name", type: "text", name: "display_name", autocomplete: "nickname", maxlength: 100 });
  const submit = h("button", { type: "submit", class: "primary wide" }, mode === "login" ? "Sign in" : "Create account");
  let cooldown = null;
  const form = h("form", { class: "auth-form", "aria-labelledby": "auth-title", novalidate: true },
    h("h1", { id: "auth-title" }, mode === "login" ? "Sign in to confab" : "Create your account"),
    error,
    h("label", { for: "auth-email" }, "Email"), email,
    h("label", { for: "auth-password" }, "Password"), password,
    mode === "register" ? h("p", { class: "hint", id: "password-hint" }, "At least 8 characters; a few words are easy to remember and hard to guess.") : null,
    mode === "register" ? [h("label", { for: "auth-name" }, "Display name (optional)"), name] : null,
    submit,
    h("p", { class: "switch" },
      mode === "login" ? "New here? " : "Already have an account? ",
      h("a", { href: "#", id: "auth-switch", onclick: (e) => { e.preventDefault(); authScreen(null, mode === "login" ? "register" : "login"); } },
        mode === "login" ? "Create an account" : "Sign in")),
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    if (!email.value.trim() || !password.value) {
      error.textContent = "Enter your email and password.";
      return;
    }
    submit.disabled = true;
    error.textContent = "";
    try {
      if (mode === "login") await API.login(email.value.trim(), password.value);
      else await API.register(email.value.trim(), password.value, name.value.trim());
      start();
    } catch (err) {
      error.textContent = authMessage(err, mode);
      if (err.code === "rate_limited" && err.retryAfter) {
        let left = err.retryAfter;
        clearInterval(cooldown);
        cooldown = setInterval(() => {
          left -= 1;
          if (left <= 0 || !form.isConnected) {
            clearInterval(cooldown);
            submit.disabled = false;
            if (form.isConnected) error.textContent = "You can try again now.";
          } else {
            error.textContent = `Too many attempts. Try again in ${left} second${left === 1 ? "" : "s"}.`;
          }
        }, 1000);
        return;
      }
    }
    submit.disabled = false;
  });
  replace(app, h("main", { class: "auth" },
    h("div", { class: "brand big" }, h("span", { class: "logo", "aria-hidden": "true" }), "confab"),
    h("p", { class: "tagline" }, "Your AI tutor, with sources."),
    form));
  (message ? password : email).focus();
}

function authMessage(err, mode) {
  switch (err.code) {
    case "invalid_credentials": return "Wrong email or password.";
    case "email_taken": return "An account with this email already exists. Sign in instead?";
    case "weak_password": return `That password is too weak: ${err.message}`;
    case "validation_error": return `Please check the form: ${err.message}`;
    case "network": return err.message;
    default: return API.explain(err) || (mode === "login" ? "Could not sign in." : "Could not create the account.");
  }
}

// ----------------------------------------------------------------- shell

let shell = null;

function buildShell() {
  const user = API.currentUser();
  const nav = (hash, label, key) => h("a", { href: hash, class: "nav-link", dataset: { nav: key } }, label);
  const menuBtn = h("button", {
    class: "icon-btn only-phone", type: "button", "aria-label": "Conversations", "aria-controls": "sidebar", "aria-expanded": "false",
    onclick: () => toggleSide(),
  }, h("span", { class: "burger", "aria-hidden": "true" }));
  const header = h("header", { class: "topbar" },
    menuBtn,
    h("a", { class: "brand", href: "#/", "aria-label": "confab home" }, h("span", { class: "logo", "aria-hidden": "true" }), h("span", { class: "brand-name" }, "confab")),
    h("nav", { class: "nav", "aria-label": "Main" }, nav("#/", "Chat", "chat"), nav("#/courses", "Courses", "courses"), nav("#/knowledge", "Knowledge", "knowledge"), nav("#/settings", "Settings", "settings")),
    h("span", { class: "who", title: user?.email || "" }, user?.display_name || user?.email || ""),
    h("button", { type: "button", class: "ghost", id: "logout", onclick: () => API.logout(null) }, "Sign out"),
  );
  const side = sidebar();
  const main = h("main", { class: "main", id: "main", tabindex: "-1" });
  const scrim = h("div", { class: "scrim", onclick: () => toggleSide(false) });
  replace(app, h("div", { class: "layout" }, header, side.el, scrim, main));
  shell = { header, main, side, menuBtn };
}

function toggleSide(open) {
  const now = open ?? !document.body.classList.contains("side-open");
  document.body.classList.toggle("side-open", now);
  shell?.menuBtn.setAttribute("aria-expanded", String(now));
}

function setNav(key) {
  for (const a of shell.header.querySelectorAll(".nav-link")) {
    if (a.dataset.nav === key) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
}

// --------------------------------------------------------------- sidebar

function sidebar() {
  const list = h("ul", { class: "sessions", "aria-label": "Conversations" });
  const sentinel = h("li", { class: "sentinel", "aria-hidden": "true" });
  const status = h("p", { class: "side-status", role: "status" });
  const results = h("div", { class: "search-results", hidden: true, "aria-label": "Search results" });
  const search = h("input", { type: "search", id: "search", placeholder: "Search messages", autocomplete: "off", "aria-label": "Search messages" });
  const filter = h("select", { id: "session-filter", "aria-label": "Which conversations" },
    h("option", { value: "active" }, "Active"), h("option", { value: "archived" }, "Archived"));
  const file = h("input", { type: "file", accept: ".json,application/json", hidden: true, id: "import-file", tabindex: "-1" });
  const importBtn = h("button", { type: "button", class: "ghost small", title: "Import a conversation (a JSON export)", "aria-label": "Import a conversation (a JSON export)", onclick: () => file.click() }, "Import");
  const el = h("aside", { class: "sidebar", id: "sidebar", "aria-label": "Conversations" },
    h("div", { class: "side-top" },
      h("a", { class: "primary new-chat", href: "#/chat", id: "new-chat", onclick: () => { if (route().name === "chat" && !route().args.length) show(); } }, "+ New chat")),
    h("div", { class: "side-search" }, search),
    h("div", { class: "side-tools" }, filter, importBtn, file),
    status, results, list);
  list.append(sentinel);
  const state = { cursor: null, loading: false, done: false, failed: false };

  async function loadMore() {
    if (state.loading || state.done) return;
    state.loading = true;
    status.textContent = list.children.length > 1 ? "" : "Loading…";
    try {
      const q = new URLSearchParams({ limit: String(PAGE), status: filter.value });
      if (state.cursor) q.set("cursor", state.cursor);
      const page = await API.api("GET", `/api/sessions?${q}`);
      for (const s of page.items) sentinel.before(item(s));
      state.cursor = page.next_cursor;
      state.done = !page.next_cursor;
      state.failed = false;
      status.textContent = list.children.length > 1 ? "" : filter.value === "archived" ? "No archived conversations." : "No conversations yet. Ask something!";
    } catch (err) {
      if (err.status === 401) return;
      state.failed = true;
      replace(status, `Couldn't load conversations. ${API.explain(err)} `,
        h("button", { type: "button", class: "link", onclick: () => reload() }, "Retry"));
    } finally {
      state.loading = false;
    }
    if (!state.done && sentinel.getBoundingClientRect().top < el.getBoundingClientRect().bottom + 200) loadMore();
  }

  function reload() {
    for (const li of [...list.querySelectorAll(".session")]) li.remove();
    Object.assign(state, { cursor: null, done: false, loading: false });
    return loadMore();
  }

  const observer = new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting)) loadMore();
  }, { root: el });
  observer.observe(sentinel);

  function item(s) {
    const li = h("li", { class: "session", dataset: { id: s.id } });
    fill(li, s);
    return li;
  }

  function fill(li, s) {
    const title = s.title || "New conversation";
    const link = h("a", { class: "session-link", href: `#/chat/${s.id}` },
      h("span", { class: "s-title" }, title),
      h("span", { class: "s-meta" }, `${ago(s.updated_at)} · ${s.message_count} message${s.message_count === 1 ? "" : "s"}${s.agent === "course" ? " · course" : ""}`));
    const menu = h("div", { class: "menu", role: "menu", hidden: true });
    const toggle = h("button", { type: "button", class: "icon-btn dots", "aria-label": `Actions for ${title}`, "aria-haspopup": "menu", "aria-expanded": "false" }, "⋯");
    const close = () => { menu.hidden = true; toggle.setAttribute("aria-expanded", "false"); };
    toggle.addEventListener("click", (e) => {
      e.stopPropagation();
      const open = menu.hidden;
      for (const m of document.querySelectorAll(".menu")) m.hidden = true;
      menu.hidden = !open;
      toggle.setAttribute("aria-expanded", String(open));
      if (open) menu.querySelector("button")?.focus();
    });
    menu.addEventListener("keydown", (e) => { if (e.key === "Escape") { close(); toggle.focus(); } });
    const act = (label, fn, cls = "") => h("button", { type: "button", role: "menuitem", class: cls, onclick: async (e) => { e.stopPropagation(); await fn(e); } }, label);
    let confirmDelete = false;
    menu.append(
      act("Rename", () => { close(); rename(li, s); }),
      act(s.status === "archived" ? "Unarchive" : "Archive", async () => {
        close();
        try {
          const upd = await API.api("POST", `/api/sessions/${s.id}/${s.status === "archived" ? "unarchive" : "archive"}`);
          li.remove();
          toast(upd.status === "archived" ? `Archived “${title}”` : `Restored “${title}”`);
        } catch (err) { toast(API.explain(err), "error"); }
      }),
      act("Export as Markdown", () => { close(); exportSession(s, "markdown"); }),
      act("Export as JSON", () => { close(); exportSession(s, "json"); }),
      act("Export as text", () => { close(); exportSession(s, "txt"); }),
      act("Delete", async (e) => {
        if (!confirmDelete) {
          confirmDelete = true;
          e.target.textContent = "Click again to delete";
          return;
        }
        close();
        try {
          await API.api("DELETE", `/api/sessions/${s.id}`);
          li.remove();
          toast(`Deleted “${title}”`);
          if (chat?.sessionId === s.id) go("#/chat");
        } catch (err) { toast(API.explain(err), "error"); }
      }, "danger"),
    );
    li.replaceChildren(link, toggle, menu);
    li.classList.toggle("current", chat?.sessionId === s.id);
  }

  function rename(li, s) {
    const input = h("input", { type: "text", value: s.title || "", maxlength: 200, "aria-label": "New title", class: "rename" });
    const done = async (save) => {
      if (save && input.value.trim() && input.value.trim() !== s.title) {
        try {
          s = await API.api("PATCH", `/api/sessions/${s.id}`, { title: input.value.trim() });
          if (chat?.sessionId === s.id) chat.setTitle(s.title);
        } catch (err) { toast(API.explain(err), "error"); }
      }
      fill(li, s);
    };
    input.addEventListener("keydown", (e) => {
      if (e.key === "Enter") { e.preventDefault(); done(true); }
      if (e.key === "Escape") { e.preventDefault(); done(false); }
    });
    input.addEventListener("blur", () => { if (input.isConnected) done(true); });
    li.replaceChildren(input);
    input.focus();
    input.select();
  }

  async function exportSession(s, format) {
    try {
      const resp = await API.api("GET", `/api/sessions/${s.id}/export?format=${format}`, undefined, { raw: true });
      const blob = await resp.blob();
      const disp = resp.headers.get("content-disposition") || "";
      const m = /filename="?([^";]+)"?/.exec(disp);
      const ext = { markdown: "md", json: "json", txt: "txt" }[format];
      const url = URL.createObjectURL(blob);
      const a = h("a", { href: url, download: m ? m[1] : `confab-${s.id}.${ext}`, class: "sr-only" });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
    } catch (err) { toast(API.explain(err), "error"); }
  }

  file.addEventListener("change", async () => {
    const f = file.files?.[0];
    file.value = "";
    if (!f) return;
    try {
      const text = await f.text();
      const s = await API.api("POST", "/api/sessions/import", text);
      toast(`Imported “${s.title || "conversation"}”`);
      reload();
      go(`#/chat/${s.id}`);
    } catch (err) { toast(`Import failed: ${API.explain(err)}`, "error"); }
  });

  filter.addEventListener("change", () => reload());

  const runSearch = debounce(async () => {
    const q = search.value.trim();
    if (!q) {
      results.hidden = true;
      list.hidden = false;
      return;
    }
    try {
      const found = await API.api("GET", `/api/messages/search?${new URLSearchParams({ q, limit: "30" })}`);
      replace(results, found.items.length ? null : h("p", { class: "side-status" }, `Nothing found for “${q}”.`),
        h("ul", { class: "hits" }, found.items.map((hit) => h("li", {},
          h("a", { href: `#/chat/${hit.message.session_id}/${hit.message.id}`, class: "hit" },
            h("span", { class: "s-title" }, hit.session_title || "Conversation"),
            h("span", { class: "snippet" }, marked(hit.snippet)))))));
    } catch (err) {
      replace(results, h("p", { class: "side-status" }, API.explain(err)));
    }
    results.hidden = false;
    list.hidden = true;
  }, 250);
  search.addEventListener("input", runSearch);
  search.addEventListener("keydown", (e) => {
    if (e.key === "Escape") { search.value = ""; runSearch(); }
  });

  /** Puts a session first (after a new answer) or updates its row. */
  function upsert(s) {
    if (filter.value !== "active") return;
    const old = list.querySelector(`.session[data-id="${CSS.escape(s.id)}"]`);
    const li = old || item(s);
    if (old) fill(li, s);
    list.prepend(li);
    status.textContent = "";
  }

  function markCurrent(id) {
    for (const li of list.querySelectorAll(".session")) li.classList.toggle("current", li.dataset.id === id);
  }

  document.addEventListener("click", () => { for (const m of el.querySelectorAll(".menu")) m.hidden = true; });
  // On a phone the sidebar is a drawer: following a link closes it (also
  // when the link is the page already shown, which fires no hashchange).
  el.addEventListener("click", (e) => { if (e.target.closest("a")) toggleSide(false); });
  loadMore();
  return { el, reload, upsert, markCurrent, state };
}

/** A search snippet with <mark> markers -> text nodes and <mark> elements (no HTML parsing). */
function marked(snippet) {
  const out = [];
  const parts = String(snippet || "").split(/(<mark>|<\/mark>)/);
  let on = false;
  for (const p of parts) {
    if (p === "<mark>") on = true;
    else if (p === "</mark>") on = false;
    else if (p) out.push(on ? h("mark", {}, p) : p);
  }
  return out;
}

// ------------------------------------------------------------------ chat

let chat = null;

function closeChat() {
  if (chat) {
    chat.conn?.close();
    chat = null;
  }
}

function chatView(sessionId, focusMessage, init = { agent: "dashboard" }) {
  if (chat && chat.sessionId && chat.sessionId === sessionId) {
    if (focusMessage) chat.focus(focusMessage);
    return;
  }
  closeChat();
  setNav("chat");
  const title = h("h1", { class: "chat-title", id: "chat-title" }, sessionId ? "Conversation" : init.agent === "course" ? "Ask the course agent" : "New conversation");
  const badge = h("span", { class: "badge", hidden: init.agent !== "course" }, init.agent === "course" ? `course: ${init.course_id}` : "");
  const banner = h("div", { class: "banner", role: "status", "aria-live": "polite", hidden: true, id: "conn-banner" });
  const list = h("ol", { class: "messages", id: "messages", "aria-label": "Messages" });
  const empty = h("div", { class: "empty" },
    h("h2", {}, init.agent === "course" ? "Ask about this course" : "What would you like to learn?"),
    h("p", {}, "Answers stream in as they are written, with the sources they are based on."),
    init.agent === "course" ? null : h("div", { class: "suggestions" },
      ["What is ownership in Rust?", "How do I write a good prompt?", "Explain lifetimes with an example"].map((q) =>
        h("button", { type: "button", class: "chip", onclick: () => { input.value = q; send(); } }, q))));
  const scroller = h("div", { class: "scroller", id: "scroller" }, empty, list);
  const input = h("textarea", { id: "prompt", rows: 1, placeholder: "Message confab", "aria-label": "Message", "aria-describedby": "prompt-hint", maxlength: 32000 });
  const sendBtn = h("button", { type: "submit", class: "primary", id: "send" }, "Send");
  const stopBtn = h("button", { type: "button", class: "danger-btn", id: "stop", hidden: true, onclick: () => cancel() }, "Stop");
  const form = h("form", { class: "composer", "aria-label": "Write a message" },
    h("label", { for: "prompt", class: "sr-only" }, "Message"),
    h("span", { id: "prompt-hint", class: "sr-only" }, "Enter sends, Shift+Enter starts a new line, Escape stops an answer."),
    input, stopBtn, sendBtn);
  // The knowledge bases this conversation draws on: sent in `init`,
  // remembered per session in this browser (the server keeps them per
  // connection). A change reconnects, resuming the same session.
  let knowledge = init.knowledge || (sessionId ? storedKnowledge(sessionId) : []);
  const picker = knowledgePicker(knowledge, (ids) => {
    knowledge = ids;
    if (state.sessionId) rememberKnowledge(state.sessionId, ids);
    if (state.conn && !state.turn) { state.conn.close(); state.conn = null; }
  });
  const view = h("section", { class: "chat", "aria-labelledby": "chat-title" },
    h("div", { class: "chat-head" }, title, badge, picker), banner, scroller, form);
  replace(shell.main, view);

  const state = {
    sessionId: sessionId || null,
    conn: null,
    turn: null,
    lastQuestion: null,
    setTitle: (t) => { title.textContent = t || "Conversation"; document.title = `${t || "Chat"} · confab`; },
    focus: (id) => focusOn(id),
  };
  chat = state;
  document.title = "Chat · confab";

  function autosize() {
    input.style.height = "auto";
    input.style.height = `${Math.min(input.scrollHeight, 220)}px`;
  }
  input.addEventListener("input", autosize);
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      send();
    }
    if (e.key === "Escape" && state.turn) cancel();
  });
  form.addEventListener("submit", (e) => { e.preventDefault(); send(); });

  const nearBottom = () => scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 120;
  const toBottom = () => { scroller.scrollTop = scroller.scrollHeight; };

  let wasDown = false;
  function status(s, delay) {
    if (s === "open") {
      banner.hidden = true;
      if (wasDown) {
        toast("Reconnected.");
        if (shell.side.state.failed) shell.side.reload();
      }
      wasDown = false;
      return;
    }
    if (s === "reconnecting" && delay) {
      wasDown = true;
      const secs = Math.max(1, Math.round(delay / 1000));
      const n = state.conn?.attempt || 1;
      replace(banner,
        h("strong", {}, n > 1 ? "Can't reach the chat service." : "Connection lost."),
        ` Reconnecting in ${secs} s… Your conversation is saved. `,
        h("button", { type: "button", class: "link", onclick: () => state.conn?.retryNow() }, "Retry now"));
      banner.hidden = false;
    }
  }

  function connect(resume) {
    const conn = new ChatConnection({ onEvent: (ev) => onEvent(ev), onStatus: status });
    state.conn = conn;
    const { question: _q, knowledge: _k, ...initFrame } = init;
    if (resume) initFrame.session_id = resume;
    if (knowledge.length) initFrame.knowledge = knowledge;
    return conn.open(initFrame);
  }

  function onEvent(ev) {
    const t = state.turn;
    switch (ev.type) {
      case "ready": {
        const fresh = state.sessionId !== ev.session_id;
        state.sessionId = ev.session_id;
        rememberKnowledge(ev.session_id, knowledge);
        if (fresh || !list.children.length) {
          if (ev.history?.length) renderHistory(ev.history);
        }
        if (location.hash !== `#/chat/${ev.session_id}` && !location.hash.startsWith(`#/chat/${ev.session_id}/`)) {
          history.replaceState(null, "", `#/chat/${ev.session_id}`);
        }
        shell.side.markCurrent(ev.session_id);
        if (focusMessage) { focusOn(focusMessage); focusMessage = null; }
        break;
      }
      case "stage":
        if (t) { t.stage.textContent = ev.content || ev.stage; t.stage.hidden = false; }
        break;
      case "token":
        if (t) { t.text += ev.content; t.schedule(); }
        break;
      case "tool_call":
        if (t) t.tool(ev);
        break;
      case "tool_result":
        if (t) t.toolResult(ev);
        break;
      case "sources":
        if (t) { t.sources = ev.sources || []; t.renderSources(); }
        break;
      case "error":
        if (t) t.fail(ev);
        else if (ev.code !== "not_generating") toast(ev.message || "Something went wrong.", "error");
        if (!t && ev.code === "not_found") {
          // init named a session that is not (or no longer) this user's.
          state.conn?.close();
          state.conn = null;
          state.sessionId = null;
          replace(list);
          scroller.prepend(h("div", { class: "empty" }, h("h2", {}, "Conversation not found"),
            h("p", {}, "It may have been deleted, or it belongs to another account."),
            h("a", { class: "button primary", href: "#/chat" }, "Start a new conversation")));
          empty.remove();
        }
        endTurn();
        break;
      case "done":
        if (t) t.finish(ev);
        endTurn();
        refreshSession(ev.session_id);
        break;
      default:
    }
  }

  async function refreshSession(id) {
    try {
      const s = await API.api("GET", `/api/sessions/${id}`);
      state.setTitle(s.title);
      shell.side.upsert(s);
      shell.side.markCurrent(id);
    } catch { /* the list catches up later */ }
  }

  function endTurn() {
    state.turn = null;
    stopBtn.hidden = true;
    sendBtn.hidden = false;
    sendBtn.disabled = false;
    input.disabled = false;
  }

  async function send(text = null) {
    const content = (text ?? input.value).trim();
    if (!content) return;
    if (state.turn) { toast("Wait for the answer to finish, or press Stop."); return; }
    if (!state.conn) {
      sendBtn.disabled = true;
      try {
        await connect(state.sessionId);
      } catch (err) {
        sendBtn.disabled = false;
        if (err.status !== 401) toast(API.explain(err), "error");
        return;
      } finally {
        sendBtn.disabled = false;
      }
    }
    if (!state.conn.isOpen()) {
      toast("Not connected right now; reconnecting. Your message is kept.", "error");
      return;
    }
    if (!state.conn.ask(content)) return;
    if (text === null) { input.value = ""; autosize(); }
    state.lastQuestion = content;
    empty.remove();
    list.append(userMessage(content));
    state.turn = assistantTurn();
    list.append(state.turn.el);
    stopBtn.hidden = false;
    sendBtn.hidden = true;
    toBottom();
  }

  function cancel() {
    if (state.turn && state.conn?.cancel()) {
      state.turn.stage.textContent = "Stopping…";
    }
  }

  function userMessage(content, id = null) {
    return h("li", { class: "msg msg-user", dataset: id ? { id } : {} },
      h("div", { class: "who-label sr-only" }, "You said:"),
      h("div", { class: "bubble" }, plain(content)));
  }

  function assistantTurn() {
    const body = h("div", { class: "md", "aria-live": "off" });
    const stage = h("div", { class: "stage", role: "status" }, "Thinking…");
    const tools = h("div", { class: "tools" });
    const sourcesBox = h("div", { class: "sources", hidden: true });
    const foot = h("div", { class: "msg-foot" });
    const el = h("li", { class: "msg msg-assistant streaming", "aria-busy": "true" },
      h("div", { class: "who-label sr-only" }, "confab answered:"),
      h("div", { class: "bubble" }, stage, tools, body, sourcesBox, foot));
    const t = {
      el, body, stage, tools, foot, text: "", sources: [], toolEls: new Map(), pending: false, lastRender: 0, cost: 0,
      schedule() {
        if (t.pending) return;
        t.pending = true;
        // Re-render at most ~10 times a second, and less often when a
        // render is expensive (a long answer): the page stays responsive.
        const gap = Math.max(100, 4 * t.cost);
        const wait = Math.max(0, gap - (performance.now() - t.lastRender));
        setTimeout(() => requestAnimationFrame(() => {
          t.pending = false;
          const start = performance.now();
          const stick = nearBottom();
          t.draw();
          if (stick) toBottom();
          t.lastRender = performance.now();
          t.cost = t.lastRender - start;
        }), wait);
      },
      draw() {
        t.body.replaceChildren(render(t.text));
        linkCitations(t.body, t.sources, t.el);
      },
      tool(ev) {
        const d = h("details", { class: "tool" },
          h("summary", {}, h("span", { class: "tool-name" }, `Tool: ${ev.name}`), h("span", { class: "tool-state" }, " running…")),
          h("div", { class: "tool-label" }, "Arguments"),
          h("pre", { class: "tool-args" }, pretty(ev.arguments)));
        t.toolEls.set(ev.id, d);
        t.tools.append(d);
      },
      toolResult(ev) {
        let d = t.toolEls.get(ev.id);
        if (!d) { t.tool({ id: ev.id, name: ev.name, arguments: {} }); d = t.toolEls.get(ev.id); }
        d.querySelector(".tool-state").textContent = ev.is_error ? " failed" : " done";
        d.classList.toggle("tool-error", !!ev.is_error);
        d.append(h("div", { class: "tool-label" }, "Result"), h("pre", { class: "tool-result" }, String(ev.content ?? "")));
      },
      renderSources() {
        renderSourceList(sourcesBox, t.sources, t.el);
        t.draw();
      },
      finish(ev) {
        t.el.dataset.id = ev.message_id;
        t.el.classList.remove("streaming");
        t.el.removeAttribute("aria-busy");
        t.stage.hidden = true;
        t.draw();
        highlight(t.body);
        if (ev.finish_reason === "cancelled") t.foot.append(h("span", { class: "note" }, "Stopped. The partial answer is saved."));
        if (ev.finish_reason === "length") t.foot.append(h("span", { class: "note" }, "The answer hit the length limit."));
        t.foot.append(feedback(ev.message_id));
      },
      fail(ev) {
        t.el.classList.remove("streaming");
        t.el.removeAttribute("aria-busy");
        t.stage.hidden = true;
        t.draw();
        const again = state.lastQuestion;
        t.foot.append(h("div", { class: "msg-error", role: "alert" },
          h("span", {}, errorText(ev)), " ",
          again ? h("button", { type: "button", class: "small", onclick: (e) => { e.target.disabled = true; send(again); } }, "Retry") : null));
      },
    };
    return t;
  }

  function renderHistory(messages) {
    empty.remove();
    const frag = document.createDocumentFragment();
    for (const m of messages) {
      if (m.role === "user") frag.append(userMessage(m.content, m.id));
      else if (m.role === "assistant") frag.append(pastAnswer(m));
    }
    list.replaceChildren(frag);
    highlight(list);
    const last = [...messages].reverse().find((m) => m.role === "user");
    state.lastQuestion = last?.content || null;
    toBottom();
    API.api("GET", `/api/sessions/${state.sessionId}`).then((s) => state.setTitle(s.title), () => {});
  }

  function pastAnswer(m) {
    const meta = m.metadata || {};
    const sources = Array.isArray(meta.sources) ? meta.sources : [];
    const body = h("div", { class: "md" }, render(m.content));
    const sourcesBox = h("div", { class: "sources", hidden: true });
    const tools = h("div", { class: "tools" });
    for (const c of Array.isArray(meta.tool_calls) ? meta.tool_calls : []) {
      tools.append(h("details", { class: "tool" }, h("summary", {}, `Tool: ${c.name || "tool"}`),
        h("div", { class: "tool-label" }, "Arguments"), h("pre", {}, pretty(c.arguments)),
        c.result !== undefined ? [h("div", { class: "tool-label" }, "Result"), h("pre", {}, String(c.result))] : null));
    }
    const foot = h("div", { class: "msg-foot" });
    if (meta.finish_reason === "cancelled") foot.append(h("span", { class: "note" }, "Stopped."));
    if (meta.error) foot.append(h("div", { class: "msg-error" }, errorText(meta.error)));
    foot.append(feedback(m.id));
    const li = h("li", { class: "msg msg-assistant", dataset: { id: m.id } },
      h("div", { class: "who-label sr-only" }, "confab answered:"),
      h("div", { class: "bubble" }, tools, body, sourcesBox, foot));
    renderSourceList(sourcesBox, sources, li);
    linkCitations(body, sources, li);
    return li;
  }

  function focusOn(id) {
    const el = list.querySelector(`[data-id="${CSS.escape(id)}"]`);
    if (!el) return;
    el.classList.add("flash");
    el.scrollIntoView({ block: "center" });
    setTimeout(() => el.classList.remove("flash"), 2500);
  }

  if (sessionId) {
    connect(sessionId).catch((err) => {
      if (err.status !== 401) toast(API.explain(err), "error");
    });
  } else {
    input.focus();
  }
  if (init.question) { input.value = init.question; autosize(); }
}

function errorText(ev) {
  switch (ev.code) {
    case "connection_lost": return "The connection dropped while the answer was streaming. What arrived is kept.";
    case "rate_limited": return "The model is busy (rate limited). Try again in a moment.";
    case "shutting_down": return "The chat service is restarting. Try again in a moment.";
    case "busy": return "An answer is still streaming; wait for it or press Stop.";
    default: return `The answer failed: ${ev.message || ev.code || "unknown error"}`;
  }
}

function pretty(v) {
  if (typeof v === "string") {
    try { return JSON.stringify(JSON.parse(v), null, 2); } catch { return v; }
  }
  try { return JSON.stringify(v ?? {}, null, 2); } catch { return String(v); }
}

/** Where a source points: a lesson page when it is one. */
function sourceTarget(src) {
  const md = src.metadata || {};
  if (md.knowledge_base_id && md.knowledge_document_id) {
    return `#/knowledge/${encodeURIComponent(md.knowledge_base_id)}/${encodeURIComponent(md.knowledge_document_id)}`;
  }
  const lesson = md.lesson_id || (/^lessons\/([\w.-]+)$/.exec(src.file_path || "") || [])[1];
  return lesson ? `#/lesson/${encodeURIComponent(lesson)}` : null;
}

function sourceLabel(src) {
  const md = src.metadata || {};
  const name = md.title || md.document_title || md.filename || src.file_path || "source";
  const where = [];
  if (md.page !== undefined && md.page !== null) where.push(`page ${md.page}`);
  if (md.heading && md.heading !== name) where.push(md.heading);
  if (md.knowledge_base) where.push(md.knowledge_base);
  return where.length ? `${name} (${where.join(", ")})` : name;
}

function renderSourceList(box, sources, owner) {
  if (!sources.length) { box.hidden = true; return; }
  const uid = owner.dataset.uid || (owner.dataset.uid = Math.random().toString(36).slice(2, 9));
  replace(box,
    h("h3", { class: "sources-title" }, `Sources (${sources.length})`),
    h("ol", { class: "source-list" }, sources.map((src, i) => {
      const target = sourceTarget(src);
      const score = typeof src.score === "number" ? `${Math.round(src.score * 100)}%` : "";
      return h("li", { id: `src-${uid}-${i + 1}`, class: "source" },
        h("details", {},
          h("summary", {},
            h("span", { class: "src-n" }, `[${i + 1}]`), " ",
            target ? h("a", { href: target, class: "src-link" }, sourceLabel(src)) : h("span", { class: "src-link" }, sourceLabel(src)),
            score ? h("span", { class: "src-score", title: "relevance" }, ` ${score}`) : null),
          src.content ? h("blockquote", { class: "src-text" }, src.content) : null));
    })));
  box.hidden = false;
}

/** Turns "[n]" in the rendered answer into links to source n. */
function linkCitations(root, sources, owner) {
  if (!sources.length) return;
  const uid = owner.dataset.uid || (owner.dataset.uid = Math.random().toString(36).slice(2, 9));
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT, {
    acceptNode: (n) => (n.parentElement.closest("code, pre, a") ? NodeFilter.FILTER_REJECT : NodeFilter.FILTER_ACCEPT),
  });
  const nodes = [];
  while (walker.nextNode()) if (/\[\d{1,3}\]/.test(walker.currentNode.nodeValue)) nodes.push(walker.currentNode);
  for (const node of nodes) {
    const frag = document.createDocumentFragment();
    for (const part of node.nodeValue.split(/(\[\d{1,3}\])/)) {
      const m = /^\[(\d{1,3})\]$/.exec(part);
      const n = m ? Number(m[1]) : 0;
      if (n >= 1 && n <= sources.length) {
        const src = sources[n - 1];
        frag.append(h("a", {
          class: "cite", href: sourceTarget(src) || `#src-${uid}-${n}`, title: sourceLabel(src), "aria-label": `Source ${n}: ${sourceLabel(src)}`,
          onclick: (e) => {
            if (e.ctrlKey || e.metaKey || e.shiftKey) return;
            e.preventDefault();
            const li = document.getElementById(`src-${uid}-${n}`);
            if (li) {
              li.querySelector("details").open = true;
              li.scrollIntoView({ block: "nearest" });
              li.classList.add("flash");
              setTimeout(() => li.classList.remove("flash"), 2000);
            }
          },
        }, `[${n}]`));
      } else if (part) {
        frag.append(part);
      }
    }
    node.replaceWith(frag);
  }
}

function feedback(messageId) {
  const box = h("div", { class: "feedback", role: "group", "aria-label": "Rate this answer" });
  const state = { thumbs: null };
  const up = h("button", { type: "button", class: "icon-btn thumb", "aria-label": "Good answer", "aria-pressed": "false", title: "Good answer" }, icon("up"));
  const down = h("button", { type: "button", class: "icon-btn thumb", "aria-label": "Bad answer", "aria-pressed": "false", title: "Bad answer" }, icon("down"));
  const comment = h("form", { class: "fb-comment", hidden: true },
    h("label", { for: `fb-${messageId}`, class: "sr-only" }, "Comment on this answer"),
    h("input", { id: `fb-${messageId}`, type: "text", maxlength: 2000, placeholder: "What was good or wrong? (optional)" }),
    h("button", { type: "submit", class: "small" }, "Send"));
  async function post(body) {
    try {
      await API.api("POST", `/api/messages/${messageId}/feedback`, body);
      return true;
    } catch (err) {
      toast(`Feedback not saved: ${API.explain(err)}`, "error");
      return false;
    }
  }
  for (const [btn, value] of [[up, true], [down, false]]) {
    btn.addEventListener("click", async () => {
      state.thumbs = value;
      up.setAttribute("aria-pressed", String(value));
      down.setAttribute("aria-pressed", String(!value));
      if (await post({ thumbs_up: value })) {
        comment.hidden = false;
        comment.querySelector("input").focus();
      }
    });
  }
  comment.addEventListener("submit", async (e) => {
    e.preventDefault();
    const text = comment.querySelector("input").value.trim();
    if (!text) { comment.hidden = true; return; }
    if (await post({ thumbs_up: state.thumbs, comment: text })) {
      replace(comment, h("span", { class: "note" }, "Thanks for the feedback."));
    }
  });
  box.append(up, down, comment);
  return box;
}

// --------------------------------------------------------------- courses

async function coursesView() {
  closeChat();
  setNav("courses");
  document.title = "Courses · confab";
  const box = h("section", { class: "page", "aria-labelledby": "courses-title" }, h("h1", { id: "courses-title" }, "Courses"), h("p", { class: "muted" }, "Loading…"));
  replace(shell.main, box);
  try {
    const [tracks, progress] = await Promise.all([API.api("GET", "/api/dashboard/tracks"), API.api("GET", "/api/users/me/progress")]);
    replace(box, h("h1", { id: "courses-title" }, "Courses"),
      h("p", { class: "muted" }, `${progress.total_completed} of ${progress.total_lessons} lessons done overall.`),
      progressBar(progress.progress_percent, "Overall progress"),
      h("ul", { class: "cards" }, tracks.items.map((t) => h("li", { class: "card" },
        h("h2", {}, h("a", { href: `#/track/${encodeURIComponent(t.id)}` }, t.title)),
        h("p", {}, t.description),
        progressBar(t.progress_percent, `${t.title} progress`),
        h("p", { class: "muted small" }, `${t.lessons_completed} / ${t.lessons_total} lessons · ${t.modules_total} modules`),
        h("div", { class: "card-actions" },
          t.next_lesson_id ? h("a", { class: "button primary small", href: `#/lesson/${encodeURIComponent(t.next_lesson_id)}` }, t.lessons_completed ? "Continue" : "Start") : h("span", { class: "note" }, "Completed ✓"),
          h("a", { class: "button small", href: `#/ask/${encodeURIComponent(t.id)}` }, "Ask the course agent"))))));
  } catch (err) {
    replace(box, h("h1", { id: "courses-title" }, "Courses"), h("p", { class: "form-error", role: "alert" }, API.explain(err)));
  }
}

function progressBar(percent, label) {
  const p = Math.max(0, Math.min(100, Math.round(percent || 0)));
  const bar = h("span", { class: "bar" });
  bar.style.width = `${p}%`; // CSSOM, not a style attribute: allowed by the CSP
  return h("div", { class: "progress", role: "progressbar", "aria-label": label, "aria-valuemin": "0", "aria-valuemax": "100", "aria-valuenow": String(p) },
    h("span", { class: "track" }, bar), h("span", { class: "pct" }, `${p}%`));
}

async function trackView(id) {
  closeChat();
  setNav("courses");
  const box = h("section", { class: "page" }, h("p", { class: "muted" }, "Loading…"));
  replace(shell.main, box);
  try {
    const t = await API.api("GET", `/api/tracks/${encodeURIComponent(id)}`);
    document.title = `${t.title} · confab`;
    replace(box,
      h("nav", { class: "crumbs", "aria-label": "Breadcrumb" }, h("a", { href: "#/courses" }, "Courses"), " / ", t.title),
      h("h1", {}, t.title), h("p", {}, t.description),
      progressBar(t.progress_percent, `${t.title} progress`),
      h("p", {}, h("a", { class: "button small", href: `#/ask/${encodeURIComponent(t.id)}` }, "Ask the course agent")),
      t.modules.map((m) => h("section", { class: "module" },
        h("h2", {}, m.title),
        h("ol", { class: "lessons" }, m.lessons.map((l) => h("li", { class: l.completed ? "done" : "" },
          h("a", { href: `#/lesson/${encodeURIComponent(l.id)}` }, l.title),
          l.completed ? h("span", { class: "check", "aria-label": "completed" }, " ✓") : null))))));
  } catch (err) {
    replace(box, h("p", { class: "form-error", role: "alert" }, API.explain(err)));
  }
}

async function lessonView(id) {
  closeChat();
  setNav("courses");
  const box = h("article", { class: "page lesson" }, h("p", { class: "muted" }, "Loading…"));
  replace(shell.main, box);
  try {
    const l = await API.api("GET", `/api/lessons/${encodeURIComponent(id)}`);
    document.title = `${l.title} · confab`;
    const body = h("div", { class: "md" }, render(l.content));
    const complete = h("button", { type: "button", class: l.completed ? "" : "primary", disabled: l.completed }, l.completed ? "Completed ✓" : "Mark as complete");
    complete.addEventListener("click", async () => {
      complete.disabled = true;
      try {
        await API.api("POST", `/api/lessons/${encodeURIComponent(l.id)}/complete`);
        complete.textContent = "Completed ✓";
        complete.className = "";
        toast("Lesson completed.");
      } catch (err) {
        complete.disabled = false;
        toast(API.explain(err), "error");
      }
    });
    const question = h("input", { type: "text", id: "lesson-question", placeholder: `A question about “${l.title}”`, "aria-label": "Question for the course agent" });
    const ask = h("form", { class: "ask-box" },
      h("label", { for: "lesson-question" }, "Ask the course agent about this lesson"),
      h("div", { class: "row" }, question, h("button", { type: "submit", class: "primary" }, "Ask")));
    ask.addEventListener("submit", (e) => {
      e.preventDefault();
      pendingQuestion = question.value.trim() || `Explain the lesson “${l.title}”.`;
      go(`#/ask/${encodeURIComponent(l.track_id)}/${encodeURIComponent(l.id)}`);
    });
    replace(box,
      h("nav", { class: "crumbs", "aria-label": "Breadcrumb" },
        h("a", { href: "#/courses" }, "Courses"), " / ", h("a", { href: `#/track/${encodeURIComponent(l.track_id)}` }, l.module_title), " / ", l.title),
      h("h1", {}, l.title), body,
      h("div", { class: "lesson-actions" },
        l.previous_lesson_id ? h("a", { class: "button small", href: `#/lesson/${encodeURIComponent(l.previous_lesson_id)}` }, "← Previous") : null,
        complete,
        l.next_lesson_id ? h("a", { class: "button small", href: `#/lesson/${encodeURIComponent(l.next_lesson_id)}` }, "Next →") : null),
      ask);
    highlight(body);
  } catch (err) {
    replace(box, h("p", { class: "form-error", role: "alert" }, API.explain(err)));
  }
}

let pendingQuestion = null;

/** The knowledge bases last chosen for a session in this browser. */
function storedKnowledge(sessionId) {
  try {
    const ids = JSON.parse(localStorage.getItem(`confab.kb.${sessionId}`) || "[]");
    return Array.isArray(ids) ? ids.filter((x) => typeof x === "string").slice(0, 16) : [];
  } catch { return []; }
}

function rememberKnowledge(sessionId, ids) {
  try {
    if (ids.length) localStorage.setItem(`confab.kb.${sessionId}`, JSON.stringify(ids));
    else localStorage.removeItem(`confab.kb.${sessionId}`);
  } catch { /* storage full or off: the choice lasts this view */ }
}

// -------------------------------------------------------------- settings

async function settingsView() {
  closeChat();
  setNav("settings");
  document.title = "Settings · confab";
  const box = h("section", { class: "page", "aria-labelledby": "settings-title" }, h("h1", { id: "settings-title" }, "Settings"), h("p", { class: "muted" }, "Loading…"));
  replace(shell.main, box);
  let me;
  let models = [];
  try {
    me = await API.api("GET", "/api/users/me");
    API.rememberUser(me);
    try { models = (await API.api("GET", "/v1/models")).data.map((m) => m.id); } catch { /* optional */ }
  } catch (err) {
    replace(box, h("h1", { id: "settings-title" }, "Settings"), h("p", { class: "form-error", role: "alert" }, API.explain(err)));
    return;
  }
  const styles = ["balanced", "concise", "detailed", "socratic"];
  const name = h("input", { id: "set-name", type: "text", value: me.display_name || "", maxlength: 100 });
  const style = h("select", { id: "set-style" }, styles.map((s) => h("option", { value: s, selected: me.settings?.ai_style === s }, s[0].toUpperCase() + s.slice(1))));
  const model = h("select", { id: "set-model" },
    h("option", { value: "" }, "Server default"),
    [...new Set([...models, me.settings?.preferred_model].filter(Boolean))].map((m) => h("option", { value: m, selected: me.settings?.preferred_model === m }, m)));
  const msg = h("p", { class: "form-msg", role: "status" });
  const profile = h("form", { class: "settings-form", "aria-labelledby": "profile-title" },
    h("h2", { id: "profile-title" }, "Profile and answers"),
    h("label", { for: "set-name" }, "Display name"), name,
    h("label", { for: "set-style" }, "AI style"), style,
    h("p", { class: "hint" }, "Concise: short answers. Detailed: thorough ones. Socratic: guiding questions."),
    h("label", { for: "set-model" }, "Preferred model"), model,
    h("button", { type: "submit", class: "primary" }, "Save"), msg);
  profile.addEventListener("submit", async (e) => {
    e.preventDefault();
    msg.textContent = "";
    try {
      const settings = { ai_style: style.value, preferred_model: model.value || null };
      const upd = await API.api("PATCH", "/api/users/me", { display_name: name.value.trim() || undefined, settings });
      API.rememberUser(upd);
      msg.textContent = "Saved.";
      const who = shell.header.querySelector(".who");
      who.textContent = upd.display_name || upd.email;
    } catch (err) { msg.textContent = API.explain(err); msg.className = "form-error"; }
  });

  const keyList = h("ul", { class: "keys", "aria-label": "API keys" });
  const keyName = h("input", { id: "key-name", type: "text", placeholder: "e.g. laptop script", maxlength: 100, required: true });
  const keyPassword = h("input", { id: "key-password", type: "password", autocomplete: "current-password", required: true });
  const created = h("div", { class: "created-key", hidden: true, role: "status" });
  const keyForm = h("form", { class: "settings-form", "aria-labelledby": "keys-title" },
    h("h2", { id: "keys-title" }, "API keys"),
    h("p", { class: "hint" }, "Send a key as ", h("code", {}, "Authorization: Bearer <key>"), " from scripts and OpenAI SDKs (base URL ", h("code", {}, `${location.origin}/v1`), ")."),
    created, keyList,
    h("label", { for: "key-name" }, "New key name"), keyName,
    h("label", { for: "key-password" }, "Your password (a key acts as you)"),
    h("div", { class: "row" }, keyPassword, h("button", { type: "submit", class: "primary" }, "Create key")));
  async function loadKeys() {
    try {
      const keys = await API.api("GET", "/api/users/me/api-keys");
      const live = keys.items.filter((k) => !k.revoked_at);
      replace(keyList, live.length ? live.map((k) => h("li", { class: "key" },
        h("span", { class: "key-name" }, k.name), " ", h("code", {}, `${k.prefix}…`),
        h("span", { class: "muted small" }, ` created ${ago(k.created_at)}${k.last_used_at ? `, used ${ago(k.last_used_at)}` : ", never used"}`),
        h("button", { type: "button", class: "small danger", "aria-label": `Revoke key ${k.name}`, onclick: async () => {
          try { await API.api("DELETE", `/api/users/me/api-keys/${k.id}`); toast(`Revoked “${k.name}”.`); loadKeys(); } catch (err) { toast(API.explain(err), "error"); }
        } }, "Revoke"))) : h("li", { class: "muted" }, "No keys yet."));
    } catch (err) { replace(keyList, h("li", { class: "form-error" }, API.explain(err))); }
  }
  keyForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    if (!keyName.value.trim() || !keyPassword.value) return;
    try {
      const k = await API.api("POST", "/api/users/me/api-keys", { name: keyName.value.trim(), password: keyPassword.value });
      keyName.value = "";
      keyPassword.value = "";
      const field = h("input", { type: "text", readonly: true, value: k.key, id: "new-key", "aria-label": "Your new API key" });
      const copy = h("button", { type: "button", class: "primary small", onclick: async () => {
        try { await navigator.clipboard.writeText(k.key); copy.textContent = "Copied"; } catch { field.select(); copy.textContent = "Press Ctrl+C"; }
      } }, "Copy");
      replace(created, h("p", {}, h("strong", {}, "Copy your new key now: "), "it is shown only once."), h("div", { class: "row" }, field, copy),
        h("button", { type: "button", class: "link", onclick: () => { created.hidden = true; created.replaceChildren(); } }, "I saved it"));
      created.hidden = false;
      field.select();
      loadKeys();
    } catch (err) {
      toast(err.code === "invalid_credentials" ? "Wrong password: the key was not created." : API.explain(err), "error");
      keyPassword.focus();
    }
  });
  replace(box, h("h1", { id: "settings-title" }, "Settings"), profile, keyForm,
    h("section", { class: "settings-form" }, h("h2", {}, "Account"), h("p", { class: "muted" }, `Signed in as ${me.email}.`),
      h("button", { type: "button", onclick: async () => {
        try { await API.api("POST", "/api/auth/logout-all"); } catch { /* signed out below anyway */ }
        API.logout("Signed out on every device.");
      } }, "Sign out everywhere")));
  loadKeys();
}

// ------------------------------------------------------------------ main

function show() {
  if (!API.currentUser()) return authScreen();
  if (!shell) buildShell();
  toggleSide(false);
  const r = route();
  switch (r.name) {
    case "courses": return coursesView();
    case "track": return trackView(r.args[0]);
    case "lesson": return lessonView(r.args[0]);
    case "settings": return settingsView();
    case "knowledge":
      closeChat();
      setNav("knowledge");
      return r.args[0] ? knowledgeView(shell.main, r.args[0], r.args[1] || null) : knowledgeListView(shell.main);
    case "kbchat":
      return chatView(null, null, { agent: "dashboard", knowledge: r.args[0] ? [r.args[0]] : [] });
    case "ask": {
      const q = pendingQuestion;
      pendingQuestion = null;
      return chatView(null, null, { agent: "course", course_id: r.args[0], question: q || undefined });
    }
    case "chat":
    default:
      return chatView(r.args[0] || null, r.args[1] || null);
  }
}

function start() {
  shell = null;
  if (!location.hash || location.hash === "#" || location.hash === "#/login") history.replaceState(null, "", "#/");
  show();
}

start();
// The browser tests measure time to interactive up to here.
performance.mark("confab-interactive");
