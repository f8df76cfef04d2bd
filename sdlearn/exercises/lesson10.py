"""Graders of lesson 10, training: ``check.training_loss``, ``check.drop_captions`` and
``check.ema_update``.

The training loss is graded on the pipeline's own UNet under two schedulers, an epsilon one
(what ``sdlearn train`` trains) and a v-prediction one (Stable Diffusion 2's 768 models), so
that both targets and both Min-SNR weightings are checked. Caption dropout is random, so it is
graded by what it does over many batches: the share it drops, that it keeps the other captions
as they were, and that one generator gives one answer.

>>> def kept_everything(prompts, dropout, generator):
...     return list(prompts)
>>> graded = drop_captions(kept_everything, pipe=None)  # doctest: +ELLIPSIS
✗ drop_captions: no caption was dropped: ...
"""

from __future__ import annotations

import torch

from ..device import make_generator, randn
from ..training.unet import diffusion_loss, min_snr_weight
from .common import grader, seeded_latents
from .grading import Check, Exercise, Marker, Mistake

# ----------------------------------------------------------------------------- the training loss


def _loss_inputs(pipe) -> list[tuple]:
    """The UNet, an epsilon and a v-prediction scheduler, latents, noise, timesteps, states."""
    from diffusers import DDPMScheduler

    unet = pipe.unet
    x0 = seeded_latents(pipe, 10, batch=4)
    noise = seeded_latents(pipe, 11, batch=4)
    t = torch.tensor([5, 250, 600, 990], device=pipe.device)
    width = unet.config.cross_attention_dim
    states = randn((4, 7, width), make_generator(12)).to(pipe.device, unet.dtype)
    cases = []
    for kind in ("epsilon", "v_prediction"):
        sched = DDPMScheduler.from_config(pipe.scheduler.config, prediction_type=kind)
        cases.append((unet, sched, x0, noise, t, states))
    return cases


def _parts(scheduler, x0, t):
    a = scheduler.alphas_cumprod.to(x0.device)[t].float().reshape(-1, 1, 1, 1)
    return a, (a / (1 - a)).flatten()


def _noised(a, x0, noise):
    return (a.sqrt() * x0.float() + (1 - a).sqrt() * noise.float()).to(x0.dtype)


def _errors(unet, noisy, t, states, target):
    pred = unet(noisy, t, encoder_hidden_states=states).sample.float()
    return ((pred - target) ** 2).mean(dim=(1, 2, 3))


def _target(scheduler, a, x0, noise):
    if scheduler.config.prediction_type == "v_prediction":
        return a.sqrt() * noise.float() - (1 - a).sqrt() * x0.float()
    return noise.float()


def _min_snr(scheduler, snr, gamma):
    return min_snr_weight(snr, gamma, scheduler.config.prediction_type)


def reference_training_loss(unet, scheduler, x0, noise, t, states, gamma=5.0):
    """Min-SNR weighted mean squared error of the UNet's prediction against its target: the
    objective of ``sdlearn train`` (:func:`sdlearn.training.unet.diffusion_loss`)."""
    return diffusion_loss(unet, scheduler, x0, noise, t, states, gamma)[0]


@grader
def training_loss(pipe) -> Exercise:
    """Exercise (derive it): ``training_loss(unet, scheduler, x0, noise, t, states, gamma=5.0)``
    → the objective of one batch: the latents noised to ``t``, the UNet's prediction against
    its target (the noise, or v for a v-prediction scheduler), each example's mean squared
    error weighted by Min-SNR, ``min(snr, gamma) / snr`` (``/ (snr + 1)`` for v), averaged."""

    def weighted(weight_of):
        @torch.no_grad()
        def loss(unet, scheduler, x0, noise, t, states, gamma=5.0):
            a, snr = _parts(scheduler, x0, t)
            errors = _errors(unet, _noised(a, x0, noise), t, states,
                             _target(scheduler, a, x0, noise))
            return (weight_of(scheduler, snr, gamma) * errors).mean()
        return loss

    plain = weighted(lambda s, snr, gamma: torch.ones_like(snr))
    not_clamped = weighted(lambda s, snr, gamma: gamma / snr)
    not_divided = weighted(lambda s, snr, gamma: torch.clamp(snr, max=gamma))
    epsilon_weight_for_v = weighted(lambda s, snr, gamma: min_snr_weight(snr, gamma))

    @torch.no_grad()
    def noise_target_for_v(unet, scheduler, x0, noise, t, states, gamma=5.0):
        a, snr = _parts(scheduler, x0, t)
        errors = _errors(unet, _noised(a, x0, noise), t, states, noise.float())
        return (_min_snr(scheduler, snr, gamma) * errors).mean()

    @torch.no_grad()
    def no_square_roots(unet, scheduler, x0, noise, t, states, gamma=5.0):
        a, snr = _parts(scheduler, x0, t)
        noisy = (a * x0.float() + (1 - a) * noise.float()).to(x0.dtype)
        errors = _errors(unet, noisy, t, states, _target(scheduler, a, x0, noise))
        return (_min_snr(scheduler, snr, gamma) * errors).mean()

    @torch.no_grad()
    def weighted_the_mean(unet, scheduler, x0, noise, t, states, gamma=5.0):
        a, snr = _parts(scheduler, x0, t)
        errors = _errors(unet, _noised(a, x0, noise), t, states, _target(scheduler, a, x0, noise))
        return _min_snr(scheduler, snr, gamma).mean() * errors.mean()

    def one_number(got, expected, args) -> bool:
        return isinstance(got, torch.Tensor) and got.numel() == 1

    return Exercise(
        "training_loss", reference_training_loss, lambda: _loss_inputs(pipe),
        mistakes=[
            Mistake(plain, "that is the plain mean squared error; weight each example by "
                           "Min-SNR: min(snr, gamma) / snr, with snr = ᾱ / (1 − ᾱ) at its "
                           "timestep"),
            Mistake(not_clamped, "gamma / snr is Min-SNR without the min: clamp snr at gamma "
                                 "first, torch.clamp(snr, max=gamma) / snr, so that noisy steps "
                                 "weigh 1 and not more"),
            Mistake(not_divided, "min(snr, gamma) weights the error of predicting x0; the UNet "
                                 "predicts the noise, so divide by snr: min(snr, gamma) / snr"),
            Mistake(noise_target_for_v, "right for epsilon; a v-prediction scheduler's target is "
                                        "v = √ᾱ·noise − √(1 − ᾱ)·x0 (scheduler.get_velocity)"),
            Mistake(epsilon_weight_for_v, "right for epsilon; for v-prediction Min-SNR divides "
                                          "by snr + 1: min(snr, gamma) / (snr + 1)"),
            Mistake(no_square_roots, "noise with the square roots, as add_noise does: "
                                     "√ᾱ·x0 + √(1 − ᾱ)·noise (lesson 04)"),
            Mistake(weighted_the_mean, "weight each example's own error, then average: "
                                       "(weights * per_example).mean(), with per_example the "
                                       "mean over dimensions 1, 2 and 3"),
        ],
        checks=[Check(one_number, "return one number, the batch's loss, as a tensor "
                                  "(.mean() of the weighted errors)")],
        atol=1e-3 if pipe is not None and pipe.unet.dtype != torch.float32 else 1e-5,
        rtol=1e-3)


# ----------------------------------------------------------------------------- caption dropout

DRAWS, PROMPTS = 40, 50
NONE_DROPPED = Marker("no caption was dropped")
CHANGED = Marker("a kept caption changed, or the list changed length")
NOT_REPEATABLE = Marker("the same generator gave two answers")
ALWAYS_THE_SAME = Marker("every generator dropped the same captions")


def _captions() -> list[str]:
    return [f"a {c} circle" for c in ("red", "green", "blue", "white", "black")] * (PROMPTS // 5)


def _dropout_cases(pipe) -> list[tuple]:
    return [(_captions(), 0.1), (_captions(), 0.5)]


def _behaviour(fn):
    """What a ``drop_captions`` does over many batches: the share it drops (to 0.05), or why
    that cannot be read."""

    def behaviour(prompts, dropout):
        outs = [fn(list(prompts), dropout, make_generator(seed)) for seed in range(DRAWS)]
        if any(not isinstance(o, list) or len(o) != len(prompts)
               or any(p not in ("", q) for p, q in zip(o, prompts, strict=True)) for o in outs):
            return CHANGED
        dropped = sum(p == "" for o in outs for p in o) / (DRAWS * len(prompts))
        if dropped == 0:
            return NONE_DROPPED
        if fn(list(prompts), dropout, make_generator(0)) != outs[0]:
            return NOT_REPEATABLE
        if all(o == outs[0] for o in outs):
            return ALWAYS_THE_SAME
        return round(dropped / 0.05) * 0.05

    return behaviour


def reference_drop_captions(prompts, dropout, generator):
    """Each prompt replaced by ``""`` with probability ``dropout``, one draw per prompt."""
    dropped = torch.rand(len(prompts), generator=generator) < dropout
    return ["" if d else p for p, d in zip(prompts, dropped.tolist(), strict=True)]


@grader
def drop_captions(pipe) -> Exercise:
    """Exercise: ``drop_captions(prompts, dropout, generator)`` → the prompts with each one
    replaced by ``""`` with probability ``dropout``, drawn with ``generator``."""

    def kept_with_the_probability(prompts, dropout, generator):
        kept = torch.rand(len(prompts), generator=generator) < dropout
        return [p if k else "" for p, k in zip(prompts, kept.tolist(), strict=True)]

    def kept_them_all(prompts, dropout, generator):
        return list(prompts)

    def the_first_ones(prompts, dropout, generator):
        n = round(dropout * len(prompts))
        return [""] * n + list(prompts[n:])

    def removed(prompts, dropout, generator):
        keep = torch.rand(len(prompts), generator=generator) >= dropout
        return [p for p, k in zip(prompts, keep.tolist(), strict=True) if k]

    def unseeded(prompts, dropout, generator):
        return ["" if torch.rand(()) < dropout else p for p in prompts]

    def readable(got, expected, args) -> bool:
        return not isinstance(got, Marker) or got == expected

    return Exercise(
        "drop_captions", reference_drop_captions, lambda: _dropout_cases(pipe),
        mistakes=[
            Mistake(kept_them_all, "no caption was dropped: replace a prompt by \"\" when "
                                   "its draw, torch.rand(len(prompts), generator=generator), "
                                   "is below dropout"),
            Mistake(kept_with_the_probability, "that drops 1 − dropout of them: a caption is "
                                               "dropped when its draw is below dropout"),
            Mistake(the_first_ones, "the same captions every time: draw for each prompt, "
                                    "torch.rand(len(prompts), generator=generator) < dropout"),
            Mistake(removed, "replace a dropped caption by \"\", do not remove it: its picture "
                             "still trains, as the unconditional example"),
            Mistake(unseeded, "draw with the generator you are given "
                              "(torch.rand(..., generator=generator)), so that a seed gives "
                              "the same batch"),
        ],
        checks=[Check(readable, "return a list as long as prompts, each entry the prompt "
                                "itself or \"\", drawn with the generator")],
        adapt=_behaviour)


# ----------------------------------------------------------------------------- the EMA update


def _ema_cases(pipe) -> list[tuple]:
    gen = make_generator(13)
    shadow = {"weight": torch.randn(3, 4, generator=gen), "bias": torch.randn(4, generator=gen)}
    weights = {k: v + torch.randn(v.shape, generator=gen) for k, v in shadow.items()}
    return [(shadow, weights, 0.999), (shadow, weights, 0.9)]


def reference_ema_update(shadow, weights, decay):
    """The new average: ``decay · shadow + (1 − decay) · weights``, entry by entry."""
    return {k: decay * shadow[k] + (1 - decay) * weights[k] for k in shadow}


@grader
def ema_update(pipe) -> Exercise:
    """Exercise (fix the bug): ``ema_update(shadow, weights, decay)`` → the exponential moving
    average one step on: each entry moves ``1 − decay`` of the way toward the new weights."""

    def swapped(shadow, weights, decay):
        return {k: decay * weights[k] + (1 - decay) * shadow[k] for k in shadow}

    def no_move(shadow, weights, decay):
        return {k: v.clone() for k, v in shadow.items()}

    def followed(shadow, weights, decay):
        return {k: v.clone() for k, v in weights.items()}

    def decay_only(shadow, weights, decay):
        return {k: decay * shadow[k] + weights[k] for k in shadow}

    def same_keys(got, expected, args) -> bool:
        return isinstance(got, dict) and set(got) == set(expected)

    return Exercise(
        "ema_update", reference_ema_update, lambda: _ema_cases(pipe),
        mistakes=[
            Mistake(swapped, "still the bug: that average jumps almost all the way to the new "
                             "weights. Keep decay on the average itself, "
                             "decay · shadow + (1 − decay) · weights"),
            Mistake(no_move, "the average did not move: add (1 − decay) · weights"),
            Mistake(followed, "that is the new weights themselves; the average keeps decay of "
                              "its old value"),
            Mistake(decay_only, "the two shares add up to 1: (1 − decay) · weights, not the "
                                "weights whole"),
        ],
        checks=[Check(same_keys, "return a dict with the same keys as shadow")],
        atol=1e-6, rtol=1e-6)
