import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image


def run(*args, cwd=None):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("SDLEARN_MODEL", None)
    return subprocess.run([sys.executable, "-m", "sdlearn.cli", *args], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=300)


def test_generate_same_seed_same_file(tmp_path):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    for out in (a, b):
        r = run("generate", "a big red circle in the center on a blue background", "-o",
                str(out), "--seed", "7", "--steps", "5", cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        assert "it/s" in r.stderr or "%" in r.stderr, "a progress bar is shown"
    assert a.read_bytes() == b.read_bytes()
    assert Image.open(a).size == (64, 64)


def in_process(*args):
    """``sdlearn ARGS`` run by ``main`` in this process: its exit code (argparse's too)."""
    from sdlearn.cli import main

    try:
        return main(list(args))
    except SystemExit as stop:  # argparse's own errors and --help
        return stop.code


@pytest.fixture
def cli(monkeypatch, tmp_path, capsys):
    """Run the command in-process in ``tmp_path``: ``(exit code, stdout, stderr)``."""
    monkeypatch.delenv("SDLEARN_MODEL", raising=False)
    monkeypatch.chdir(tmp_path)

    def call(*args):
        code = in_process(*args)
        out, err = capsys.readouterr()
        return code, out, err

    return call


def test_generate_every_option(cli, tmp_path):
    out = tmp_path / "grid.png"
    code, stdout, err = cli("generate", "a small green triangle", "-o", str(out),
                            "--negative-prompt", "red", "--steps", "4", "--guidance-scale", "3",
                            "--seed", "1", "--height", "48", "--width", "80", "--num-images",
                            "3", "--scheduler", "euler")
    assert code == 0, err
    w, h = Image.open(out).size
    assert h == 48 and w == 3 * 80 + 2 * 2
    assert "seed 1" in stdout


def test_long_prompt_is_reported(cli, tmp_path):
    code, _, err = cli("generate", "a red circle " * 40, "-o", str(tmp_path / "x.png"),
                       "--steps", "1", "--seed", "0")
    assert code == 0
    assert "122 tokens" in err and "last 45 are dropped" in err


def test_info_lists_components_and_numbers(cli):
    code, stdout, err = cli("info")
    assert code == 0, err
    for word in ("UNet2DConditionModel", "AutoencoderKL", "CLIPTextModel", "scaling_factor",
                 "vae_scale_factor", "max_length", "77", "Scheduler", "MB"):
        assert word in stdout


def one_line(code, err):
    """The error line of a refused command: exit code 2, one line, no traceback."""
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize("args, needle", [
    (["generate", "x", "--height", "60"], "not a multiple of the VAE factor 8; use 56 or 64"),
    (["generate", "x", "--steps", "-3"], "--steps: -3 must be 1 or more"),
    (["generate", "x", "--steps", "ten"], "'ten' is not a whole number"),
    (["generate", "x", "--guidance-scale", "lots"], "'lots' is not a number"),
    (["generate", "x", "--guidance-scale", "nan"], "--guidance-scale: 'nan' is not a finite"),
    (["generate", "x", "--guidance-scale", "inf"], "--guidance-scale: 'inf' is not a finite"),
    (["generate", "x", "--seed", "123456789012345678901234567890"],
     "--seed: 123456789012345678901234567890 is out of range; give a whole number from 0 to"),
    (["generate", "x", "--scheduler", "heun"], "invalid choice: 'heun'"),
    (["generate", "x", "--model", "/no/such/model"], "no such folder"),
    (["generate", "x", "--model", "models/missing"],
     "there is no folder 'models/missing' in "),
    (["generate", "x", "--model", "afile"], "afile is a file; sdlearn loads a folder"),
    (["generate", "x", "-o", "out.jpg"], "ending in .png"),
    (["generate", "x", "--device", "meta"], "device='meta' holds no data"),
    (["generate", "x", "--device", "xla"], "device='xla' cannot be used here"),
    (["generate", "x", "--height", "2048", "--width", "2048"], "Pass --allow-large to run it"),
    (["info", "--model", "someone/not-cached"], "HF_HUB_OFFLINE"),
    (["exercises", "--notebooks", str(Path(__file__).parents[1] / "notebooks"), "--learner",
      "afile"], "--learner afile is a file; give a folder"),
])
def test_bad_arguments_give_one_line_and_exit_2(cli, tmp_path, args, needle):
    (tmp_path / "afile").write_text("not a folder\n")
    assert needle in one_line(*cli(*args)[::2])


@pytest.mark.parametrize("output, needle", [
    ("taken.png", "--output taken.png is a folder; give a file name"),
    ("afile/x.png", "--output afile/x.png: afile is a file, not a folder"),
    ("/proc/sdlearn.png", "--output /proc/sdlearn.png cannot be written"),
])
def test_an_output_that_cannot_be_written_is_refused_before_the_model_loads(
        cli, tmp_path, monkeypatch, output, needle):
    if output.startswith("/proc") and not Path("/proc/self").is_dir():
        pytest.skip("needs Linux's /proc")
    (tmp_path / "taken.png").mkdir()
    (tmp_path / "afile").write_text("not a folder\n")
    monkeypatch.setattr("sdlearn.models.load_pipeline", lambda *a, **k: pytest.fail("loaded"))
    assert needle in one_line(*cli("generate", "x", "-o", output)[::2])
    assert not (tmp_path / "x.png").exists()


def test_one_size_given_the_other_is_the_models(cli, tmp_path):
    for flag, value, size in (("--height", "24", (64, 24)), ("--width", "40", (40, 64))):
        out = tmp_path / f"{flag[2:]}.png"
        code, stdout, err = cli("generate", "x", flag, value, "--steps", "1", "--seed", "0",
                                "-o", str(out))
        assert code == 0, err
        assert Image.open(out).size == size, "diffusers alone resets both sides to 64"
        assert f"({size[0]}×{size[1]}," in stdout


def test_a_vae_factor_of_4_is_told_the_sizes_the_pipeline_takes(cli, tmp_path, small_model_dir):
    model = ["--model", str(small_model_dir), "--steps", "1", "-o", str(tmp_path / "f4.png")]
    # the VAE takes 60 and 62 is next to it, but diffusers' pipeline takes multiples of 8 only
    for height in ("60", "62"):
        line = one_line(*cli("generate", "x", "--height", height, "--width", "32", *model)[::2])
        assert line.endswith(f"--height={height} is not a multiple of 8: the model's VAE factor "
                             "is 4, but diffusers' pipeline takes multiples of 8 only; use 56 "
                             "or 64")
    code, _, err = cli("generate", "x", "--height", "56", *model)  # the advice works
    assert code == 0, err
    assert Image.open(tmp_path / "f4.png").size == (32, 56)  # the width: the model's own


def test_allow_large_runs_a_size_far_beyond_the_models(cli, tmp_path, small_model_dir):
    # trained at 32x32: 136x136 has 18 times its area, more than check_large lets through
    args = ["generate", "x", "--model", str(small_model_dir), "--height", "136", "--width",
            "136", "--steps", "1", "-o", str(tmp_path / "big.png")]
    assert "Pass --allow-large to run it anyway" in one_line(*cli(*args)[::2])
    code, _, err = cli(*args, "--allow-large")
    assert code == 0, err
    assert "note: the picture at 136x136" in err and "going ahead (--allow-large)" in err
    assert Image.open(tmp_path / "big.png").size == (136, 136)


def test_guidance_below_1_is_told_it_gives_the_image_of_1(cli, tmp_path, small_model_dir):
    files = []
    for scale in ("0.5", "1"):
        files.append(tmp_path / f"g{scale}.png")
        code, _, err = cli("generate", "x", "--model", str(small_model_dir), "--steps", "2",
                           "--seed", "3", "--guidance-scale", scale, "-o", str(files[-1]))
        assert code == 0, err
        assert ("gives the image of 1" in err) == (scale == "0.5"), err
    assert files[0].read_bytes() == files[1].read_bytes()  # what the note says


def test_help_says_what_guidance_and_seeds_do(cli):
    code, stdout, _ = cli("generate", "--help")
    assert code == 0
    text = " ".join(stdout.split())
    assert "1 or less turns it off" in text and "0 and 0.5 give the image of 1" in text
    assert "the same image on this machine (another thread count" in text
    assert "--allow-large" in text


def _damage(folder: Path, kind: str) -> Path:
    """What the broken file or folder of ``kind`` is, once ``folder`` is damaged that way."""
    unet = folder / "unet" / "diffusion_pytorch_model.safetensors"
    te = folder / "text_encoder" / "model.safetensors"
    vae = folder / "vae" / "diffusion_pytorch_model.safetensors"
    if kind in ("corrupt", "corrupt_te"):
        file = unet if kind == "corrupt" else te
        file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])
        return file
    if kind == "zero_vae":
        vae.write_bytes(b"")
        return vae
    if kind == "renamed":
        vae.write_bytes(pickle.dumps({"weight": [1.0]}))
        return vae
    if kind == "binonly":  # pickles only, each one writes a marker file if it is ever unpickled
        for file in folder.rglob("*.safetensors"):
            file.with_suffix(".bin").write_bytes(pickle.dumps(Trap(folder / "unpickled")))
            file.unlink()
        return folder / "text_encoder"
    if kind == "badjson":
        (folder / "model_index.json").write_text("{not json")
        return folder / "model_index.json"
    if kind == "nounet":
        shutil.rmtree(folder / "unet")
        return folder / "unet"
    raise AssertionError(kind)


class Trap:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return Path.touch, (self.marker,)


@pytest.mark.parametrize("kind, needle", [
    ("corrupt", "is damaged: it is cut short or garbled"),
    ("corrupt_te", "is damaged: it is cut short or garbled"),
    ("zero_vae", "is damaged: it is empty (0 bytes)"),
    ("renamed", "is a pickle (or a torch zip file) under a .safetensors name; sdlearn loads "
                "safetensors weights only"),
    ("binonly", "has pickle weights only (model.bin); sdlearn loads safetensors weights only"),
    ("badjson", "is not valid JSON"),
    ("nounet", "model_index.json lists the component 'unet' (UNet2DConditionModel), but "
               "there is no folder"),
])
@pytest.mark.parametrize("command", ["generate", "info"])
def test_a_damaged_model_folder_gives_one_line_naming_the_file(cli, tmp_path, small_model_dir,
                                                               kind, needle, command):
    folder = tmp_path / kind
    shutil.copytree(small_model_dir, folder)
    broken = _damage(folder, kind)
    args = ["generate", "x", "-o", str(tmp_path / "x.png")] if command == "generate" else ["info"]
    line = one_line(*cli(*args, "--model", str(folder))[::2])
    assert f"Cannot load model '{folder}': " in line
    assert str(broken) in line and needle in line
    assert not (folder / "unpickled").exists(), "a pickle was loaded"


def test_a_bad_argument_ends_the_real_command_with_one_line(tmp_path):
    r = run("generate", "x", "--height", "60", cwd=tmp_path)  # the installed command's way out
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "sdlearn generate: error: --height=60 is not a multiple of the VAE factor 8; use 56 or 64"]


def test_train_help_builds_without_torch():
    code = ("import sys\nfrom sdlearn.cli import build_parser\ntry:\n"
            "    build_parser().parse_args(['train', '--help'])\nexcept SystemExit:\n"
            "    print('torch loaded:', 'torch' in sys.modules)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "torch loaded: False" in r.stdout
    text = " ".join(r.stdout.split())  # argparse wraps the help
    assert "--image-size IMAGE_SIZE training image size, a multiple of the VAE factor" in text
    assert "--unet-steps UNET_STEPS (default: 8000)" in text
