"""A random-weight streaming zipformer2 with a real model's architecture, for benchmarks.

    python scripts/tiny_zipformer.py DIR [--size small|medium] [--ctc]

`scripts/tiny_sherpa.py` builds models of a few ONNX nodes: right for tests of monolith's logic,
useless for timing, since a real encoder's cost is many small attention and convolution ops per
chunk at several frame rates. This builds the real thing with random weights: icefall's
`Zipformer2` from the `zipformer` package on PyPI (the Next-gen Kaldi team's standalone copy of
icefall's recipe; installed --no-deps by `scripts/install.sh test`), in the `small` or `medium`
(icefall's default) configuration, causal with 320 ms chunks and 128 frames of left context,
exported to ONNX as icefall's `export-onnx-streaming.py` does, so that
`sherpa_onnx.OnlineRecognizer.from_transducer` loads it like a downloaded model. The text it
decodes is random; the compute per chunk is a real model's.

Only the model classes are used: the package's training-time imports (its data pipeline,
alignment scorer and tensorboard logger) are stood in for, and its `__init__` (which imports
torchaudio for its own inference CLI) is skipped.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import sys
import types
import warnings
from pathlib import Path
from typing import Any

# (num_encoder_layers, feedforward_dim, encoder_dim, encoder_unmasked_dim, num_heads, cnn kernels):
# the `small` and `medium` rows of icefall's zipformer README (medium = its train.py defaults).
SIZES: dict[str, dict[str, str]] = {
    "small": {
        "num_encoder_layers": "2,2,2,2,2,2",
        "feedforward_dim": "512,768,768,768,768,768",
        "encoder_dim": "192,256,256,256,256,256",
        "encoder_unmasked_dim": "192,192,192,192,192,192",
        "num_heads": "4,4,4,8,4,4",
        "cnn_module_kernel": "31,31,15,15,15,31",
    },
    "medium": {
        "num_encoder_layers": "2,2,3,4,3,2",
        "feedforward_dim": "512,768,1024,1536,1024,768",
        "encoder_dim": "192,256,384,512,384,256",
        "encoder_unmasked_dim": "192,192,256,256,256,192",
        "num_heads": "4,4,4,8,4,4",
        "cnn_module_kernel": "31,31,15,15,15,31",
    },
}
CHUNK = 16  # encoder frames per chunk at 50 Hz: 320 ms, sherpa-onnx's usual streaming models
LEFT_CONTEXT = 128
VOCAB = 500
FEATURE_DIM = 80
JOINER_DIM = 512
OPSET = 13
_STATE_NAMES = ("cached_key", "cached_nonlin_attn", "cached_val1", "cached_val2", "cached_conv1", "cached_conv2")
_STATE_BATCH_AXIS = (1, 1, 1, 1, 0, 0)


def _import_model_classes() -> Any:
    def stand_in(name: str, **attrs: Any) -> None:
        if name not in sys.modules and importlib.util.find_spec(name.split(".")[0]) is None:
            module = types.ModuleType(name)
            module.__dict__.update(attrs)
            sys.modules[name] = module

    stand_in("atdataset", SpecAugment=object, time_warp=None, fix_random_seed=None)
    stand_in("kaldialign", align=None)
    if importlib.util.find_spec("tensorboard") is None:
        sys.modules.setdefault(
            "torch.utils.tensorboard", types.ModuleType("torch.utils.tensorboard")
        ).__dict__.setdefault("SummaryWriter", type("SummaryWriter", (), {}))
    if "zipformer" not in sys.modules:
        spec = importlib.util.find_spec("zipformer")
        if spec is None or spec.submodule_search_locations is None:
            raise SystemExit("pip install --no-deps zipformer  (scripts/install.sh test does)")
        package = types.ModuleType("zipformer")
        package.__path__ = list(spec.submodule_search_locations)
        sys.modules["zipformer"] = package
    from zipformer.modules import model

    return model


def _add_metadata(path: Path, meta: dict[str, str]) -> None:
    import onnx

    model = onnx.load(str(path))
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))


def _write_decoder_and_joiner(zf: Any, model: Any, folder: Path) -> None:
    import torch

    decoder = zf.OnnxDecoderWrapper(model.decoder, model.joiner.decoder_proj)
    joiner = zf.OnnxJoinerWrapper(model.joiner.output_linear)
    torch.onnx.export(torch.jit.script(decoder), (torch.zeros(10, 2, dtype=torch.int64),), str(folder / "decoder.onnx"),
                      opset_version=OPSET, dynamo=False, input_names=["y"], output_names=["decoder_out"],
                      dynamic_axes={"y": {0: "N"}, "decoder_out": {0: "N"}})
    torch.onnx.export(joiner, (torch.rand(11, JOINER_DIM), torch.rand(11, JOINER_DIM)), str(folder / "joiner.onnx"),
                      opset_version=OPSET, dynamo=False, input_names=["encoder_out", "decoder_out"],
                      output_names=["logit"],
                      dynamic_axes={"encoder_out": {0: "N"}, "decoder_out": {0: "N"}, "logit": {0: "N"}})
    _add_metadata(folder / "decoder.onnx", {"context_size": "2", "vocab_size": str(VOCAB), "blank_id": "0", "unk_id": "0"})
    _add_metadata(folder / "joiner.onnx", {"joiner_dim": str(JOINER_DIM)})


def write_streaming_zipformer2(folder: Path, size: str = "medium", seed: int = 0, ctc: bool = False) -> int:
    """Write encoder.onnx, decoder.onnx, joiner.onnx (or, with `ctc`, one CTC model) and
    tokens.txt; returns the parameter count."""
    import torch

    zf = _import_model_classes()
    logging.getLogger().setLevel(max(logging.getLogger().level, logging.WARNING))  # its export logs at INFO
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = zf.AsrModel(
        feature_dim=FEATURE_DIM, downsampling_factor="1,2,4,8,4,2", query_head_dim="32", pos_head_dim="4",
        value_head_dim="12", pos_dim=48, causal=True, chunk_size=str(CHUNK), left_context_frames=str(LEFT_CONTEXT),
        vocab_size=VOCAB, decoder_dim=512, joiner_dim=JOINER_DIM, context_size=2, **SIZES[size],
        use_transducer=not ctc, use_ctc=ctc,
    ).eval()
    with torch.no_grad():
        # Zipformer2 builds each stack's layers by deep-copying one, so fresh weights repeat from
        # layer to layer, and the ONNX exporter would keep one copy of each repeated tensor: a
        # few percent of noise makes every layer its own, as in a trained model.
        for p in model.parameters():
            p.mul_(1 + 0.05 * torch.randn_like(p))
    parameters = int(sum(p.numel() for p in model.parameters()))
    if ctc:
        encoder = zf.OnnxStreamingCtcWrapper(model.encoder, model.encoder_embed, model.ctc_output)
    else:
        encoder = zf.OnnxStreamingEncoderWrapper(model.encoder, model.encoder_embed, model.joiner.encoder_proj)
    # icefall's export does this too: tracing follows the streaming path
    type(encoder.encoder).forward = type(encoder.encoder).streaming_forward

    stacks = encoder.encoder

    def joined(values: Any) -> str:
        return ",".join(str(v) for v in values)

    meta = {
        "model_type": "zipformer2", "version": "1", "model_author": "k2-fsa",
        "comment": f"random-weight streaming zipformer2 ({size}) for monolith benchmarks",
        "decode_chunk_len": str(CHUNK * 2), "T": str(CHUNK * 2 + encoder.pad_length),
        "num_encoder_layers": joined(stacks.num_encoder_layers), "encoder_dims": joined(stacks.encoder_dim),
        "cnn_module_kernels": joined(stacks.cnn_module_kernel),
        "left_context_len": joined(LEFT_CONTEXT // k for k in stacks.downsampling_factor),
        "query_head_dims": joined(stacks.query_head_dim), "value_head_dims": joined(stacks.value_head_dim),
        "num_heads": joined(stacks.num_heads),
    }
    states = encoder.get_init_states()
    output = "log_probs" if ctc else "encoder_out"
    inputs, outputs = ["x"], [output]
    axes: dict[str, dict[int, str]] = {"x": {0: "N"}, output: {0: "N"}}
    names = [(f"{n}_{i}", axis) for i in range(len(states[:-2]) // 6) for n, axis in zip(_STATE_NAMES, _STATE_BATCH_AXIS, strict=True)]
    for name, axis in [*names, ("embed_states", 0), ("processed_lens", 0)]:
        inputs.append(name)
        outputs.append(f"new_{name}")
        axes[name] = axes[f"new_{name}"] = {axis: "N"}
    x = torch.rand(1, CHUNK * 2 + encoder.pad_length, FEATURE_DIM)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation and tracer warnings
        encoder_file = folder / (f"ctc-chunk-{CHUNK}-left-{LEFT_CONTEXT}.onnx" if ctc else "encoder.onnx")
        torch.onnx.export(encoder, (x, states), str(encoder_file), opset_version=OPSET, dynamo=False,
                          input_names=inputs, output_names=outputs, dynamic_axes=axes)
        _add_metadata(encoder_file, meta)
        if not ctc:
            _write_decoder_and_joiner(zf, model, folder)
    # kana with the id appended: distinct, printable tokens (the text means nothing)
    tokens = ["<blk>", *(f"{chr(0x3042 + i % 80)}{i}" for i in range(1, VOCAB))]
    (folder / "tokens.txt").write_text("".join(f"{t} {i}\n" for i, t in enumerate(tokens)), encoding="utf-8")
    return parameters


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--size", choices=sorted(SIZES), default="medium")
    parser.add_argument("--ctc", action="store_true", help="a CTC head instead of a transducer")
    args = parser.parse_args()
    count = write_streaming_zipformer2(args.folder, args.size, ctc=args.ctc)
    head = "CTC" if args.ctc else "transducer"
    print(f"wrote {args.folder}: streaming zipformer2 {head} ({args.size}), {count / 1e6:.1f} M parameters, random weights")
