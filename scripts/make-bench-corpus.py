"""Writes the knowledge-ingestion benchmark's mixed corpus (issue 15).

    python make-bench-corpus.py OUT_DIR [MEGABYTES]

Run by scripts/bench-knowledge.sh in the venv of scripts/make-kb-fixtures.sh
(reportlab for PDF, python-docx for DOCX). Deterministic: the same
arguments give the same files. The words come from the retrieval fixtures
(crates/rag/tests/fixtures/corpus), so the text has a real vocabulary.

Files come in rounds of Markdown 4, PDF 2, HTML 2, DOCX 2 and text 1
until their bytes reach MEGABYTES (default 50). Each holds about 300 KB of
text in headed sections of paragraphs (a PDF of ~70 pages).
"""

import random
import re
import sys
from pathlib import Path

from docx import Document
from reportlab.lib.pagesizes import A4
from reportlab.pdfgen import canvas

ROOT = Path(__file__).resolve().parent.parent
FILE_TEXT = 300_000


def vocabulary():
    words = set()
    for p in sorted((ROOT / "crates/rag/tests/fixtures/corpus").glob("*.md")):
        words.update(w.lower() for w in re.findall(r"[A-Za-z]{3,14}", p.read_text()))
    return sorted(words)


def sections(rng, words, size):
    """[(heading, [paragraph, ...])] totalling about `size` characters."""
    out, total = [], 0
    while total < size:
        heading = " ".join(rng.choice(words) for _ in range(rng.randint(2, 5))).capitalize()
        paras = []
        for _ in range(rng.randint(3, 8)):
            sentences = []
            for _ in range(rng.randint(2, 6)):
                s = " ".join(rng.choice(words) for _ in range(rng.randint(6, 18)))
                sentences.append(s.capitalize() + ".")
            p = " ".join(sentences)
            paras.append(p)
            total += len(p)
        out.append((heading, paras))
    return out


def markdown(path, secs):
    with open(path, "w") as f:
        for h, paras in secs:
            f.write(f"## {h}\n\n")
            for p in paras:
                f.write(p + "\n\n")


def html(path, secs):
    with open(path, "w") as f:
        f.write("<!doctype html><html><head><title>Bench</title></head><body>\n")
        for h, paras in secs:
            f.write(f"<h2>{h}</h2>\n")
            for p in paras:
                f.write(f"<p>{p}</p>\n")
        f.write("</body></html>\n")


def text(path, secs):
    with open(path, "w") as f:
        for h, paras in secs:
            f.write(h.upper() + "\n\n")
            for p in paras:
                f.write(p + "\n\n")


def pdf(path, secs):
    c = canvas.Canvas(str(path), pagesize=A4, pageCompression=1)
    width, height = A4
    y = height - 60

    def line(s, font, size):
        nonlocal y
        if y < 60:
            c.showPage()
            y = height - 60
        c.setFont(font, size)
        c.drawString(50, y, s)
        y -= size + 4

    for h, paras in secs:
        line(h, "Helvetica-Bold", 13)
        for p in paras:
            words, cur = p.split(), ""
            for w in words:
                if len(cur) + len(w) + 1 > 95:
                    line(cur, "Helvetica", 10)
                    cur = w
                else:
                    cur = f"{cur} {w}" if cur else w
            if cur:
                line(cur, "Helvetica", 10)
            y -= 6
    c.save()


def docx(path, secs):
    d = Document()
    for h, paras in secs:
        d.add_heading(h, level=2)
        for p in paras:
            d.add_paragraph(p)
    d.save(str(path))


WRITERS = {"md": markdown, "pdf": pdf, "html": html, "docx": docx, "txt": text}
# One round of files: Markdown 4, PDF 2, HTML 2, DOCX 2, text 1.
ROUND = ["md", "pdf", "md", "html", "docx", "md", "txt", "pdf", "md", "docx", "html"]


def main():
    out = Path(sys.argv[1])
    target = float(sys.argv[2]) if len(sys.argv) > 2 else 50.0
    out.mkdir(parents=True, exist_ok=True)
    words = vocabulary()
    rng = random.Random(15)
    total, n = 0, 0
    # Files in rounds until their bytes (not their text) reach the target.
    while total < target * 1_000_000:
        ext = ROUND[n % len(ROUND)]
        path = out / f"bench-{n:04}.{ext}"
        secs = sections(rng, words, FILE_TEXT)  # drawn even when the file exists: deterministic
        if not path.exists():
            WRITERS[ext](path, secs)
        total += path.stat().st_size
        n += 1
    print(f"{n} files, {total / 1e6:.1f} MB in {out}")


if __name__ == "__main__":
    main()
