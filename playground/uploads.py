"""Your own images as a dataset: NumPy arrays, pictures in a zip or folder, an IDX pair, Quick, Draw! bitmaps.

Every file is checked whole before anything is kept (sizes, counts, shapes, dtypes,
NaN, value range, labels), and any problem is a ``ValueError`` naming the file and
saying what is wrong. Files come in as ``(name, bytes)``: nothing is ever written to
disk under a name taken from an upload, and zips are read member by member in memory.

Every image ends as MNIST's: 28 x 28 grey levels, white ink on black. Arrays whose
border is mostly light (dark ink on light paper) are inverted as a whole; pictures are
prepared one by one as the Draw tab prepares an upload (``imaging.photo_to_mnist``: ink
apart from the paper, either polarity, fitted into 20 x 20 and centred by its mass), and
28 x 28 pictures are only turned white-on-black if they are dark-on-light.

A dataset made here is named ``upload-<hash of its contents>``, split into train and
test with a fixed seed, and kept in a workspace's ``datasets/`` folder beside its runs.
"""

from __future__ import annotations

import bz2
import dataclasses
import hashlib
import io
import json
import lzma
import os
import re
import stat
import struct
import tokenize
import warnings
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image, UnidentifiedImageError

from playground.data import UPLOAD_PREFIX, Dataset, is_upload_name
from playground.imaging import FIELD, check_image_array, ink, photo_to_mnist, read_image

# ---- caps (the README lists them) ----
MAX_FILE_BYTES = 200 * 2**20  # one file (the page's own upload limit is lower: .streamlit/config.toml)
MAX_TOTAL_BYTES = 400 * 2**20  # all files of one dataset together
MAX_IMAGES = 60_000  # images in one dataset: MNIST's training set
MIN_IMAGES = 10  # fewer cannot make a train and a test split worth a curve
MIN_PER_CLASS = 2  # one to train on, one to test on
MAX_CLASSES = 100
MAX_FILES = 20  # files in one upload (Quick, Draw! categories, IDX files)
QUICKDRAW_PER_CATEGORY = 10_000  # the first this many drawings of each .npy file are used
MAX_ZIP_MEMBERS = 20_000
MAX_UNCOMPRESSED = 512 * 2**20  # a zip's members together, as read
MAX_RATIO = 100  # a member unpacking to more than 100x its packed size (beyond 1 MiB) is a zip bomb
RATIO_FLOOR = 2**20
MAX_PICTURE_BYTES = 20 * 2**20  # one picture in a zip or folder
MAX_PICTURE_PIXELS = 25_000_000  # one picture (5000 x 5000), read from its header before decoding
MAX_TOTAL_PIXELS = 400_000_000  # all pictures together (about 33 phone photos of 12 MP)
MAX_NAME = 40  # characters of a label or a title
MAX_KEPT = 8  # datasets kept in one workspace; the oldest beyond this are deleted (their runs say so when reopened)

TEST_FRACTION = 0.15  # of each class, held out for the test split (at least one)
SPLIT_SEED = 20_251_126  # the split never changes for the same files
PICTURE_TYPES = (".png", ".jpg", ".jpeg")
ARRAY_TYPES = (".npz", ".npy")
# A .npz's image keys -> its label keys (labels may be left out); any single array is images.
KEY_SETS = {("x",): ("y",), ("images",): ("labels",), ("x_train", "x_test"): ("y_train", "y_test")}
DATASETS_FOLDER = "datasets"  # in a workspace's runs folder

_JUNK = re.compile(r"(^|/)(__MACOSX/|\.[^/]*$|Thumbs\.db$|desktop\.ini$)", re.IGNORECASE)
_ARCHIVES = (".zip", ".npz", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar")
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, lzma.LZMAError, EOFError, OSError,
               NotImplementedError, RuntimeError, ValueError, struct.error, IndexError, OverflowError)  # fmt: skip
# numpy parses a .npy header with Python's tokenizer and literal_eval: damaged headers raise many kinds.
_HEADER_ERRORS = (ValueError, SyntaxError, TypeError, EOFError, OSError, KeyError, OverflowError, MemoryError,
                  RecursionError, tokenize.TokenError)  # fmt: skip
_PICTURE_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError,
                   struct.error, zlib.error, Image.DecompressionBombError)  # fmt: skip


@dataclass(frozen=True)
class Images:
    """Checked images before the split: uint8 [N, 28, 28] white on black, labels 0..K-1, their names."""

    pixels: np.ndarray  # [N, 28, 28] uint8
    labels: np.ndarray  # [N] int64 in 0..len(class_names)-1
    class_names: tuple[str, ...]
    notes: tuple[str, ...] = ()  # what was done to the files, for the source line ("inverted", "first 10,000")
    test_pixels: np.ndarray | None = None  # a split the files brought (x_test/y_test), kept as it is
    test_labels: np.ndarray | None = None


# ---- the entry point ----


def load_files(files: list[tuple[str, bytes]], title: str = "") -> Dataset:
    """A dataset from uploaded files, by their type: one .npz or .npy, several .npy (Quick, Draw!: one category
    each), one .zip of PNG/JPEG pictures, PNG/JPEG pictures themselves, or IDX files (images and labels)."""
    if not files:
        raise ValueError("No file was given.")
    if len(files) > MAX_FILES and not all(_suffix(name) in PICTURE_TYPES for name, _ in files):
        raise ValueError(f"{len(files)} files is too many at once; the limit is {MAX_FILES}.")
    total = 0
    for name, raw in files:
        if not isinstance(raw, (bytes, bytearray, memoryview)):
            raise ValueError(f"{name}: a file's contents are bytes, not {type(raw).__name__}.")
        _check_file_size(name, len(raw))
        total += len(raw)
    if total > MAX_TOTAL_BYTES:
        raise ValueError(f"These files hold {_mb(total)} together; the limit is {_mb(MAX_TOTAL_BYTES)}.")
    names = [name for name, _ in files]
    kinds = {_kind(name) for name, raw in files}
    if len(kinds) > 1:
        raise ValueError(f"{', '.join(names)}: send one kind of file at a time (arrays, a zip, pictures or IDX).")
    kind = kinds.pop()
    if kind == "npz":
        if len(files) > 1:
            raise ValueError(f"{', '.join(names)}: one .npz file at a time.")
        images = white_on_black(npz_images(*files[0]))
    elif kind == "npy":
        images = white_on_black(npy_images(files))
    elif kind == "zip":
        if len(files) > 1:
            raise ValueError(f"{', '.join(names)}: one zip file at a time.")
        images = picture_images(zip_members(*files[0]), files[0][0])
    elif kind == "picture":
        images = picture_images(files, "the pictures")
    else:
        images = white_on_black(idx_images(files))
    return make_dataset(images, title or _title_from(names), ", ".join(names))


def load_source(kind: str, argument: str) -> Dataset:
    """A dataset from files on disk, for ``--source npz:FILE``, ``images:ZIP_OR_DIR``,
    ``quickdraw:FILE[,FILE...]`` and ``idx:IMAGES[,LABELS]``."""
    paths = [Path(part).expanduser() for part in argument.split(",") if part.strip()]
    if not paths:
        raise ValueError(f"--source {kind}: needs a file name after the colon.")
    if kind == "images" and len(paths) == 1 and paths[0].is_dir():
        return make_dataset(picture_images(folder_members(paths[0]), str(paths[0])), paths[0].name, str(paths[0]))
    files = [(path.name, read_file(path)) for path in paths]
    if kind == "npz" and len(files) == 1 and _suffix(files[0][0]) not in ARRAY_TYPES:
        raise ValueError(f"{paths[0]}: npz: takes a .npz or .npy file.")
    if kind == "quickdraw" and any(_suffix(name) != ".npy" for name, _ in files):
        raise ValueError("quickdraw: takes .npy files (Quick, Draw!'s numpy bitmaps), separated by commas.")
    if kind == "images" and any(_kind(name) not in ("zip", "picture") for name, raw in files):
        raise ValueError(f"{argument}: images: takes a zip file or a folder of PNG/JPEG pictures.")
    return load_files(files)


def read_file(path: Path) -> bytes:
    """A file's bytes, its size checked before it is read."""
    try:
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode):
            info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"{path} is not a file.")
        _check_file_size(str(path), info.st_size)
        return path.read_bytes()
    except OSError as error:
        raise ValueError(f"{path} could not be read: {error.strerror or error}.") from None


def _kind(name: str) -> str:
    suffix = _suffix(name)
    if suffix == ".npz":
        return "npz"
    if suffix == ".npy":
        return "npy"
    if suffix == ".zip":
        return "zip"
    if suffix in PICTURE_TYPES:
        return "picture"
    if "idx" in name.lower() or "ubyte" in name.lower():
        return "idx"
    raise ValueError(
        f"{name}: this kind of file is not read here. Use .npz or .npy arrays, a .zip of PNG/JPEG pictures, "
        "PNG/JPEG pictures, or IDX files (…-idx3-ubyte and …-idx1-ubyte, gzipped or not)."
    )


# ---- NumPy files ----


def npy_array(raw: bytes, where: str, max_rows: int | None = None) -> tuple[np.ndarray, int]:
    """The array in a .npy file's bytes (its first ``max_rows`` rows at most) and its full row count.

    The header is read and checked (dtype, shape, length) before any data is touched;
    object arrays (pickles) are refused.
    """
    stream = io.BytesIO(bytes(raw))
    try:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(stream)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(stream)
        else:
            raise ValueError(f"version {version[0]}.{version[1]} of the format is not read here")
    except _HEADER_ERRORS as error:
        raise ValueError(f"{where} is not a readable .npy file: {error}") from None
    if dtype.hasobject or dtype.names is not None or dtype.subdtype is not None:
        raise ValueError(f"{where} holds Python objects or records ({dtype}); save plain numbers or text.")
    if dtype.kind not in "biufUS":
        raise ValueError(f"{where} holds {dtype} values; images need whole numbers or floats.")
    rows = shape[0] if shape else 1
    kept = shape if max_rows is None or not shape or rows <= max_rows else (max_rows, *shape[1:])
    count = int(np.prod(shape, dtype=object))  # a Python int: no overflow, whatever the header claims
    needed, there = count * dtype.itemsize, len(raw) - stream.tell()
    if there < needed:
        raise ValueError(f"{where} is truncated: {there:,} bytes of data, its header announces {needed:,}.")
    if there > needed:
        raise ValueError(f"{where} has {there - needed:,} bytes more than its header announces; is it damaged?")
    if fortran and kept != shape:
        raise ValueError(f"{where} is stored column by column (Fortran order); save it with np.save as usual.")
    array = np.frombuffer(raw, dtype=dtype, count=int(np.prod(kept, dtype=object)), offset=stream.tell())
    return array.reshape(kept, order="F" if fortran else "C"), rows


def npz_images(name: str, raw: bytes) -> Images:
    """Images (and labels) from a .npz file with one of the key sets in ``KEY_SETS``, or a single array."""
    arrays = {}
    for member, data in zip_members(name, raw, only=(".npy",)):
        key = PurePosixPath(member).stem
        if key in arrays:
            raise ValueError(f"{name} holds two arrays named {key}.")
        arrays[key] = npy_array(data, f"{name}: {member}")[0]
    if len(arrays) == 1:
        ((key, images),) = arrays.items()
        return _with_labels(_pixels(images, f"{name}: {key}"), None, name)
    for image_keys, label_keys in KEY_SETS.items():
        if set(arrays) in ({*image_keys, *label_keys}, set(image_keys)):
            break
    else:
        accepted = "; ".join(" + ".join((*x, *y)) for x, y in KEY_SETS.items())
        raise ValueError(f"{name} holds the arrays {', '.join(sorted(arrays))}; expected {accepted}, or one array.")
    labels = label_keys if label_keys[0] in arrays else (None,) * len(label_keys)
    if len(image_keys) == 1:
        return _with_labels(_pixels(arrays[image_keys[0]], f"{name}: {image_keys[0]}"), arrays.get(labels[0]), name)
    return _pre_split(name, arrays, image_keys, labels)


def _pre_split(name: str, arrays: dict, image_keys: tuple, label_keys: tuple) -> Images:
    """x_train/y_train/x_test/y_test (Keras' mnist.npz): the file's own split is kept."""
    train_x, test_x = (_pixels(arrays[key], f"{name}: {key}") for key in image_keys)
    labels = tuple(arrays.get(key) for key in label_keys)
    for key, x, y in zip(label_keys, (train_x, test_x), labels):
        if y is not None:
            _check_label_shape(y, len(x.pixels), f"{name}: {key}")
    both = None if labels[0] is None else np.concatenate([_label_vector(y, name) for y in labels])
    whole = _Pixels(np.concatenate([train_x.pixels, test_x.pixels]), tuple(dict.fromkeys(train_x.notes + test_x.notes)))
    together = _with_labels(whole, both, name, check_shape=False)
    cut = len(train_x.pixels)
    if cut + len(test_x.pixels) > MAX_IMAGES + MAX_IMAGES // 6:
        raise ValueError(f"{name} holds {cut + len(test_x.pixels):,} images; the limit is {MAX_IMAGES:,} (train).")
    return Images(together.pixels[:cut], together.labels[:cut], together.class_names, together.notes,
                  together.pixels[cut:], together.labels[cut:])  # fmt: skip


def npy_images(files: list[tuple[str, bytes]]) -> Images:
    """One .npy of images, or several (Quick, Draw!): each file one category named after the file."""
    names = [_category_name(name) for name, _ in files]
    if len(set(names)) < len(names):
        raise ValueError(f"{', '.join(n for n, _ in files)}: two files give the same category name.")
    per_file = max(MIN_PER_CLASS, min(QUICKDRAW_PER_CATEGORY, MAX_IMAGES // len(files)))
    pixels, labels, notes = [], [], []
    for index, (name, raw) in enumerate(files):
        array, rows = npy_array(raw, name, max_rows=per_file)
        prepared = _pixels(array, name)
        if rows > len(prepared.pixels):
            notes.append(f"the first {len(prepared.pixels):,} of {rows:,} drawings of {names[index]}")
        notes.extend(prepared.notes)
        pixels.append(prepared.pixels)
        labels.append(np.full(len(prepared.pixels), index, dtype=np.int64))
    images = Images(np.concatenate(pixels), np.concatenate(labels), tuple(names), tuple(dict.fromkeys(notes)))
    return _checked_counts(images, ", ".join(n for n, _ in files))


def _category_name(file_name: str) -> str:
    """Quick, Draw!'s ``full_numpy_bitmap_cat.npy`` is "cat"; any other ``name.npy`` is "name"."""
    stem = PurePosixPath(file_name.replace("\\", "/")).name
    stem = stem[: -len(".npy")] if stem.lower().endswith(".npy") else stem
    return _display_name(stem.removeprefix("full_numpy_bitmap_").replace("_", " ")) or "images"


# ---- pixels and labels ----


@dataclass(frozen=True)
class _Pixels:
    pixels: np.ndarray  # [N, 28, 28] uint8
    notes: tuple[str, ...]


def _pixels(array: np.ndarray, where: str) -> _Pixels:
    """N x 28 x 28 (or N x 784, or N x 28 x 28 x 1) numbers as uint8 white-on-black images."""
    shape = array.shape
    if array.ndim == 2 and shape[1] == FIELD * FIELD:
        array = array.reshape(-1, FIELD, FIELD)
    elif array.ndim == 4 and shape[1:] == (FIELD, FIELD, 1):
        array = array[..., 0]
    if array.ndim != 3 or array.shape[1:] != (FIELD, FIELD):
        shown = " x ".join(str(n) for n in shape) or "a single number"
        raise ValueError(
            f"{where} holds an array of shape {shown}; images must be N x 28 x 28 or N x 784 "
            "(pictures of other sizes: put them in a zip of PNG files, which are resized)."
        )
    if len(array) > MAX_IMAGES:
        raise ValueError(f"{where} holds {len(array):,} images; the limit is {MAX_IMAGES:,}.")
    if array.dtype.kind in "US":
        raise ValueError(f"{where} holds text, not pixel values.")
    values = array  # floats stay in their own precision: a float64 copy of 60,000 images would be 376 MB
    notes = []
    if values.dtype.kind == "f":
        if not np.all(np.isfinite(values)):
            bad = int(np.sum(~np.isfinite(values)))
            raise ValueError(f"{where} has {bad:,} pixel values that are NaN or infinite.")
        low, high = (float(values.min(initial=np.inf)), float(values.max(initial=-np.inf)))
        if low < 0 or high > 255:
            raise ValueError(f"{where} has pixel values from {low:g} to {high:g}; use 0 to 1, or 0 to 255.")
        if high > 1:
            notes.append("values 0–255 read as grey levels")
        else:
            values = values * 255.0
        pixels = np.rint(values).astype(np.uint8)
    else:
        low, high = (int(values.min()), int(values.max())) if values.size else (0, 0)
        if low < 0 or high > 255:
            raise ValueError(f"{where} has pixel values from {low} to {high}; whole numbers must be 0 to 255.")
        pixels = values.astype(np.uint8) * (255 if values.dtype.kind == "b" else 1)
    return _Pixels(np.ascontiguousarray(pixels), tuple(notes))


def white_on_black(images: Images) -> Images:
    """White ink on black as MNIST: a set of arrays whose borders are mostly light is inverted whole."""
    every = images.pixels if images.test_pixels is None else np.concatenate([images.pixels, images.test_pixels])
    if not len(every) or np.median(_borders(every)) <= 127:
        return images
    test = None if images.test_pixels is None else 255 - images.test_pixels
    notes = (*images.notes, "inverted to white ink on black")
    return dataclasses.replace(images, pixels=255 - images.pixels, test_pixels=test, notes=notes)


def _borders(pixels: np.ndarray) -> np.ndarray:
    """The outermost pixels of every image: [N, 108]."""
    return np.concatenate([pixels[:, 0], pixels[:, -1], pixels[:, 1:-1, 0], pixels[:, 1:-1, -1]], axis=1)


def _check_label_shape(labels: np.ndarray, count: int, where: str) -> None:
    if labels.ndim == 0 or labels.ndim > 2 or (labels.ndim == 2 and labels.shape[1] < 1):
        raise ValueError(f"{where}: labels must be one per image (shape N, or N x classes one-hot), not "
                         f"{' x '.join(map(str, labels.shape)) or 'a single value'}.")  # fmt: skip
    if len(labels) != count:
        raise ValueError(f"{where} has {count:,} images but {len(labels):,} labels; each image needs one label.")


def _label_vector(labels: np.ndarray, where: str) -> np.ndarray:
    """Labels as a vector of values (numbers or text): one-hot rows become their column's index."""
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim == 2:
        if labels.dtype.kind not in "biuf" or not np.all((labels == 0) | (labels == 1)) \
                or not np.all(labels.sum(axis=1) == 1):  # fmt: skip
            raise ValueError(f"{where}: labels of shape N x {labels.shape[1]} must be one-hot (a single 1 a row).")
        return labels.argmax(axis=1).astype(np.int64)
    if labels.dtype.kind == "f":
        if not np.all(np.isfinite(labels)):
            raise ValueError(f"{where}: some labels are NaN or infinite.")
        if not np.all(labels == np.round(labels)):
            raise ValueError(f"{where}: labels are numbers with fractions; use whole numbers or names.")
        return labels.astype(np.int64)
    if labels.dtype.kind == "S":
        return np.char.decode(labels, "latin-1")
    return labels


def _with_labels(images: _Pixels, labels: np.ndarray | None, where: str, check_shape: bool = True) -> Images:
    """Images with their labels turned into 0..K-1 and names; no labels: one class."""
    if labels is None:
        out = Images(images.pixels, np.zeros(len(images.pixels), dtype=np.int64), ("image",), images.notes)
        return _checked_counts(out, where)
    if check_shape:
        _check_label_shape(labels, len(images.pixels), where)
    vector = _label_vector(labels, where)
    values, codes = np.unique(vector, return_inverse=True)
    if len(values) > MAX_CLASSES:
        raise ValueError(f"{where} has {len(values):,} different labels; the limit is {MAX_CLASSES}.")
    names = tuple(_display_name(str(value)) for value in values)
    if len(set(names)) < len(names) or "" in names:
        raise ValueError(f"{where}: some labels are empty or differ only in characters that cannot be shown.")
    return _checked_counts(Images(images.pixels, codes.astype(np.int64).ravel(), names, images.notes), where)


def _checked_counts(images: Images, where: str) -> Images:
    count = len(images.pixels) + (0 if images.test_pixels is None else len(images.test_pixels))
    if count < MIN_IMAGES:
        raise ValueError(f"{where} holds {count} image{'s' if count != 1 else ''}; at least {MIN_IMAGES} are needed.")
    if count > MAX_IMAGES + (0 if images.test_pixels is None else MAX_IMAGES // 6):
        raise ValueError(f"{where} holds {count:,} images; the limit is {MAX_IMAGES:,}.")
    if images.test_pixels is None:
        sizes = np.bincount(images.labels, minlength=len(images.class_names))
        small = [name for name, size in zip(images.class_names, sizes) if size < MIN_PER_CLASS]
        if small:
            raise ValueError(f"{where}: the label{'s' if len(small) > 1 else ''} {', '.join(small[:5])} "
                             f"{'have' if len(small) > 1 else 'has'} fewer than {MIN_PER_CLASS} images "
                             "(one to train on, one to test on).")  # fmt: skip
    return images


def _display_name(text: str) -> str:
    """A label or title as the page may show it: printable, trimmed, at most MAX_NAME characters."""
    shown = "".join(char for char in text if char.isprintable()).strip()
    return shown[:MAX_NAME]


# ---- zips, folders and pictures ----


def zip_members(name: str, raw: bytes, only: tuple[str, ...] = PICTURE_TYPES) -> list[tuple[str, bytes]]:
    """The files in a zip, read in memory with every cap checked; names, links and archives checked first."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(bytes(raw)))
        infos = archive.infolist()
    except _ZIP_ERRORS as error:
        raise ValueError(f"{name} is not a readable zip file: {error}") from None
    if len(infos) > MAX_ZIP_MEMBERS:
        raise ValueError(f"{name} holds {len(infos):,} files; the limit is {MAX_ZIP_MEMBERS:,}.")
    declared = sum(info.file_size for info in infos)
    if declared > MAX_UNCOMPRESSED:
        raise ValueError(f"{name} would unpack to {_mb(declared)} (a zip bomb?); "
                         f"the limit is {_mb(MAX_UNCOMPRESSED)}.")  # fmt: skip
    wanted = []
    for info in infos:
        member = info.filename
        _check_member_name(name, member)
        if (info.external_attr >> 16) and stat.S_ISLNK(info.external_attr >> 16):
            raise ValueError(f"{name}: {member} is a symbolic link; links are not followed. Put the file itself in.")
        if info.is_dir() or _JUNK.search(member):
            continue
        if info.flag_bits & 0x1:
            raise ValueError(f"{name}: {member} is encrypted; send a zip without a password.")
        if _suffix(member) in _ARCHIVES and _suffix(member) not in only:
            raise ValueError(f"{name}: {member} is an archive inside the archive; nested archives are not opened.")
        if _suffix(member) not in only:
            raise ValueError(f"{name}: {member} is not a {' or '.join(t.strip('.').upper() for t in only)} file.")
        if info.file_size > RATIO_FLOOR and info.file_size > MAX_RATIO * max(info.compress_size, 1):
            raise ValueError(f"{name}: {member} unpacks to {info.file_size / max(info.compress_size, 1):,.0f} times "
                             f"its packed size (a zip bomb?); the limit is {MAX_RATIO} times.")  # fmt: skip
        wanted.append(info)
    return _read_members(name, archive, wanted)


def _read_members(name: str, archive: zipfile.ZipFile, infos: list) -> list[tuple[str, bytes]]:
    """Each member's bytes, never more than the caps allow whatever its header claims."""
    members, total = [], 0
    for info in infos:
        limit = min(MAX_FILE_BYTES, MAX_UNCOMPRESSED - total)
        try:
            with archive.open(info) as handle:
                data = handle.read(limit + 1)
        except _ZIP_ERRORS + (bz2.__dict__.get("BZ2Error", OSError),) as error:
            raise ValueError(f"{name}: {info.filename} could not be unpacked: {error}") from None
        if len(data) > limit:
            raise ValueError(f"{name}: {info.filename} unpacks to more than {_mb(limit)} (a zip bomb?).")
        total += len(data)
        if len(data) > RATIO_FLOOR and len(data) > MAX_RATIO * max(info.compress_size, 1):
            raise ValueError(
                f"{name}: {info.filename} unpacks to over {MAX_RATIO} times its packed size (a zip bomb?)."
            )
        members.append((info.filename, data))
    return members


def _check_member_name(name: str, member: str) -> None:
    """Refuse names that would climb out of a folder, are absolute, or hide characters."""
    path = member.replace("\\", "/")
    parts = path.split("/")
    if path.startswith("/") or re.match(r"^[A-Za-z]:", path) or ".." in parts or "\x00" in path:
        raise ValueError(f"{name}: the file name {member!r} points outside the archive (path traversal); "
                         "the archive is refused.")  # fmt: skip
    if any(not char.isprintable() for char in path):
        raise ValueError(f"{name}: the file name {member!r} holds control characters; the archive is refused.")


def folder_members(folder: Path) -> list[tuple[str, bytes]]:
    """The files of a folder as a zip's members: relative names, links refused, the same caps."""
    members, total, count = [], 0, 0
    for root, dirs, files in os.walk(folder, followlinks=False):
        dirs.sort()
        for entry in sorted(dirs):
            if (Path(root) / entry).is_symlink():
                raise ValueError(
                    f"{folder}: {Path(root, entry).relative_to(folder)} is a link; links are not followed."
                )
        for entry in sorted(files):
            path = Path(root) / entry
            relative = path.relative_to(folder).as_posix()
            if _JUNK.search(relative):
                continue
            if path.is_symlink():
                raise ValueError(f"{folder}: {relative} is a link; links are not followed.")
            count += 1
            if count > MAX_ZIP_MEMBERS:
                raise ValueError(f"{folder} holds more than {MAX_ZIP_MEMBERS:,} files; that is the limit.")
            if _suffix(entry) not in PICTURE_TYPES:
                raise ValueError(f"{folder}: {relative} is not a PNG or JPEG file.")
            size = path.stat().st_size
            if size > MAX_PICTURE_BYTES or total + size > MAX_UNCOMPRESSED:
                raise ValueError(f"{folder}: {relative} makes the pictures larger than the limits "
                                 f"({_mb(MAX_PICTURE_BYTES)} a picture, {_mb(MAX_UNCOMPRESSED)} in all).")  # fmt: skip
            total += size
            members.append((relative, read_file(path)))
    return members


def picture_images(members: list[tuple[str, bytes]], where: str) -> Images:
    """Pictures as MNIST images; one folder per label (names from the folders), or no folders (one class)."""
    if not members:
        raise ValueError(f"{where} holds no PNG or JPEG pictures.")
    if len(members) > MAX_ZIP_MEMBERS:
        raise ValueError(f"{where}: {len(members):,} pictures is more than the limit of {MAX_ZIP_MEMBERS:,}.")
    folders = [_label_folder(member) for member, _ in members]
    while all(len(folder) >= 2 for folder in folders) and len({folder[0] for folder in folders}) == 1:
        folders = [folder[1:] for folder in folders]  # a zipped folder: "drawings/cat/1.png" is a cat
    depths = {len(folder) for folder in folders}
    if depths - {0, 1}:
        deep = next(member for member, folder in zip(members, folders) if len(folder) > 1)[0]
        raise ValueError(f"{where}: {deep} is in a folder inside a folder; use one folder per label, "
                         "pictures directly inside.")  # fmt: skip
    if depths == {0, 1}:
        loose = next(member for member, folder in zip(members, folders) if not folder)[0]
        raise ValueError(f"{where}: {loose} is in no folder while other pictures are: put every picture in "
                         "its label's folder, or none in folders.")  # fmt: skip
    total_pixels = 0
    pixels = []
    for member, data in members:
        total_pixels += _picture_pixels(member, data, where)
        if total_pixels > MAX_TOTAL_PIXELS:
            raise ValueError(f"{where}: the pictures hold more than {MAX_TOTAL_PIXELS:,} pixels together; "
                             "make them smaller (a few hundred pixels a side is plenty).")  # fmt: skip
        pixels.append(_prepared_picture(member, data, where))
    labels = np.array([folder[0] if folder else "" for folder in folders])
    stacked = _Pixels(np.stack(pixels), ())
    if depths == {0}:
        return _with_labels(stacked, None, where)
    return _with_labels(stacked, labels, where)


def _label_folder(member: str) -> tuple[str, ...]:
    return tuple(PurePosixPath(member.replace("\\", "/")).parts[:-1])


def _picture_pixels(member: str, data: bytes, where: str) -> int:
    """A picture's pixel count from its header (before decoding), within the cap."""
    if len(data) > MAX_PICTURE_BYTES:
        raise ValueError(f"{where}: {member} is larger than {_mb(MAX_PICTURE_BYTES)}.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as picture:
                width, height = picture.size
    except _PICTURE_ERRORS as error:
        raise ValueError(f"{where}: {member} is not a readable PNG or JPEG picture: {error}") from None
    if width * height > MAX_PICTURE_PIXELS:
        raise ValueError(f"{where}: {member} is {width:,} x {height:,} pixels; the limit is {MAX_PICTURE_PIXELS:,}.")
    return width * height


def _prepared_picture(member: str, data: bytes, where: str) -> np.ndarray:
    """One picture as uint8 [28, 28] white on black: 28 x 28 ones as they are (turned if dark on light),
    others as the Draw tab prepares an upload."""
    try:
        picture = read_image(data)
        if picture.shape[:2] == (FIELD, FIELD):
            prepared = ink(check_image_array(picture))
        else:
            prepared = photo_to_mnist(picture).digit
    except ValueError as error:
        raise ValueError(f"{where}: {member}: {error}") from None
    if not np.any(prepared > 0):
        raise ValueError(f"{where}: {member} looks blank: no ink was found on it.")
    return np.rint(np.clip(prepared, 0.0, 1.0) * 255).astype(np.uint8)


# ---- IDX files ----


def idx_images(files: list[tuple[str, bytes]]) -> Images:
    """An IDX pair (images, labels: told apart by their magic numbers), or IDX images alone."""
    from playground.data import parse_idx

    if len(files) > 2:
        raise ValueError(f"{', '.join(n for n, _ in files)}: send one IDX image file and its label file.")
    ranks = {}
    for name, raw in files:
        data = _gunzip(name, raw) if name.lower().endswith(".gz") else bytes(raw)
        magic = int.from_bytes(data[:4], "big") if len(data) >= 4 else 0
        rank = {2051: 3, 2049: 1}.get(magic)
        if rank is None:
            raise ValueError(f"{name} is not an IDX file of unsigned bytes (it starts with {magic:#010x}; "
                             "images start with 0x00000803, labels with 0x00000801).")  # fmt: skip
        if rank in ranks:
            raise ValueError(f"{files[0][0]} and {files[1][0]} are both IDX {'image' if rank == 3 else 'label'} files.")
        ranks[rank] = (name, parse_idx(data, rank, name, max_values=MAX_IMAGES * FIELD * FIELD))
    if 3 not in ranks:
        raise ValueError(f"{files[0][0]} holds labels; send the IDX image file with it.")
    name, array = ranks[3]
    if array.shape[1:] != (FIELD, FIELD):
        raise ValueError(f"{name} holds {array.shape[1]} x {array.shape[2]} images; IDX images must be 28 x 28.")
    labels = ranks[1][1] if 1 in ranks else None
    return _with_labels(_pixels(array, name), labels, ", ".join(n for n, _ in files))


def _gunzip(name: str, raw: bytes) -> bytes:
    """Gunzip in memory, at most MAX_FILE_BYTES out."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        data = inflater.decompress(bytes(raw), MAX_FILE_BYTES + 1)
    except zlib.error as error:
        raise ValueError(f"{name} is not a readable gzip file: {error}") from None
    if len(data) > MAX_FILE_BYTES:
        raise ValueError(f"{name} unpacks to more than {_mb(MAX_FILE_BYTES)} (a gzip bomb?).")
    if not inflater.eof:
        raise ValueError(f"{name} is truncated: the gzip stream ends early.")
    return data


# ---- the dataset: split, name, keep ----


def split(images: Images) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Train and test sets: TEST_FRACTION of each class held out (at least one), shuffled with a fixed seed."""
    if images.test_pixels is not None:
        return images.pixels, images.labels, images.test_pixels, images.test_labels
    rng = np.random.default_rng(SPLIT_SEED)
    order = rng.permutation(len(images.labels))
    test = np.zeros(len(images.labels), dtype=bool)
    for label in range(len(images.class_names)):
        members = order[images.labels[order] == label]
        test[members[: max(1, round(TEST_FRACTION * len(members)))]] = True
    train_order, test_order = order[~test[order]], order[test[order]]
    return images.pixels[train_order], images.labels[train_order], images.pixels[test_order], images.labels[test_order]


def make_dataset(images: Images, title: str, location: str) -> Dataset:
    """The split dataset, named by its contents (the same files always make the same name)."""
    x_train, y_train, x_test, y_test = split(images)
    if len(x_train) == 0 or len(x_test) == 0:
        raise ValueError(f"{location}: the train or the test split is empty; add more images.")
    digest = hashlib.sha256()
    for array in (x_train, y_train, x_test, y_test):
        digest.update(np.ascontiguousarray(array).tobytes())
    digest.update("\n".join(images.class_names).encode())
    title = _display_name(title) or "My images"
    notes = f" ({'; '.join(images.notes)})" if images.notes else ""
    return Dataset(
        name=UPLOAD_PREFIX + digest.hexdigest()[:16],
        x_train=x_train.astype(np.float32) / np.float32(255.0),
        y_train=y_train.astype(np.int64),
        x_test=x_test.astype(np.float32) / np.float32(255.0),
        y_test=y_test.astype(np.int64),
        source=f"{title} — your files {location}{notes}, {len(x_train):,} train / {len(x_test):,} test images",
        origin="upload",
        location=location,
        class_names=images.class_names,
        label=title,
        notes=images.notes,
    )


def _title_from(names: list[str]) -> str:
    stems = [_category_name(name) if _suffix(name) == ".npy" else PurePosixPath(name).stem for name in names]
    return ", ".join(stems) if len(stems) <= 3 else f"{stems[0]} and {len(stems) - 1} more"


def keep(dataset: Dataset, workspace: Path) -> Path:
    """Write the dataset into the workspace's ``datasets/`` folder: the arrays, then its description (atomically)."""
    folder = workspace / DATASETS_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    arrays = folder / f"{dataset.name}.npz"
    if not arrays.exists():
        _atomic(arrays, lambda handle: np.savez_compressed(
            handle, **{key: _to_bytes(getattr(dataset, key)) if key[0] == "x" else getattr(dataset, key)
                       for key in ("x_train", "y_train", "x_test", "y_test")}))  # fmt: skip
    about = {"title": dataset.label, "class_names": list(dataset.class_names), "location": dataset.location,
             "notes": list(dataset.notes), "source": dataset.source}  # fmt: skip
    _atomic(folder / f"{dataset.name}.json", lambda handle: handle.write(json.dumps(about, indent=2).encode()))
    for stale in list(kept(workspace))[MAX_KEPT:]:  # newest first: the one just kept stays
        for path in (folder / f"{stale}.json", folder / f"{stale}.npz"):
            path.unlink(missing_ok=True)
    return arrays


def _to_bytes(images: np.ndarray) -> np.ndarray:
    return np.rint(images * 255).astype(np.uint8)


def _atomic(path: Path, write) -> None:
    partial = path.with_name(f".{path.name}.partial")
    with open(partial, "wb") as handle:
        write(handle)
    os.replace(partial, path)


def kept(workspace: Path | None) -> dict[str, str]:
    """The datasets kept in a workspace, name -> title, newest first."""
    folder = None if workspace is None else workspace / DATASETS_FOLDER
    if folder is None or not folder.is_dir():
        return {}
    found = {}
    for about in sorted(folder.glob(f"{UPLOAD_PREFIX}*.json"), key=lambda p: p.stat().st_mtime, reverse=True):
        try:
            title = json.loads(about.read_text())["title"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if is_upload_name(about.stem) and (folder / f"{about.stem}.npz").is_file():
            found[about.stem] = _display_name(str(title)) or about.stem
    return found


def load_kept(workspace: Path | None, name: str) -> Dataset:
    """A dataset kept in the workspace (checked again as it is read)."""
    if workspace is None or not is_upload_name(name):
        raise ValueError(f"{name} is not a dataset of this workspace.")
    folder = workspace / DATASETS_FOLDER
    try:
        about = json.loads((folder / f"{name}.json").read_text())
        raw = read_file(folder / f"{name}.npz")
    except (OSError, ValueError) as error:
        raise ValueError(f"The uploaded dataset {name} is no longer kept in this workspace ({error}); "
                         "upload its files again.") from None  # fmt: skip
    arrays = {PurePosixPath(m).stem: npy_array(d, f"{name}: {m}")[0] for m, d in zip_members(name, raw, (".npy",))}
    try:
        pixels = {key: arrays[key] for key in ("x_train", "x_test")}
        labels = {key: arrays[key].astype(np.int64) for key in ("y_train", "y_test")}
        class_names = tuple(str(value) for value in about["class_names"])
        title, location = str(about["title"]), str(about["location"])
        notes = tuple(str(note) for note in about.get("notes", ()))
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"The kept dataset {name} is damaged ({error}); upload its files again.") from None
    images = Images(pixels["x_train"], labels["y_train"], class_names, notes, pixels["x_test"], labels["y_test"])
    dataset = make_dataset(images, title, location)
    if dataset.name != name:
        raise ValueError(f"The kept dataset {name} does not match its name (damaged?); upload its files again.")
    return dataset


def cli_source(dataset: Dataset) -> str:
    """The ``--source`` that reads an upload's files again from the terminal (run where the files are)."""
    names = [name.strip() for name in dataset.location.split(",") if name.strip()]
    kinds = {_kind_quietly(name) for name in names}
    if kinds == {"npy"} and len(names) > 1:
        return "quickdraw:" + ",".join(names)
    prefix = {"npz": "npz", "npy": "npz", "zip": "images", "idx": "idx"}.get(kinds.pop() if len(kinds) == 1 else "")
    return f"{prefix}:{','.join(names)}" if prefix else "images:YOUR_PICTURES_FOLDER"


def _kind_quietly(name: str) -> str:
    try:
        return _kind(name)
    except ValueError:
        return ""


def _suffix(name: str) -> str:
    return PurePosixPath(name.replace("\\", "/")).suffix.lower()


def _check_file_size(name: str, size: int) -> None:
    if size == 0:
        raise ValueError(f"{name} is empty.")
    if size > MAX_FILE_BYTES:
        raise ValueError(f"{name} is {_mb(size)}; the limit is {_mb(MAX_FILE_BYTES)} a file.")


def _mb(size: int) -> str:
    """A size in MB as people read it: 200 MB, 1.5 MB, 0.01 MB."""
    megabytes = size / 2**20
    return f"{megabytes:,.0f} MB" if megabytes >= 10 else f"{megabytes:.2g} MB"
