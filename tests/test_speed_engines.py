"""CPU engines for the UNet: equal to PyTorch's within the stated tolerance, and clear errors."""

import copy
import importlib.util
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from sdlearn import make_generator, speed, with_scheduler
from sdlearn.speed import engines

SHAPES = {"sample": (4, 8, 8), "timestep": (), "encoder_hidden_states": (77, 64)}


def fake_engine(seen=None):
    """An engine that predicts the latents back (noise = sample), recording what it was given."""
    def run(sample, timestep, text):
        if seen is not None:
            seen.append((sample, timestep, text))
        return sample * 1
    return speed.EngineUNet(run, SimpleNamespace(in_channels=4, sample_size=8), name="fake",
                            shapes=SHAPES)


def test_available_engines_says_which_are_installed():
    found = speed.available_engines()
    assert set(found) == {"onnxruntime", "openvino"}
    assert found == {name: importlib.util.find_spec(name) is not None for name in found}


@pytest.mark.parametrize("module, make", [("onnxruntime", speed.onnx_unet),
                                          ("openvino", speed.openvino_unet)])
def test_a_missing_back_end_names_the_extra_to_install(monkeypatch, module, make):
    monkeypatch.setitem(sys.modules, module, None)  # as if not installed: import fails
    with pytest.raises(ImportError, match=r'pip install "sdlearn\[cpu-speed\]"') as caught:
        make(SimpleNamespace(unet=None))
    assert repr(module) in str(caught.value)


def test_the_stand_in_answers_as_the_unet_does():
    seen = []
    unet = fake_engine(seen)
    x = torch.randn(2, 4, 8, 8)
    text = torch.randn(2, 77, 64)
    out = unet(x, torch.tensor(981), encoder_hidden_states=text)
    assert torch.equal(out.sample, x)
    (noise,) = unet(x, 7, text, return_dict=False)  # the pipeline's call
    assert torch.equal(noise, x)
    # One timestep for the whole batch becomes one float per latent, as the graph takes it.
    assert seen[0][1].dtype == np.float32 and seen[0][1].tolist() == [981.0, 981.0]
    assert unet.dtype == torch.float32 and unet.device.type == "cpu" and unet.in_channels == 4
    assert unet.config.sample_size == 8


@pytest.mark.parametrize("call, error, words", [
    (lambda u: u(torch.ones(2, 4, 16, 16), 1, torch.ones(2, 77, 64)), ValueError,
     r"sample of shape \(2, 4, 16, 16\).*exported for \(batch, 4, 8, 8\)"),
    (lambda u: u(torch.ones(2, 4, 8, 8), 1, torch.ones(2, 10, 64)), ValueError,
     r"encoder_hidden_states of shape.*\(batch, 77, 64\)"),
    (lambda u: u(torch.ones(2, 4, 8, 8, dtype=torch.bfloat16), 1, torch.ones(2, 77, 64)),
     ValueError, "float32"),
    (lambda u: u(torch.ones(2, 4, 8, 8), torch.ones(3), torch.ones(2, 77, 64)), ValueError,
     "3 values for a batch of 2"),
    (lambda u: u(torch.ones(2, 4, 8, 8), 1, torch.ones(2, 77, 64),
                 cross_attention_kwargs={"scale": 0.5}), TypeError, "cross_attention_kwargs"),
])
def test_the_stand_in_refuses_what_was_not_exported(call, error, words):
    with pytest.raises(error, match=words):
        call(fake_engine())


def test_engines_refuse_a_unet_they_cannot_export(tiny_pipe):
    pytest.importorskip("onnxruntime")
    with pytest.raises(ValueError, match="already an engine.*load it again"):
        speed.onnx_unet(SimpleNamespace(unet=fake_engine()))
    half = SimpleNamespace(unet=copy.deepcopy(tiny_pipe.unet).to(torch.bfloat16))
    with pytest.raises(ValueError, match=r"bfloat16.*dtype=torch.float32"):
        speed.onnx_unet(half)
    with pytest.raises(ValueError, match="engine='tensorrt' is unknown"):
        speed.engine_unet(tiny_pipe, "tensorrt")


@pytest.fixture(scope="module", params=["onnxruntime", "openvino"])
def engine(request, tiny_pipe, tmp_path_factory):
    pytest.importorskip(request.param)
    if request.param == "onnxruntime":
        return speed.onnx_unet(tiny_pipe, tmp_path_factory.mktemp("onnx"), threads=1)
    return speed.openvino_unet(tiny_pipe, threads=1)


@pytest.mark.slow
def test_an_engine_equals_pytorch_within_the_stated_tolerance(engine, tiny_pipe):
    if engine.name == "ONNX Runtime":
        assert engine.path.name == "unet.onnx" and engine.path.exists()
    for batch in (1, 2, 5):  # no guidance, guidance, a batch of prompts: the batch is dynamic
        assert speed.unet_difference(tiny_pipe.unet, engine, batch) <= speed.UNET_TOLERANCE
    ours = with_scheduler(tiny_pipe, "ddim")  # shares the weights; tiny_pipe keeps its UNet
    ours.set_progress_bar_config(disable=True)
    prompts = ["a big red circle in the center", "a small blue square at the top left"]

    def pictures(pipe, **kwargs):
        return pipe(prompts, num_inference_steps=25, output_type="np",
                    generator=[make_generator(i) for i in range(2)], **kwargs).images

    reference = pictures(ours)
    ours.unet = engine
    assert type(ours.unet) is engines.EngineUNet
    diff = np.abs(pictures(ours) - reference).max() * 255
    assert diff <= speed.IMAGE_TOLERANCE
    assert pictures(ours, guidance_scale=1.0).shape == (2, 64, 64, 3)  # batch 1 per prompt


def test_the_pipeline_runs_on_the_stand_in_as_on_its_own_unet(tiny_pipe):
    """The plumbing without a back end: an "engine" that is the PyTorch UNet behind NumPy."""
    from sdlearn.sampling import sample

    unet = tiny_pipe.unet

    def run(sample_, timestep, text):
        with torch.inference_mode():
            return unet(torch.from_numpy(sample_), torch.from_numpy(timestep),
                        encoder_hidden_states=torch.from_numpy(text)).sample.numpy()

    ours = with_scheduler(tiny_pipe, "euler")  # fractional timesteps, shared weights
    ours.set_progress_bar_config(disable=True)
    prompts = ["a big red circle in the center", "a small blue square"]

    def latents(pipe, **kwargs):
        return pipe(prompts, num_inference_steps=4, output_type="latent",
                    generator=[make_generator(i) for i in range(2)], **kwargs).images

    reference, unguided = latents(ours), latents(ours, guidance_scale=1.0)
    one = sample(ours, prompts[0], steps=4, generator=make_generator(0))
    ours.unet = speed.EngineUNet(run, unet.config, name="numpy", shapes=SHAPES)
    assert torch.allclose(latents(ours), reference, atol=1e-6)
    assert torch.allclose(latents(ours, guidance_scale=1.0), unguided, atol=1e-6)
    by_hand = sample(ours, prompts[0], steps=4, generator=make_generator(0))  # lesson 05's loop
    assert torch.allclose(by_hand, one, atol=1e-6)
    assert type(with_scheduler(ours, "ddim").unet) is engines.EngineUNet
    assert type(tiny_pipe.unet) is not engines.EngineUNet
