"""VAE Playground: the Keras subclassing guide's VAE, trained live (``streamlit run app.py``).

Importing the package turns on TensorFlow's persistent XLA cache (see ``use_xla_cache``)
before any of its modules imports TensorFlow, which reads ``TF_XLA_FLAGS`` once.
"""

from __future__ import annotations

import os
from pathlib import Path

XLA_CACHE_ENV = "PLAYGROUND_XLA_CACHE"  # a folder, or "off"


def xla_cache_folder() -> Path | None:
    """Where compiled XLA programs are kept between processes (None: not kept)."""
    configured = os.environ.get(XLA_CACHE_ENV, "").strip()
    if configured.lower() == "off":
        return None
    if configured:
        return Path(configured).expanduser()
    cache_home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache_home / "vae-playground" / "xla"


def use_xla_cache() -> None:
    """Keep each compiled training loop on disk, so that a restarted server or a second ``train`` of
    the same model reuses it: about half the warm-up's CPU time (XLA's compile; TensorFlow still
    traces the Python). The cache holds executables: keep it in a folder only this user can write.
    A ``--tf_xla_persistent_cache_directory`` already in ``TF_XLA_FLAGS`` is left as it is."""
    flags = os.environ.get("TF_XLA_FLAGS", "")
    folder = xla_cache_folder()
    if folder is None or "tf_xla_persistent_cache_directory" in flags:
        return
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError:
        return  # a read-only home: compile every time, as before
    os.environ["TF_XLA_FLAGS"] = f"{flags} --tf_xla_persistent_cache_directory={folder}".strip()


use_xla_cache()
