"""The math of training, as plain functions: the masked losses, the KL warm-up, the noise, a chunk of steps.

``Trainer`` compiles ``train_chunk`` once (``tf.function``, XLA for long runs) and
calls it with a range of batches; everything it reads that may change between
runs (rates, KL weight, warm-up) is a variable, so nothing ever retraces.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import tensorflow as tf

from playground.losses import kl_per_dimension, loss_terms


class StepLosses(NamedTuple):
    """Means over a batch's real rows."""

    loss: tf.Tensor  # reconstruction + KL weight x KL
    reconstruction: tf.Tensor
    kl: tf.Tensor  # not yet multiplied by the KL weight
    kl_per_dim: tf.Tensor  # [L]


class ChunkResult(NamedTuple):
    """Sums of the loss terms over the steps a call applied, how many, and whether it stopped at a bad loss."""

    loss_sum: tf.Tensor
    reconstruction_sum: tf.Tensor
    kl_sum: tf.Tensor
    kl_per_dim_sum: tf.Tensor  # [L]
    steps: tf.Tensor  # int32
    diverged: tf.Tensor  # bool: a step's loss was not finite; that step was not applied
    kl_weight: tf.Tensor  # the KL weight of the step after the chunk (read here: eagerly it costs a millisecond)


@dataclass(frozen=True)
class StepVariables:
    """The float variables a compiled step reads besides the model and the optimizer (all scalars)."""

    steps_taken: tf.Variable  # a float twin of optimizer.iterations: see step_noise
    steps_before: tf.Variable  # steps a loaded model had already taken (its KL warm-up counts on)
    kl_weight: tf.Variable
    warmup_steps: tf.Variable  # 0: no warm-up

    @classmethod
    def zeros(cls) -> StepVariables:
        return cls(*(tf.Variable(0.0, trainable=False) for _ in range(4)))

    def kl_weight_now(self) -> tf.Tensor:
        """The KL weight for the next step."""
        return kl_weight_at(self.kl_weight, self.warmup_steps, self.steps_taken + 1.0 + self.steps_before)


def kl_weight_at(kl_weight, warmup_steps, step):
    """The KL weight at ``step`` (1 for the first): ramped up linearly over ``warmup_steps`` (0: no ramp)."""
    ramp = tf.minimum(1.0, step / tf.maximum(warmup_steps, 1.0))
    return kl_weight * tf.where(warmup_steps > 0, ramp, 1.0)


def step_noise(seed: int, step, batch_size, latent_dim: int, training: bool = True):
    """eps ~ N(0, I) [B, L], a function of (seed, step) alone: one stream for training, one for scoring.

    ``step`` is a float counter. The Sampling layer's SeedGenerator keeps an int64
    state, and under XLA any int64 variable read in the training loop (that state,
    the optimizer's step count) halves its speed, while values derived from a float
    counter cost nothing. Same distribution, still repeatable.
    """
    step = tf.cast(step, tf.int32)
    stream = tf.stack([tf.constant(seed, tf.int32), step if training else -1 - step])
    # Philox by name: the default ("auto_select") is Philox too in a plain graph, but under XLA on a
    # CPU it took 248 us for a 64 x 32 draw against Philox's 67 (a sixth of the guide model's step).
    return tf.random.stateless_normal([batch_size, latent_dim], seed=stream, alg="philox")


def masked_losses(model, images, mask, epsilon, loss_kind: str, kl_weight, labels=None) -> StepLosses:
    """The loss terms of ``images`` [B, 784] with noise ``epsilon`` [B, L], averaged over the rows
    where ``mask`` [B] is 1 (a padded last batch has zeros); ``mask=None``: every row is real;
    ``labels`` [B] for a conditional model."""
    output = model.forward(images, epsilon=epsilon, labels=labels)
    kl = kl_per_dimension(output.z_mean, output.z_log_var)  # [B, L]
    terms = loss_terms(loss_kind, images, output.reconstruction, kl)
    if mask is None:  # a full batch: plain means, no mask to build, multiply and count (a fifth of a step)
        reconstruction = tf.reduce_mean(terms.reconstruction)
        kl_mean = tf.reduce_mean(terms.kl)
        kl_per_dim = tf.reduce_mean(kl, axis=0)
    else:
        count = tf.reduce_sum(mask)
        reconstruction = tf.reduce_sum(terms.reconstruction * mask) / count
        kl_mean = tf.reduce_sum(terms.kl * mask) / count
        kl_per_dim = tf.reduce_sum(kl * mask[:, None], axis=0) / count
    return StepLosses(reconstruction + kl_weight * kl_mean, reconstruction, kl_mean, kl_per_dim)


def batch_gradients(
    model, variables: StepVariables, x_train, indices, sizes, i, *, loss_kind: str, seed: int, y_train=None,
    full: bool = False,
) -> tuple[StepLosses, list]:
    """Batch ``i`` of an epoch plan: its masked losses and their gradients for the model's weights.

    ``indices`` [S, B] holds each batch's row numbers in ``x_train`` [N, 784] and
    ``sizes`` [S] its real rows (the last batch is padded and masked). ``full``: the
    caller knows batch ``i`` is full, so no mask is built. ``y_train`` [N] (int32), the
    labels, only for a conditional model: the others' graph has no label.
    """
    batch_size = tf.shape(indices)[1]
    images = tf.gather(x_train, indices[i])  # [B, 784]
    labels = None if y_train is None else tf.gather(y_train, indices[i])  # [B]
    mask = None if full else tf.cast(tf.range(batch_size) < sizes[i], tf.float32)  # [B]
    epsilon = step_noise(seed, variables.steps_taken, batch_size, model.latent_dim)
    with tf.GradientTape() as tape:
        losses = masked_losses(model, images, mask, epsilon, loss_kind, variables.kl_weight_now(), labels)
    return losses, tape.gradient(losses.loss, model.trainable_variables)


def train_chunk(
    model, optimizer, variables: StepVariables, x_train, indices, sizes, start, count, *, loss_kind: str, seed: int,
    y_train=None,
) -> ChunkResult:
    """Steps ``start`` .. ``start + count`` of an epoch's batches: the guide's GradientTape step, many times.

    ``indices`` [S, B] holds each batch's row numbers in ``x_train`` [N, 784] and
    ``sizes`` [S] its real rows (the last batch is padded). Stops early, before
    applying it, at the first step whose loss is not finite (checking every
    gradient too would cost 10% of the speed; weights made non-finite by one bad
    update show up as the next step's loss).
    """
    weights = model.trainable_variables
    sums = (tf.constant(0.0), tf.constant(0.0), tf.constant(0.0), tf.zeros([model.latent_dim]))
    steps, diverged = tf.constant(0), tf.constant(False)
    # A while loop, not ``for i in tf.range``: XLA would take the range's bounds as
    # compile-time constants and recompile for every new (start, count).
    i = start
    while i < start + count:
        losses, gradients = batch_gradients(
            model, variables, x_train, indices, sizes, i, loss_kind=loss_kind, seed=seed, y_train=y_train
        )
        if not tf.math.is_finite(losses.loss):
            diverged = tf.constant(True)
            break
        optimizer.apply_gradients(zip(gradients, weights))
        variables.steps_taken.assign_add(1.0)
        sums = tuple(total + term for total, term in zip(sums, losses))
        steps += 1
        i += 1
    return ChunkResult(*sums, steps, diverged, variables.kl_weight_now())


def adam_update(optimizer, weights, gradients, step) -> None:
    """One Adam step on ``weights`` with the Keras optimizer's own moments, its maths line for line.

    ``step`` is the float number of this step (1 for the first). Keras' ``apply_gradients``
    does the same arithmetic but reads its int64 step count and checks and scales the
    gradients first: dozens of small operations a step, which cost the graph path a
    quarter of its speed. The caller advances ``optimizer.iterations`` once a chunk.
    """
    beta_1, beta_2 = optimizer.beta_1, optimizer.beta_2
    alpha = optimizer.learning_rate * tf.sqrt(1.0 - tf.pow(beta_2, step)) / (1.0 - tf.pow(beta_1, step))
    # Keras keeps the moments in lists ordered like the weights it was built with.
    for weight, gradient, m, v in zip(weights, gradients, optimizer._momentums, optimizer._velocities):
        m.assign_add((gradient - m) * (1.0 - beta_1))
        v.assign_add((tf.square(gradient) - v) * (1.0 - beta_2))
        weight.assign_sub(m * alpha / (tf.sqrt(v) + optimizer.epsilon))


def after_the_backward_pass(value, gradients):
    """``value`` itself, computed after every gradient: an update that reads it cannot come earlier.

    XLA orders a step's work by data alone, and an Adam update needs only its own
    weight's gradient, so it may overwrite a weight before a later matmul of the
    backward pass has read it; to be safe XLA copies such weights every step (for the
    app's 784-256-8 the 256 x 784 output kernel and three small ones: 5 to 7% of a
    step, measured interleaved on both models, 2026-11-26). The first layer's gradient
    is the backward pass's last result (it needs every other layer's), so adding 0 times
    one of its elements ties every update to the whole pass, and the copies go. 0 times
    a non-finite gradient is NaN, which the chunk's finiteness check then sees, as it
    would the non-finite weights that gradient makes anyway.
    """
    return value + 0.0 * tf.reshape(gradients[0], [-1])[0]


def train_chunk_fast(
    model, optimizer, variables: StepVariables, x_train, indices, sizes, start, count, *, loss_kind: str, seed: int,
    y_train=None,
) -> ChunkResult:
    """``train_chunk``'s steps with no check between them: ``diverged`` says whether any loss or weight
    ended up not finite, and then the chunk leaves every variable it changes as it found it, and the
    caller replays it with ``train_chunk``, which stops at the bad step.

    A per-step check puts each update inside a conditional (XLA copies every weight
    through it) and ends the loop with a data-dependent exit; checking once a chunk
    costs one pass over the weights, and keeping the start state is one select as the
    chunk writes its results (a copy of the state taken before each call cost 1.2 ms a
    call under XLA, 2% of an epoch of the app's model). Every batch of a plan but its
    last is full (see ``Trainer._new_plan``), so those run without a mask and only the
    last one with it.
    """
    weights = model.trainable_variables
    changed = chunk_state(model, optimizer, variables)
    at_start = [tf.identity(variable) for variable in changed]  # read before the first step

    def step(i, sums, full: bool):
        losses, gradients = batch_gradients(
            model, variables, x_train, indices, sizes, i, loss_kind=loss_kind, seed=seed, y_train=y_train, full=full
        )
        variables.steps_taken.assign_add(1.0)
        step_number = after_the_backward_pass(variables.steps_taken, gradients)  # the count after this step
        adam_update(optimizer, weights, gradients, step_number)
        return tuple(total + term for total, term in zip(sums, losses))

    sums = (tf.constant(0.0), tf.constant(0.0), tf.constant(0.0), tf.zeros([model.latent_dim]))
    end = start + count
    full_end = tf.minimum(end, tf.shape(indices)[0] - 1)  # the plan's last batch may be partial
    i = start
    while i < full_end:  # bounds are tensors: one compiled loop serves every chunk
        sums = step(i, sums, full=True)
        i += 1
    while i < end:  # the plan's last batch, masked: at most one step
        sums = step(i, sums, full=False)
        i += 1
    optimizer.iterations.assign_add(tf.cast(count, optimizer.iterations.dtype))
    finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(w)) for w in weights]) & tf.math.is_finite(sums[0])
    for variable, start_value in zip(changed, at_start):
        variable.assign(tf.where(finite, tf.identity(variable), start_value))
    return ChunkResult(*sums, count, tf.logical_not(finite), variables.kl_weight_now())


def chunk_state(model, optimizer, variables: StepVariables) -> list:
    """Every variable a chunk of steps changes: the weights, Adam's moments and step count, the float
    step counter."""
    return [*model.trainable_variables, *optimizer._momentums, *optimizer._velocities, optimizer.iterations,
            variables.steps_taken]  # fmt: skip


def evaluate(model, variables: StepVariables, images, *, loss_kind: str, seed: int, labels=None) -> StepLosses:
    """The loss terms of ``images`` [M, 784] (``labels`` [M] if conditional) at the current KL weight,
    with the scoring noise stream."""
    count = tf.shape(images)[0]
    epsilon = step_noise(seed, variables.steps_taken, count, model.latent_dim, training=False)
    return masked_losses(model, images, None, epsilon, loss_kind, variables.kl_weight_now(), labels)
