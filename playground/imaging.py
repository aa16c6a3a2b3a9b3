"""Pictures in and out: read untrusted image files, turn drawings into MNIST-style inputs, tile digits.

``to_mnist`` prepares an image the way MNIST's digits were prepared: the ink's
bounding box is scaled to fit 20 x 20 keeping its aspect ratio, placed in a
28 x 28 field, and shifted so that its centre of mass sits at the centre.
``photo_to_mnist`` first separates the ink of a photographed digit from its paper
(shading, noise, either polarity) and says when the picture does not look like one
digit. Nothing here knows about models or the UI.
"""

from __future__ import annotations

import io
import warnings
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from scipy import ndimage

MAX_PIXELS = 25_000_000  # a 5000 x 5000 photo; larger files are refused from the header
MAX_FILE_BYTES = 20 * 1024 * 1024
DIGIT_BOX = 20  # MNIST fits each digit's bounding box into 20 x 20 ...
FIELD = 28  # ... inside a 28 x 28 image
INK_THRESHOLD = 0.1  # below this (of full scale) a pixel is background
_READ_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError)


def read_image(data: bytes) -> np.ndarray:
    """Decode an image file's bytes to uint8 [H, W] (grey), [H, W, 3] (RGB) or [H, W, 4] (RGBA).

    Refuses, with a ValueError saying why, anything that is not a readable image
    or whose header announces more than ``MAX_PIXELS`` pixels (checked before
    any pixel is decoded, so a small file that would decode to a huge image is
    refused at once).
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ValueError(f"An image file's contents are bytes, not {type(data).__name__}.")
    if len(data) == 0:
        raise ValueError("The file is empty.")
    if len(data) > MAX_FILE_BYTES:
        raise ValueError(f"The file is larger than {MAX_FILE_BYTES // 2**20} MB; please use a smaller image.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(bytes(data))) as image:
                _check_size(image.size)
                image.seek(0)  # the first frame of an animation
                image.load()
                return _to_array(ImageOps.exif_transpose(image))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ValueError(f"The image is too large (over {MAX_PIXELS:,} pixels).") from None
    except _ImageTooLarge as error:
        raise ValueError(str(error)) from None
    except _READ_ERRORS as error:
        raise ValueError(f"This is not an image that can be read (PNG, JPEG, GIF, BMP…): {error}") from None


class _ImageTooLarge(Exception):
    pass


def _check_size(size: tuple[int, int]) -> None:
    width, height = size
    if width < 1 or height < 1:
        raise _ImageTooLarge("The image has no pixels.")
    if width * height > MAX_PIXELS:
        raise _ImageTooLarge(f"The image is too large ({width:,} x {height:,} pixels; the limit is {MAX_PIXELS:,}).")


def _to_array(image: Image.Image) -> np.ndarray:
    """Any Pillow mode as 8-bit grey, RGB or RGBA."""
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or values.max(initial=0) > 255 else 255.0
        return np.clip(values / top * 255.0, 0, 255).astype(np.uint8)
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif mode in ("LA", "PA", "RGBa", "La"):
        image = image.convert("RGBA")
    elif mode not in ("L", "RGB", "RGBA"):
        image = image.convert("RGB")  # 1, CMYK, YCbCr, LAB, HSV
    return np.asarray(image, dtype=np.uint8).copy()


def check_image_array(image) -> np.ndarray:
    """``image`` as float64 [H, W, C] (C in 1, 3, 4) in [0, 1], or a ValueError if it is not an image."""
    if image is None:
        raise ValueError("There is no image.")
    try:
        array = np.asarray(image)
    except (TypeError, ValueError) as error:
        raise ValueError(f"This is not an image array: {error}") from None
    if array.dtype.kind not in "buif":
        raise ValueError(f"An image holds numbers, not {array.dtype} values.")
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4):
        raise ValueError(f"An image is [height, width] or [height, width, 1/3/4 channels], not {array.shape}.")
    if array.shape[0] < 1 or array.shape[1] < 1:
        raise ValueError("The image has no pixels.")
    if array.shape[0] * array.shape[1] > MAX_PIXELS:
        raise ValueError(f"The image is too large (over {MAX_PIXELS:,} pixels).")
    values = array.astype(np.float64)
    if not np.isfinite(values).all():
        raise ValueError("The image has pixels that are not finite numbers.")
    if values.min() < 0:
        raise ValueError("The image has negative pixel values.")
    scale = 1.0 if array.dtype.kind == "b" or values.max() <= 1.0 else (65535.0 if values.max() > 255 else 255.0)
    return np.clip(values / scale, 0.0, 1.0)


def ink(image) -> np.ndarray:
    """Where the ink is: [H, W] in [0, 1], 1 for full ink, whatever the colours of ink and paper."""
    values = check_image_array(image)
    if values.shape[2] == 4 and values[:, :, 3].min() < values[:, :, 3].max():
        return values[:, :, 3]  # a transparent background: the opaque strokes are the ink
    grey = values[:, :, 0] if values.shape[2] in (1, 2) else values[:, :, :3] @ np.array([0.299, 0.587, 0.114])
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    paper = float(np.median(border))
    if paper > 0.5:  # dark ink on light paper: turn it round, as MNIST is light on dark
        grey, paper = 1.0 - grey, 1.0 - paper
    return np.clip((grey - paper) / max(1.0 - paper, 1e-6), 0.0, 1.0)


def to_mnist(image) -> np.ndarray:
    """An image of a digit as an MNIST input: float32 [28, 28] in [0, 1]; zeros if it is blank."""
    strokes = ink(image)
    if strokes.max() < INK_THRESHOLD:
        return np.zeros((FIELD, FIELD), dtype=np.float32)
    rows = np.flatnonzero(strokes.max(axis=1) >= INK_THRESHOLD)
    cols = np.flatnonzero(strokes.max(axis=0) >= INK_THRESHOLD)
    digit = strokes[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    boxed = _fit_box(digit, DIGIT_BOX)
    field = np.zeros((FIELD, FIELD))
    top, left = (FIELD - boxed.shape[0]) // 2, (FIELD - boxed.shape[1]) // 2
    field[top : top + boxed.shape[0], left : left + boxed.shape[1]] = boxed
    field = _centre_of_mass_to_middle(field)
    return (field / field.max()).astype(np.float32)


# Photos: what ``separate_ink`` looks at, and when it warns.
PHOTO_SIDE = 256  # photos are read at most this large: plenty for a 20 x 20 digit, and fast
MIN_CONTRAST = 0.08  # grey levels spread less than this (1st to 99th percentile): no ink to find
SPECK_FRACTION = 0.02  # ink components smaller than this share of the largest are noise
LARGE_FRACTION = 0.35  # components at least this share of the largest count as another mark
SIDE_INK = 0.05  # a side of the picture with ink on this share of its pixels is touched by the ink ...
SIDES_TOUCHED = 3  # ... and ink touching this many sides runs off the picture: not a digit on its paper
PHOTO_PROBLEMS = ("several_marks", "ink_on_border", "low_contrast")


class SeparatedInk(NamedTuple):
    """A photo's ink, apart from its paper."""

    ink: np.ndarray  # [h, w] float64 in [0, 1], 1 for full ink, 0 for paper (at most PHOTO_SIDE a side)
    problems: tuple[str, ...]  # from PHOTO_PROBLEMS: why this may not be one digit


class PreparedPhoto(NamedTuple):
    """An uploaded picture as an MNIST input."""

    digit: np.ndarray  # [28, 28] float32 in [0, 1]; zeros if no ink was found
    problems: tuple[str, ...]  # from PHOTO_PROBLEMS


def otsu_threshold(grey: np.ndarray, bins: int = 256) -> float:
    """The grey level in [0, 1] that best splits ``grey`` in two classes (Otsu: most variance between them)."""
    counts, edges = np.histogram(grey, bins=bins, range=(0.0, 1.0))
    centres = (edges[:-1] + edges[1:]) / 2
    weight_low = np.cumsum(counts)  # pixels at or below each bin
    weight_high = weight_low[-1] - weight_low
    mass_low = np.cumsum(counts * centres)
    mean_low = mass_low / np.maximum(weight_low, 1)
    mean_high = (mass_low[-1] - mass_low) / np.maximum(weight_high, 1)
    between = weight_low * weight_high * (mean_low - mean_high) ** 2
    return float(edges[int(np.argmax(between)) + 1])


def separate_ink(image) -> SeparatedInk:
    """Ink apart from paper in a photo or scan of a digit: either polarity, shaded paper, noise.

    The picture is shrunk to at most ``PHOTO_SIDE`` pixels a side and median-filtered
    (noise); the paper is the side of an Otsu threshold the border lies on (polarity);
    a smooth surface fitted to the paper is subtracted (shading) and a second Otsu
    threshold keeps the ink; specks are dropped. The problems say when the result does
    not look like one digit.
    """
    grey = _shrink(_grey_ink_any_polarity(check_image_array(image)))
    if min(grey.shape) >= 64:
        grey = ndimage.median_filter(grey, size=3)
    low, high = np.percentile(grey, [1, 99])
    if high - low < MIN_CONTRAST:
        return SeparatedInk(np.zeros_like(grey), ("low_contrast",))
    grey = np.clip((grey - low) / (high - low), 0.0, 1.0)
    threshold = otsu_threshold(grey)
    if np.median(_border(grey)) > threshold:  # light paper, dark ink: turn it round, as MNIST is light on dark
        grey, threshold = 1.0 - grey, 1.0 - threshold
    flat = grey - _paper_surface(grey, grey < threshold)
    flat = np.clip(flat - np.median(flat), 0.0, None)
    threshold = otsu_threshold(np.clip(flat / max(flat.max(), 1e-9), 0, 1)) * flat.max()
    mask = _without_specks(flat > threshold)
    if not mask.any():
        return SeparatedInk(np.zeros_like(grey), ())
    full = np.percentile(flat[mask], 90)
    ink = np.where(mask, np.clip(flat / max(full, 1e-9), 0.0, 1.0), 0.0)
    return SeparatedInk(ink, _problems(mask))


def photo_to_mnist(image) -> PreparedPhoto:
    """An uploaded picture of a digit (a photo, a scan, a drawing) as an MNIST input, with its problems."""
    separated = separate_ink(image)
    return PreparedPhoto(to_mnist(separated.ink), separated.problems)


def _grey_ink_any_polarity(values: np.ndarray) -> np.ndarray:
    """[H, W] grey levels in [0, 1]; a transparent background's alpha (opaque strokes as ink) if it has one."""
    if values.shape[2] == 4 and values[:, :, 3].min() < values[:, :, 3].max():
        return values[:, :, 3]
    return values[:, :, 0] if values.shape[2] == 1 else values[:, :, :3] @ np.array([0.299, 0.587, 0.114])


def _shrink(grey: np.ndarray) -> np.ndarray:
    """At most PHOTO_SIDE pixels a side (each new pixel the mean of the old ones it covers)."""
    height, width = grey.shape
    scale = PHOTO_SIDE / max(height, width)
    if scale >= 1:
        return grey
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    shrunk = Image.fromarray(grey.astype(np.float32), mode="F").resize(size, Image.Resampling.BOX)
    return np.asarray(shrunk, dtype=np.float64)


def _border(image: np.ndarray) -> np.ndarray:
    return np.concatenate([image[0], image[-1], image[1:-1, 0], image[1:-1, -1]])


def _paper_surface(grey: np.ndarray, paper: np.ndarray) -> np.ndarray:
    """The least-squares quadratic surface through the paper's pixels: the shading to take away."""
    rows, cols = np.indices(grey.shape, dtype=np.float64)
    rows, cols = rows / grey.shape[0] - 0.5, cols / grey.shape[1] - 0.5
    terms = np.stack([np.ones_like(rows), rows, cols, rows * rows, rows * cols, cols * cols], axis=-1)
    if paper.sum() < terms.shape[-1] * 4:
        return np.full_like(grey, np.median(grey))
    coefficients, *_ = np.linalg.lstsq(terms[paper], grey[paper], rcond=None)
    return terms @ coefficients


def _without_specks(mask: np.ndarray) -> np.ndarray:
    """``mask`` less its connected pieces smaller than SPECK_FRACTION of the largest."""
    labels, count = ndimage.label(mask, structure=np.ones((3, 3)))
    if count == 0:
        return mask
    areas = np.bincount(labels.ravel())[1:]
    keep = np.flatnonzero(areas >= SPECK_FRACTION * areas.max()) + 1
    return np.isin(labels, keep)


def _problems(mask: np.ndarray) -> tuple[str, ...]:
    """Why the ink in ``mask`` may not be one digit on a sheet of paper."""
    problems = []
    labels, count = ndimage.label(mask, structure=np.ones((3, 3)))
    areas = np.bincount(labels.ravel())[1:]
    if np.sum(areas >= LARGE_FRACTION * areas.max()) >= 2:
        problems.append("several_marks")
    sides = (mask[0], mask[-1], mask[:, 0], mask[:, -1])
    if sum(side.mean() >= SIDE_INK for side in sides) >= SIDES_TOUCHED:
        problems.append("ink_on_border")
    return tuple(problems)


def is_blank(digit: np.ndarray) -> bool:
    return not np.any(digit > 0)


def _fit_box(digit: np.ndarray, box: int) -> np.ndarray:
    """Scale so that the longer side is ``box`` pixels, keeping the aspect ratio (anti-aliased)."""
    height, width = digit.shape
    scale = box / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    resized = Image.fromarray(digit.astype(np.float32), mode="F").resize(size, Image.Resampling.LANCZOS)
    return np.clip(np.asarray(resized, dtype=np.float64), 0.0, None)


def _centre_of_mass_to_middle(field: np.ndarray) -> np.ndarray:
    """Shift by whole pixels so that the ink's centre of mass is at the field's centre."""
    total = field.sum()
    rows, cols = np.indices(field.shape)
    shift_r = round((field.shape[0] - 1) / 2 - (rows * field).sum() / total)
    shift_c = round((field.shape[1] - 1) / 2 - (cols * field).sum() / total)
    shifted = np.zeros_like(field)
    src_r, dst_r = _ranges(field.shape[0], shift_r)
    src_c, dst_c = _ranges(field.shape[1], shift_c)
    shifted[dst_r, dst_c] = field[src_r, src_c]
    return shifted


def _ranges(size: int, shift: int) -> tuple[slice, slice]:
    """Source and destination slices of a shift by ``shift`` pixels along an axis of ``size``."""
    if shift >= 0:
        return slice(0, size - shift), slice(shift, size)
    return slice(-shift, size), slice(0, size + shift)


def tile(images: np.ndarray, columns: int, gap: int = 2) -> np.ndarray:
    """Lay out [N, 28, 28] images in rows of ``columns`` with ``gap`` pixels between: [H, W] in [0, 1]."""
    images = np.asarray(images, dtype=np.float32).reshape(-1, FIELD, FIELD)
    count = len(images)
    rows = max(1, -(-count // columns))
    sheet = np.full((rows * (FIELD + gap) - gap, columns * (FIELD + gap) - gap), 0.25, dtype=np.float32)
    for index, image in enumerate(images):
        r, c = divmod(index, columns)
        sheet[r * (FIELD + gap) : r * (FIELD + gap) + FIELD, c * (FIELD + gap) : c * (FIELD + gap) + FIELD] = image
    return sheet


def to_display(image: np.ndarray, scale: int = 4) -> np.ndarray:
    """A [0, 1] grey image as uint8, enlarged ``scale`` times with crisp square pixels."""
    pixels = (np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0) * 255).round().astype(np.uint8)
    return np.repeat(np.repeat(pixels, scale, axis=0), scale, axis=1)
