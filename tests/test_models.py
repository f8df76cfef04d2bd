import json

import pytest
import torch
from diffusers import StableDiffusionPipeline

from sdlearn import ModelNotFoundError, is_shapes_model, load_pipeline, make_generator, models
from sdlearn.architectures import build_pipeline
from sdlearn.models import (
    DTYPE_VAR,
    ENV_VAR,
    SCHEDULERS,
    describe,
    embedded_model_path,
    make_scheduler,
    save_pipeline,
    with_scheduler,
)


def _image(pipe, seed=0, steps=3):
    return pipe("a big red circle in the center", num_inference_steps=steps,
                generator=make_generator(seed), output_type="np").images


def test_default_is_the_embedded_shapes_model(tiny_pipe, monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert isinstance(tiny_pipe, StableDiffusionPipeline)
    assert tiny_pipe.name_or_path == str(embedded_model_path())
    assert is_shapes_model(tiny_pipe)
    assert tiny_pipe.safety_checker is None
    assert tiny_pipe.unet.dtype == torch.float32 and tiny_pipe.device.type == "cpu"
    assert tiny_pipe.vae_scale_factor == 8
    assert tiny_pipe.vae.config.latent_channels == 4
    assert tiny_pipe.tokenizer.model_max_length == 77


def test_embedded_model_is_a_plain_diffusers_folder():
    folder = embedded_model_path()
    index = json.loads((folder / "model_index.json").read_text())
    for part in ("vae", "text_encoder", "tokenizer", "unet", "scheduler"):
        assert (folder / part).is_dir() and part in index
    assert not list(folder.rglob("*.bin")), "weights must be safetensors only"
    pipe = StableDiffusionPipeline.from_pretrained(folder, safety_checker=None)
    assert pipe.unet.config.cross_attention_dim == pipe.text_encoder.config.hidden_size


def test_scheduler_has_stable_diffusions_schedule(tiny_pipe):
    c = tiny_pipe.scheduler.config
    assert (c.num_train_timesteps, c.beta_schedule, c.beta_start, c.beta_end) == (
        1000, "scaled_linear", 0.00085, 0.012)
    assert c.steps_offset == 1 and not c.set_alpha_to_one
    pndm = make_scheduler("pndm", c)  # SD's own scheduler, made from the same config
    assert pndm.config.skip_prk_steps and pndm.config.clip_sample is False
    assert make_scheduler("ddim", c).config.clip_sample is False


@pytest.mark.parametrize("name", sorted(SCHEDULERS))
def test_every_scheduler_runs(tiny_pipe, name):
    pipe = load_pipeline(scheduler=name)
    assert type(pipe.scheduler).__name__ == SCHEDULERS[name]
    assert _image(pipe).shape == (1, 64, 64, 3)


def test_unknown_scheduler_is_named(tiny_pipe):
    with pytest.raises(ValueError, match="scheduler='heun'.*pndm"):
        make_scheduler("heun", tiny_pipe.scheduler.config)


def test_same_seed_same_image(tiny_pipe):
    a, b, c = _image(tiny_pipe, 1), _image(tiny_pipe, 1), _image(tiny_pipe, 2)
    assert (a == b).all() and not (a == c).all()


def test_env_var_switches_every_lesson(small_model_dir, monkeypatch):
    monkeypatch.setenv(ENV_VAR, str(small_model_dir))
    pipe = load_pipeline()
    assert pipe.name_or_path == str(small_model_dir)
    assert pipe.vae_scale_factor == 4 and pipe.text_encoder.config.hidden_size == 32
    assert _image(pipe).shape == (1, 32, 32, 3)


def test_dtype_env_var_sets_the_precision(small_model_dir, monkeypatch):
    monkeypatch.setenv(DTYPE_VAR, "float16")
    pipe = load_pipeline(small_model_dir)
    assert pipe.unet.dtype == pipe.vae.dtype == pipe.text_encoder.dtype == torch.float16
    assert load_pipeline(small_model_dir, dtype=torch.float32).unet.dtype == torch.float32
    monkeypatch.setenv(DTYPE_VAR, "half")
    with pytest.raises(ValueError, match=r"SDLEARN_DTYPE='half'.*float32, float16, bfloat16"):
        load_pipeline(small_model_dir)
    monkeypatch.delenv(DTYPE_VAR)
    assert load_pipeline(small_model_dir, dtype="bfloat16").unet.dtype == torch.bfloat16
    with pytest.raises(ValueError, match=r"dtype='fp16' is not a precision"):
        load_pipeline(small_model_dir, dtype="fp16")


def test_with_scheduler_shares_the_weights_and_keeps_the_precision(small_model_dir):
    from diffusers import StableDiffusionImg2ImgPipeline

    pipe = load_pipeline(small_model_dir, dtype=torch.float16)
    euler = with_scheduler(pipe, "euler")
    i2i = with_scheduler(pipe, "ddim", StableDiffusionImg2ImgPipeline)
    assert type(euler.scheduler).__name__ == "EulerDiscreteScheduler"
    assert isinstance(i2i, StableDiffusionImg2ImgPipeline)
    assert euler.unet is pipe.unet and i2i.vae is pipe.vae
    # diffusers' from_pipe alone would have cast the shared weights (and so `pipe`) to float32
    assert pipe.unet.dtype == euler.unet.dtype == torch.float16
    assert type(pipe.scheduler).__name__ != "EulerDiscreteScheduler"


def test_saved_folder_loads_back_with_identical_output(small_arch, tmp_path):
    original = build_pipeline(small_arch, seed=3)
    save_pipeline(original, tmp_path / "m", info={"world": "shapes"})
    loaded = load_pipeline(tmp_path / "m")
    assert (_image(original) == _image(loaded)).all()
    assert is_shapes_model(loaded)


def test_half_precision_on_disk_loads_as_float32(small_arch, tmp_path):
    save_pipeline(build_pipeline(small_arch), tmp_path / "h", half=True)
    pipe = load_pipeline(tmp_path / "h")
    assert pipe.unet.dtype == torch.float32 and pipe.text_encoder.dtype == torch.float32


def test_model_without_sdlearn_record_is_not_a_shapes_model(small_arch, tmp_path):
    build_pipeline(small_arch).save_pretrained(tmp_path / "plain")
    assert not is_shapes_model(load_pipeline(tmp_path / "plain"))


def test_offline_hub_id_gives_one_clear_message(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError) as info:
        load_pipeline("stable-diffusion-v1-5/stable-diffusion-v1-5")
    message = str(info.value)
    assert "not in the local Hugging Face cache" in message and "HF_HUB_OFFLINE" in message
    assert "embedded tiny model" in message and "local folder" in message


def test_missing_folder_and_non_pipeline_folder(tmp_path):
    with pytest.raises(ModelNotFoundError, match="no such folder"):
        load_pipeline(tmp_path / "missing")
    with pytest.raises(ModelNotFoundError, match="no model_index.json"):
        load_pipeline(tmp_path)


def test_describe_reads_numbers_from_components(tiny_pipe, small_model_dir):
    d = describe(tiny_pipe)
    assert d["scaling_factor"] == tiny_pipe.vae.config.scaling_factor
    assert (d["vae_scale_factor"], d["latent_channels"], d["max_length"]) == (8, 4, 77)
    assert d["components"]["unet"]["parameters"] > 0 and d["components"]["unet"]["bytes"] > 0
    small = describe(load_pipeline(small_model_dir))
    assert (small["vae_scale_factor"], small["hidden_size"], small["default_image_size"]) == (
        4, 32, 32)


def test_the_v_prediction_model_has_sd2s_conventions(vpred_model_dir):
    pipe = load_pipeline(vpred_model_dir)
    d = describe(pipe)
    assert (d["prediction_type"], d["scheduler"], d["world"]) == ("v_prediction", "DDIMScheduler",
                                                                  None)
    assert (d["vae_scale_factor"], d["hidden_size"], d["default_image_size"],
            d["latent_size"]) == (2, 48, 24, 12)
    assert pipe.tokenizer("a", padding="max_length").input_ids[-1] == 0  # "!", as SD 2.x
    unet = pipe.unet.config
    assert unet.use_linear_projection and unet.upcast_attention
    assert list(unet.attention_head_dim) == [2, 4]  # heads per block, as SD 2.x's (5, 10, 20, 20)
    assert pipe.text_encoder.config.hidden_act == "gelu"


def test_the_embedded_models_architecture_records_no_sd2_options(tmp_path):
    from sdlearn.architectures import TinyArchitecture, build_pipeline

    pipe = build_pipeline(TinyArchitecture(image_size=16, vae_channels=(16, 16), text_layers=1,
                                           text_hidden_size=16, unet_channels=(16, 16),
                                           norm_groups=8))
    pipe.save_pretrained(tmp_path)
    unet = (tmp_path / "unet" / "config.json").read_text()
    text = (tmp_path / "text_encoder" / "config.json").read_text()
    # SD 1.x's values, left at the classes' defaults, so the embedded model's files are unchanged
    assert '"use_linear_projection": false' in unet and '"upcast_attention": false' in unet
    assert '"hidden_act": "quick_gelu"' in text
    assert pipe.tokenizer.pad_token_id == 49407


def test_bad_device_and_scheduler_are_named_before_loading():
    import torch

    with pytest.raises(ValueError, match="scheduler='heun'"):
        load_pipeline("/does/not/matter", scheduler="heun")
    with pytest.raises(ValueError, match="device='gpu' is not a device"):
        load_pipeline(device="gpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no usable CUDA GPU"):
            load_pipeline(device="cuda")


def test_devices_sdlearn_cannot_sample_on_are_refused_before_loading():
    # the model does not exist: the device is refused before anything is looked for
    with pytest.raises(ValueError, match=r"device='meta' holds no data .* use 'cpu', 'cuda'"):
        load_pipeline("/does/not/matter", device="meta")
    with pytest.raises(ValueError, match=r"device='xla' cannot be used here"):
        load_pipeline("/does/not/matter", device="xla")


def test_float16_on_the_cpu_loads_without_diffusers_false_warning(small_model_dir, capfd):
    pipe = load_pipeline(small_model_dir, device="cpu", dtype="float16")
    assert pipe.unet.dtype == torch.float16
    assert "cannot run with `cpu` device" not in capfd.readouterr().err


def test_a_damaged_text_encoder_is_named(small_model_dir, tmp_path):
    # safetensors' own error names no file, and is no OSError
    import shutil

    shutil.copytree(small_model_dir, tmp_path / "m")
    file = tmp_path / "m" / "text_encoder" / "model.safetensors"
    file.write_bytes(file.read_bytes()[:1000])
    with pytest.raises(ModelNotFoundError, match=f"the weights file {file} is damaged") as info:
        load_pipeline(tmp_path / "m")
    # case 1.30 through the API: one error, not diffusers' 20-line traceback chained before it
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_a_relative_path_that_is_missing_says_both_folder_and_hub(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelNotFoundError) as info:
        load_pipeline("models/missing")
    assert (f"there is no folder 'models/missing' in {tmp_path}, and as a hub id it is not in "
            "the local Hugging Face cache and HF_HUB_OFFLINE is set") in str(info.value)


def test_the_hub_is_announced_and_no_network_is_one_clear_line(monkeypatch, capsys):
    import socket

    def from_pretrained(model, local_files_only=False, **kwargs):  # never the network
        if local_files_only:
            raise OSError(f"{model} is not in the cache")
        try:
            raise socket.gaierror(-2, "Name or service not known")
        except socket.gaierror as error:
            raise OSError("Cannot load model: outgoing traffic has been disabled. To enable "
                          "repo look-ups and downloads online, pass 'local_files_only=False'"
                          ) from error

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(StableDiffusionPipeline, "from_pretrained", from_pretrained)
    monkeypatch.setattr(models, "_hub_unreachable", lambda: None)  # the name resolves
    with pytest.raises(ModelNotFoundError) as info:
        load_pipeline("someone/some-model")
    assert capsys.readouterr().err == ("note: looking for 'someone/some-model' on the Hugging "
                                       "Face hub (it is not in the local cache; this needs the "
                                       "network)\n")
    message = str(info.value)
    assert "\n" not in message and "outgoing traffic" not in message
    assert ("the hub could not be reached (gaierror: [Errno -2] Name or service not known); "
            "connect to the network") in message


@pytest.mark.parametrize("proxy, dns, fails_at_once", [
    (None, "fails", True),        # no network: one look-up says so (case 9.4: 38 s before)
    (None, "resolves", False),    # a network: the hub's client is asked
    ("http://proxy:3128", "fails", False),  # a proxy resolves names itself: not looked up
])
def test_no_network_for_a_hub_id_fails_at_once(monkeypatch, capsys, proxy, dns, fails_at_once):
    """Case 9.4: with HF_HUB_OFFLINE unset and no DNS, the hub's client retries for about 40 s;
    one look-up of the hub's host name finds that first, with the same clear message."""
    import socket

    looked_up, asked = [], []

    def getaddrinfo(host, *args, **kwargs):
        looked_up.append(host)
        if dns == "fails":
            raise socket.gaierror(-3, "Temporary failure in name resolution")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("192.0.2.1", 443))]

    def from_pretrained(model, local_files_only=False, **kwargs):
        if local_files_only:
            raise OSError(f"{model} is not in the cache")
        asked.append(model)
        raise OSError("the hub's answer")

    monkeypatch.delenv("HF_HUB_OFFLINE")
    for name in models.PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
    if proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(StableDiffusionPipeline, "from_pretrained", from_pretrained)
    with pytest.raises(ModelNotFoundError) as info:
        load_pipeline("someone/some-model")
    assert looked_up == ([] if proxy else ["huggingface.co"])
    assert asked == ([] if fails_at_once else ["someone/some-model"])
    message = str(info.value)
    if fails_at_once:
        assert ("as a hub id it is not in the local Hugging Face cache, and the hub could not be "
                "reached (gaierror: [Errno -3] Temporary failure in name resolution); connect "
                "to the network") in message
        assert info.value.__cause__ is None and info.value.__suppress_context__
    else:
        assert "the hub could not provide it (OSError: the hub's answer)" in message
    assert "looking for 'someone/some-model' on the Hugging Face hub" in capsys.readouterr().err


@pytest.mark.parametrize("task, pipeline, channels", [
    ("inpainting", "StableDiffusionInpaintPipeline", 9),
    ("depth", "StableDiffusionDepth2ImgPipeline", 5)])
def test_the_siblings_load_by_task(monkeypatch, task, pipeline, channels):
    for var in (ENV_VAR, models.TASKS[task].env_var):
        monkeypatch.delenv(var, raising=False)
    sibling = load_pipeline(task=task)
    assert type(sibling).__name__ == pipeline and is_shapes_model(sibling)
    assert sibling.name_or_path == str(embedded_model_path(task))
    assert sibling.unet.config.in_channels == channels and sibling.vae_scale_factor == 8
    folder = embedded_model_path(task)
    assert not list(folder.rglob("*.bin")), "weights must be safetensors only"
    assert json.loads((folder / "sdlearn.json").read_text())["task"] == task
    if task == "depth":
        assert type(sibling.depth_estimator).__name__ == "DPTForDepthEstimation"
        assert (folder / "feature_extractor" / "preprocessor_config.json").exists()
    with pytest.raises(ValueError, match="task='text-to-video' is not a task sdlearn has a "
                                         "model for; use one of 'text2img', 'inpainting'"):
        load_pipeline(task="text-to-video")


def test_a_sibling_not_in_the_installation_says_how_to_make_it(monkeypatch, tmp_path):
    monkeypatch.setattr(models, "data_path", lambda *parts: tmp_path.joinpath(*parts))
    for var in (ENV_VAR, "SDLEARN_DEPTH_MODEL"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(ModelNotFoundError, match=r"tiny depth model is not in this installation"
                                                 r".*sdlearn train --task depth.*"
                                                 r"\$SDLEARN_DEPTH_MODEL"):
        load_pipeline(task="depth")


def test_a_model_of_the_wrong_task_says_which_task_fits(tmp_path, plain_model_dir,
                                                        plain_inpainting_dir):
    with pytest.raises(ValueError, match="reading 4 input channels, and task='inpainting' "
                                         "needs 9: load it with task='text2img'"):
        load_pipeline(plain_model_dir, task="inpainting")
    with pytest.raises(ValueError, match="reading 9 input channels, and task='text2img' needs "
                                         "4: load it with task='inpainting'"):
        load_pipeline(plain_inpainting_dir)
    assert load_pipeline(plain_inpainting_dir, task="inpainting").unet.config.in_channels == 9


def test_the_inpainting_model_follows_the_base_models_variables(monkeypatch, plain_model_dir,
                                                               plain_inpainting_dir):
    var = models.TASKS["inpainting"].env_var
    assert var == "SDLEARN_INPAINTING_MODEL"
    monkeypatch.delenv(var, raising=False)
    # A real base model's well-known sibling; the tiny one beside it would mix two worlds.
    monkeypatch.setenv(ENV_VAR, "stable-diffusion-v1-5/stable-diffusion-v1-5")
    sibling = models._default_model("inpainting")
    assert sibling == "stable-diffusion-v1-5/stable-diffusion-inpainting"
    monkeypatch.setenv(ENV_VAR, str(plain_model_dir))
    with pytest.raises(ModelNotFoundError, match="knows no inpainting model made from it: set "
                                                 r"\$SDLEARN_INPAINTING_MODEL"):
        load_pipeline(task="inpainting")
    monkeypatch.setenv(var, str(plain_inpainting_dir))
    assert load_pipeline(task="inpainting").name_or_path == str(plain_inpainting_dir)
    assert load_pipeline().name_or_path == str(plain_model_dir)  # text2img: unchanged
