import json

import pytest
import torch

import sdlearn.train as train_module
from sdlearn import is_shapes_model, load_pipeline, make_generator
from sdlearn.train import TrainConfig, Trainer, load_checkpoint


@pytest.fixture
def cfg(tmp_path, small_arch):
    return TrainConfig(out=str(tmp_path / "run"), arch=small_arch, n_train=32, vae_steps=3,
                       vae_batch=4, unet_steps=4, unet_batch=4, warmup_steps=2,
                       checkpoint_every=2, scale_samples=32, device="cpu")


def test_short_run_writes_a_loadable_shapes_pipeline(cfg):
    folder = Trainer(cfg).run()
    pipe = load_pipeline(folder)
    assert is_shapes_model(pipe)
    image = pipe("a big red circle", num_inference_steps=2, generator=make_generator(0)).images[0]
    assert image.size == (32, 32)
    measured = json.loads((folder.parent / "scaling_factor.json").read_text())
    assert pipe.vae.config.scaling_factor == pytest.approx(measured["scaling_factor"])
    assert measured["scaling_factor"] == pytest.approx(1 / measured["std"])
    info = json.loads((folder / "sdlearn.json").read_text())
    assert info["config"]["unet_steps"] == 4 and info["hardware"]["device"] == "cpu"
    assert info["trained"] and info["wall_time_s"] >= 0
    # Unused rows of the token embedding are zeroed; the world's words are not.
    table = pipe.text_encoder.get_input_embeddings().weight
    red = pipe.tokenizer("red", add_special_tokens=False).input_ids[0]
    astronaut = pipe.tokenizer("astronaut", add_special_tokens=False).input_ids[0]
    assert table[red].abs().sum() > 0 and table[astronaut].abs().sum() == 0
    assert not list(folder.rglob("*.bin"))


def test_interrupted_run_resumes_exactly(cfg, tmp_path, monkeypatch):
    reference = Trainer(TrainConfig(**{**cfg.__dict__, "out": str(tmp_path / "ref")})).run()

    real_save = train_module.save_checkpoint
    saves = []

    def crash_after_first_unet_checkpoint(path, tensors, meta):
        real_save(path, tensors, meta)
        saves.append(path.name)
        if path.name == "unet-ckpt.safetensors":
            raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "save_checkpoint", crash_after_first_unet_checkpoint)
    with pytest.raises(KeyboardInterrupt):
        Trainer(cfg).run()
    assert "vae-ckpt.safetensors" in saves
    monkeypatch.setattr(train_module, "save_checkpoint", real_save)
    resumed = Trainer(cfg).run()

    a, _ = load_checkpoint(reference.parent / "unet.safetensors")
    b, _ = load_checkpoint(resumed.parent / "unet.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_cli_rejects_bad_training_arguments(capsys):
    from sdlearn.cli import main

    assert main(["train", "--out", "x", "--vae-steps", "0"]) == 2
    assert "--vae-steps must be 1 or more" in capsys.readouterr().err
