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

from playground.imaging import MAX_PIXELS, is_blank, read_image, tile, to_display, to_mnist


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
