import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sdlearn import is_shapes_model, load_pipeline, make_generator
from sdlearn.shapes import caption, perturb, random_scene, render_image
from sdlearn.shapes.captions import UNPLACED
from sdlearn.training import TrainConfig, Trainer
from sdlearn.training import loop as loop_module
from sdlearn.training.checkpoints import load_checkpoint, save_checkpoint
from sdlearn.training.data import training_captions
from sdlearn.training.runlog import log_times


def small_config(out, arch) -> TrainConfig:
    """A run of a few steps per phase, with a checkpoint every two."""
    return TrainConfig(out=str(out), arch=arch, n_train=32, vae_steps=3, vae_batch=4,
                       unet_steps=4, unet_batch=4, warmup_steps=2, checkpoint_every=2,
                       scale_samples=32, decoder_steps=3, device="cpu")


@pytest.fixture
def cfg(tmp_path, small_arch):
    return small_config(tmp_path / "run", small_arch)


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory, small_arch):
    """The folder of a short run, trained once for the module's tests."""
    return Trainer(small_config(tmp_path_factory.mktemp("ref"), small_arch)).run().parent


def test_short_run_writes_a_loadable_shapes_pipeline(reference_run):
    folder = reference_run / "pipeline"
    pipe = load_pipeline(folder)
    assert is_shapes_model(pipe)
    image = pipe("a big red circle", num_inference_steps=2, generator=make_generator(0)).images[0]
    assert image.size == (32, 32)
    measured = json.loads((folder.parent / "scaling_factor.json").read_text())
    assert pipe.vae.config.scaling_factor == pytest.approx(measured["scaling_factor"])
    assert measured["scaling_factor"] == pytest.approx(1 / measured["std"])
    info = json.loads((folder / "sdlearn.json").read_text())
    assert info["config"]["unet_steps"] == 4 and info["machine"]["device"] == "cpu"
    assert info["trained"] and info["wall_time_s"] >= 0
    assert info["command"].startswith("sdlearn train --out ")
    log = (folder / "training_log.jsonl").read_text().splitlines()
    assert {json.loads(line)["phase"] for line in log} >= {"vae", "decoder", "unet"}
    # Unused rows of the token embedding are zeroed; the world's words are not.
    table = pipe.text_encoder.get_input_embeddings().weight
    red = pipe.tokenizer("red", add_special_tokens=False).input_ids[0]
    astronaut = pipe.tokenizer("astronaut", add_special_tokens=False).input_ids[0]
    assert table[red].abs().sum() > 0 and table[astronaut].abs().sum() == 0
    assert not list(folder.rglob("*.bin"))


@pytest.mark.parametrize("crash_at", ["vae-ckpt.safetensors", "decoder-ckpt.safetensors",
                                      "unet-ckpt.safetensors"])
def test_interrupted_run_resumes_exactly(cfg, reference_run, monkeypatch, crash_at):
    real_save = loop_module.save_checkpoint  # every phase's checkpoints are the loop's

    def crash_after(path, tensors, meta):
        real_save(path, tensors, meta)
        if path.name == crash_at:
            raise KeyboardInterrupt

    monkeypatch.setattr(loop_module, "save_checkpoint", crash_after)
    with pytest.raises(KeyboardInterrupt):
        Trainer(cfg).run()
    monkeypatch.setattr(loop_module, "save_checkpoint", real_save)
    resumed = Trainer(cfg).run().parent
    for name in ("vae.safetensors", "decoder.safetensors", "unet.safetensors"):
        a, _ = load_checkpoint(reference_run / name)
        b, _ = load_checkpoint(resumed / name)
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a), f"{name} differs after resuming"


def test_resuming_with_other_settings_is_refused(cfg):
    Trainer(cfg)  # writes config.json
    changed = TrainConfig(**{**cfg.__dict__, "n_train": 64})
    with pytest.raises(ValueError, match="n_train differ"):
        Trainer(changed)
    Trainer(TrainConfig(**{**cfg.__dict__, "unet_steps": 8}))  # extending training is fine
    resumed = Trainer(TrainConfig(**{**cfg.__dict__, "unet_steps": 8}))
    assert resumed.runlog.settings_changes() == [
        {"changed": {"unet_steps": [4, 8]}, "unet_step": 0}]  # logged once, when it changed


def test_cli_rejects_bad_training_arguments(capsys, tmp_path):
    from sdlearn.cli import main

    out = tmp_path / "x"
    assert main(["train", "--out", str(out), "--vae-steps", "0"]) == 2
    assert "--vae-steps=0 must be 1 or more" in capsys.readouterr().err
    assert not out.exists()  # refused before anything is written


def test_image_size_is_checked_against_the_vaes_own_factor(capsys, tmp_path):
    from sdlearn.cli import build_parser, main
    from sdlearn.training.config import config_from_args

    three = TrainConfig()  # a 3-block VAE halves twice: factor 4
    three.arch.image_size, three.arch.vae_channels = 36, (32, 64, 64)
    three.validate()
    args = build_parser().parse_args(["train", "--image-size", "36", "--vae-channels",
                                      "32,64,64"])
    config_from_args(args).validate(as_options=True)
    four = TrainConfig()  # the default 4-block VAE: factor 8
    four.arch.image_size = 36
    with pytest.raises(ValueError, match="image_size=36 is not a multiple of the VAE factor 8; "
                                         "use 32 or 40"):
        four.validate()
    assert main(["train", "--out", str(tmp_path / "x"), "--image-size", "36"]) == 2
    assert "--image-size=36 is not a multiple of the VAE factor 8" in capsys.readouterr().err


def test_decoder_finetune_keeps_the_encoder(reference_run):
    vae, _ = load_checkpoint(reference_run / "vae.safetensors")
    tuned, _ = load_checkpoint(reference_run / "decoder.safetensors")
    assert vae.keys() == tuned.keys()
    for k in vae:
        if k.startswith(("encoder.", "quant_conv.")):
            assert torch.equal(vae[k], tuned[k]), k
    assert any(not torch.equal(vae[k], tuned[k]) for k in vae if k.startswith("decoder."))


def test_a_run_from_before_a_new_phase_resumes(cfg):
    Trainer(cfg)
    path = Path(cfg.out) / "config.json"
    saved = json.loads(path.read_text())
    for key in ("decoder_steps", "decoder_lr", "empty_fraction"):
        del saved[key]  # as written by a version without the decoder phase
    path.write_text(json.dumps(saved))
    Trainer(cfg)  # accepted: the phase has not run yet


def test_a_run_from_before_an_architecture_field_resumes(cfg):
    Trainer(cfg)
    path = Path(cfg.out) / "config.json"
    saved = json.loads(path.read_text())
    del saved["arch"]["unet_linear_projection"]  # as saved before SD 2.x's conventions
    path.write_text(json.dumps(saved))
    Trainer(cfg)  # accepted: the default is what that version built
    saved["arch"]["unet_channels"] = [16, 32]
    path.write_text(json.dumps(saved))
    with pytest.raises(ValueError, match="arch differ"):
        Trainer(cfg)


def test_a_run_from_before_caption_noise_keeps_exact_captions(cfg):
    Trainer(TrainConfig(**{**cfg.__dict__, "caption_noise": 0.0}))
    path = Path(cfg.out) / "config.json"
    saved = json.loads(path.read_text())
    del saved["caption_noise"]  # as written before the setting existed: exact captions
    path.write_text(json.dumps(saved))
    assert TrainConfig().caption_noise > 0
    with pytest.raises(ValueError, match="caption_noise"):
        Trainer(TrainConfig(**{**cfg.__dict__, "caption_noise": 0.5}))
    Trainer(TrainConfig(**{**cfg.__dict__, "caption_noise": 0.0}))  # its own setting resumes


def test_new_decoder_settings_redo_the_decoder_alone(cfg, reference_run):
    import shutil

    shutil.copytree(reference_run, cfg.out)
    changed = TrainConfig(**{**cfg.__dict__, "decoder_margin": 2, "decoder_steps": 4})
    folder = Trainer(changed).run()
    names = ("vae.safetensors", "latents.safetensors", "unet.safetensors")
    for name in names:  # what the UNet learnt from is unchanged, and so is the UNet
        a, b = load_checkpoint(reference_run / name)[0], load_checkpoint(folder.parent / name)[0]
        assert all(torch.equal(a[k], b[k]) for k in a), name
    tensors, meta = load_checkpoint(folder.parent / "decoder.safetensors")
    assert meta["step"] == 4 and meta["settings"]["decoder_margin"] == 2
    reference, _ = load_checkpoint(reference_run / "decoder.safetensors")
    assert any(not torch.equal(reference[k], tensors[k]) for k in tensors)
    info = json.loads((folder / "sdlearn.json").read_text())
    assert info["config"]["decoder_margin"] == 2  # the record says what made the decoder
    assert info["settings_changed"] == [
        {"changed": {"decoder_margin": [0, 2], "decoder_steps": [3, 4]}, "unet_step": 4}]


def test_log_times_counts_each_process_and_estimates_pauses(tmp_path):
    log = tmp_path / "log.jsonl"
    records = [{"time": 100.0 + 10 * i, "phase": "vae", "step": 50 * i} for i in range(5)]  # old
    records += [{"time": 1000.0 + 10 * i, "run": 995.0, "phase": "unet"} for i in range(10)]
    records += [{"time": 1500.0 + 10 * i, "run": 1490.0, "phase": "unet"} for i in range(10)]
    records[-1]["time"] += 300  # paused for 300 s before the last record
    log.write_text("\n".join(json.dumps(r) for r in records))
    times = log_times(log)
    assert times["wall_time_s"] == 40 + 95 + 400
    assert times["idle_s"] == 300 + 10 - 5 * 10  # the excess over five usual gaps
    assert log_times(log, now=(2000.0, 2060.0))["wall_time_s"] == 40 + 95 + 400 + 60


def test_recorded_command_gives_back_the_config(small_arch):
    import shlex

    from sdlearn.cli import build_parser
    from sdlearn.training.config import config_from_args

    cfg = TrainConfig(out="runs/x", unet_steps=100, decoder_margin=2, kl_weight=1e-7)
    command = cfg.command()
    assert command.startswith("sdlearn train --out runs/x") and "--unet-steps 100" in command
    args = build_parser().parse_args(shlex.split(command)[1:])
    assert config_from_args(args) == cfg
    assert TrainConfig().command() == "sdlearn train --out runs/tiny-sd"
    assert TrainConfig(out="my runs/a").command() == "sdlearn train --out 'my runs/a'"
    other = TrainConfig(arch=small_arch, unet_steps=5).command()
    assert other.endswith("# and the architecture in config.arch (no option sets it)")
    assert "--unet-steps 5" in other.split("#")[0]  # options come before the note

    narrower = TrainConfig(out="runs/w")
    narrower.arch.vae_channels = (16, 32, 64, 64)
    command = narrower.command()
    assert command == "sdlearn train --out runs/w --vae-channels 16,32,64,64"  # no note
    assert config_from_args(build_parser().parse_args(shlex.split(command)[1:])) == narrower


def test_vae_channels_are_checked():
    from sdlearn.cli import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--vae-channels", "32,wide"])
    cfg = TrainConfig()
    cfg.arch.vae_channels = (24, 32, 64, 64)
    with pytest.raises(ValueError, match="multiple of norm_groups"):
        cfg.validate()


def test_the_pipeline_ships_the_configured_scheduler_with_sds_schedule(reference_run, cfg):
    pipe = load_pipeline(reference_run / "pipeline")
    assert type(pipe.scheduler).__name__ == "DDIMScheduler"  # the default; see config.py
    c = pipe.scheduler.config
    assert (c.num_train_timesteps, c.beta_schedule, c.beta_start, c.beta_end) == (
        1000, "scaled_linear", 0.00085, 0.012)
    assert c.steps_offset == 1 and not c.set_alpha_to_one and not c.clip_sample
    trainer = Trainer(TrainConfig(**{**cfg.__dict__, "scheduler": "euler"}))
    assert type(trainer.pipe.scheduler).__name__ == "EulerDiscreteScheduler"


def test_unet_steps_cannot_drop_below_what_was_trained(cfg, reference_run, tmp_path):
    import shutil

    with pytest.raises(ValueError, match="finished at 4 steps"):
        Trainer(TrainConfig(**{**cfg.__dict__, "out": str(reference_run), "unet_steps": 6}))
    partial = tmp_path / "partial"
    shutil.copytree(reference_run, partial)
    (partial / "unet.safetensors").unlink()
    save_checkpoint(partial / "unet-ckpt.safetensors", {}, {"step": 3})
    with pytest.raises(ValueError, match="unet_steps=2 is below the 3 steps"):
        Trainer(TrainConfig(**{**cfg.__dict__, "out": str(partial), "unet_steps": 2}))


def test_bad_settings_are_refused_before_anything_is_written(cfg):
    with pytest.raises(ValueError, match="scheduler='heun' is unknown"):
        Trainer(TrainConfig(**{**cfg.__dict__, "scheduler": "heun"}))
    with pytest.raises(ValueError, match="decoder_margin=-1"):
        Trainer(TrainConfig(**{**cfg.__dict__, "decoder_margin": -1}))
    with pytest.raises(ValueError, match="timesteps='cubed': use one of uniform, cubic"):
        Trainer(TrainConfig(**{**cfg.__dict__, "timesteps": "cubed"}))
    assert not (Path(cfg.out) / "config.json").exists()


def test_a_decoder_from_before_settings_were_stored_is_kept(cfg, reference_run):
    import shutil

    from sdlearn.training.vae import finetune_decoder

    shutil.copytree(reference_run, cfg.out)
    done = Path(cfg.out) / "decoder.safetensors"
    tensors, meta = load_checkpoint(done)
    del meta["settings"]  # as an older version wrote it
    save_checkpoint(done, tensors, meta)
    finetune_decoder(Trainer(cfg))
    assert done.exists() and "settings" not in load_checkpoint(done)[1]  # not redone


def test_log_times_splits_old_records_where_a_process_resumed(tmp_path):
    log = tmp_path / "log.jsonl"
    steps = [50, 100, 150, 100, 150, 200]  # the second process resumed from step 50
    times = [0, 10, 20, 500, 510, 520]
    log.write_text("\n".join(json.dumps({"time": t, "phase": "unet", "step": s})
                             for t, s in zip(times, steps, strict=True)))
    assert log_times(log) == {"wall_time_s": 40, "idle_s": 0}


def test_training_captions_drop_and_mislabel_the_shares_asked():
    scenes = [random_scene(s) for s in range(400)]
    # Without noise, the random stream is the one older runs used: they resume exactly.
    rng, twin = random.Random(1), random.Random(1)
    old = ["" if twin.random() < 0.1 else caption(s, twin) for s in scenes]
    assert training_captions(scenes, rng, dropout=0.1) == old

    rng, twin = random.Random(2), random.Random(2)
    prompts = training_captions(scenes, rng, dropout=0.0, noise=0.3)
    replay = []
    for s in scenes:
        twin.random()  # the dropout draw
        wrong = twin.random() < 0.3
        replay.append((wrong, caption(perturb(s, twin) if wrong else s, twin)))
    assert prompts == [p for _, p in replay]
    share = sum(w for w, _ in replay) / len(scenes)
    assert 0.22 < share < 0.38
    with pytest.raises(ValueError, match="caption_noise"):
        TrainConfig(caption_noise=1.0).validate()


def test_training_captions_can_say_less_than_the_picture(cfg):
    from sdlearn.shapes import parse_prompt

    scenes = [random_scene(i) for i in range(200)]
    full = training_captions(scenes, random.Random(0), dropout=0.0)
    loose = training_captions(scenes, random.Random(0), dropout=0.0, loose=True)
    named = [sum(len(o.named()) for o in parse_prompt(t).objects) for t in (*full, *loose)]
    assert min(named[:200]) >= 4  # every full caption names all four attributes of each object
    assert sum(named[200:]) < 0.8 * sum(named[:200])
    # a depth model's captions: never where nor how big, so the layout is the depth map's
    unplaced = training_captions(scenes, random.Random(0), dropout=0.0, loose=True,
                                 shares=UNPLACED)
    readings = [parse_prompt(t) for t in unplaced]
    assert not any(o.place or o.size for r in readings for o in r.objects)
    assert sum(len(o.named()) for r in readings for o in r.objects) > 0.2 * sum(named[:200])


def test_a_run_can_start_from_a_trained_model(tmp_path, small_arch, reference_run):
    source = reference_run / "pipeline"
    cfg = small_config(tmp_path / "from", small_arch)
    cfg.init_from, cfg.captions = str(source), "loose"
    folder = Trainer(cfg).run()
    phases = {json.loads(line)["phase"] for line in (folder / "training_log.jsonl").open()}
    assert "unet" in phases and not phases & {"vae", "decoder"}  # the VAE is taken as it is
    before, after = load_pipeline(source), load_pipeline(folder)
    assert all(torch.equal(a, b) for a, b in zip(before.vae.state_dict().values(),
                                                 after.vae.state_dict().values(), strict=True))
    assert after.vae.config.scaling_factor == before.vae.config.scaling_factor
    assert not torch.equal(before.unet.conv_in.weight, after.unet.conv_in.weight)
    info = json.loads((folder / "sdlearn.json").read_text())
    assert info["started_from"]["folder"] == str(source)
    assert info["started_from"]["command"].startswith("sdlearn train")
    assert "--init-from" in info["command"] and "--captions loose" in info["command"]
    # words only loose captions use keep their rows of the token embedding
    table = after.text_encoder.get_input_embeddings().weight
    something = after.tokenizer("something", add_special_tokens=False).input_ids[0]
    assert table[something].abs().sum() > 0


def test_init_from_must_be_a_pipeline_of_the_runs_architecture(tmp_path, small_arch,
                                                               reference_run):
    with pytest.raises(ValueError, match="is not a trained pipeline folder"):
        TrainConfig(init_from=str(tmp_path)).validate()
    from dataclasses import replace

    cfg = small_config(tmp_path / "other", replace(small_arch, text_hidden_size=16))  # not 32
    cfg.init_from = str(reference_run / "pipeline")
    with pytest.raises(ValueError, match="text_encoder has another architecture"):
        Trainer(cfg).run()


def test_an_inpainting_model_is_made_from_a_trained_one(tmp_path, small_arch, reference_run):
    from diffusers import StableDiffusionInpaintPipeline

    from sdlearn.models import quiet_loading

    source = reference_run / "pipeline"
    cfg = small_config(tmp_path / "inpaint", small_arch)
    cfg.init_from, cfg.task = str(source), "inpainting"
    folder = Trainer(cfg).run()
    with quiet_loading():  # diffusers' own class loads it, without sdlearn
        inpaint = StableDiffusionInpaintPipeline.from_pretrained(folder, dtype=torch.float32)
    base = load_pipeline(source)
    assert inpaint.unet.config.in_channels == 9
    assert inpaint.vae.config.scaling_factor == base.vae.config.scaling_factor
    assert all(torch.equal(a, b) for a, b in zip(base.text_encoder.state_dict().values(),
                                                 inpaint.text_encoder.state_dict().values(),
                                                 strict=True))  # the text encoder is kept
    kept = inpaint.unet.conv_in.weight[:, :4].float()
    assert not torch.equal(kept, base.unet.conv_in.weight.float())  # fine-tuned
    assert inpaint.unet.conv_in.weight[:, 4:].abs().sum() > 0  # the new channels learned
    assert "--task inpainting" in json.loads((folder / "sdlearn.json").read_text())["command"]
    image = render_image(random_scene(1), small_arch.image_size)
    mask = Image.new("L", image.size, 0)
    mask.paste(255, (0, 0, image.width // 2, image.height))
    inpaint.set_progress_bar_config(disable=True)
    out = inpaint("a red circle", image=image, mask_image=mask, num_inference_steps=2,
                  generator=make_generator(0)).images[0]
    assert out.size == image.size
    with pytest.raises(ValueError, match="task=inpainting fine-tunes a trained model"):
        TrainConfig(task="inpainting").validate()


def test_a_depth_model_is_made_from_a_trained_one(tmp_path, small_arch, reference_run):
    from diffusers import StableDiffusionDepth2ImgPipeline

    from sdlearn.depth import depth_channel
    from sdlearn.models import quiet_loading

    source = reference_run / "pipeline"
    cfg = small_config(tmp_path / "depth", small_arch)
    cfg.init_from, cfg.task, cfg.depth_steps, cfg.depth_batch = str(source), "depth", 3, 4
    folder = Trainer(cfg).run()
    with quiet_loading():  # diffusers' own class loads it, without sdlearn
        depth = StableDiffusionDepth2ImgPipeline.from_pretrained(folder, dtype=torch.float32)
    base = load_pipeline(source)
    assert depth.unet.config.in_channels == 5
    assert type(depth.depth_estimator).__name__ == "DPTForDepthEstimation"
    assert all(torch.equal(a, b) for a, b in zip(base.text_encoder.state_dict().values(),
                                                 depth.text_encoder.state_dict().values(),
                                                 strict=True))  # the text encoder is kept
    assert depth.unet.conv_in.weight[:, 4:].abs().sum() > 0  # the new channel learned
    log = [json.loads(line) for line in
           (tmp_path / "depth" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if r["phase"] == "depth"] == [3]
    maps = load_checkpoint(tmp_path / "depth" / "depth-maps.safetensors")[0]["depth_maps"]
    size = small_arch.image_size // depth.vae_scale_factor
    assert maps.shape == (cfg.n_train, 1, size, size)
    # the UNet was trained on the channel the pipeline gives it: the estimator's, normalised
    image = render_image(random_scene(1), small_arch.image_size)
    pixels = depth.feature_extractor(images=image, return_tensors="pt").pixel_values
    from sdlearn.images import to_tensor
    assert torch.allclose(pixels, to_tensor(image), atol=1e-6)  # the VAE's input, [-1, 1]
    with torch.no_grad():
        mine = depth_channel(depth.depth_estimator(pixels).predicted_depth, size)
        theirs = depth.prepare_depth_map(image, None, 1, False, torch.float32,
                                         torch.device("cpu"))
    torch.testing.assert_close(mine, theirs)
    depth.set_progress_bar_config(disable=True)
    out = depth("a red circle", image=image, num_inference_steps=2, strength=0.8,
                generator=make_generator(0)).images[0]
    assert out.size == image.size
    with pytest.raises(ValueError, match="task=depth fine-tunes a trained model"):
        TrainConfig(task="depth").validate()


def test_random_masks_cover_every_kind():
    from sdlearn.training.inpainting import MASK_KINDS, random_mask

    rng = random.Random(0)
    scene = random_scene(3)
    masks = [random_mask(rng, scene, 64) for _ in range(300)]
    shares = [m.mean() for m in masks]
    assert all(m.shape == (64, 64) and set(np.unique(m)) <= {0.0, 1.0} for m in masks)
    assert abs(sum(s == 1.0 for s in shares) / len(masks) - MASK_KINDS["all"]) < 0.05
    assert sum(0 < s < 1 for s in shares) > 0.8 * len(masks)  # most repaint a part
    assert min(s for s in shares if s > 0) < 0.05 and max(s for s in shares if s < 1) > 0.3


def test_a_run_can_take_the_vae_alone_and_train_the_rest_from_random_weights(
        tmp_path, small_arch, reference_run):
    from dataclasses import replace

    source = reference_run / "pipeline"
    narrower = replace(small_arch, unet_channels=(16, 32), text_layers=1)
    cfg = small_config(tmp_path / "vae-only", narrower)
    cfg.init_from, cfg.init_parts = str(source), "vae"
    folder = Trainer(cfg).run()
    before, after = load_pipeline(source), load_pipeline(folder)
    assert all(torch.equal(a, b) for a, b in zip(before.vae.state_dict().values(),
                                                 after.vae.state_dict().values(), strict=True))
    assert list(after.unet.config.block_out_channels) == [16, 32]
    assert after.text_encoder.config.num_hidden_layers == 1
    info = json.loads((folder / "sdlearn.json").read_text())
    assert info["started_from"]["parts"] == "vae"
    assert "--init-parts vae" in info["command"] and "--unet-channels 16,32" in info["command"]
    assert "--text-layers 1" in info["command"]


@pytest.mark.parametrize("parts, error", [
    ("unet", "the VAE always"), ("vae,vae", "comma-separated"), ("vae,decoder", "from vae")])
def test_init_parts_are_checked(reference_run, parts, error):
    with pytest.raises(ValueError, match=error):
        TrainConfig(init_from=str(reference_run / "pipeline"), init_parts=parts).validate()
    with pytest.raises(ValueError, match="give init_from"):
        TrainConfig(init_parts="vae").validate()


def test_new_architecture_options_reach_the_config_and_its_command(capsys, tmp_path):
    import argparse

    from sdlearn.training.config import add_arguments, config_from_args

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    cfg = config_from_args(parser.parse_args(["--unet-channels", "32,64", "--text-layers", "2"]))
    assert cfg.arch.unet_channels == (32, 64) and cfg.arch.text_layers == 2
    assert cfg.command().endswith("--unet-channels 32,64 --text-layers 2")
    cfg.arch.unet_channels = (24, 64)
    with pytest.raises(ValueError, match="unet_channels=\\(24, 64\\): each block's channels"):
        cfg.validate()


def test_a_run_draws_its_samples_before_training_at_checkpoints_and_at_the_end(reference_run):
    from sdlearn.training.samples import SAMPLE_PROMPTS, SAMPLE_SEEDS, sample_steps

    assert sample_steps(reference_run) == [0, 2, 4]  # 4 steps, a checkpoint every 2
    assert sample_steps(reference_run / "pipeline") == [0, 2, 4]  # shipped with the record
    grid = Image.open(reference_run / "samples" / "unet-00004.png")
    size, pad = 32, 2
    assert grid.size == (len(SAMPLE_SEEDS) * (size + pad) - pad,
                         len(SAMPLE_PROMPTS) * (size + pad) - pad)
    first = np.asarray(Image.open(reference_run / "samples" / "unet-00000.png"))
    assert not np.array_equal(first, np.asarray(grid))  # training changed what it draws


def test_one_unet_step_by_hand_equals_the_trainers_own(tmp_path, small_arch, reference_run):
    """The step lesson 10 writes out: the batch, the objective, AdamW and the EMA, bit for bit."""
    import copy

    from diffusers import DDPMScheduler

    from sdlearn.schedulers import SD_SCHEDULER_CONFIG
    from sdlearn.training.checkpoints import unprefixed
    from sdlearn.training.loop import lr_factor
    from sdlearn.training.unet import min_snr_weight, unet_batch

    cfg = small_config(tmp_path / "one", small_arch)
    cfg.init_from, cfg.unet_steps = str(reference_run / "pipeline"), 1
    trainer = Trainer(cfg)
    latents, _ = trainer.prepare()
    unet, text = copy.deepcopy(trainer.pipe.unet), copy.deepcopy(trainer.pipe.text_encoder)
    batch = unet_batch(trainer, 0, latents)
    ema = {k: v.clone() for k, v in unet.state_dict().items()}
    # the objective
    sched = DDPMScheduler.from_config(SD_SCHEDULER_CONFIG)
    a = sched.alphas_cumprod[batch.t].reshape(-1, 1, 1, 1)
    noisy = a ** 0.5 * batch.x0 + (1 - a) ** 0.5 * batch.noise
    pred = unet(noisy, batch.t, encoder_hidden_states=text(batch.ids)[0]).sample
    snr = a.flatten() / (1 - a.flatten())
    loss = (min_snr_weight(snr, cfg.min_snr_gamma)
            * ((pred - batch.noise) ** 2).mean(dim=(1, 2, 3))).mean()
    # the update
    params = [*unet.parameters(), *text.parameters()]
    opt = torch.optim.AdamW(params, lr=cfg.unet_lr * lr_factor(0, 1, cfg.warmup_steps),
                            weight_decay=0.01)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    d = min(cfg.ema_decay, 1 / 10)
    ema = {k: v.lerp(unet.state_dict()[k], 1 - d) for k, v in ema.items()}
    trained, _ = load_checkpoint(Trainer(cfg).run().parent / "unet.safetensors")
    assert all(torch.equal(ema[k], v) for k, v in unprefixed(trained, "unet.").items())
