#!/usr/bin/env bash
# Makes the knowledge-base test fixtures (crates/rag/tests/fixtures/kb) with
# real tools others wrote: reportlab and fpdf2 (PDF), python-docx and pandoc
# (DOCX), qpdf (an encrypted PDF). The outputs are committed; run this again
# only to change them. Needs: python3 with pip, pandoc, qpdf.
#   pip install reportlab==5.1.0 fpdf2==2.8.9 python-docx==1.2.0
set -euo pipefail
out="$(cd "$(dirname "$0")/.." && pwd)/crates/rag/tests/fixtures/kb"
mkdir -p "$out"
cd "$out"

python3 - <<'PY'
import zipfile, zlib
from reportlab.lib.pagesizes import A4
from reportlab.pdfgen import canvas
from fpdf import FPDF
import docx

# A 10-page PDF (reportlab): page 7 alone holds the lighthouse fact.
c = canvas.Canvas("handbook.pdf", pagesize=A4, invariant=1)
topics = ["tides", "rope knots", "fog signals", "lamp oil", "charts",
          "radio logs", "the lighthouse keeper", "storm drills", "supplies", "handover"]
for i, topic in enumerate(topics, start=1):
    c.setFont("Helvetica-Bold", 16)
    c.drawString(72, 780, f"Chapter {i}: {topic.title()}")
    c.setFont("Helvetica", 11)
    y = 750
    lines = [f"This page describes {topic} at the Harbor Point station.",
             f"Routine duties about {topic} are written down in the station book."]
    if i == 7:
        lines += ["The lighthouse keeper's cat is named Bartholomew Quince.",
                  "Bartholomew Quince sleeps beside the lamp room door every night."]
    for line in lines:
        c.drawString(72, y, line)
        y -= 16
    c.showPage()
c.save()

# A small PDF from another producer (fpdf2).
pdf = FPDF()
pdf.set_creation_date(__import__("datetime").datetime(2026, 1, 1))
for text in ["The orchard planting plan puts apple trees in the north field.",
             "Pear trees go to the south slope; the irrigation valve is code VX-42."]:
    pdf.add_page()
    pdf.set_font("helvetica", size=12)
    pdf.multi_cell(0, 8, text)
pdf.output("orchard.pdf")

# A DOCX with heading styles (python-docx).
d = docx.Document()
d.core_properties.created = __import__("datetime").datetime(2026, 1, 1)
d.add_heading("Field Guide", level=1)
d.add_paragraph("This guide covers the research station.")
d.add_heading("Water Supply", level=2)
d.add_paragraph("The station's drinking water comes from the Kestrel Spring, filtered twice.")
d.add_heading("Power", level=2)
d.add_paragraph("Solar panels on the east roof charge a battery bank named Gullwing.")
d.save("fieldguide.docx")

# A zip bomb named .docx: word/document.xml expands to 80 MiB.
with zipfile.ZipFile("bomb.docx", "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
    z.writestr("[Content_Types].xml", "<Types/>")
    body = b"<w:document xmlns:w='w'><w:body>" + b"<w:p><w:r><w:t>aaaa</w:t></w:r></w:p>" * (80 * 1024 * 1024 // 36) + b"</w:body></w:document>"
    z.writestr(zipfile.ZipInfo("word/document.xml", (2026, 1, 1, 0, 0, 0)), body, zipfile.ZIP_DEFLATED)

# A corrupt PDF: the header, then garbage.
with open("corrupt.pdf", "wb") as f:
    f.write(b"%PDF-1.7\n" + bytes((i * 37) % 251 for i in range(4000)))
PY

# An encrypted copy (user password) with qpdf.
qpdf --encrypt secret secret 256 -- orchard.pdf encrypted.pdf

# DOCX from Markdown with pandoc (another producer).
cat > /tmp/kb-pandoc.md <<'MD'
# Kitchen Rules

## Ovens

The bakery oven must be preheated to 230 degrees before the rye loaves go in.

## Cleaning

Flour bins are emptied every Friday.
MD
pandoc /tmp/kb-pandoc.md -o kitchen.docx

cat > notes.md <<'MD'
# Ship Notes

## Engines

The starboard engine was rebuilt in March by the crew of the Albatross.

## Cargo

The hold carries forty crates of copper wire.
MD
cat > page.html <<'HTML'
<!doctype html><html><head><title>Garden Club</title></head><body>
<h1>Garden Club</h1><h2>Meetings</h2><p>The garden club meets on the first Tuesday in the greenhouse.</p>
<h2>Prizes</h2><p>The largest pumpkin wins a silver trowel.</p></body></html>
HTML
printf 'Plain notes.\n\nThe museum opens at nine and the telescope room at noon.\n' > plain.txt
ls -l "$out"
