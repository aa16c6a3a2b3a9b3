"""The page's JavaScript math (``instrument.js``: readWeights, encode, decode) run in Node against Keras,
for the guide's model, a deeper one and conditional ones: the same numbers as the model the server holds."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from playground.config import Settings
from playground.inference import Inference, pack_weights
from playground.models import build_vae

NODE = shutil.which("node")
SCRIPT = Path(__file__).resolve().parents[1] / "playground/ui/instrument.js"
RUN = """
import { readFileSync } from "node:fs";
const { readWeights, decode, encode } = await import(process.argv[1]);
const blob = new Uint8Array(readFileSync(process.argv[2]));
const job = JSON.parse(readFileSync(process.argv[3], "utf8"));
const model = readWeights(blob);
const out = { decoded: [], means: [], logVars: [] };
for (let i = 0; i < job.codes.length; i++) {
  out.decoded.push(Array.from(decode(model, job.codes[i], new Float32Array(model.O), job.labels[i])));
  const code = encode(model, Float32Array.from(job.images[i]), job.labels[i]);
  out.means.push(Array.from(code.mean));
  out.logVars.push(Array.from(code.logVar));
}
console.log(JSON.stringify(out));
"""


def page_math(tmp_path: Path, blob: bytes, codes, images, labels) -> dict:
    """Run the page's functions in Node on ``blob`` (pack_weights' bytes): decoded images and codes."""
    module = tmp_path / "instrument.mjs"  # Node reads ES modules by their suffix
    module.write_text(SCRIPT.read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "weights.bin").write_bytes(blob)
    job = {"codes": codes.tolist(), "images": images.tolist(), "labels": [int(v) for v in labels]}
    (tmp_path / "job.json").write_text(json.dumps(job))
    done = subprocess.run([NODE, "--input-type=module", "-e", RUN, str(module), str(tmp_path / "weights.bin"),
                           str(tmp_path / "job.json")], capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.skipif(NODE is None, reason="Node.js is not installed")
@pytest.mark.parametrize(
    "settings",
    [
        Settings(latent_dim=3, intermediate_dim=16, seed=4),
        Settings(latent_dim=4, intermediate_dim=24, hidden_layers=3, seed=5),
        Settings(latent_dim=2, intermediate_dim=32, conditional=True, seed=6),
        Settings(latent_dim=5, intermediate_dim=16, hidden_layers=2, conditional=True, seed=7),
    ],
    ids=["guide", "deep", "conditional", "deep-conditional"],
)
def test_the_page_encodes_and_decodes_like_keras(tmp_path, mnist, settings):
    rng = np.random.default_rng(0)
    # Trained weights are not needed, but biases of zero would hide a missing bias: make them all non-zero.
    model = build_vae(settings)
    model.set_weights([w + rng.normal(0, 0.05, w.shape).astype(np.float32) for w in model.get_weights()])
    inference = Inference(settings)
    inference.load_from(model)  # the numpy copy reads the weights through load_from / sync / load_packed
    codes = rng.standard_normal((6, settings.latent_dim)).astype(np.float32)
    images = mnist.x_test[:6].reshape(6, 784)
    labels = np.array([0, 3, 9, 1, 7, 3])
    got = page_math(tmp_path, pack_weights(inference.model, 3), codes, images, labels)
    given = labels if settings.conditional else None
    np.testing.assert_allclose(np.array(got["decoded"]).reshape(6, 28, 28), inference.decode(codes, given), atol=1e-5)
    z_mean, z_log_var = inference.encode(images, given)
    np.testing.assert_allclose(got["means"], z_mean, atol=1e-4)
    np.testing.assert_allclose(got["logVars"], z_log_var, atol=1e-4)
    if settings.conditional:  # the label is read: another class gives another image from the same code
        other = page_math(tmp_path, pack_weights(inference.model, 3), codes, images, (labels + 1) % 10)
        assert np.abs(np.array(other["decoded"]) - np.array(got["decoded"])).max() > 1e-3
