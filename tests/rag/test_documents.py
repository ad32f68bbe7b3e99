"""Which files are read, how, and which are reported as unreadable."""

from __future__ import annotations

from pathlib import Path

import pytest

from monolith.rag import documents


def test_walk_finds_supported_files_and_skips_hidden_ones(tmp_path: Path) -> None:
    for name in ("a.md", "b.txt", "c.html", "d.pdf", "e.py", ".hidden.md", ".git/config.md", "sub/f.markdown"):
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x", encoding="utf-8")
    assert [f.relative for f in documents.walk(tmp_path)] == ["a.md", "b.txt", "c.html", "d.pdf", "sub/f.markdown"]


def test_html_keeps_visible_text_and_drops_scripts_and_styles() -> None:
    html = "<html><head><title>T</title><style>p{}</style></head><body><h1>Head</h1><p>One &amp; two.</p><script>x=1</script><ul><li>item</li></ul></body></html>"
    assert documents.html_text(html) == "Head\n\nOne & two.\n\nitem"


def test_non_utf8_text_is_unreadable_with_a_reason(tmp_path: Path) -> None:
    path = tmp_path / "latin1.txt"
    path.write_bytes("café".encode("latin-1"))
    with pytest.raises(documents.UnreadableDocument, match="not UTF-8"):
        documents.read(documents.SourceFile(path, "latin1.txt"))


def test_empty_file_is_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "empty.md"
    path.write_text("  \n", encoding="utf-8")
    with pytest.raises(documents.UnreadableDocument, match="no text"):
        documents.read(documents.SourceFile(path, "empty.md"))


def _minimal_pdf(text: str) -> bytes:
    """A one-page PDF with one line of text, written by hand (with a correct xref table)."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def test_pdf_text_is_extracted_with_pypdf(tmp_path: Path) -> None:
    path = tmp_path / "manual.pdf"
    path.write_bytes(_minimal_pdf("The warranty lasts two years."))
    doc = documents.read(documents.SourceFile(path, "manual.pdf"))
    assert "The warranty lasts two years." in doc.text


def test_damaged_pdf_is_unreadable_not_fatal(tmp_path: Path) -> None:
    path = tmp_path / "broken.pdf"
    path.write_bytes(b"%PDF-1.4\nthis is not a pdf")
    with pytest.raises(documents.UnreadableDocument):
        documents.read(documents.SourceFile(path, "broken.pdf"))
