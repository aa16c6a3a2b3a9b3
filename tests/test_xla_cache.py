"""The persistent XLA cache: where it goes, how it is turned off, and that TensorFlow really writes to it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from playground import XLA_CACHE_ENV, use_xla_cache, xla_cache_folder

ROOT = Path(__file__).resolve().parents[1]


def test_the_cache_flag_is_added_once_and_left_alone_when_set_or_off(tmp_path, monkeypatch):
    monkeypatch.setenv(XLA_CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setenv("TF_XLA_FLAGS", "--tf_xla_auto_jit=0")
    use_xla_cache()
    assert os.environ["TF_XLA_FLAGS"] == f"--tf_xla_auto_jit=0 --tf_xla_persistent_cache_directory={tmp_path / 'cache'}"
    assert (tmp_path / "cache").is_dir()
    use_xla_cache()  # a second import, or a user's own directory: unchanged
    assert os.environ["TF_XLA_FLAGS"].count("tf_xla_persistent_cache_directory") == 1
    monkeypatch.setenv(XLA_CACHE_ENV, "off")
    monkeypatch.setenv("TF_XLA_FLAGS", "")
    use_xla_cache()
    assert xla_cache_folder() is None and os.environ["TF_XLA_FLAGS"] == ""


def test_the_default_folder_follows_xdg_cache_home(tmp_path, monkeypatch):
    monkeypatch.delenv(XLA_CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert xla_cache_folder() == tmp_path / "vae-playground" / "xla"


@pytest.mark.slow
def test_a_compiled_function_lands_in_the_cache_folder(tmp_path):
    """A fresh process that imports the package, then compiles with XLA, leaves the program on disk."""
    script = (
        "import playground, tensorflow as tf\n"
        "f = tf.function(lambda x: tf.reduce_sum(x * 3.0), jit_compile=True)\n"
        "print(float(f(tf.constant([1.0, 2.0]))))\n"
    )
    env = {**os.environ, XLA_CACHE_ENV: str(tmp_path), "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("TF_XLA_FLAGS", None)
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "9.0"
    assert any(path.name.startswith("xla_compile_cache") for path in tmp_path.iterdir())
