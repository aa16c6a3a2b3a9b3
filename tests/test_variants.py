"""The model variants (deeper, conditional, convolutional): against numpy and the keras.io example's own
layers, trained by the compiled trainer and by Keras fit(), and saved and loaded through the safe loader."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from playground.config import Settings
from playground.model_files import load_vae, save_vae
from playground.models import CLASSES, build_vae, dense_plan
from playground.training import Trainer, TrainingData
from tests.reference import dense
from tests.test_model_files import rewrite_config

VARIANTS = {
    "deep": Settings(loss="elbo", latent_dim=4, intermediate_dim=32, hidden_layers=3, seed=1),
    "conditional": Settings(loss="elbo", latent_dim=4, intermediate_dim=32, conditional=True, seed=2),
    "deep-conditional": Settings(loss="elbo", latent_dim=3, intermediate_dim=24, hidden_layers=2, conditional=True),
    "conv": Settings(loss="elbo", latent_dim=4, intermediate_dim=16, architecture="conv", seed=3),
    "conv-conditional": Settings(loss="elbo", latent_dim=2, intermediate_dim=16, architecture="conv",
                                 conditional=True, hidden_layers=2),  # fmt: skip
}


@pytest.fixture
def batch(mnist):
    return mnist.x_train[:64].reshape(-1, 784), mnist.y_train[:64]


def numpy_forward(model, images, labels, epsilon):
    """A dense VAE's forward pass written out in numpy from each Keras layer's kernel and bias."""
    enc, dec = model.encoder, model.decoder
    one_hot = np.eye(CLASSES)[labels] if model.classes else np.zeros((len(images), 0))
    h = np.concatenate([images, one_hot], axis=1)
    for layer in (enc.dense_proj, *enc.deeper_proj):
        h = dense(h, layer.kernel.numpy(), layer.bias.numpy(), "relu")
    z_mean = dense(h, enc.dense_mean.kernel.numpy(), enc.dense_mean.bias.numpy())
    z_log_var = dense(h, enc.dense_log_var.kernel.numpy(), enc.dense_log_var.bias.numpy())
    h = np.concatenate([z_mean + np.exp(0.5 * z_log_var) * epsilon, one_hot], axis=1)
    for layer in (dec.dense_proj, *dec.deeper_proj):
        h = dense(h, layer.kernel.numpy(), layer.bias.numpy(), "relu")
    return z_mean, z_log_var, dense(h, dec.dense_output.kernel.numpy(), dec.dense_output.bias.numpy(), "sigmoid")


def plan_forward(plan, images, labels, epsilon):
    """The same pass from ``dense_plan``'s arrays alone, as the page's copy runs it."""
    one_hot = np.eye(plan.classes)[labels] if plan.classes else np.zeros((len(images), 0))
    h = np.concatenate([images, one_hot], axis=1)
    for kernel, bias, activation in plan.encoder:
        h = dense(h, kernel, bias, activation)
    z_mean, z_log_var = dense(h, *plan.z_mean), dense(h, *plan.z_log_var)
    h = np.concatenate([z_mean + np.exp(0.5 * z_log_var) * epsilon, one_hot], axis=1)
    for kernel, bias, activation in plan.decoder:
        h = dense(h, kernel, bias, activation)
    return z_mean, z_log_var, h


@pytest.mark.parametrize("name", ["deep", "conditional", "deep-conditional"])
def test_dense_variants_match_numpy_and_their_dense_plan(name, batch, rng):
    model = build_vae(VARIANTS[name])
    images, labels = batch
    epsilon = rng.standard_normal((64, model.latent_dim)).astype("float32")
    output = model.forward(images, epsilon=epsilon, labels=labels)
    keras_result = [t.numpy() for t in (output.z_mean, output.z_log_var, output.reconstruction)]
    for reference in (numpy_forward(model, images, labels, epsilon),
                      plan_forward(dense_plan(model), images, labels, epsilon)):  # fmt: skip
        for ours, theirs in zip(keras_result, reference):
            np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5)
    plan = dense_plan(model)
    assert len(plan.encoder) == model.hidden_layers and len(plan.decoder) == model.hidden_layers + 1
    assert plan.classes == (CLASSES if VARIANTS[name].conditional else 0)


def test_the_guide_s_model_is_unchanged_by_the_variants(batch):
    model = build_vae(Settings(latent_dim=8, intermediate_dim=256))
    assert [w.path for w in model.weights] == [
        f"autoencoder/{block}/{layer}/{part}"
        for block, names in (("encoder", ("dense_proj", "z_mean", "z_log_var")), ("decoder", ("dense_proj",
                                                                                           "dense_output")))
        for layer in names for part in ("kernel", "bias")
    ], "the same layers, names and order as before: old .keras files still load"  # fmt: skip
    assert dense_plan(model).classes == 0 and model.encoder.dense_proj.kernel.shape == (784, 256)


def test_a_conditional_model_reads_the_one_hot_label_in_both_halves(batch):
    model = build_vae(VARIANTS["conditional"])
    assert model.encoder.dense_proj.kernel.shape == (784 + 10, 32)
    assert model.decoder.dense_proj.kernel.shape == (4 + 10, 32)
    images, labels = batch
    zeros = np.zeros((64, 4), "float32")
    one = model.forward(images, epsilon=zeros, labels=labels).reconstruction.numpy()
    other = model.forward(images, epsilon=zeros, labels=(labels + 1) % 10).reconstruction.numpy()
    assert np.abs(one - other).max() > 1e-3, "the label changes what comes out"
    with pytest.raises(ValueError, match="needs the labels"):
        model.forward(images)


def keras_io_encoder_decoder(latent_dim: int, intermediate_dim: int):
    """The keras.io VAE example's encoder and decoder, functional, from Keras' own layers."""
    inputs = keras.Input(shape=(28, 28, 1))
    x = keras.layers.Conv2D(32, 3, activation="relu", strides=2, padding="same")(inputs)
    x = keras.layers.Conv2D(64, 3, activation="relu", strides=2, padding="same")(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(intermediate_dim, activation="relu")(x)
    encoder = keras.Model(inputs, [keras.layers.Dense(latent_dim)(x), keras.layers.Dense(latent_dim)(x)])
    latent_inputs = keras.Input(shape=(latent_dim,))
    x = keras.layers.Dense(intermediate_dim, activation="relu")(latent_inputs)  # ours: one dense layer more
    x = keras.layers.Dense(7 * 7 * 64, activation="relu")(x)
    x = keras.layers.Reshape((7, 7, 64))(x)
    x = keras.layers.Conv2DTranspose(64, 3, activation="relu", strides=2, padding="same")(x)
    x = keras.layers.Conv2DTranspose(32, 3, activation="relu", strides=2, padding="same")(x)
    outputs = keras.layers.Conv2DTranspose(1, 3, activation="sigmoid", padding="same")(x)
    return encoder, keras.Model(latent_inputs, outputs)


def test_the_conv_model_is_the_keras_io_example_s_architecture(batch, rng):
    model = build_vae(VARIANTS["conv"])
    assert dense_plan(model) is None, "the page's dense copy cannot run it"
    encoder, decoder = keras_io_encoder_decoder(4, 16)
    enc, dec = model.encoder, model.decoder
    for theirs, ours in zip([layer for layer in encoder.layers if layer.weights],
                            (enc.conv_1, enc.conv_2, enc.dense_proj, enc.dense_mean, enc.dense_log_var)):  # fmt: skip
        theirs.set_weights(ours.get_weights())
    ours = (dec.dense_proj, dec.dense_grid, dec.deconv_1, dec.deconv_2, dec.deconv_output)
    for theirs, mine in zip([layer for layer in decoder.layers if layer.weights], ours):
        theirs.set_weights(mine.get_weights())
    images = batch[0]
    z_mean, z_log_var, _ = (t.numpy() for t in enc(images))
    their_mean, their_log_var = (t.numpy() for t in encoder(images.reshape(-1, 28, 28, 1)))
    np.testing.assert_allclose(z_mean, their_mean, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(z_log_var, their_log_var, rtol=1e-4, atol=1e-5)
    codes = rng.standard_normal((8, 4)).astype("float32")
    np.testing.assert_allclose(dec(codes).numpy(), decoder(codes).numpy().reshape(8, 784), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", list(VARIANTS))
def test_every_variant_round_trips_through_the_safe_loader(name, batch, tmp_path):
    model = build_vae(VARIANTS[name])
    loaded = load_vae(save_vae(model, tmp_path / "model.keras"))
    assert (loaded.hidden_layers, loaded.classes, loaded.architecture) == \
        (model.hidden_layers, model.classes, model.architecture)  # fmt: skip
    images, labels = batch
    zeros = np.zeros((64, model.latent_dim), "float32")
    np.testing.assert_array_equal(loaded.forward(images, epsilon=zeros, labels=labels).reconstruction.numpy(),
                                  model.forward(images, epsilon=zeros, labels=labels).reconstruction.numpy())


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("hidden_layers", 4, "hidden layers 4; this app allows 1 to 3"),
        ("hidden_layers", 0, "hidden layers 0"),
        ("hidden_layers", True, "hidden layers True"),
        ("hidden_layers", 100000, "hidden layers 100000"),
        ("classes", 7, "conditional on 7 classes"),
        ("classes", "10", "conditional on '10' classes"),
        ("architecture", "lstm", "architecture 'lstm'"),
        ("architecture", None, "architecture None"),
    ],
)
def test_the_safe_loader_refuses_variant_arguments_outside_the_app_s_range(tmp_path, key, value, message):
    good = save_vae(build_vae(VARIANTS["deep-conditional"]), tmp_path / "good.keras")
    bad = tmp_path / "bad.keras"
    rewrite_config(good, bad, lambda config: config["config"].update({key: value}))
    with pytest.raises(ValueError, match=message):
        load_vae(bad)


def test_a_file_from_before_the_variants_loads_as_the_guide_s_dense_model(tmp_path):
    good = save_vae(build_vae(Settings(latent_dim=3, intermediate_dim=16)), tmp_path / "good.keras")
    old = tmp_path / "old.keras"

    def strip(config):
        for key in ("hidden_layers", "classes", "architecture"):
            del config["config"][key]

    rewrite_config(good, old, strip)
    loaded = load_vae(old)
    assert (loaded.hidden_layers, loaded.classes, loaded.architecture) == (1, 0, "dense")


@pytest.mark.slow
@pytest.mark.parametrize("name", list(VARIANTS))
def test_the_compiled_trainer_trains_every_variant(name, tiny):
    settings = VARIANTS[name].replace(epochs=2 if "conv" in name else 4, batch_size=64)
    trainer = Trainer(settings, tiny, jit_compile=False)
    first = trainer.run()
    assert first.reason == "finished" and np.isfinite(first.val_loss)
    before = trainer.history.records("train")[0].loss
    assert first.loss < before, "the loss falls"


@pytest.mark.slow
def test_a_conditional_trainer_pairs_each_image_with_its_own_label(tiny):
    # A 2-D code holds little besides the style: the label must carry the class.
    settings = Settings(loss="elbo", latent_dim=2, intermediate_dim=64, conditional=True, learning_rate=3e-3)
    trainer = Trainer(settings.replace(epochs=30), tiny, jit_compile=False)
    trainer.run()
    model, images, labels = trainer.model, tiny.x_test.reshape(-1, 784), tiny.y_test

    def reconstruction_error(given):
        zeros = np.zeros((len(images), model.latent_dim), "float32")
        output = model.forward(images, epsilon=zeros, labels=given).reconstruction.numpy()
        return float(np.mean(np.sum(keras.ops.binary_crossentropy(images, output).numpy(), axis=1)))

    right, wrong = reconstruction_error(labels), reconstruction_error((labels + 3) % 10)
    assert right < wrong - 2.0, (right, wrong)


def test_only_a_conditional_trainer_s_graph_reads_labels(tiny):
    plain = Trainer(Settings(latent_dim=2, intermediate_dim=16, epochs=1), tiny, jit_compile=False)
    conditional = Trainer(Settings(latent_dim=2, intermediate_dim=16, epochs=1, conditional=True), tiny,
                          jit_compile=False)  # fmt: skip
    assert plain.y_train is None and conditional.y_train is not None

    def ops(trainer):
        plan = trainer._new_plan()
        function = trainer._train_function("graph")
        graph = function.get_concrete_function(plan.indices, plan.sizes, tf.constant(0), tf.constant(1)).graph
        definition = graph.as_graph_def()  # the while loop's body is a function in the graph's library
        return {node.op for node in definition.node} | {node.op for body in definition.library.function
                                                         for node in body.node_def}  # fmt: skip

    assert "OneHot" not in ops(plain) and "OneHot" in ops(conditional)


def test_a_conditional_trainer_needs_labels_0_to_9(tiny):
    data = TrainingData.from_dataset(tiny)
    unlabelled = TrainingData(data.x_train, data.x_test)
    with pytest.raises(ValueError, match="needs labels"):
        Trainer(Settings(conditional=True), unlabelled)
    Trainer(Settings(), unlabelled)  # an unconditional model needs none
    eleven = TrainingData(data.x_train, data.x_test, data.y_train + 1, data.y_test)
    with pytest.raises(ValueError, match="labels 0 to 9"):
        Trainer(Settings(conditional=True), eleven)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["deep", "conditional", "conv"])
def test_keras_fit_trains_every_variant(name, batch):
    model = build_vae(VARIANTS[name])
    images, labels = batch
    inputs = (images, labels) if model.classes else images
    model.compile(keras.optimizers.Adam(1e-3), loss=keras.losses.BinaryCrossentropy())
    history = model.fit(inputs, images, epochs=4, batch_size=16, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]


@pytest.mark.slow
def test_the_benchmark_has_a_row_for_each_variant_against_fit():
    from playground.bench import VARIANTS as BENCH_VARIANTS
    from playground.bench import format_variant_table, run_variant_benchmark

    report = run_variant_benchmark("mnist", "bundled", epochs=1, repeats=1)
    assert [row["name"] for row in report["variants"]] == list(BENCH_VARIANTS)
    assert all(row["fit"] > 0 and row["trainer"] > 0 for row in report["variants"])
    assert "conv 784-64-32" in format_variant_table(report) and "dense 784-64x3-32" in format_variant_table(report)


def test_the_model_tab_lists_every_layer_with_keras_own_parameter_counts():
    from playground.architecture import describe

    for settings in VARIANTS.values():
        model = build_vae(settings)
        rows = describe(model)
        assert sum(row.trainable for row in rows) == model.count_params(), settings
        assert len({row.path for row in rows}) == len(rows)


def test_a_call_s_steps_stay_the_guide_s_and_shrink_for_bigger_variants():
    from playground.training import call_steps

    guide = Settings()
    row = 2 * 784 * 64 + 3 * 64 * 32  # the trainer's estimate before the variants: its records fall on the same steps
    assert call_steps(guide, 0.1) == max(1, round(0.1 / (6 * 64 * row / 60e9 + 2e-4)))
    steps = {name: call_steps(settings.replace(intermediate_dim=64, latent_dim=32), 0.1)
             for name, settings in VARIANTS.items()}  # fmt: skip
    assert steps["deep"] < call_steps(guide, 0.1) and steps["conv"] < steps["deep"] / 5


def test_auto_compiles_the_convolutional_model_as_a_graph_and_long_dense_runs_with_xla(tiny):
    # XLA's CPU convolution gradients ran about 40x slower than TensorFlow's graph here (0.9 against 33-39 steps/s).
    conv, dense_run = (Trainer(VARIANTS[name], tiny) for name in ("conv", "deep"))
    assert conv._compiler_for(epochs=1000) == "graph"  # 11,000 steps
    assert dense_run._compiler_for(epochs=1000) == "xla"
