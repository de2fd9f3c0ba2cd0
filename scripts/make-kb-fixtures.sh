#!/usr/bin/env bash
# Makes the knowledge-base test fixtures with real tools others wrote:
# reportlab and fpdf2 (PDF), python-docx and pandoc (DOCX), qpdf (an
# encrypted PDF). The outputs are committed in crates/rag/tests/fixtures/kb;
# .ci/run runs this script on its fresh clone (overwriting them) before the
# tests, so the tests also pass on fixtures made from scratch.
#
#   scripts/make-kb-fixtures.sh [OUT_DIR]   (default: crates/rag/tests/fixtures/kb)
#
# Works on a fresh Debian machine: the Python packages are installed from
# PyPI into a venv under ${CONFAB_CACHE:-$HOME/.cache/confab}/kb-fixtures
# (pinned versions, reused on later runs); pandoc and qpdf come from Debian
# (apt-get install when missing and we are root).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$root/crates/rag/tests/fixtures/kb}"

LOG_NAME=make-kb-fixtures
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# The versions the committed fixtures were made with (Python 3.11, Debian 12).
PINS="reportlab==5.1.0 fpdf2==2.8.9 python-docx==1.2.0"
CONSTRAINTS='
charset-normalizer==3.4.7
defusedxml==0.7.1
fonttools==4.68.0
lxml==6.2.0
pillow==13.0.0
typing_extensions==4.15.0
'

apt_need=()
command -v pandoc >/dev/null || apt_need+=(pandoc)
command -v qpdf >/dev/null || apt_need+=(qpdf)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || apt_need+=(python3-venv)
if [ ${#apt_need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "apt-get install ${apt_need[*]}"
    apt-get update -qq >/dev/null 2>&1 || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${apt_need[@]}" >/dev/null \
      || die "apt-get install ${apt_need[*]} failed"
  else
    die "missing ${apt_need[*]} (as root: apt-get install ${apt_need[*]})"
  fi
fi

venv="${CONFAB_CACHE:-$HOME/.cache/confab}/kb-fixtures"
py="$venv/bin/python"
if ! "$py" -c 'import reportlab, fpdf, docx' >/dev/null 2>&1; then
  rm -rf "$venv"
  log "creating $venv ($PINS)"
  python3 -m venv "$venv"
  constraints=$(mktemp)
  printf '%s\n' "$CONSTRAINTS" > "$constraints"
  # shellcheck disable=SC2086
  "$py" -m pip install -q --disable-pip-version-check -c "$constraints" $PINS \
    || { log "pinned install failed; retrying unpinned"; "$py" -m pip install -q --disable-pip-version-check reportlab fpdf2 python-docx; }
  rm -f "$constraints"
  "$py" -c 'import reportlab, fpdf, docx' || die "the venv cannot import reportlab, fpdf, docx"
fi

mkdir -p "$out"
cd "$out"
# Fixed timestamps where the tools honour them (pandoc's zip entries).
export SOURCE_DATE_EPOCH=1767225600  # 2026-01-01T00:00:00Z

"$py" - <<'PY'
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
d.core_properties.modified = __import__("datetime").datetime(2026, 1, 1)
d.add_heading("Field Guide", level=1)
d.add_paragraph("This guide covers the research station.")
d.add_heading("Water Supply", level=2)
d.add_paragraph("The station's drinking water comes from the Kestrel Spring, filtered twice.")
d.add_heading("Power", level=2)
d.add_paragraph("Solar panels on the east roof charge a battery bank named Gullwing.")
d.save("fieldguide.docx")

def fixed_dates(path):
    """Rewrites a zip with every entry dated 2026-01-01 (reproducible output)."""
    with zipfile.ZipFile(path) as z:
        entries = [(i, z.read(i.filename)) for i in z.infolist()]
    with zipfile.ZipFile(path, "w") as z:
        for info, data in entries:
            fixed = zipfile.ZipInfo(info.filename, (2026, 1, 1, 0, 0, 0))
            fixed.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(fixed, data)

fixed_dates("fieldguide.docx")

# A zip bomb named .docx: word/document.xml expands to 80 MiB.
with zipfile.ZipFile("bomb.docx", "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
    z.writestr(zipfile.ZipInfo("[Content_Types].xml", (2026, 1, 1, 0, 0, 0)), "<Types/>")
    body = b"<w:document xmlns:w='w'><w:body>" + b"<w:p><w:r><w:t>aaaa</w:t></w:r></w:p>" * (80 * 1024 * 1024 // 36) + b"</w:body></w:document>"
    z.writestr(zipfile.ZipInfo("word/document.xml", (2026, 1, 1, 0, 0, 0)), body, zipfile.ZIP_DEFLATED)

# A corrupt PDF: the header, then garbage.
with open("corrupt.pdf", "wb") as f:
    f.write(b"%PDF-1.7\n" + bytes((i * 37) % 251 for i in range(4000)))
PY

# An encrypted copy (user password) with qpdf.
# (AES-128: with a static id and IV the output is reproducible; AES-256 salts are random.)
qpdf --static-id --static-aes-iv --encrypt secret secret 128 --use-aes=y -- orchard.pdf encrypted.pdf

# DOCX from Markdown with pandoc (another producer).
md=$(mktemp --suffix=.md)
cat > "$md" <<'MD'
# Kitchen Rules

## Ovens

The bakery oven must be preheated to 230 degrees before the rye loaves go in.

## Cleaning

Flour bins are emptied every Friday.
MD
pandoc "$md" -o kitchen.docx
rm -f "$md"

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
