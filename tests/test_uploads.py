"""Your own images: every format read against the arrays the test wrote, every bad file refused with a sentence
naming it, the loaders fuzzed, and every format trained from the CLI."""

from __future__ import annotations

import gzip
import io
import json
import stat
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from playground import uploads
from playground.data import is_upload_name, load_dataset
from playground.imaging import photo_to_mnist, read_image
from playground.uploads import load_files

# ---- files the tests write ----


def digits(rng, count=40, classes=4) -> tuple[np.ndarray, np.ndarray]:
    """``count`` white-on-black uint8 [28, 28] blobs (dark borders) and labels cycling through ``classes``."""
    images = np.zeros((count, 28, 28), dtype=np.uint8)
    images[:, 6:22, 6:22] = rng.integers(60, 256, (count, 16, 16))
    return images, np.arange(count) % classes


def npz(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def npy(array) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array), allow_pickle=True)
    return buffer.getvalue()


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def drawing(seed: int, size=(90, 70)) -> np.ndarray:
    """Dark ink on white paper, as a student draws: an ellipse and a stroke, uint8 [H, W]."""
    picture = Image.new("L", size, 255)
    pen = ImageDraw.Draw(picture)
    pen.ellipse((15 + seed % 7, 12, 55, 60 + seed % 5), outline=0, width=5)
    pen.line((20, 20 + seed % 9, 60, 65), fill=0, width=4)
    return np.asarray(picture)


def zipped(members: dict[str, bytes], method=zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def idx(array: np.ndarray) -> bytes:
    magic = 2051 if array.ndim == 3 else 2049
    header = magic.to_bytes(4, "big") + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return header + np.asarray(array, dtype=np.uint8).tobytes()


def picture_zip(labels=("cat", "dog"), per_label=6, wrapper="my drawings/") -> tuple[bytes, dict[str, np.ndarray]]:
    pictures = {
        f"{wrapper}{label}/{i}.png": drawing(i + 10 * n) for n, label in enumerate(labels) for i in range(per_label)
    }
    return zipped({name: png(array) for name, array in pictures.items()}), pictures


def as_set(images: np.ndarray) -> list[bytes]:
    return sorted(np.rint(image * 255).astype(np.uint8).tobytes() for image in images)


# ---- every format, against what was written ----


def test_npz_x_y_uint8_keeps_every_image_and_label_once_split_by_class_with_a_fixed_seed(rng):
    images, labels = digits(rng, 60, 3)
    dataset = load_files([("mine.npz", npz(x=images, y=labels))])
    assert is_upload_name(dataset.name) and dataset.origin == "upload" and dataset.title == "mine"
    assert dataset.class_names == ("0", "1", "2")
    both = np.concatenate([dataset.x_train, dataset.x_test])
    assert as_set(both) == sorted(image.tobytes() for image in images)  # nothing lost, nothing twice
    assert np.bincount(dataset.y_test).tolist() == [3, 3, 3]  # 15% of each label's 20
    for image, label in zip(
        np.concatenate([dataset.x_train, dataset.x_test]), np.concatenate([dataset.y_train, dataset.y_test])
    ):
        match = next(i for i in range(60) if np.array_equal(np.rint(image * 255), images[i]))
        assert labels[match] == label
    again = load_files([("other name.npz", npz(x=images, y=labels))])
    assert again.name == dataset.name and np.array_equal(again.x_test, dataset.x_test)  # same files, same split


def test_npz_images_labels_floats_n_by_784_text_and_one_hot_labels(rng):
    images, labels = digits(rng, 30, 3)
    floats = images.reshape(30, 784).astype(np.float32) / 255
    names = np.array(["cat", "dog", "fish"])[labels]
    dataset = load_files([("f.npz", npz(images=floats, labels=names))])
    assert dataset.class_names == ("cat", "dog", "fish")
    np.testing.assert_allclose(np.sort(np.concatenate([dataset.x_train, dataset.x_test]).ravel()),
                               np.sort(floats.ravel()), atol=0.5 / 255)  # fmt: skip
    one_hot = np.eye(3, dtype=np.float32)[labels]
    assert load_files([("h.npz", npz(x=images, y=one_hot))]).class_names == ("0", "1", "2")


def test_keras_style_npz_keeps_its_own_split(rng):
    images, labels = digits(rng, 50, 5)
    dataset = load_files(
        [("mnist.npz", npz(x_train=images[:40], y_train=labels[:40], x_test=images[40:], y_test=labels[40:]))]
    )
    np.testing.assert_array_equal(np.rint(dataset.x_test * 255), images[40:])
    np.testing.assert_array_equal(dataset.y_train, labels[:40])


def test_a_single_npy_and_float_0_255_and_dark_on_light_arrays(rng):
    images, _ = digits(rng, 20)
    dataset = load_files([("scribbles.npy", npy((255 - images).astype(np.float64)))])  # 0-255 floats, dark on light
    assert dataset.class_names == ("scribbles",) and set(dataset.y_train) == {0}
    assert as_set(np.concatenate([dataset.x_train, dataset.x_test])) == sorted(i.tobytes() for i in images)
    assert "inverted to white ink on black" in dataset.source and "0–255" in dataset.source


def test_quickdraw_files_are_labels_named_after_them_and_capped_per_category(rng, monkeypatch):
    monkeypatch.setattr(uploads, "QUICKDRAW_PER_CATEGORY", 12)
    cats, dogs = (digits(rng, n)[0].reshape(n, 784) for n in (30, 14))
    dataset = load_files([("full_numpy_bitmap_cat.npy", npy(cats)), ("full_numpy_bitmap_hot_dog.npy", npy(dogs))])
    assert dataset.class_names == ("cat", "hot dog")
    every = np.concatenate([dataset.x_train, dataset.x_test])
    assert as_set(every) == sorted(i.tobytes() for i in np.concatenate([cats[:12], dogs[:12]]).reshape(-1, 28, 28))
    assert "the first 12 of 30 drawings of cat" in dataset.source


def test_a_zip_of_drawings_one_folder_per_label_is_prepared_as_the_draw_tab_does():
    raw, pictures = picture_zip()
    dataset = load_files([("drawings.zip", raw)])
    assert dataset.class_names == ("cat", "dog")  # the zipped folder "my drawings/" is not a label
    expected = [
        np.rint(photo_to_mnist(read_image(png(p))).digit * 255).astype(np.uint8).tobytes() for p in pictures.values()
    ]
    assert as_set(np.concatenate([dataset.x_train, dataset.x_test])) == sorted(expected)
    assert dataset.x_train[:, 0, :].max() == 0  # white ink on black: the border is black


def test_28_by_28_dark_on_light_pictures_are_only_inverted(rng):
    images, _ = digits(rng, 12)
    raw = zipped({f"{i}.png": png(255 - image) for i, image in enumerate(images)})
    dataset = load_files([("small.zip", raw)])
    assert dataset.class_names == ("image",)
    assert as_set(np.concatenate([dataset.x_train, dataset.x_test])) == sorted(i.tobytes() for i in images)


def test_a_folder_reads_as_its_zip(tmp_path):
    raw, pictures = picture_zip(wrapper="")
    for name, array in pictures.items():
        (tmp_path / "d" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "d" / name).write_bytes(png(array))
    (tmp_path / "d" / ".DS_Store").write_bytes(b"junk")  # a Mac's leftovers are skipped
    from_folder = load_dataset("mnist", f"images:{tmp_path / 'd'}")
    from_zip = load_files([("d.zip", raw)])
    assert from_folder.name == from_zip.name and from_folder.class_names == ("cat", "dog")


@pytest.mark.parametrize("compress", [False, True])
def test_an_idx_pair_in_either_order(rng, compress):
    images, labels = digits(rng, 30, 3)
    wrap = gzip.compress if compress else bytes
    suffix = ".gz" if compress else ""
    files = [(f"l-idx1-ubyte{suffix}", wrap(idx(labels))), (f"i-idx3-ubyte{suffix}", wrap(idx(images)))]
    dataset = load_files(files)
    assert dataset.class_names == ("0", "1", "2")
    assert as_set(np.concatenate([dataset.x_train, dataset.x_test])) == sorted(i.tobytes() for i in images)


def test_a_dataset_is_kept_in_the_workspace_and_read_back_whole(rng, tmp_path):
    images, labels = digits(rng, 30, 3)
    dataset = load_files([("kept.npz", npz(x=images, y=labels))])
    uploads.keep(dataset, tmp_path)
    assert uploads.kept(tmp_path) == {dataset.name: "kept"}
    back = uploads.load_kept(tmp_path, dataset.name)
    for field in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(back, field), getattr(dataset, field))
    assert back.class_names == dataset.class_names and back.source == dataset.source
    arrays = tmp_path / "datasets" / f"{dataset.name}.npz"
    arrays.write_bytes(arrays.read_bytes()[:-50])
    with pytest.raises(ValueError, match=dataset.name):
        uploads.load_kept(tmp_path, dataset.name)
    with pytest.raises(ValueError, match="no longer kept"):
        uploads.load_kept(tmp_path, "upload-0123456789abcdef")


def test_a_workspace_keeps_its_newest_datasets_only(rng, tmp_path, monkeypatch):
    import os

    monkeypatch.setattr(uploads, "MAX_KEPT", 2)
    names = []
    for age in range(3):
        images, labels = digits(rng, 20, 2)
        dataset = load_files([(f"set{age}.npz", npz(x=images, y=labels))])
        uploads.keep(dataset, tmp_path)
        about = tmp_path / "datasets" / f"{dataset.name}.json"
        os.utime(about, (1_000 + age, 1_000 + age))  # one second apart, whatever the file system's clock
        names.append(dataset.name)
    assert list(uploads.kept(tmp_path)) == names[:0:-1]
    assert sorted(p.name for p in (tmp_path / "datasets").iterdir()) == sorted(
        f"{name}.{ext}" for name in names[1:] for ext in ("json", "npz")
    )


# ---- bad files: each refused, named, and why ----


def _bad_files():
    rng = np.random.default_rng(1)
    images, labels = digits(rng, 30, 3)
    good_npy = npy(images)
    nan = images.astype(np.float32) / 255
    nan[3, 4, 5] = np.nan
    inf = images.astype(np.float32) / 255
    inf[0, 0, 0] = np.inf
    bomb = zipped({"a/zeros.png": bytes(40 * 2**20)})  # 40 MB of zeros packed into ~40 KB
    link = io.BytesIO()
    with zipfile.ZipFile(link, "w") as archive:
        info = zipfile.ZipInfo("cat/link.png")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(info, "/etc/passwd")
    locked = io.BytesIO()
    with zipfile.ZipFile(locked, "w") as archive:
        archive.writestr("x.png", png(drawing(1)))
    locked = bytearray(locked.getvalue())
    locked[6] |= 1  # the local header's "encrypted" flag ...
    central = locked.rfind(b"PK\x01\x02")
    locked[central + 8] |= 1  # ... and the central directory's
    pictures = {f"cat/{i}.png": png(drawing(i)) for i in range(6)}
    bad_idx = idx(images)
    return {
        "wrong shape": (
            [("big.npy", npy(np.zeros((20, 32, 32), np.uint8)))],
            r"big\.npy holds an array of shape 20 x 32 x 32",
        ),
        "one image": ([("one.npy", npy(np.zeros((28, 28), np.uint8)))], r"one\.npy holds an array of shape 28 x 28"),
        "truncated npy": ([("cut.npy", good_npy[:-100])], r"cut\.npy is truncated"),
        "npy too long": ([("long.npy", good_npy + b"0" * 10)], r"long\.npy has 10 bytes more"),
        "not npy": ([("text.npy", b"hello, this is not numpy")], r"text\.npy is not a readable \.npy file"),
        "pickle": (
            [("objects.npy", npy(np.array([{"a": 1}] * 12, dtype=object)))],
            r"objects\.npy holds Python objects",
        ),
        "complex": ([("c.npy", npy(np.zeros((12, 28, 28), np.complex64)))], r"c\.npy holds complex64 values"),
        "NaN": ([("nan.npz", npz(x=nan, y=labels))], r"nan\.npz: x has 1 pixel values that are NaN or infinite"),
        "inf": ([("inf.npy", npy(inf))], r"inf\.npy has 1 pixel values that are NaN or infinite"),
        "negative": (
            [("neg.npy", npy(np.full((12, 784), -0.5)))],
            r"neg\.npy has pixel values from -0\.5 to -0\.5; use 0 to 1, or 0 to 255",
        ),
        "over 255": (
            [("i16.npy", npy(np.full((12, 784), 300, np.int16)))],
            r"i16\.npy has pixel values from 300 to 300; whole numbers must be 0 to 255",
        ),
        "text pixels": ([("s.npy", npy(np.full((12, 784), "a")))], r"s\.npy holds text, not pixel values"),
        "labels short": ([("m.npz", npz(x=images, y=labels[:-1]))], r"m\.npz has 30 images but 29 labels"),
        "labels fractional": ([("f.npz", npz(x=images, y=labels + 0.5))], r"f\.npz: labels are numbers with fractions"),
        "labels not one-hot": (
            [("o.npz", npz(x=images, y=np.ones((30, 3))))],
            r"o\.npz: labels of shape N x 3 must be one-hot",
        ),
        "wrong keys": (
            [("k.npz", npz(pixels=images, target=labels))],
            r"k\.npz holds the arrays pixels, target; expected x \+ y",
        ),
        "too few": ([("few.npy", npy(images[:5]))], r"few\.npy holds 5 images; at least 10 are needed"),
        "lonely label": (
            [("l.npz", npz(x=images[:13], y=np.r_[np.zeros(12), 1]))],
            r"l\.npz: the label 1 has fewer than 2",
        ),
        "empty": ([("empty.npz", b"")], r"empty\.npz is empty"),
        "bad zip": ([("broken.zip", b"PK\x03\x04 not really a zip")], r"broken\.zip is not a readable zip file"),
        "zip bomb": (
            [("bomb.zip", bomb)],
            r"bomb\.zip: a/zeros\.png unpacks to [\d,]+ times its packed size \(a zip bomb\?\)",
        ),
        "path traversal": (
            [("evil.zip", zipped({**pictures, "../../etc/evil.png": png(drawing(3))}))],
            r"evil\.zip: the file name '\.\./\.\./etc/evil\.png' points outside the archive",
        ),
        "absolute name": (
            [("abs.zip", zipped({**pictures, "/tmp/x.png": png(drawing(3))}))],
            r"abs\.zip: .*points outside",
        ),
        "symlink": ([("link.zip", link.getvalue())], r"link\.zip: cat/link\.png is a symbolic link"),
        "nested zip": (
            [("outer.zip", zipped({**pictures, "cat/inner.zip": zipped(pictures)}))],
            r"outer\.zip: cat/inner\.zip is an archive inside the archive",
        ),
        "encrypted": ([("locked.zip", bytes(locked))], r"locked\.zip: x\.png is encrypted"),
        "not a picture": (
            [("notes.zip", zipped({**pictures, "cat/notes.txt": b"hi"}))],
            r"notes\.zip: cat/notes\.txt is not a PNG or JPG",
        ),
        "damaged picture": (
            [("dmg.zip", zipped({**pictures, "cat/bad.png": png(drawing(2))[:60]}))],
            r"dmg\.zip: cat/bad\.png",
        ),
        "blank picture": (
            [("blank.zip", zipped({**pictures, "cat/blank.png": png(np.full((40, 40), 255, np.uint8))}))],
            r"blank\.zip: cat/blank\.png looks blank",
        ),
        "folders mixed": (
            [("mix.zip", zipped({**pictures, "loose.png": png(drawing(4))}))],
            r"mix\.zip: loose\.png is in no folder",
        ),
        "folders deep": (
            [("deep.zip", zipped({**pictures, "cat/x/y.png": png(drawing(4)), "dog/1.png": png(drawing(5))}))],
            r"deep\.zip: cat/x/y\.png is in a folder inside a folder",
        ),
        "idx magic": ([("i-idx3-ubyte", b"\x00\x00\x09\x99" + bad_idx[4:])], r"i-idx3-ubyte is not an IDX file"),
        "idx truncated": (
            [("i-idx3-ubyte", bad_idx[:-10]), ("l-idx1-ubyte", idx(labels))],
            r"i-idx3-ubyte is truncated",
        ),
        "idx mismatch": (
            [("i-idx3-ubyte", bad_idx), ("l-idx1-ubyte", idx(labels[:20]))],
            r"has 30 images but 20 labels",
        ),
        "idx two images": ([("a-idx3-ubyte", bad_idx), ("b-idx3-ubyte", bad_idx)], r"are both IDX image files"),
        "gzip bomb": (
            [("i-idx3-ubyte.gz", gzip.compress(bytes(300 * 2**20)))],
            r"i-idx3-ubyte\.gz unpacks to more than",
        ),
        "unknown type": ([("notes.txt", b"hello")], r"notes\.txt: this kind of file is not read here"),
        "two kinds": ([("a.npy", good_npy), ("b.zip", zipped(pictures))], r"send one kind of file at a time"),
        "same category": (
            [("cat.npy", good_npy), ("full_numpy_bitmap_cat.npy", good_npy)],
            r"give the same category name",
        ),
    }


BAD = _bad_files()


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_file_is_refused_with_a_sentence_naming_it(case):
    files, message = BAD[case]
    with pytest.raises(ValueError, match=message):
        load_files(files)


def test_caps_on_bytes_images_and_labels(rng, monkeypatch):
    images, labels = digits(rng, 30, 3)
    monkeypatch.setattr(uploads, "MAX_FILE_BYTES", 10_000)
    with pytest.raises(ValueError, match=r"big\.npy is 0\.023 MB; the limit is 0\.0095 MB a file"):
        load_files([("big.npy", npy(images))])
    monkeypatch.setattr(uploads, "MAX_FILE_BYTES", 2**30)
    monkeypatch.setattr(uploads, "MAX_IMAGES", 25)
    with pytest.raises(ValueError, match=r"many\.npz: x holds 30 images; the limit is 25"):
        load_files([("many.npz", npz(x=images))])
    assert len(load_files([("many.npy", npy(images))]).y_train) < 25  # a .npy is a category: its first 25 are used
    monkeypatch.setattr(uploads, "MAX_IMAGES", 60_000)
    monkeypatch.setattr(uploads, "MAX_CLASSES", 2)
    with pytest.raises(ValueError, match=r"c\.npz has 3 different labels; the limit is 2"):
        load_files([("c.npz", npz(x=images, y=labels))])
    monkeypatch.setattr(uploads, "MAX_ZIP_MEMBERS", 3)
    with pytest.raises(ValueError, match=r"z\.zip holds 6 files; the limit is 3"):
        load_files([("z.zip", picture_zip(per_label=3)[0])])


def test_a_declared_size_over_the_cap_is_refused_before_anything_is_unpacked(monkeypatch):
    monkeypatch.setattr(uploads, "MAX_UNCOMPRESSED", 1_000)
    raw, _ = picture_zip()
    with pytest.raises(
        ValueError, match=r"pics\.zip would unpack to 0\.\d+ MB \(a zip bomb\?\); the limit is 0\.00095 MB"
    ):
        load_files([("pics.zip", raw)])


def test_a_refused_file_leaves_nothing_in_the_workspace(tmp_path):
    for case in ("NaN", "path traversal", "zip bomb"):
        with pytest.raises(ValueError):
            uploads.keep(load_files(BAD[case][0]), tmp_path)
    assert uploads.kept(tmp_path) == {} and not (tmp_path / "datasets").exists()


# ---- fuzzing: anything but a ValueError is a bug ----


def _seeds() -> list[tuple[str, bytes]]:
    rng = np.random.default_rng(2)
    images, labels = digits(rng, 12, 2)
    return [
        ("a.npz", npz(x=images, y=labels)),
        ("a.npy", npy(images)),
        ("a.zip", zipped({f"c{i % 2}/{i}.png": png(255 - image) for i, image in enumerate(images)})),
        ("a-idx3-ubyte", idx(images)),
        ("a-idx3-ubyte.gz", gzip.compress(idx(images))),
    ]


SEEDS = _seeds()


@pytest.mark.slow
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.sampled_from(range(len(SEEDS))),
    cuts=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=6),
    truncate=st.integers(0, 10**6),
)
def test_fuzz_damaged_files_load_or_raise_a_value_error(seed, cuts, truncate):
    name, raw = SEEDS[seed]
    damaged = bytearray(raw)
    for position, value in cuts:
        damaged[position % len(damaged)] = value
    damaged = bytes(damaged[: max(1, len(damaged) - truncate % len(damaged))])
    try:
        dataset = load_files([(name, damaged)])
    except ValueError as error:
        assert str(error)
        return
    assert dataset.x_train.dtype == np.float32 and 0 <= dataset.x_train.min() <= dataset.x_train.max() <= 1
    assert len(dataset.y_train) == len(dataset.x_train) and len(dataset.x_test) >= 1


@settings(max_examples=150, deadline=None)
@given(name=st.sampled_from(["x.npz", "x.npy", "x.zip", "x.png", "x-idx1-ubyte", "x-idx3-ubyte.gz", "x.jpg"]),
       raw=st.binary(min_size=0, max_size=400))  # fmt: skip
def test_fuzz_random_bytes_raise_a_value_error(name, raw):
    with pytest.raises(ValueError):
        load_files([(name, raw)])


# ---- every format trains, from the CLI ----


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["npz", "npy", "images_zip", "images_dir", "quickdraw", "idx"])
def test_every_format_trains_from_the_cli_and_its_run_names_the_dataset(kind, tmp_path, mnist, capsys):
    from playground.cli import main
    from playground.runs import read_run_info

    x = np.rint(mnist.x_train[:60] * 255).astype(np.uint8)
    y = mnist.y_train[:60]
    if kind == "npz":
        (tmp_path / "d.npz").write_bytes(npz(x=x, y=y))
        source = f"npz:{tmp_path / 'd.npz'}"
    elif kind == "npy":
        (tmp_path / "d.npy").write_bytes(npy(x.reshape(60, 784)))
        source = f"npz:{tmp_path / 'd.npy'}"
    elif kind in ("images_zip", "images_dir"):
        pictures = {f"{label}/{i}.png": png(255 - image) for i, (image, label) in enumerate(zip(x, y))}
        if kind == "images_zip":
            (tmp_path / "d.zip").write_bytes(zipped(pictures))
            source = f"images:{tmp_path / 'd.zip'}"
        else:
            for name, data in pictures.items():
                (tmp_path / "d" / name).parent.mkdir(parents=True, exist_ok=True)
                (tmp_path / "d" / name).write_bytes(data)
            source = f"images:{tmp_path / 'd'}"
    elif kind == "quickdraw":
        for digit in (3, 7):
            (tmp_path / f"full_numpy_bitmap_{digit}.npy").write_bytes(npy(x[y == digit].reshape(-1, 784)))
        source = f"quickdraw:{tmp_path / 'full_numpy_bitmap_3.npy'},{tmp_path / 'full_numpy_bitmap_7.npy'}"
    else:
        (tmp_path / "i-idx3-ubyte").write_bytes(idx(x))
        (tmp_path / "l-idx1-ubyte").write_bytes(idx(y))
        source = f"idx:{tmp_path / 'i-idx3-ubyte'},{tmp_path / 'l-idx1-ubyte'}"
    code = main(["train", "--source", source, "--epochs", "2", "--batch-size", "16", "--latent-dim", "2",
                 "--intermediate-dim", "32", "--loss", "elbo", "--out", str(tmp_path / "run"), "--json"])  # fmt: skip
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert np.isfinite(summary["loss"]) and np.isfinite(summary["val_loss"])
    assert "your files" in summary["source"]
    assert is_upload_name(read_run_info(tmp_path / "run").settings.dataset)


def test_a_bad_file_from_the_cli_is_one_clear_line(tmp_path, capsys):
    from playground.cli import main

    (tmp_path / "cut.npy").write_bytes(npy(np.zeros((20, 784), np.uint8))[:-7])
    assert main(["train", "--source", f"npz:{tmp_path / 'cut.npy'}"]) == 2
    assert (
        capsys.readouterr().err.strip()
        == "error: cut.npy is truncated: 15,673 bytes of data, its header announces 15,680."
    )
    assert main(["train", "--source", f"images:{tmp_path / 'missing'}"]) == 2
    assert "missing could not be read" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("location", "source"),
    [
        ("d.npz", "npz:d.npz"),
        ("d.npy", "npz:d.npy"),
        ("cat.npy, dog.npy", "quickdraw:cat.npy,dog.npy"),
        ("drawings.zip", "images:drawings.zip"),
        ("i-idx3-ubyte.gz, l-idx1-ubyte.gz", "idx:i-idx3-ubyte.gz,l-idx1-ubyte.gz"),
        ("a.png, b.png", "images:YOUR_PICTURES_FOLDER"),
    ],
)
def test_the_terminal_source_of_an_upload_reads_the_same_files(rng, location, source):
    import dataclasses

    images, labels = digits(rng, 20, 2)
    dataset = dataclasses.replace(load_files([("x.npz", npz(x=images, y=labels))]), location=location)
    assert uploads.cli_source(dataset) == source
