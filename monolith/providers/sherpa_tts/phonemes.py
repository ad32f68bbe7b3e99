"""Text -> phonemes with Debian's `espeak-ng` command (sherpa-onnx 2.x has no text frontend of
its own: given text alone it returns no audio, and no error).

`espeak-ng -q --ipa -v VOICE` prints one line per clause and drops punctuation, which Piper
voices were trained with (`, . ; : ! ?` are tokens). So the text is cut into clauses here, all
of them phonemized in one call (one output line per blank-line-separated clause), and each
clause's mark put back. The result is what `GenerationConfig.phoneme_codepoints` takes: one list
of code points per sentence (sherpa-onnx adds its own padding and start/end symbols)."""

from __future__ import annotations

import re
import shutil
import subprocess

_CLAUSE = re.compile(r"\s*(.+?)([,.;:!?]+(?=\s|$)|$)", re.S)
_SENTENCE_END = set(".!?")
TIMEOUT_S = 30.0


class PhonemizerMissing(FileNotFoundError):
    pass


def espeak_binary(name: str = "espeak-ng") -> str:
    found = shutil.which(name)
    if found is None:
        raise PhonemizerMissing(
            f"`{name}` is not installed: sherpa-onnx voices need phonemes and monolith makes them with "
            "espeak-ng (Debian/Ubuntu: apt-get install espeak-ng)")
    return found


def _clauses(text: str) -> list[tuple[str, str]]:
    out = []
    for match in _CLAUSE.finditer(text.strip()):
        body, mark = match.group(1).strip(), match.group(2)
        if body or mark:
            out.append((body, mark))
    return out


def _espeak(lines: list[str], voice: str, binary: str) -> list[str]:
    stdin = "\n\n".join(line or "." for line in lines) + "\n"
    done = subprocess.run([binary, "-q", "--ipa", "-v", voice], input=stdin, capture_output=True, text=True,
                          encoding="utf-8", timeout=TIMEOUT_S)
    if done.returncode:
        raise RuntimeError(f"espeak-ng failed for voice {voice!r}: {done.stderr.strip() or done.returncode}")
    return [line.strip() for line in done.stdout.splitlines() if line.strip()]


def phonemize(text: str, voice: str, binary: str) -> list[list[int]]:
    """Sentences of IPA code points for `text` (blocking: a subprocess; run it off the loop)."""
    clauses = _clauses(text)
    if not clauses:
        return []
    bodies = [body for body, _ in clauses]
    phonemes = _espeak(bodies, voice, binary)
    if len(phonemes) != len(bodies):  # espeak split or merged clauses its own way: one call each
        phonemes = [" ".join(_espeak([body], voice, binary)) for body in bodies]
    sentences: list[str] = []
    current = ""
    for (_, mark), ipa in zip(clauses, phonemes, strict=True):
        single = mark[:1]  # "?!" -> "?", "..." -> "."
        current = f"{current} {ipa}{single}" if current else f"{ipa}{single}"
        if single in _SENTENCE_END:
            sentences.append(current)
            current = ""
    if current:
        sentences.append(current)
    return [[ord(c) for c in sentence] for sentence in sentences]
