"""Find and read the documents under a source folder: Markdown, plain text, HTML, and PDF."""

from __future__ import annotations

import hashlib
import importlib.util
import io
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

TEXT_SUFFIXES = {".md", ".markdown", ".txt", ".text", ".rst"}
HTML_SUFFIXES = {".html", ".htm"}
PDF_SUFFIXES = {".pdf"}
SUPPORTED = TEXT_SUFFIXES | HTML_SUFFIXES | PDF_SUFFIXES


@dataclass(frozen=True)
class SourceFile:
    path: Path
    relative: str  # the source shown with passages: the path under the source folder, "/"-separated


@dataclass(frozen=True)
class Document:
    source: str
    text: str
    sha256: str
    size: int


class UnreadableDocument(Exception):
    """A file that is skipped and reported, never a reason to stop the ingest."""


def walk(source: Path) -> Iterator[SourceFile]:
    """Supported files under `source`, sorted, hidden files and folders left out."""
    for path in sorted(source.rglob("*")):
        rel = path.relative_to(source)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if path.is_file() and path.suffix.lower() in SUPPORTED:
            yield SourceFile(path, rel.as_posix())


def file_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read(file: SourceFile, data: bytes | None = None) -> Document:
    raw = file.path.read_bytes() if data is None else data
    suffix = file.path.suffix.lower()
    if suffix in PDF_SUFFIXES:
        text = _pdf_text(raw)
    else:
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise UnreadableDocument(f"not UTF-8 (byte {exc.start}); convert it to UTF-8") from exc
        if suffix in HTML_SUFFIXES:
            text = html_text(text)
    if not text.strip():
        raise UnreadableDocument("no text in it")
    return Document(file.relative, text, file_hash(raw), len(raw))


def pdf_supported() -> bool:
    return importlib.util.find_spec("pypdf") is not None


def _pdf_text(raw: bytes) -> str:
    if not pdf_supported():
        raise UnreadableDocument("PDF needs pypdf (pip install pypdf)")
    import pypdf  # optional: only for PDFs

    try:
        reader = pypdf.PdfReader(io.BytesIO(raw))
        return "\n\n".join(page.extract_text() or "" for page in reader.pages)
    except Exception as exc:  # pypdf raises many kinds on damaged files
        raise UnreadableDocument(f"PDF could not be read: {type(exc).__name__}: {exc}") from exc


class _TextExtractor(HTMLParser):
    SKIP = {"script", "style", "noscript", "template", "head"}
    BLOCKS = {"p", "div", "br", "li", "ul", "ol", "tr", "table", "section", "article", "header",
              "footer", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "blockquote", "title"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIP:
            self._skipping += 1
        elif tag in self.BLOCKS:
            self.parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP:
            self._skipping = max(0, self._skipping - 1)
        elif tag in self.BLOCKS:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


def html_text(html: str) -> str:
    """Visible text; block elements become paragraph breaks (sentence boundaries for the splitter)."""
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    lines = [" ".join(line.split()) for line in "".join(parser.parts).split("\n")]
    text = "\n".join(lines)
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text.strip()
