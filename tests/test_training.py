"""The compiled trainer against the guide's own loop and a numpy forward pass, and its controls."""

from __future__ import annotations

import re
import threading
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from playground.config import Settings
from playground.models import build_vae
from playground.steps import (
    StepVariables,
    adam_update,
    kl_weight_at,
    masked_losses,
    step_noise,
    train_chunk,
    train_chunk_fast,
)
from playground.training import EXPLODED_RATIO, Control, Trainer
from tests.reference import gaussian_kl, guide_training_loop, vae_forward
from tests.support import wait_for

# Waits for XLA's first compile (a few CPU-seconds) before a control is tested; not a timing:
# on two cores shared with other test runs (load 30-40 measured) a compile took over 30 s.
COMPILE_WAIT = 180.0


def test_one_step_of_each_loss_matches_numpy(tiny, rng):
    """The masked loss terms, on fixed noise, against a numpy forward pass and closed-form KL."""
    images = tiny.x_train[:64].reshape(-1, 784)
    epsilon = rng.standard_normal((64, 8)).astype("float32")
    model = build_vae(Settings(latent_dim=8))
    for loss_kind in ("guide", "elbo"):
        loss, reconstruction, kl, kl_dims = masked_losses(
            model, tf.constant(images), tf.ones([64]), tf.constant(epsilon), loss_kind, kl_weight=0.3
        )
        z_mean, z_log_var, output = vae_forward(model, images, epsilon)
        kl_matrix = gaussian_kl(z_mean, z_log_var)
        if loss_kind == "guide":
            expected_reconstruction = np.mean((images - output) ** 2)
            expected_kl = kl_matrix.mean()
        else:
            p = np.clip(output, 1e-7, 1 - 1e-7)
            expected_reconstruction = -np.mean(np.sum(images * np.log(p) + (1 - images) * np.log(1 - p), axis=1))
            expected_kl = kl_matrix.sum(axis=1).mean()
        assert float(reconstruction) == pytest.approx(expected_reconstruction, rel=1e-4)
        assert float(kl) == pytest.approx(expected_kl, rel=1e-4)
        assert float(loss) == pytest.approx(expected_reconstruction + 0.3 * expected_kl, rel=1e-4)
        np.testing.assert_allclose(kl_dims.numpy(), kl_matrix.mean(axis=0), rtol=1e-4, atol=1e-7)
        # A full batch's path (no mask) gives the same terms.
        unmasked = masked_losses(model, tf.constant(images), None, tf.constant(epsilon), loss_kind, kl_weight=0.3)
        for ours, masked in zip(unmasked, (loss, reconstruction, kl, kl_dims)):
            np.testing.assert_allclose(ours.numpy(), masked.numpy(), rtol=1e-5)


def test_a_masked_partial_batch_counts_only_its_real_rows(tiny):
    model = build_vae(Settings(latent_dim=4))
    images = tf.constant(tiny.x_train[:8].reshape(-1, 784))
    noise = tf.zeros([8, 4])
    _, reconstruction_5, kl_5, _ = masked_losses(model, images[:5], tf.ones([5]), noise[:5], "guide", 1.0)
    mask = tf.constant([1, 1, 1, 1, 1, 0, 0, 0], tf.float32)
    _, reconstruction_masked, kl_masked, _ = masked_losses(model, images, mask, noise, "guide", 1.0)
    assert float(reconstruction_masked) == pytest.approx(float(reconstruction_5), rel=1e-5)
    assert float(kl_masked) == pytest.approx(float(kl_5), rel=1e-5)


def test_the_kl_warmup_is_a_linear_ramp_and_the_noise_a_function_of_seed_and_step():
    weights = [float(kl_weight_at(2.0, 4.0, float(step))) for step in (1, 2, 4, 9)]
    assert weights == pytest.approx([0.5, 1.0, 2.0, 2.0])
    assert float(kl_weight_at(2.0, 0.0, 1.0)) == pytest.approx(2.0)  # no warm-up: the full weight at once
    first = step_noise(7, 3.0, 16, 4).numpy()
    np.testing.assert_array_equal(first, step_noise(7, 3.0, 16, 4).numpy())
    assert not np.array_equal(first, step_noise(7, 4.0, 16, 4).numpy())
    assert not np.array_equal(first, step_noise(7, 3.0, 16, 4, training=False).numpy())
    assert abs(first.mean()) < 0.5 and 0.5 < first.std() < 1.5


def test_the_lean_adam_update_matches_keras_adam(rng):
    """adam_update against Keras' own apply_gradients, from the same start, on the same gradients."""
    shapes = [(5, 3), (3,)]
    start = [rng.standard_normal(shape).astype("float32") for shape in shapes]
    pairs = []
    for _ in range(2):
        weights = [tf.Variable(w) for w in start]
        optimizer = keras.optimizers.Adam(learning_rate=0.01)
        optimizer.build(weights)
        pairs.append((weights, optimizer))
    (keras_weights, keras_adam), (lean_weights, lean_adam) = pairs
    for step in range(1, 6):
        gradients = [tf.constant(rng.standard_normal(shape).astype("float32") * step) for shape in shapes]
        keras_adam.apply_gradients(zip(gradients, keras_weights))
        adam_update(lean_adam, lean_weights, gradients, tf.constant(float(step)))
    for ours, theirs in zip(lean_weights + lean_adam.variables[2:], keras_weights + keras_adam.variables[2:]):
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-5, atol=1e-7)


def _chunk_setup(tiny, seed=5, learning_rate=1e-3):
    """A model, its optimizer and step variables, and one epoch's batches of the tiny set (the last partial)."""
    model = build_vae(Settings(latent_dim=4, intermediate_dim=16, seed=seed))
    optimizer = keras.optimizers.Adam(learning_rate=learning_rate)
    optimizer.build(model.trainable_variables)
    variables = StepVariables.zeros()
    variables.kl_weight.assign(1.0)
    order = np.zeros(11 * 64, np.int32)
    order[:700] = np.random.default_rng(0).permutation(700)
    sizes = np.full(11, 64, np.int32)
    sizes[-1] = 700 - 640
    data = tf.constant(tiny.x_train.reshape(-1, 784))
    return model, optimizer, variables, data, tf.constant(order.reshape(11, 64)), tf.constant(sizes)


def test_the_fast_chunk_takes_the_same_steps_as_the_checked_one(tiny):
    """train_chunk_fast (lean Adam, no per-step check) against train_chunk (Keras Adam), a whole epoch."""
    results = []
    for chunk in (train_chunk, train_chunk_fast):
        model, optimizer, variables, data, indices, sizes = _chunk_setup(tiny)
        result = chunk(model, optimizer, variables, data, indices, sizes, tf.constant(0), tf.constant(11),
                       loss_kind="elbo", seed=5)  # fmt: skip
        results.append((result, model.get_weights(), int(optimizer.iterations.numpy())))
    (checked, checked_weights, checked_steps), (fast, fast_weights, fast_steps) = results
    assert int(fast.steps) == int(checked.steps) == 11 and checked_steps == fast_steps == 11
    assert not bool(fast.diverged)
    assert float(fast.loss_sum) == pytest.approx(float(checked.loss_sum), rel=1e-4)
    np.testing.assert_allclose(fast.kl_per_dim_sum.numpy(), checked.kl_per_dim_sum.numpy(), rtol=1e-4)
    for ours, theirs in zip(fast_weights, checked_weights):
        np.testing.assert_allclose(ours, theirs, rtol=1e-3, atol=1e-5)


def test_the_fast_chunk_in_pieces_takes_the_same_steps_as_in_one_call(tiny):
    """Chunks that end before, at and after the plan's last (partial, masked) batch add up to one call."""
    results = []
    for pieces in ([(0, 11)], [(0, 4), (4, 6), (10, 1)], [(0, 10), (10, 1)]):
        model, optimizer, variables, data, indices, sizes = _chunk_setup(tiny)
        loss_sum, kl_dims = 0.0, 0.0
        for start, count in pieces:
            result = train_chunk_fast(model, optimizer, variables, data, indices, sizes, tf.constant(start),
                                      tf.constant(count), loss_kind="guide", seed=5)  # fmt: skip
            assert int(result.steps) == count
            loss_sum += float(result.loss_sum)
            kl_dims = kl_dims + result.kl_per_dim_sum.numpy()
        results.append((loss_sum, kl_dims, model.get_weights(), int(optimizer.iterations.numpy())))
    whole = results[0]
    for loss_sum, kl_dims, weights, steps in results[1:]:
        assert steps == whole[3] == 11
        assert loss_sum == pytest.approx(whole[0], rel=1e-5)
        np.testing.assert_allclose(kl_dims, whole[1], rtol=1e-5)
        for ours, theirs in zip(weights, whole[2]):
            np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-7)


def test_the_fast_chunk_reports_a_loss_that_stopped_being_finite(tiny):
    model, optimizer, variables, data, indices, sizes = _chunk_setup(tiny, learning_rate=1e4)
    result = train_chunk_fast(model, optimizer, variables, data, indices, sizes, tf.constant(0), tf.constant(11),
                              loss_kind="elbo", seed=5)  # fmt: skip
    assert bool(result.diverged)


def test_a_fast_chunk_that_diverges_leaves_every_variable_as_it_found_it(tiny):
    """The trainer replays a diverged chunk from its start with no copy of its own, so the chunk must keep it."""
    model, optimizer, variables, data, indices, sizes = _chunk_setup(tiny, learning_rate=1e-3)
    train_chunk_fast(model, optimizer, variables, data, indices, sizes, tf.constant(0), tf.constant(3),
                     loss_kind="elbo", seed=5)  # fmt: skip  (some state first: moments, counters)
    optimizer.learning_rate.assign(1e4)
    before = [v.numpy().copy() for v in (*model.variables, *optimizer.variables, variables.steps_taken)]
    result = train_chunk_fast(model, optimizer, variables, data, indices, sizes, tf.constant(3), tf.constant(8),
                              loss_kind="elbo", seed=5)  # fmt: skip
    assert bool(result.diverged)
    after = [v.numpy() for v in (*model.variables, *optimizer.variables, variables.steps_taken)]
    assert len(after) == len(before) > 10
    for kept, now in zip(before, after):
        np.testing.assert_array_equal(now, kept)
    optimizer.learning_rate.assign(1e-3)  # and a healthy chunk still changes them
    train_chunk_fast(model, optimizer, variables, data, indices, sizes, tf.constant(3), tf.constant(8),
                     loss_kind="elbo", seed=5)  # fmt: skip
    assert int(optimizer.iterations.numpy()) == 11 and float(variables.steps_taken.numpy()) == 11.0
    assert not np.array_equal(model.get_weights()[0], before[0])


@pytest.mark.parametrize("sizes", [(256, 8, "elbo"), (64, 32, "guide")])
def test_xla_copies_no_weight_inside_the_training_loop(tiny, sizes):
    """``steps.after_the_backward_pass`` orders every update after the backward pass, so XLA needs no copy
    of a kernel in the loop (without it: eight a step for 784-256-8, 5-7% of the step). The check reads
    XLA's optimised program, so it also fails if a new TensorFlow orders the step differently."""
    intermediate_dim, latent_dim, loss = sizes
    settings = Settings(intermediate_dim=intermediate_dim, latent_dim=latent_dim, loss=loss, epochs=1)
    trainer = Trainer(settings, tiny, jit_compile=True, validate=False)
    plan = trainer._new_plan()
    program = trainer._train_function("xla").experimental_get_compiler_ir(
        plan.indices, plan.sizes, tf.constant(0), tf.constant(0), loss_kind=loss
    )(stage="optimized_hlo")
    assert "while" in program
    kernel_copies = re.findall(r"f32\[\d+,\d+\]\{1,0\} copy\(%get-tuple-element", program)
    assert kernel_copies == []


@pytest.mark.slow
@pytest.mark.parametrize("kl_weight", [1.0, 0.01])
def test_guide_loss_ends_within_3_percent_of_the_guides_plain_loop(mnist, kl_weight):
    settings = Settings(loss="guide", kl_weight=kl_weight, epochs=3, seed=0)
    result = Trainer(settings, mnist).run()
    reference = guide_training_loop(build_vae(settings), mnist.x_train.reshape(-1, 784), epochs=3)
    assert result.reason == "finished" and result.epochs == 3
    assert result.loss == pytest.approx(reference[-1], rel=0.03)
    if kl_weight == 1.0:  # the guide's collapse: every reconstruction is the mean image
        mean_image_mse = float(np.mean((mnist.x_train - mnist.x_train.mean(axis=0)) ** 2))
        assert result.reconstruction_loss == pytest.approx(mean_image_mse, rel=0.05)
    else:  # a small KL weight learns digits: far below the mean image's error
        assert result.reconstruction_loss < 0.06


def test_the_same_seed_and_settings_give_the_same_losses(tiny):
    settings = Settings(loss="elbo", latent_dim=4, intermediate_dim=32, epochs=2, seed=11)
    first, second = Trainer(settings, tiny), Trainer(settings, tiny)
    first.run(), second.run()
    # Per-epoch figures and weights: the streamed records' spans depend on the machine's speed.
    losses = [[r.loss for r in t.history.records("val")] for t in (first, second)]
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-6)
    for a, b in zip(first.model.get_weights(), second.model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    other = Trainer(settings.replace(seed=12), tiny)
    other.run()
    assert other.history.records("val")[-1].loss != first.history.records("val")[-1].loss


def test_partial_batches_every_epoch_without_retracing(tiny):
    trainer = Trainer(Settings(batch_size=64, epochs=4), tiny)
    assert trainer.steps_per_epoch == 11  # 700 = 10 x 64 + 60
    result = trainer.run()
    assert result.epochs == 4 and trainer.step == 44
    assert trainer._train_calls[(result.compiler, "guide")].experimental_get_tracing_count() == 1
    assert trainer._evaluate_calls["guide"].experimental_get_tracing_count() == 1
    steps = [r.step for r in trainer.history.records("val")]
    assert steps == [11, 22, 33, 44]


def test_a_warm_up_compiles_what_the_next_run_calls_and_trains_nothing(tiny):
    trainer = Trainer(Settings(epochs=2), tiny)
    initial = trainer.model.get_weights()
    trainer.start_warm_up()
    thread = trainer._warming
    thread.join(120)
    assert trainer.warm and trainer.step == 0
    for before, after in zip(initial, trainer.model.get_weights()):
        np.testing.assert_array_equal(before, after)
    compiled = {key: f.experimental_get_tracing_count() for key, f in trainer._train_calls.items()}
    assert compiled == {("graph", "guide"): 1}  # 22 steps: the graph, as the run will use
    assert trainer._evaluate_calls["guide"].experimental_get_tracing_count() == 1
    result = trainer.run()
    assert result.compiler == "graph" and trainer.step == 22
    assert trainer._train_calls[("graph", "guide")].experimental_get_tracing_count() == 1  # no new trace
    trainer.apply(trainer.settings.replace(loss="elbo"))  # a new loss warms up again, in the background
    trainer._warming.join(120)
    assert trainer._train_calls[("graph", "elbo")].experimental_get_tracing_count() == 1
    assert trainer.step == 22


def test_a_dataset_smaller_than_one_batch_trains(tiny):
    settings = Settings(batch_size=512, epochs=2)
    small = type(tiny)("mnist", tiny.x_train[:100], tiny.y_train[:100], tiny.x_test[:20], tiny.y_test[:20], "s", "x")
    trainer = Trainer(settings, small)
    assert trainer.run().reason == "finished" and trainer.step == 2


def test_validation_losses_come_at_each_epoch_end(tiny):
    trainer = Trainer(Settings(loss="elbo", epochs=3, latent_dim=4), tiny)
    updates = []
    trainer.run(on_update=updates.append)
    val = [r for r in updates if r.split == "val"]
    assert [r.epoch for r in val] == [1, 2, 3]
    assert all(np.isfinite([r.loss, r.reconstruction_loss, r.kl_loss]).all() for r in val)
    assert val[-1].loss < val[0].loss
    train = trainer.history.records("train")
    assert val[-1].reconstruction_loss == pytest.approx(train[-1].reconstruction_loss, rel=0.25)


def test_streamed_updates_carry_losses_and_speed(tiny):
    trainer = Trainer(Settings(epochs=2), tiny, seconds_per_call=0.001)
    updates = []
    trainer.run(on_update=updates.append)
    train = [r for r in updates if r.split == "train"]
    assert len(train) >= 4  # several calls an epoch
    assert all(r.loss > 0 for r in train)
    # The first call compiled: its speed is not measured (it would make the time left read hours); the rest are.
    assert train[0].steps_per_second == 0 and all(r.steps_per_second > 0 for r in train[1:])
    assert [r.step for r in train] == sorted(r.step for r in train)
    assert trainer.history.kl_per_dim.shape == (32,)


def _run_in_thread(trainer, control=None):
    control = Control() if control is None else control
    outcome = {}
    thread = threading.Thread(target=lambda: outcome.update(result=trainer.run(control=control)))
    thread.start()
    return thread, outcome, control


def test_stop_from_another_thread_takes_effect_quickly_and_resume_keeps_state(mnist):
    trainer = Trainer(Settings(epochs=1000), mnist)
    thread, outcome, control = _run_in_thread(trainer)
    wait_for(lambda: trainer.step > 300, COMPILE_WAIT)  # compiled and running
    asked = time.monotonic()
    control.stop()
    thread.join(5)
    assert time.monotonic() - asked < 0.5
    assert outcome["result"].reason == "stopped"
    step, weights = trainer.step, trainer.model.get_weights()
    moments = [v.numpy() for v in trainer.optimizer.variables]
    # a second run carries on from the same model and optimizer state
    thread, outcome, control = _run_in_thread(trainer)
    wait_for(lambda: trainer.step > step)
    control.stop()
    thread.join(5)
    assert trainer.optimizer.iterations.numpy() > step
    assert not np.array_equal(trainer.model.get_weights()[0], weights[0])
    assert moments[0] == step  # the optimizer's step count came along


def test_pause_holds_training_and_resume_continues(mnist):
    trainer = Trainer(Settings(epochs=1000), mnist)
    thread, outcome, control = _run_in_thread(trainer)
    wait_for(lambda: trainer.step > 100, COMPILE_WAIT)  # compiled and running
    control.pause()
    time.sleep(0.3)
    paused_at = trainer.step
    time.sleep(0.5)
    assert trainer.step == paused_at
    control.resume()
    wait_for(lambda: trainer.step > paused_at + 50)
    control.stop()
    thread.join(5)
    assert outcome["result"].reason == "stopped"


def test_a_pause_and_a_stop_sent_before_the_run_begins_are_obeyed(tiny):
    """Nothing clears a run's control: whoever starts the run owns it."""
    trainer = Trainer(Settings(epochs=1000), tiny)
    control = Control()
    control.pause()
    thread, outcome, _ = _run_in_thread(trainer, control)
    time.sleep(0.2)
    assert trainer.step == 0  # still paused
    control.stop()
    thread.join(30)
    assert not thread.is_alive() and outcome["result"].reason == "stopped" and trainer.step == 0


def test_reset_gives_fresh_weights_and_optimizer_and_repeats_the_first_run(tiny):
    trainer = Trainer(Settings(epochs=1, seed=3), tiny)
    initial = trainer.model.get_weights()
    trainer.run()
    first = [r.loss for r in trainer.history.records()]
    functions = dict(trainer._train_calls)
    trainer.reset()
    assert trainer.step == 0 and trainer.epoch == 0 and len(trainer.history) == 0
    assert all(not np.any(v.numpy()) for v in trainer.optimizer.variables if "learning_rate" not in v.path)
    for a, b in zip(initial, trainer.model.get_weights()):
        np.testing.assert_array_equal(a, b)
    trainer.run()
    np.testing.assert_allclose([r.loss for r in trainer.history.records()], first, rtol=1e-6)
    assert trainer._train_calls == functions, "a reset reuses the compiled functions"


def reconstruction_error(model, images: np.ndarray) -> float:
    """Mean squared error of the reconstructions decoded from the codes' means, in numpy."""
    images = images.reshape(-1, 784)
    epsilon = np.zeros((len(images), model.latent_dim), dtype=np.float32)
    _, _, reconstruction = vae_forward(model, images, epsilon)
    return float(np.mean((images - reconstruction) ** 2))


def test_a_fresh_model_that_diverges_at_once_says_so_and_keeps_its_initial_weights(tiny):
    settings = Settings(loss="elbo", learning_rate=10.0, epochs=50)
    trainer = Trainer(settings, tiny)
    result = trainer.run()
    assert result.reason == "diverged"
    assert (result.diverged_step, result.loss_ratio, result.restored_epoch, result.restored_step) == (2, None, 0, 0)
    assert "step 2" in result.message and "the initial weights were kept" in result.message
    for kept, initial in zip(trainer.model.get_weights(), build_vae(settings).get_weights()):
        np.testing.assert_array_equal(kept, initial)
    _, published = trainer.weights()
    np.testing.assert_array_equal(published[0], trainer.model.get_weights()[0])


@pytest.mark.parametrize("learning_rate", [0.1, 1.0])  # after two epochs: a finite explosion, a NaN
def test_a_run_that_diverges_later_restores_its_best_epoch_and_reconstructs_no_worse(tiny, learning_rate):
    """Two healthy epochs, then a learning rate that ruins the model (by a finite explosion or a NaN):
    the restored model is the one trained for two epochs (a twin trained alone is the reference)."""
    settings = Settings(loss="elbo", latent_dim=64, intermediate_dim=1024, epochs=2)
    trainer, twin = Trainer(settings, tiny, jit_compile=False), Trainer(settings, tiny, jit_compile=False)
    trainer.run(), twin.run()
    untrained = reconstruction_error(build_vae(settings), tiny.x_test)
    trained = reconstruction_error(twin.model, tiny.x_test)
    trainer.apply(settings.replace(learning_rate=learning_rate, epochs=5))
    result = trainer.run()
    assert result.reason == "diverged" and result.restored_epoch == 2 and result.restored_step == 22
    assert "the weights from the end of epoch 2 were restored" in result.message
    assert (result.loss_ratio is None) == ("finite" in result.message)
    after = reconstruction_error(trainer.model, tiny.x_test)
    assert after <= untrained and after == pytest.approx(trained, rel=1e-4)
    assert trainer.step > 22  # the step count goes on: the history keeps what happened


def test_an_exploding_epoch_is_divergence_even_when_the_loss_stays_finite(mnist):
    """784-1024-64 at a learning rate of 0.03 on the bundled sample: the first epoch's loss grows by orders
    of magnitude but stays finite (the issue's run "finished" 10 epochs at 28 times the untrained loss)."""
    settings = Settings(loss="elbo", latent_dim=64, intermediate_dim=1024, learning_rate=0.03, epochs=2)
    trainer = Trainer(settings, mnist, jit_compile=False)
    result = trainer.run()
    assert result.reason == "diverged" and result.loss_ratio > EXPLODED_RATIO and np.isfinite(result.loss)
    assert result.diverged_step == 71 and result.restored_epoch == 0 and "exploded" in result.message
    x_test = mnist.x_test
    assert reconstruction_error(trainer.model, x_test) == reconstruction_error(build_vae(settings), x_test)


@pytest.mark.parametrize(
    ("first", "then"),
    [
        ({"loss": "guide", "kl_weight": 0.0}, None),
        ({"loss": "guide", "kl_weight": 100.0, "kl_warmup_steps": 30}, None),
        ({"loss": "elbo", "kl_weight": 100.0, "kl_warmup_steps": 30}, None),
        ({"loss": "elbo", "kl_weight": 0.0}, {"kl_weight": 100.0}),  # a model trained without KL, then a heavy one
    ],
)
def test_healthy_runs_never_count_as_diverged(tiny, first, then):
    trainer = Trainer(Settings(epochs=6, **first), tiny, jit_compile=False)
    assert trainer.run().reason == "finished"
    if then is not None:
        trainer.apply(trainer.settings.replace(**then))
        assert trainer.run().reason == "finished"


def test_kl_warmup_ramps_the_weight_from_zero(tiny):
    trainer = Trainer(Settings(loss="elbo", kl_weight=2.0, kl_warmup_steps=30, epochs=5), tiny, seconds_per_call=0.001)
    trainer.run()
    weights = [(r.step, r.kl_weight) for r in trainer.history.records("train")]
    assert weights[0][1] < 2.0 * 0.5
    assert weights[-1][1] == pytest.approx(2.0)
    early = [w for step, w in weights if step < 30]
    assert early == sorted(early)


def test_apply_changes_rates_without_a_reset_and_refuses_new_sizes(tiny):
    trainer = Trainer(Settings(epochs=1), tiny)
    trainer.run()
    trainer.apply(trainer.settings.replace(learning_rate=0.01, kl_weight=0.1, batch_size=32))
    assert float(trainer.optimizer.learning_rate.numpy()) == pytest.approx(0.01)
    assert trainer.model.kl_weight == pytest.approx(0.1) and trainer.steps_per_epoch == 22
    step = trainer.step
    trainer.run()
    assert trainer.step == step + 22
    assert trainer.history.records()[-1].kl_weight == pytest.approx(0.1)
    with pytest.raises(ValueError, match="needs a reset"):
        trainer.apply(trainer.settings.replace(latent_dim=3))


def test_published_weights_follow_training(tiny):
    trainer = Trainer(Settings(epochs=1), tiny)
    version, weights = trainer.weights()
    trainer.run()
    new_version, new_weights = trainer.weights()
    assert new_version > version
    np.testing.assert_array_equal(new_weights[0], trainer.model.get_weights()[0])
