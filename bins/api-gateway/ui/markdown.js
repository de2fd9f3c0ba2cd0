// Model output is untrusted. It is rendered as Markdown with raw HTML shown
// as text, then sanitised by DOMPurify with a small allow-list: no scripts,
// no event handlers, no images, no styles, links only to http(s) or this
// site (opened with rel=noopener). Code is highlighted later, lazily, by
// highlight.js (which escapes what it highlights).
import { Marked } from "./vendor/marked.esm.js";
import "./vendor/purify.min.js";

const DOMPurify = globalThis.DOMPurify;

const ESC = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
const escape = (s) => String(s).replace(/[&<>"']/g, (c) => ESC[c]);

const marked = new Marked({ gfm: true, breaks: false, async: false });
marked.use({
  renderer: {
    // Raw HTML in the text is shown as text, never parsed.
    html(token) {
      return escape(token.text ?? token.raw ?? "");
    },
    // Images are not loaded (no request to another origin): a link instead.
    image(token) {
      return `<a href="${escape(token.href || "")}">${escape(token.text || token.href || "image")}</a>`;
    },
  },
});

const ALLOWED_TAGS = [
  "a", "p", "br", "hr", "strong", "em", "del", "s", "code", "pre", "kbd", "sub", "sup",
  "blockquote", "ul", "ol", "li", "h1", "h2", "h3", "h4", "h5", "h6",
  "table", "thead", "tbody", "tr", "th", "td", "span", "div",
];
const ALLOWED_ATTR = ["href", "title", "class", "start", "align", "colspan", "rowspan"];
const SAFE_HREF = /^(https?:\/\/|\/(?!\/)|#|\.{0,2}\/)/i;

DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  if (node.nodeName === "A") {
    const href = node.getAttribute("href") || "";
    if (!SAFE_HREF.test(href.trim())) {
      node.removeAttribute("href");
    } else if (/^https?:/i.test(href.trim())) {
      node.setAttribute("target", "_blank");
      node.setAttribute("rel", "noopener noreferrer nofollow");
    }
  }
  if (!highlighting && node.hasAttribute && node.hasAttribute("class")) {
    // Only language-xxx on code (for highlighting); nothing else styles.
    const keep = node.nodeName === "CODE" ? node.getAttribute("class").match(/^language-[\w+#-]{1,30}$/) : null;
    if (keep) node.setAttribute("class", keep[0]);
    else node.removeAttribute("class");
  }
});

const PURIFY = {
  ALLOWED_TAGS,
  ALLOWED_ATTR,
  ALLOW_DATA_ATTR: false,
  ALLOW_ARIA_ATTR: false,
  ADD_ATTR: ["target", "rel"],
  RETURN_DOM_FRAGMENT: true,
};

/** Markdown text -> a sanitised DocumentFragment. */
export function render(text) {
  let html;
  try {
    html = marked.parse(String(text ?? ""));
  } catch {
    html = `<p>${escape(text)}</p>`;
  }
  return DOMPurify.sanitize(html, PURIFY);
}

/** Plain text -> sanitised fragment (user messages: no Markdown). */
export function plain(text) {
  const frag = document.createDocumentFragment();
  for (const para of String(text ?? "").split(/\n{2,}/)) {
    const p = document.createElement("p");
    p.textContent = para;
    frag.append(p);
  }
  return frag;
}

const LANGS = new Set([
  "bash", "c", "cpp", "css", "diff", "go", "java", "javascript", "json", "markdown",
  "python", "rust", "shell", "sql", "typescript", "xml", "yaml",
]);
const ALIAS = { js: "javascript", ts: "typescript", py: "python", rs: "rust", sh: "bash", zsh: "bash",
  html: "xml", yml: "yaml", md: "markdown", "c++": "cpp", golang: "go", console: "shell" };
const MAX_HIGHLIGHT = 20000; // longer blocks stay plain: the page stays responsive

let hljs = null;
let highlighting = false; // the class filter below is for Markdown only

// The language modules, spelled out so the build can give them hashed names.
const MODULES = {
  bash: () => import("./vendor/hljs/bash.min.js"), c: () => import("./vendor/hljs/c.min.js"),
  cpp: () => import("./vendor/hljs/cpp.min.js"), css: () => import("./vendor/hljs/css.min.js"),
  diff: () => import("./vendor/hljs/diff.min.js"), go: () => import("./vendor/hljs/go.min.js"),
  java: () => import("./vendor/hljs/java.min.js"), javascript: () => import("./vendor/hljs/javascript.min.js"),
  json: () => import("./vendor/hljs/json.min.js"), markdown: () => import("./vendor/hljs/markdown.min.js"),
  python: () => import("./vendor/hljs/python.min.js"), rust: () => import("./vendor/hljs/rust.min.js"),
  shell: () => import("./vendor/hljs/shell.min.js"), sql: () => import("./vendor/hljs/sql.min.js"),
  typescript: () => import("./vendor/hljs/typescript.min.js"), xml: () => import("./vendor/hljs/xml.min.js"),
  yaml: () => import("./vendor/hljs/yaml.min.js"),
};

/** Highlights the code blocks under `root` (loads highlight.js on first use). */
export async function highlight(root) {
  const blocks = [...root.querySelectorAll("pre code[class^='language-']")];
  if (!blocks.length) return;
  try {
    if (!hljs) hljs = (await import("./vendor/hljs/core.min.js")).default;
    for (const el of blocks) {
      if (el.dataset.highlighted || el.textContent.length > MAX_HIGHLIGHT) continue;
      let name = el.className.slice("language-".length).toLowerCase();
      name = ALIAS[name] || name;
      if (!LANGS.has(name)) continue;
      if (!hljs.getLanguage(name)) {
        const mod = await MODULES[name]();
        hljs.registerLanguage(name, mod.default);
      }
      const out = hljs.highlight(el.textContent, { language: name, ignoreIllegals: true });
      // highlight.js escapes the code; the markup is only its <span class="hljs-*">.
      highlighting = true;
      try {
        el.replaceChildren(DOMPurify.sanitize(out.value, { ALLOWED_TAGS: ["span"], ALLOWED_ATTR: ["class"], RETURN_DOM_FRAGMENT: true }));
      } finally {
        highlighting = false;
      }
      el.classList.add("hljs");
      el.dataset.highlighted = "1";
    }
  } catch {
    /* highlighting is decoration: plain code stays */
  }
}
