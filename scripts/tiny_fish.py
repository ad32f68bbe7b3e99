"""A tiny random-weight Fish Speech checkpoint in the OpenAudio S1-mini layout, built with Fish
Speech's own classes: `config.json`, `model.pth` (a small DualARTransformer), `tokenizer.tiktoken`
and `special_tokens.json` (byte-level vocabulary, 64 semantic tokens), `codec.pth` (a small
modded DAC) and `codec.yaml` (its hydra config, since the shipped one describes the full codec).

The audio is noise, but every step runs through the real text-to-semantic and codec code."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

CODEBOOK = 64  # semantic and RVQ codebooks alike, so any code the random model emits is valid
RVQ_CODEBOOKS = 9

CODEC_YAML = f"""_target_: fish_speech.models.dac.modded_dac.DAC
sample_rate: 44100
encoder_dim: 16
encoder_rates: [2, 4, 8, 8]
decoder_dim: 32
decoder_rates: [8, 8, 4, 2]
encoder_transformer_layers: [0, 0, 0, 0]
decoder_transformer_layers: [0, 0, 0, 0]
transformer_general_config:
  _target_: fish_speech.models.dac.modded_dac.ModelArgs
  _partial_: true
  block_size: 2048
  n_local_heads: -1
  head_dim: 32
  rope_base: 10000
  norm_eps: 1e-5
  dropout_rate: 0.0
  attn_dropout_rate: 0.0
  channels_first: true
quantizer:
  _target_: fish_speech.models.dac.rvq.DownsampleResidualVectorQuantize
  input_dim: 256
  n_codebooks: {RVQ_CODEBOOKS}
  codebook_size: {CODEBOOK}
  codebook_dim: 8
  quantizer_dropout: 0.0
  downsample_factor: [2, 2]
  post_module: &transformer_module
    _target_: fish_speech.models.dac.modded_dac.WindowLimitedTransformer
    causal: true
    window_size: 128
    input_dim: 256
    config: &transformer_config
      _target_: fish_speech.models.dac.modded_dac.ModelArgs
      block_size: 2048
      n_layer: 1
      n_head: 2
      dim: 256
      intermediate_size: 256
      n_local_heads: -1
      head_dim: 32
      rope_base: 10000
      norm_eps: 1e-5
      dropout_rate: 0.0
      attn_dropout_rate: 0.0
      channels_first: true
  pre_module: *transformer_module
  semantic_codebook_size: {CODEBOOK}
"""


def write_tiny_fish(folder: Path) -> Path:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from monolith.providers.fish_tts import compat

    compat.install()
    import torch
    from fish_speech.models.text2semantic.llama import DualARModelArgs, DualARTransformer
    from fish_speech.tokenizer import ALL_SPECIAL_TOKENS, SEMANTIC_TOKENS, FishTokenizer
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    # byte-level vocabulary: 256 single-byte tokens, then the special tokens
    base = folder / "base.tiktoken"
    base.write_text("".join(f"{base64.b64encode(bytes([i])).decode()} {i}\n" for i in range(256)))
    specials = [t for t in ALL_SPECIAL_TOKENS if t not in SEMANTIC_TOKENS] + SEMANTIC_TOKENS[:CODEBOOK]
    tokenizer = FishTokenizer(str(base), special_tokens=specials)
    tokenizer.save_pretrained(str(folder))
    base.unlink()

    config: dict[str, Any] = {
        "model_type": "dual_ar", "vocab_size": 256 + len(specials), "n_layer": 2, "n_head": 2, "dim": 64,
        "intermediate_size": 128, "n_local_heads": 2, "head_dim": 32, "max_seq_len": 4096,  # fish keeps 2048 positions for the answer
        "codebook_size": CODEBOOK, "num_codebooks": RVQ_CODEBOOKS + 1, "n_fast_layer": 1,
        "tie_word_embeddings": True, "use_gradient_checkpointing": False,
    }
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    model = DualARTransformer(DualARModelArgs(**config), tokenizer=tokenizer)
    torch.save(model.state_dict(), folder / "model.pth")

    (folder / "codec.yaml").write_text(CODEC_YAML)
    codec = instantiate(OmegaConf.create(CODEC_YAML))
    torch.save(codec.state_dict(), folder / "codec.pth")
    return folder


# OpenAudio S1-mini's text-to-semantic sizes (its published config.json): 28 slow layers of
# dim 1024 (16 heads, 8 KV heads of 128), 4 fast layers, 10 codebooks of 4096, max_seq_len 8192.
S1_MINI_SIZES: dict[str, Any] = {
    "model_type": "dual_ar", "dim": 1024, "n_layer": 28, "n_head": 16, "n_local_heads": 8, "head_dim": 128,
    "intermediate_size": 3072, "attention_qk_norm": True, "rope_base": 1000000, "norm_eps": 1e-06,
    "max_seq_len": 8192, "codebook_size": 4096, "num_codebooks": 10, "scale_codebook_embeddings": True,
    "n_fast_layer": 4, "fast_dim": 1024, "fast_n_head": 16, "fast_n_local_heads": 8, "fast_head_dim": 64,
    "fast_intermediate_size": 3072, "tie_word_embeddings": False, "use_gradient_checkpointing": False,
    "initializer_range": 0.03125,
}
S1_MINI_SEMANTIC_BEGIN = 151678


def s1mini_sized_model(folder: Path, dtype: Any = None) -> Any:
    """A random-weight DualARTransformer with S1-mini's layer sizes and token-id layout, in memory
    (about 3.4 GB in float32), prepared as Fish's `init_model` prepares one: eval, on the CPU, with
    its batch-1 caches. Its tokenizer files go to `folder` (made once). For benchmarks: the compute
    per token is S1-mini's, the words are noise."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from monolith.providers.fish_tts import compat

    compat.install()
    import torch
    from fish_speech.models.text2semantic.llama import DualARModelArgs, DualARTransformer
    from fish_speech.tokenizer import ALL_SPECIAL_TOKENS, SEMANTIC_TOKENS, FishTokenizer

    dtype = dtype or torch.float32
    if not (folder / "special_tokens.json").exists():
        folder.mkdir(parents=True, exist_ok=True)
        specials = [t for t in ALL_SPECIAL_TOKENS if t not in SEMANTIC_TOKENS]
        semantic = [f"<|semantic:{i}|>" for i in range(S1_MINI_SIZES["codebook_size"])]
        # byte-level tokens padded out so the semantic tokens start at S1-mini's id
        ordinary = S1_MINI_SEMANTIC_BEGIN - len(specials)
        tokens = [bytes([i]) for i in range(256)] + [bytes([a, b]) for a in range(256) for b in range(256)]
        tokens += [bytes([k >> 16 & 255, k >> 8 & 255, k & 255, 7]) for k in range(max(0, ordinary - len(tokens)))]
        base = folder / "base.tiktoken"
        base.write_text("".join(f"{base64.b64encode(t).decode()} {i}\n" for i, t in enumerate(tokens[:ordinary])))
        FishTokenizer(str(base), special_tokens=specials + semantic).save_pretrained(str(folder))
        base.unlink()
    tokenizer = FishTokenizer.from_pretrained(str(folder))
    assert tokenizer.semantic_begin_id == S1_MINI_SEMANTIC_BEGIN
    # the real vocabulary has two unused ids after the semantic tokens; a random model would
    # sample them and Fish would index its fast embeddings out of range: end at the last one
    config = {**S1_MINI_SIZES, "vocab_size": S1_MINI_SEMANTIC_BEGIN + S1_MINI_SIZES["codebook_size"]}
    torch.manual_seed(0)
    model = DualARTransformer(DualARModelArgs(**config), tokenizer=tokenizer).to(dtype=dtype).eval()
    model.setup_caches(max_batch_size=1, max_seq_len=model.config.max_seq_len, dtype=dtype)
    return model
