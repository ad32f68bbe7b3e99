"""sherpa-onnx's offline model families, told apart from their files and ONNX metadata (what
sherpa-onnx itself reads), and a missing file named."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from monolith.config import STTConfig
from monolith.providers.onnx_files import ModelFilesError
from monolith.providers.sherpa_stt.models import discover


def tiny_onnx(path: Path, **metadata: str) -> None:
    """A one-node model with `metadata`: enough to tell the family, not to decode."""
    node = helper.make_node("Identity", ["x"], ["y"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    model = helper.make_model(graph)
    for key, value in metadata.items():
        prop = model.metadata_props.add()
        prop.key, prop.value = key, value
    onnx.save(model, str(path))


def folder_with(tmp_path: Path, name: str, files: dict[str, dict[str, str]]) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    for file, metadata in files.items():
        if file.endswith(".onnx"):
            tiny_onnx(folder / file, **metadata)
        else:
            (folder / file).write_text("a 0\n")
    return folder


@pytest.mark.parametrize(("name", "files", "family"), [
    ("whisper-tiny", {"tiny-encoder.onnx": {"model_type": "whisper-tiny"}, "tiny-decoder.onnx": {},
                      "tiny-tokens.txt": {}}, "whisper"),
    ("sense-voice", {"model.int8.onnx": {"model_type": "sense_voice_ctc"}, "tokens.txt": {}}, "sense_voice"),
    ("reazonspeech", {"encoder-epoch-99-avg-1.onnx": {"model_type": "zipformer2"}, "decoder-epoch-99-avg-1.onnx": {},
                      "joiner-epoch-99-avg-1.onnx": {}, "tokens.txt": {}}, "transducer"),
    ("parakeet", {"encoder.onnx": {"model_type": "EncDecRNNTBPEModel"}, "decoder.onnx": {}, "joiner.onnx": {},
                  "tokens.txt": {}}, "nemo_transducer"),
    ("nemo-ctc", {"model.onnx": {"model_type": "EncDecCTCModelBPE"}, "tokens.txt": {}}, "nemo_ctc"),
    ("paraformer", {"model.onnx": {"model_type": "paraformer"}, "tokens.txt": {}}, "paraformer"),
    ("zipformer-ctc", {"model.onnx": {"model_type": "zipformer2_ctc"}, "tokens.txt": {}}, "zipformer2_ctc"),
])
def test_each_offline_family_is_found_from_its_files(tmp_path: Path, name: str, files: dict[str, dict[str, str]],
                                                     family: str) -> None:
    found = discover(folder_with(tmp_path, name, files), STTConfig())
    assert found.model_type == family and found.mode == "offline"


def test_moonshine_is_found_from_its_ort_files(speech_root: Path) -> None:
    found = discover(speech_root / "stt" / "moonshine-tiny-en", STTConfig())
    assert found.model_type == "moonshine" and found.mode == "offline"
    assert found.encoder is not None and found.encoder.name == "encoder_model.ort"


def test_model_type_forces_a_family_and_a_missing_file_is_named(tmp_path: Path) -> None:
    folder = folder_with(tmp_path, "half-whisper", {"tiny-encoder.onnx": {}, "tokens.txt": {}})
    with pytest.raises(ModelFilesError, match="a whisper model needs its decoder file"):
        discover(folder, STTConfig(model_type="whisper"))
    with pytest.raises(ModelFilesError, match="cannot be streaming"):
        discover(folder_with(tmp_path, "sv", {"model.onnx": {"model_type": "sense_voice_ctc"}, "tokens.txt": {}}),
                 STTConfig(mode="streaming"))
    with pytest.raises(ModelFilesError, match="no tokens.txt"):
        discover(folder_with(tmp_path, "no-tokens", {"model.onnx": {}}), STTConfig())


# The TTS voices (monolith/providers/sherpa_tts/models.py): told apart the same way.
TTS_META = {"sample_rate": "22050", "n_speakers": "1"}


@pytest.mark.parametrize(("name", "files", "family"), [
    ("piper", {"en_US-amy-low.onnx": {**TTS_META, "language": "English", "comment": "piper"}, "tokens.txt": {}}, "vits"),
    ("matcha", {"model-steps-3.onnx": {**TTS_META, "model_type": "matcha-tts"}, "vocos-22khz-univ.onnx": {},
                "tokens.txt": {}}, "matcha"),
    ("kokoro", {"model.onnx": {**TTS_META, "model_type": "kokoro", "speaker_names": "af_bella,am_adam"},
                "voices.bin": {}, "tokens.txt": {}}, "kokoro"),
])
def test_each_tts_family_is_found_from_its_files(tmp_path: Path, name: str, files: dict[str, dict[str, str]],
                                                  family: str) -> None:
    from monolith.providers.sherpa_tts.models import discover_voice

    voice = discover_voice(folder_with(tmp_path, name, files))
    assert voice.family == family
    assert voice.model.name == next(f for f in files if f.endswith(".onnx"))  # never the vocoder
    assert (voice.vocoder is not None) == (family == "matcha")
    assert (voice.voices is not None) == (family == "kokoro")
    if family == "kokoro":
        assert voice.speakers == ["default", "af_bella", "am_adam"]


def test_a_matcha_voice_without_its_vocoder_or_a_kokoro_without_voices_is_named(tmp_path: Path) -> None:
    from monolith.providers.sherpa_tts.models import discover_voice

    with pytest.raises(ModelFilesError, match="a Matcha voice needs its vocoder"):
        discover_voice(folder_with(tmp_path, "m", {"model.onnx": {**TTS_META, "model_type": "matcha-tts"},
                                                    "tokens.txt": {}}))
    kokoro = folder_with(tmp_path, "k", {"model.onnx": {**TTS_META, "model_type": "kokoro"}, "tokens.txt": {}})
    with pytest.raises(ModelFilesError, match="a Kokoro voice needs voices.bin"):
        discover_voice(kokoro)
