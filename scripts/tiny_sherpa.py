"""Tiny random-weight sherpa-onnx models, built with the `onnx` package alone (no torch).

- `write_streaming_zipformer2(folder)`: encoder/decoder/joiner + tokens.txt that
  `sherpa_onnx.OnlineRecognizer.from_transducer` loads as a streaming zipformer2 (the metadata
  and the cache inputs/outputs it reads; ../shared/notes/sherpa-onnx.md lists them).
- `write_offline_transducer(folder)`: the same for `OfflineRecognizer.from_transducer`.

The weights are random, so "speech" decodes into random kana. One thing is built in on purpose:
the encoder passes the frame's mean log-mel energy through as its last channel, and the joiner
turns it against the blank token, so silence decodes as blank (no text). That is what makes
endpointing and "speech, then silence" testable with a random model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

FEATURE_DIM = 80
DIM = 16  # encoder output = decoder output = joiner input
TOKENS = ["<blk>", *"あいうえおかきくけこさしすせそたちつてと"]
VOCAB = len(TOKENS)
CONTEXT = 2
ENERGY_THRESHOLD = -12.0  # mean log-mel above this counts as sound (digital silence is about -15.9)
ENERGY_GAIN = 8.0

# streaming zipformer2 layout: one stack, one layer
CHUNK = 32  # decode_chunk_len (feature frames per chunk)
PAD = 13  # extra right-context frames sherpa feeds (T = CHUNK + PAD)
LEFT = 8
HEADS, QDIM, VDIM, KERNEL = 2, 4, 4, 3
OPSET = 13
SUBSAMPLING = 4


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _init(name: str, array: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(array, name)


def _save(graph: onnx.GraphProto, path: Path, meta: dict[str, str]) -> None:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def _frames_to_encoder_out(x: str, out: str, nodes: list[onnx.NodeProto], inits: list[onnx.TensorProto]) -> None:
    """(N, T, 80) fbank -> (N, T // 4, DIM): 4x subsampling (as zipformer's: sherpa-onnx times
    endpoints by it), a random projection, and the energy channel last. (Benchmarks need a real
    encoder's compute: scripts/tiny_zipformer.py.)"""
    inits.append(_init("w_enc", (_rng(1).standard_normal((FEATURE_DIM, DIM - 1)) * 0.02).astype(np.float32)))
    nodes += [
        helper.make_node("Transpose", [x], ["x_ct"], perm=[0, 2, 1]),
        helper.make_node("AveragePool", ["x_ct"], ["pooled_ct"], kernel_shape=[SUBSAMPLING], strides=[SUBSAMPLING]),
        helper.make_node("Transpose", ["pooled_ct"], ["pooled"], perm=[0, 2, 1]),
        helper.make_node("ReduceMean", ["pooled"], ["energy"], axes=[2], keepdims=1),
        # the projection sees only the spectral shape (mean removed), so silence projects to 0
        helper.make_node("Sub", ["pooled", "energy"], ["shape"]),
        helper.make_node("MatMul", ["shape", "w_enc"], ["proj"]),
        helper.make_node("Concat", ["proj", "energy"], [out], axis=2),
    ]


def _decoder(path: Path) -> None:
    inits = [_init("embed", (_rng(2).standard_normal((VOCAB, DIM)) * 0.1).astype(np.float32))]
    nodes = [
        helper.make_node("Gather", ["embed", "y"], ["emb"], axis=0),  # (N, context, DIM)
        helper.make_node("ReduceMean", ["emb"], ["decoder_out"], axes=[1], keepdims=0),
    ]
    graph = helper.make_graph(
        nodes, "decoder",
        [helper.make_tensor_value_info("y", TensorProto.INT64, ["N", CONTEXT])],
        [helper.make_tensor_value_info("decoder_out", TensorProto.FLOAT, ["N", DIM])],
        inits,
    )
    _save(graph, path, {"vocab_size": str(VOCAB), "context_size": str(CONTEXT)})


def _joiner(path: Path) -> None:
    w = (_rng(3).standard_normal((DIM, VOCAB)) * 0.5).astype(np.float32)
    w[DIM - 1, :] = 0.0  # the energy channel only speaks to the blank logit...
    w[DIM - 1, 0] = -ENERGY_GAIN  # ...loud frames push blank down, quiet ones push it up
    bias = np.zeros(VOCAB, dtype=np.float32)
    bias[0] = ENERGY_GAIN * ENERGY_THRESHOLD
    inits = [_init("w_join", w), _init("b_join", bias)]
    nodes = [
        helper.make_node("Add", ["encoder_out", "decoder_out"], ["sum"]),
        helper.make_node("MatMul", ["sum", "w_join"], ["mm"]),
        helper.make_node("Add", ["mm", "b_join"], ["logit"]),
    ]
    graph = helper.make_graph(
        nodes, "joiner",
        [helper.make_tensor_value_info("encoder_out", TensorProto.FLOAT, ["N", DIM]),
         helper.make_tensor_value_info("decoder_out", TensorProto.FLOAT, ["N", DIM])],
        [helper.make_tensor_value_info("logit", TensorProto.FLOAT, ["N", VOCAB])],
        inits,
    )
    _save(graph, path, {})


def _tokens(path: Path) -> None:
    path.write_text("".join(f"{tok} {i}\n" for i, tok in enumerate(TOKENS)), encoding="utf-8")


def _streaming_states() -> list[tuple[str, list[int | str], int]]:
    """(name, shape, dtype) of the caches after x, in the order sherpa-onnx passes them."""
    heads_q, heads_v, nonlin = HEADS * QDIM, HEADS * VDIM, 3 * DIM // 4
    f = TensorProto.FLOAT
    return [
        ("cached_key_0", [LEFT, "N", heads_q], f),
        ("cached_nonlin_attn_0", [1, "N", LEFT, nonlin], f),
        ("cached_val1_0", [LEFT, "N", heads_v], f),
        ("cached_val2_0", [LEFT, "N", heads_v], f),
        ("cached_conv1_0", ["N", DIM, KERNEL // 2], f),
        ("cached_conv2_0", ["N", DIM, KERNEL // 2], f),
        ("embed_states", ["N", 128, 3, 19], f),
        ("processed_lens", ["N"], TensorProto.INT64),
    ]


def write_streaming_zipformer2(folder: Path) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    nodes: list[onnx.NodeProto] = []
    inits = [
        _init("starts", np.array([0], dtype=np.int64)),
        _init("ends", np.array([CHUNK], dtype=np.int64)),
        _init("axes", np.array([1], dtype=np.int64)),
    ]
    nodes.append(helper.make_node("Slice", ["x", "starts", "ends", "axes"], ["x_chunk"]))
    _frames_to_encoder_out("x_chunk", "encoder_out", nodes, inits)
    states = _streaming_states()
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", CHUNK + PAD, FEATURE_DIM])]
    outputs = [helper.make_tensor_value_info("encoder_out", TensorProto.FLOAT, ["N", CHUNK // SUBSAMPLING, DIM])]
    for name, shape, dtype in states:
        inputs.append(helper.make_tensor_value_info(name, dtype, shape))
        outputs.append(helper.make_tensor_value_info(f"new_{name}", dtype, shape))
        nodes.append(helper.make_node("Identity", [name], [f"new_{name}"]))
    graph = helper.make_graph(nodes, "encoder", inputs, outputs, inits)
    meta = {
        "model_type": "zipformer2",
        "version": "1",
        "comment": "tiny random-weight streaming zipformer2 for tests (monolith)",
        "encoder_dims": str(DIM),
        "query_head_dims": str(QDIM),
        "value_head_dims": str(VDIM),
        "num_heads": str(HEADS),
        "num_encoder_layers": "1",
        "cnn_module_kernels": str(KERNEL),
        "left_context_len": str(LEFT),
        "T": str(CHUNK + PAD),
        "decode_chunk_len": str(CHUNK),
    }
    _save(graph, folder / "encoder.onnx", meta)
    _decoder(folder / "decoder.onnx")
    _joiner(folder / "joiner.onnx")
    _tokens(folder / "tokens.txt")
    return {"encoder": "encoder.onnx", "decoder": "decoder.onnx", "joiner": "joiner.onnx", "tokens": "tokens.txt"}


def write_offline_transducer(folder: Path) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []
    _frames_to_encoder_out("x", "encoder_out", nodes, inits)
    inits.append(_init("four", np.array(SUBSAMPLING, dtype=np.int64)))
    nodes.append(helper.make_node("Div", ["x_lens", "four"], ["encoder_out_lens"]))
    graph = helper.make_graph(
        nodes, "encoder",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", "T", FEATURE_DIM]),
         helper.make_tensor_value_info("x_lens", TensorProto.INT64, ["N"])],
        [helper.make_tensor_value_info("encoder_out", TensorProto.FLOAT, ["N", "T4", DIM]),
         helper.make_tensor_value_info("encoder_out_lens", TensorProto.INT64, ["N"])],
        inits,
    )
    _save(graph, folder / "encoder.onnx", {"comment": "tiny random-weight offline transducer for tests (monolith)"})
    _decoder(folder / "decoder.onnx")
    _joiner(folder / "joiner.onnx")
    _tokens(folder / "tokens.txt")
    return {"encoder": "encoder.onnx", "decoder": "decoder.onnx", "joiner": "joiner.onnx", "tokens": "tokens.txt"}
