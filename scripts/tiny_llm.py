"""Tiny random-weight LLMs that the real vLLM engine serves on CPU, built with transformers.

- `write_tiny_llama(folder)`: a 2-layer Llama (head_dim 32: vLLM's CPU attention needs one of its
  head sizes) with a byte-level BPE tokenizer trained here on a few sentences, and a chat template.
- `write_tiny_gpt_oss(folder, script)`: a 2-layer `GptOssForCausalLM` over the harmony (o200k)
  vocabulary, with no tokenizer files (monolith renders and parses gpt-oss with openai-harmony).
  `write_harmony_tokenizer(folder)` adds the `tokenizer.json` real gpt-oss checkpoints ship (built
  from the vocabulary oss-harmony embeds, offline): vLLM's structured outputs need it.
  Its weights make it a bigram machine: attention and experts write nothing, so each position's
  logits depend on its own token only, and the LM head maps each token of `script` to the next.
  After the prompt's final `<|start|>assistant` it therefore writes `script` exactly, which is
  how harmony's channels are tested end to end through the engine.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

CORPUS = [
    "Hello! How can I help you today?",
    "The weather in Tokyo is sunny and warm.",
    "Please tell me about the returns policy.",
    "こんにちは、今日の天気を教えてください。",
    "東京タワーは333メートルです。",
    "Thank you very much. Goodbye!",
]
# Hermes-style tools (vLLM's `hermes` tool-call parser reads `<tool_call>{...}</tool_call>`): the
# tools in a system turn, an assistant's calls as tagged JSON, a tool's result as a user turn.
CHAT_TEMPLATE = (
    "{% if tools %}<|system|><tools>{% for t in tools %}{{ t['function'] | tojson }}{% endfor %}</tools></s>{% endif %}"
    "{% for m in messages %}"
    "{% if m['role'] == 'tool' %}<|user|><tool_response>{{ m['content'] }}</tool_response></s>"
    "{% elif m['role'] == 'assistant' and m.get('tool_calls') %}<|assistant|>{{ m['content'] or '' }}"
    "{% for c in m['tool_calls'] %}<tool_call>{{ {'name': c['function']['name'], "
    "'arguments': c['function']['arguments']} | tojson }}</tool_call>{% endfor %}</s>"
    "{% else %}<|{{ m['role'] }}|>{{ m['content'] }}</s>{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def write_tiny_llama(folder: Path) -> Path:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tf: Any = importlib.import_module("transformers")  # untyped library: keep mypy out of it

    folder.mkdir(parents=True, exist_ok=True)
    specials = ["<unk>", "<s>", "</s>", "<|system|>", "<|user|>", "<|assistant|>", "<|developer|>"]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(CORPUS * 4, trainers.BpeTrainer(
        vocab_size=600, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    ))
    fast = tf.PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="</s>",
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(folder)

    torch.manual_seed(0)
    config = tf.LlamaConfig(
        vocab_size=tok.get_vocab_size(), hidden_size=128, intermediate_size=256, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=32, max_position_embeddings=2048,
        bos_token_id=fast.bos_token_id, eos_token_id=fast.eos_token_id, pad_token_id=fast.pad_token_id,
        dtype="bfloat16", tie_word_embeddings=False,
    )
    tf.LlamaForCausalLM(config).to(torch.bfloat16).save_pretrained(folder)
    return folder


def harmony_ids(text_or_tokens: Sequence[str]) -> list[int]:
    """Harmony token ids for a script given as pieces: special tokens by name, text encoded."""
    from openai_harmony import HarmonyEncodingName, load_harmony_encoding

    enc = load_harmony_encoding(HarmonyEncodingName.HARMONY_GPT_OSS)
    ids: list[int] = []
    for piece in text_or_tokens:
        ids.extend(enc.encode(piece, allowed_special="all"))
    return ids


def write_tiny_gpt_oss(folder: Path, script: Sequence[str]) -> Path:
    import torch
    from openai_harmony import HarmonyEncodingName, load_harmony_encoding

    tf: Any = importlib.import_module("transformers")

    enc = load_harmony_encoding(HarmonyEncodingName.HARMONY_GPT_OSS)
    start = enc.encode("<|start|>assistant", allowed_special="all")[-1]
    chain = [start, *harmony_ids(script)]
    if len(set(chain[:-1])) != len(chain) - 1:
        raise ValueError("a bigram script cannot repeat a token (its successor would be ambiguous)")

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    hidden = 128
    config = tf.GptOssConfig(
        vocab_size=201088, hidden_size=hidden, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=64, num_local_experts=4,
        num_experts_per_tok=2, sliding_window=128, max_position_embeddings=4096,
        layer_types=["sliding_attention", "full_attention"], eos_token_id=200002, pad_token_id=199999,
        dtype="bfloat16", tie_word_embeddings=False,
    )
    model = tf.GptOssForCausalLM(config)
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.self_attn.o_proj.bias.zero_()
            layer.mlp.experts.down_proj.zero_()
            layer.mlp.experts.down_proj_bias.zero_()
        embed = model.model.embed_tokens.weight
        embed.normal_(0, 1)
        head = model.lm_head.weight
        head.zero_()
        for token, successor in zip(chain, chain[1:], strict=False):
            direction = embed[token] / embed[token].norm()
            head[successor] = direction * 12.0  # the normed residual is ~sqrt(hidden) long
    model.to(torch.bfloat16).save_pretrained(folder)
    meta = {"script": list(script), "note": "bigram-scripted tiny gpt-oss for tests (monolith)"}
    (folder / "monolith_script.json").write_text(json.dumps(meta, ensure_ascii=False, indent=1), encoding="utf-8")
    return folder


# o200k's pre-tokenizer split (tiktoken's `o200k_base` pattern), which harmony's encoding uses.
O200K_PATTERN = "|".join([
    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
    r"""\p{N}{1,3}""",
    r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
    r"""\s*[\r\n]+""",
    r"""\s+(?!\S)""",
    r"""\s+""",
])


def write_harmony_tokenizer(folder: Path) -> Path:
    """gpt-oss's tokenizer as a Hugging Face `tokenizer.json` (byte-level BPE, ranks as ids, the
    special tokens added), from the vocabulary oss-harmony embeds: the same ids as harmony's own
    encoding, offline, in about 4 s. vLLM's structured outputs (xgrammar) read it."""
    from openai_harmony import HarmonyEncodingName, load_harmony_encoding
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers

    tf: Any = importlib.import_module("transformers")
    byte_chars: dict[int, str] = importlib.import_module("transformers.convert_slow_tokenizer").bytes_to_unicode()

    enc = load_harmony_encoding(HarmonyEncodingName.HARMONY_GPT_OSS)
    ranks: dict[bytes, int] = {}
    specials: list[str] = []
    for token_id in range(201088):
        if enc.is_special_token(token_id):
            specials.append(enc.decode([token_id]))
        else:
            ranks[bytes(enc._inner.decode_bytes([token_id]))] = token_id

    def text(piece: bytes) -> str:
        return "".join(byte_chars[b] for b in piece)

    merges: list[tuple[bytes, bytes, int]] = []
    for piece, rank in ranks.items():  # as transformers' TikTokenConverter derives merges from ranks
        local = [(piece[:i], piece[i:], rank) for i in range(1, len(piece)) if piece[:i] in ranks and piece[i:] in ranks]
        merges.extend(sorted(local, key=lambda m: (ranks[m[0]], ranks[m[1]])))
    merges.sort(key=lambda m: m[2])
    tok = Tokenizer(models.BPE({text(p): r for p, r in ranks.items()}, [(text(a), text(b)) for a, b, _ in merges],
                               fuse_unk=False, ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(O200K_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    fast = tf.PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|return|>", pad_token="<|endoftext|>")
    fast.save_pretrained(folder)
    return folder
