"""Decoding on the device: the caller's CUDA stream drained before each decode, the decoder's refusals
counted and said once, a decoder that cannot start or runs out of memory never hidden behind a host
fallback, and the placement taken from the accelerator the run uses. The CUDA calls are stand-ins
(monkeypatch), so this runs on the CPU."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fashionstyle.core.errors import FashionStyleError
from fashionstyle.data.images import decode as decode_module
from fashionstyle.data.images.decode import EncodedJpeg, decode_jpegs, read_plain_jpeg
from fashionstyle.data.images.device_decode import DeviceDecoder, uses_cuda

REAL_DECODE = decode_module.decode_jpeg


def jpegs(folder: Path, n: int = 3) -> list[EncodedJpeg]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (12, 16, 3), dtype=np.uint8)).save(folder / f"{i}.jpg")
        out.append(read_plain_jpeg(folder / f"{i}.jpg"))
    return out


class CudaStandIn:
    """Records the order of the CUDA calls: draining the caller's stream, then torchvision's decode."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, fail: Exception | None = None,
                 refuse: set[int] | None = None):
        self.calls: list[str] = []
        self.fail, self.refuse = fail, refuse or set()
        monkeypatch.setattr(decode_module.torch.cuda, "current_stream", self.current_stream)
        monkeypatch.setattr(decode_module, "decode_jpeg", self.decode_jpeg)

    def current_stream(self, device=None):
        calls = self.calls

        class Stream:
            def synchronize(self) -> None:
                calls.append(f"drain {device}")

        return Stream()

    def decode_jpeg(self, data, mode, device):
        self.calls.append(f"decode {len(data)} on {device}")
        if self.fail is not None:
            raise self.fail
        if any(id(d) in self.refuse for d in data):
            raise RuntimeError("Failed to get image info: 2")
        return REAL_DECODE(data, mode=mode, device="cpu")  # what nvJPEG would give, made on the CPU


def test_a_cuda_decode_drains_the_callers_stream_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cuda = CudaStandIn(monkeypatch)
    images = decode_jpegs(jpegs(tmp_path), "cuda:0")
    assert cuda.calls == ["drain cuda:0", "decode 3 on cuda:0"]
    assert [tuple(i.shape) for i in images] == [(3, 12, 16)] * 3
    decode_jpegs(jpegs(tmp_path), "cpu")  # the host decoder has no stream to wait for
    assert cuda.calls == ["drain cuda:0", "decode 3 on cuda:0", "decode 3 on cpu"]


def test_every_retry_after_a_failed_batch_drains_the_stream_too(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    files = jpegs(tmp_path)
    cuda = CudaStandIn(monkeypatch, refuse={id(files[1].data)})
    decoder = DeviceDecoder("cuda")
    decoder.decoded = 1  # started: a refusal is the file's, not the decoder's
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        got = decoder(files)
    assert [g is None for g in got] == [False, True, False]
    assert cuda.calls == ["drain cuda", "decode 3 on cuda"] + ["drain cuda", "decode 1 on cuda"] * 3


def test_refused_files_are_counted_decoded_on_the_host_and_said_once(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    files = jpegs(tmp_path, 4)
    CudaStandIn(monkeypatch, refuse={id(files[0].data), id(files[2].data)})
    decoder = DeviceDecoder("cpu")
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        first, second = decoder.images(files[:2]), decoder.images(files[2:])
    said = [w for w in said if "refused" in str(w.message)]  # not torchvision's deprecation notices
    assert len(said) == 1 and "0.jpg" in str(said[0].message) and "Failed to get image info" in str(said[0].message)
    assert all(isinstance(image, torch.Tensor) for image in first + second)  # the host decoded the two refused
    assert [Path(p).name for p, _ in decoder.refused] == ["0.jpg", "2.jpg"]
    summary = decoder.summary()
    assert "refused 2 of 4 JPEGs (2 decoded on the host instead" in summary and "2.jpg (Failed to get" in summary


def test_a_decoder_that_cannot_start_ends_the_gpu_path_in_one_line(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    CudaStandIn(monkeypatch, fail=RuntimeError("Failed to initialize nvjpeg with hardware backend: 7\nat ..."))
    with pytest.raises(FashionStyleError) as err:
        DeviceDecoder("cuda").images(jpegs(tmp_path))
    assert len(str(err.value).splitlines()) == 1 and "could not start" in str(err.value)
    assert "use --decode cpu" in str(err.value)


def test_a_cuda_decoder_refusing_a_whole_first_batch_is_taken_for_broken(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    files = jpegs(tmp_path)
    CudaStandIn(monkeypatch, refuse={id(f.data) for f in files})
    with pytest.raises(FashionStyleError, match="decoded none of its first 3 JPEGs"):
        DeviceDecoder("cuda")(files)


@pytest.mark.parametrize("error", [torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB"),
                                   RuntimeError("CUDA error: an illegal memory access was encountered")])
def test_out_of_memory_and_cuda_errors_are_raised_not_swallowed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                error: Exception) -> None:
    CudaStandIn(monkeypatch, fail=error)
    decoder = DeviceDecoder("cuda")
    with pytest.raises(type(error)) as raised:
        decoder.images(jpegs(tmp_path))
    assert raised.value is error and decoder.refused == []


def test_placement_follows_the_accelerator_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    from fashionstyle.core.config import TrainConfig
    from fashionstyle.training.loop import training_decodes_on_gpu

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a GPU machine
    assert [uses_cuda(a) for a in ("auto", "gpu", "cuda", "cpu", "mps")] == [True, True, True, False, False]
    with pytest.raises(FashionStyleError, match="--decode gpu needs a CUDA device"):
        training_decodes_on_gpu(TrainConfig(labels="x.csv", decode="gpu", accelerator="cpu"))
    assert training_decodes_on_gpu(TrainConfig(labels="x.csv", decode="gpu", accelerator="gpu"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert not uses_cuda("auto") and not uses_cuda("gpu")


def test_train_says_the_runs_refusals_once_at_its_end(capsys) -> None:
    from types import SimpleNamespace

    from fashionstyle.data.images.device_decode import shared_decoder
    from fashionstyle.training.decode_report import DecodeReport

    module, report = SimpleNamespace(device=torch.device("cpu")), DecodeReport()
    shared_decoder(module.device).refused.append(("before.jpg", "an earlier run's"))
    report.on_fit_start(None, module)  # the count starts with the fit
    shared_decoder(module.device).refused.append(("a.jpg", "Failed to get image info: 2"))
    report.on_fit_end(None, module)
    report.on_exception(None, module, RuntimeError("after the end"))
    err = capsys.readouterr().err
    assert err.count("warning: ") == 1 and "refused 1 of 1 JPEGs" in err and "a.jpg (Failed to get" in err
    assert "before.jpg" not in err
