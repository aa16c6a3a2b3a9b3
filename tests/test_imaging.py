"""Untrusted pictures in: file decoding, drawings to MNIST inputs, and fuzzing of both."""

from __future__ import annotations

import io
import struct
import time
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from playground.imaging import (
    MAX_PIXELS,
    PHOTO_PROBLEMS,
    is_blank,
    otsu_threshold,
    photo_to_mnist,
    read_image,
    tile,
    to_display,
    to_mnist,
)


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


@pytest.fixture
def digit(mnist) -> np.ndarray:
    return mnist.x_test[3]


def test_an_mnist_digit_drawn_large_comes_back_as_itself(digit):
    """The canvas returns a 280 x 280 RGBA drawing; an MNIST digit scaled up must survive the round trip."""
    canvas = np.zeros((280, 280, 4), dtype=np.uint8)
    canvas[..., :3] = (np.kron(digit, np.ones((10, 10)))[..., None] * 255).astype(np.uint8)
    canvas[..., 3] = 255
    back = to_mnist(canvas)
    assert back.shape == (28, 28) and back.dtype == np.float32
    assert np.corrcoef(back.ravel(), digit.ravel())[0, 1] > 0.9


def test_to_mnist_fits_the_ink_in_20_by_20_and_centres_its_mass():
    image = np.zeros((300, 500))
    image[40:100, 100:400] = 1.0  # a wide bar in a corner: 60 x 300
    out = to_mnist(image)
    rows, cols = np.nonzero(out > 0.1)
    assert cols.max() - cols.min() + 1 == 20  # the long side becomes 20 pixels
    assert 3 <= rows.max() - rows.min() + 1 <= 5  # the aspect ratio is kept (300:60 -> 20:4)
    r, c = np.indices(out.shape)
    assert (r * out).sum() / out.sum() == pytest.approx(13.5, abs=0.6)
    assert (c * out).sum() / out.sum() == pytest.approx(13.5, abs=0.6)
    assert out.max() == pytest.approx(1.0)


def test_dark_ink_on_light_paper_is_turned_round(digit):
    paper = (255 - digit * 255).astype(np.uint8)  # black ink on white, like a photo of paper
    light = to_mnist(np.kron(digit, np.ones((4, 4))))
    dark = to_mnist(np.kron(paper, np.ones((4, 4))))
    assert np.corrcoef(light.ravel(), dark.ravel())[0, 1] > 0.95


def test_a_transparent_background_uses_the_strokes_alpha(digit):
    rgba = np.zeros((28, 28, 4), dtype=np.uint8)
    rgba[..., 3] = (digit * 255).astype(np.uint8)  # black strokes, transparent paper
    assert np.corrcoef(to_mnist(rgba).ravel(), digit.ravel())[0, 1] > 0.9


BLANKS = [np.zeros((280, 280, 4), np.uint8), np.full((50, 50), 255, np.uint8), np.ones((9, 9))]


@pytest.mark.parametrize("blank", BLANKS)
def test_a_blank_image_gives_zeros(blank):
    out = to_mnist(blank)
    assert is_blank(out) and out.shape == (28, 28)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (None, "no image"),
        (np.zeros((0, 5)), "no pixels"),
        (np.zeros(10), "height, width"),
        (np.zeros((2, 2, 2, 2)), "height, width"),
        (np.zeros((5, 5, 7)), "height, width"),
        (np.array([[np.nan, 1.0]]), "not finite"),
        (np.array([["a", "b"]]), "numbers"),
        (np.array([[object(), None]], dtype=object), "numbers"),
        ("a digit", "numbers"),
        (np.full((3, 3), -5.0), "negative"),
    ],
)
def test_to_mnist_refuses_what_is_not_an_image(bad, message):
    with pytest.raises(ValueError, match=message):
        to_mnist(bad)


@pytest.mark.parametrize(
    ("mode", "fmt"),
    [("L", "PNG"), ("RGB", "JPEG"), ("P", "GIF"), ("RGB", "BMP"), ("RGBA", "PNG"), ("I;16", "PNG"), ("CMYK", "JPEG"),
     ("LA", "PNG"), ("1", "PNG"), ("RGB", "WEBP"), ("RGB", "TIFF")],
)  # fmt: skip
def test_common_image_files_are_read(digit, mode, fmt):
    grey = Image.fromarray((digit * 255).astype(np.uint8)).resize((112, 112))
    if mode == "I;16":
        source = Image.fromarray((np.asarray(grey, dtype=np.uint16) * 257).astype(np.uint16))
    else:
        source = grey.convert(mode)
    array = read_image(encode(source, fmt))
    assert array.dtype == np.uint8 and array.shape[:2] == (112, 112)
    out = to_mnist(array)
    assert np.corrcoef(out.ravel(), digit.ravel())[0, 1] > 0.8


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"hello, I am not a picture", "not an image"),
        (bytes(range(256)) * 10, "not an image"),
        ("a string", "bytes"),
    ],
)
def test_read_image_refuses_what_is_not_an_image_file(data, message):
    with pytest.raises(ValueError, match=message):
        read_image(data)


def test_a_truncated_file_is_refused(digit):
    png = encode(Image.fromarray((digit * 255).astype(np.uint8)), "PNG")
    with pytest.raises(ValueError, match="not an image"):
        read_image(png[: len(png) // 2])


def png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` pixels."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    pixels = chunk(b"IDAT", zlib.compress(b"\x00" * 64))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + pixels + chunk(b"IEND", b"")


def test_a_small_file_claiming_a_huge_image_is_refused_from_its_header_at_once():
    bomb = png_header_only(60_000, 60_000)
    assert len(bomb) < 200
    started = time.monotonic()
    with pytest.raises(ValueError, match="too large"):
        read_image(bomb)
    assert time.monotonic() - started < 1.0


def test_the_pixel_limit_is_just_above_a_large_photo():
    with pytest.raises(ValueError, match="too large"):
        read_image(png_header_only(MAX_PIXELS // 1000 + 1, 1000))


def test_tile_and_display_shapes():
    sheet = tile(np.zeros((5, 28, 28)), columns=3, gap=2)
    assert sheet.shape == (2 * 28 + 2, 3 * 28 + 4)
    shown = to_display(np.ones((28, 28)), scale=4)
    assert shown.shape == (112, 112) and shown.dtype == np.uint8 and shown.max() == 255


images = st.one_of(
    hnp.arrays(np.uint8, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=64)),
    hnp.arrays(np.uint8, st.tuples(st.integers(1, 48), st.integers(1, 48), st.sampled_from([1, 3, 4]))),
    hnp.arrays(np.float32, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=48),
               elements=st.floats(0, 1, width=32)),
)  # fmt: skip


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(images)
def test_fuzz_to_mnist_returns_a_valid_input_for_any_image(image):
    out = to_mnist(image)
    assert out.shape == (28, 28) and out.dtype == np.float32
    assert np.isfinite(out).all() and out.min() >= 0.0 and out.max() <= 1.0
    assert is_blank(out) or out.max() == pytest.approx(1.0)


SMALL_ARRAYS = hnp.arrays(np.float64, st.integers(0, 4).map(lambda n: (2,) * n))  # ranks 0 to 4
ANYTHING = st.one_of(SMALL_ARRAYS, st.none(), st.text(), st.integers())


@settings(max_examples=200, deadline=None)
@given(ANYTHING)
def test_fuzz_to_mnist_either_works_or_says_why(value):
    try:
        out = to_mnist(value)
    except ValueError as error:
        assert str(error)
    else:
        assert out.shape == (28, 28)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048))
def test_fuzz_read_image_never_fails_other_than_with_a_value_error(data):
    try:
        array = read_image(data)
    except ValueError as error:
        assert str(error)
    else:
        assert array.dtype == np.uint8 and array.ndim in (2, 3)


@settings(max_examples=150, deadline=None)
@given(st.binary(min_size=1, max_size=64), st.integers(0, 600))
def test_fuzz_read_image_on_damaged_real_files(noise, cut):
    base = encode(Image.fromarray(np.eye(24, dtype=np.uint8) * 255), "PNG")
    damaged = base[:cut] + noise + base[cut + len(noise) :]
    try:
        read_image(damaged)
    except ValueError as error:
        assert str(error)


def photo_of(digit: np.ndarray, seed: int, size: int = 500, box: tuple[int, int, int] = (90, 120, 300)) -> np.ndarray:
    """``digit`` written dark on cream paper, shaded from light (top left) to dim (bottom right), with
    sensor noise: uint8 RGB [size, size, 3]. ``box`` is (top, left, side) of the digit's 28 x 28 field."""
    rng = np.random.default_rng(seed)
    top, left, side = box
    big = np.asarray(Image.fromarray((digit * 255).astype(np.uint8)).resize((side, side), Image.Resampling.BILINEAR))
    ink = np.zeros((size + 2 * side, size + 2 * side))
    ink[side + top : 2 * side + top, side + left : 2 * side + left] = big / 255.0
    ink = ink[side : side + size, side : side + size]  # a box that runs off the picture is cut
    rows, cols = np.indices((size, size)) / size
    paper = 0.95 - 0.4 * (0.6 * rows + 0.4 * cols)  # 0.95 down to 0.55: the dim corner is darker than mid-grey
    grey = paper * (1 - 0.85 * ink) + rng.normal(0, 0.04, (size, size))
    return (np.clip(grey[..., None] * np.array([1.0, 0.95, 0.85]), 0, 1) * 255).astype(np.uint8)


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])


def test_a_photo_of_a_digit_on_shaded_paper_is_read_as_the_digit(mnist):
    """Metric: Pearson correlation over the 784 pixels between the photo's 28 x 28 input and the same
    digit's own MNIST preparation (``to_mnist`` of the clean digit), and their mean absolute difference."""
    digits = mnist.x_test[:10]
    photos = [photo_of(digit, seed) for seed, digit in enumerate(digits)]
    assert photos[0].shape == (500, 500, 3) and photos[0].dtype == np.uint8
    prepared = [photo_to_mnist(photo) for photo in photos]
    references = [to_mnist(digit) for digit in digits]
    scores = [correlation(p.digit, ref) for p, ref in zip(prepared, references)]
    errors = [float(np.abs(p.digit - ref).mean()) for p, ref in zip(prepared, references)]
    assert min(scores) > 0.8 and np.median(scores) > 0.93, scores
    assert max(errors) < 0.06, errors
    assert all(p.problems == () for p in prepared), [p.problems for p in prepared]
    naive = [correlation(to_mnist(photo), ref) for photo, ref in zip(photos, references)]
    assert np.median(naive) < 0.5, "to_mnist alone reads the shaded paper as ink (what the photo path fixes)"


def test_a_photo_is_reconstructed_as_closely_as_the_digit_itself(mnist):
    """The model's reconstruction of the photo's input against its reconstruction of the clean digit."""
    from playground.config import Settings
    from playground.inference import Inference
    from playground.training import Trainer

    trainer = Trainer(Settings(loss="elbo", latent_dim=8, intermediate_dim=128, epochs=3), mnist, jit_compile=False)
    trainer.run()
    model = Inference(trainer.settings)
    model.sync(*trainer.weights())
    digits = mnist.x_test[:10]
    clean = model.reconstruct(np.stack([to_mnist(digit) for digit in digits]))
    from_photo = model.reconstruct(np.stack([photo_to_mnist(photo_of(d, s)).digit for s, d in enumerate(digits)]))
    naive = model.reconstruct(np.stack([to_mnist(photo_of(d, s)) for s, d in enumerate(digits)]))
    close = [correlation(a, b) for a, b in zip(from_photo, clean)]
    assert np.median(close) > 0.9 and min(close) > 0.7, close
    assert np.abs(from_photo - clean).mean() < 0.05
    assert np.median([correlation(a, b) for a, b in zip(naive, clean)]) < np.median(close) - 0.2


def test_a_drawing_on_the_canvas_reads_the_same_through_the_photo_path(digit):
    canvas = np.zeros((280, 280, 4), dtype=np.uint8)
    canvas[..., :3] = (np.kron(digit, np.ones((10, 10)))[..., None] * 255).astype(np.uint8)
    canvas[..., 3] = 255
    assert correlation(photo_to_mnist(canvas).digit, to_mnist(canvas)) > 0.95


def test_two_digits_in_one_picture_are_flagged(mnist):
    pair = np.concatenate([mnist.x_test[0], mnist.x_test[1]], axis=1)  # [28, 56]: a 7 and a 2 side by side
    assert "several_marks" in photo_to_mnist(photo_of(pair, 0, box=(100, 20, 460))).problems


def test_ink_running_off_the_picture_is_flagged(mnist):
    zero = mnist.x_test[int(np.flatnonzero(mnist.y_test == 0)[0])]
    assert "ink_on_border" in photo_to_mnist(photo_of(zero, 0, box=(-150, -150, 800))).problems


@pytest.mark.parametrize(
    "flat", [np.full((200, 200), 128, np.uint8), np.random.default_rng(0).normal(0.5, 0.01, (300, 300))]
)
def test_a_picture_without_contrast_is_flagged_and_gives_no_digit(flat):
    prepared = photo_to_mnist(flat)
    assert prepared.problems == ("low_contrast",) and is_blank(prepared.digit)


def test_otsu_splits_two_grey_levels_between_them(rng):
    grey = np.concatenate([rng.normal(0.2, 0.03, 5000), rng.normal(0.7, 0.05, 2000)]).clip(0, 1)
    assert 0.3 < otsu_threshold(grey) < 0.6


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(images)
def test_fuzz_photo_to_mnist_returns_a_valid_input_for_any_image(image):
    prepared = photo_to_mnist(image)
    assert prepared.digit.shape == (28, 28) and prepared.digit.dtype == np.float32
    assert np.isfinite(prepared.digit).all() and 0.0 <= prepared.digit.min() <= prepared.digit.max() <= 1.0
    assert set(prepared.problems) <= set(PHOTO_PROBLEMS)
