import os
import subprocess
import sys

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


@pytest.mark.parametrize("args, needle", [
    (["generate", "x", "--height", "60"], "not a multiple of the VAE factor 8; use 56 or 64"),
    (["generate", "x", "--steps", "-3"], "--steps: -3 must be 1 or more"),
    (["generate", "x", "--steps", "ten"], "'ten' is not a whole number"),
    (["generate", "x", "--guidance-scale", "lots"], "'lots' is not a number"),
    (["generate", "x", "--scheduler", "heun"], "invalid choice: 'heun'"),
    (["generate", "x", "--model", "/no/such/model"], "no such folder"),
    (["generate", "x", "-o", "out.jpg"], "ending in .png"),
    (["info", "--model", "someone/not-cached"], "HF_HUB_OFFLINE"),
])
def test_bad_arguments_give_one_line_and_exit_2(cli, args, needle):
    code, _, err = cli(*args)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert needle in lines[0]
    assert "Traceback" not in err


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
