#!/usr/bin/env python3
"""Scores the two PDF text extractors of crates/rag/examples/pdf_compare.rs
against poppler's pdftotext (a reference extractor), page by page:
word recall (share of pdftotext's words found on the same page) and
precision, plus the time each took. Needs poppler-utils (pdftotext, pdfinfo).

  cargo build -p confab-rag --example pdf_compare
  scripts/pdf-compare.py target/debug/examples/pdf_compare a.pdf b.pdf ...
"""
import ast, collections, re, subprocess, sys

exe = sys.argv[1]
files = sys.argv[2:]
def words(t): return collections.Counter(re.findall(r"[a-z0-9]+", t.lower()))
def score(ref, got):
    r, g = words(ref), words(got)
    inter = sum((r & g).values())
    return inter / max(1, sum(r.values())), inter / max(1, sum(g.values()))
out = subprocess.run([exe] + files, capture_output=True, text=True).stdout
cur = None; res = {}
for line in out.splitlines():
    if line.startswith("==== "): f = line[5:].split(" (")[0]; res[f] = {}
    elif line.startswith("-- pdf-extract:"): cur = "pdf-extract"; res[f][cur] = {"time": line.split(": ")[1], "pages": {}}
    elif line.startswith("-- lopdf extract_text:"): cur = "lopdf"; res[f][cur] = {"time": line.split(": ")[1], "pages": {}}
    elif line.startswith("[page "):
        m = re.match(r"\[page (\d+)\] (.*)", line); res[f][cur]["pages"][int(m.group(1))] = ast.literal_eval(re.sub(r"\\u\{([0-9a-f]+)\}", lambda x: "\\U%08x" % int(x.group(1), 16), m.group(2)))
    elif line.startswith("error") or line.startswith("panicked"): res[f][cur]["error"] = line
print(f"{'file':28} {'extractor':12} {'time':>12} {'pages':>5} {'recall':>7} {'precision':>9}")
for f, by in res.items():
    n = int(re.search(r"Pages:\s+(\d+)", subprocess.run(["pdfinfo", f], capture_output=True, text=True).stdout).group(1))
    ref = {p: subprocess.run(["pdftotext", "-f", str(p), "-l", str(p), "-enc", "UTF-8", f, "-"], capture_output=True, text=True).stdout for p in range(1, n+1)}
    for ex, d in by.items():
        if "error" in d: print(f"{f.split('/')[-1]:28} {ex:12} {d['time']:>12} {d['error']}"); continue
        pages = d["pages"]
        R = sum(words(ref[p]).total() * score(ref[p], pages.get(p, ""))[0] for p in ref) / max(1, sum(words(ref[p]).total() for p in ref))
        got_all = "\n".join(pages.values()); P = score("\n".join(ref.values()), got_all)[1]
        print(f"{f.split('/')[-1]:28} {ex:12} {d['time']:>12} {len(pages):>5} {R:7.3f} {P:9.3f}")
