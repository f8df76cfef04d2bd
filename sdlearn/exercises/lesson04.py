"""Graders of lesson 04, the scheduler: ``check.add_noise_by_hand``, ``check.ddim_update`` and
``check.v_to_x0_and_noise``.

>>> import sdlearn, torch
>>> pipe = sdlearn.load_pipeline()
>>> def mine(x0, noise, t, scheduler):
...     return scheduler.add_noise(x0, noise, torch.tensor([t]))
>>> graded = add_noise_by_hand(mine, pipe)
✓ add_noise_by_hand: correct (3 checks).
"""

from __future__ import annotations

from ..sampling import ddim_step, predicted_x0, x0_and_noise
from ..schedulers import make_scheduler
from .common import grader, seeded_latents
from .grading import Exercise, Mistake


def _alpha_bar(scheduler, t):
    return scheduler.alphas_cumprod[int(t)]


@grader
def add_noise_by_hand(pipe) -> Exercise:
    """Exercise: ``add_noise_by_hand(x0, noise, t, scheduler)`` → ``x_t`` for timestep ``t``."""
    sched = pipe.scheduler
    # On the device of alphas_cumprod, which scheduler.add_noise may have moved to the GPU.
    device = sched.alphas_cumprod.device
    x0 = seeded_latents(pipe, 8).float().to(device)
    noise = seeded_latents(pipe, 9).float().to(device)

    def reference(x0, noise, t, s):
        a = _alpha_bar(s, t)
        return a ** 0.5 * x0 + (1 - a) ** 0.5 * noise

    def plain_alpha(x0, noise, t, s):
        a = s.alphas[int(t)]
        return a ** 0.5 * x0 + (1 - a) ** 0.5 * noise

    def no_square_roots(x0, noise, t, s):
        a = _alpha_bar(s, t)
        return a * x0 + (1 - a) * noise

    def swapped(x0, noise, t, s):
        a = _alpha_bar(s, t)
        return (1 - a) ** 0.5 * x0 + a ** 0.5 * noise

    return Exercise(
        "add_noise_by_hand", reference, [(x0, noise, 10, sched), (x0, noise, 500, sched),
                                         (x0, noise, 990, sched)],
        mistakes=[
            Mistake(plain_alpha, "use scheduler.alphas_cumprod (ᾱ_t, the product of all alphas "
                                 "up to t), not scheduler.alphas"),
            Mistake(no_square_roots, "the weights are square roots: √ᾱ_t · x0 + √(1 − ᾱ_t) · "
                                     "noise"),
            Mistake(swapped, "swapped: x0 is weighted by √ᾱ_t (near 1 for small t), the noise by "
                             "√(1 − ᾱ_t)"),
        ])


def _ddim(pipe, prediction_type: str, seeds: tuple[int, int], steps: int = 10):
    """A DDIM scheduler of the model's schedule predicting ``prediction_type``, with ``steps``
    timesteps, and two seeded float32 latents on the CPU (compared to the last digit)."""
    sched = make_scheduler("ddim", {**pipe.scheduler.config, "prediction_type": prediction_type})
    sched.set_timesteps(steps)
    a, b = (seeded_latents(pipe, seed).float().cpu() for seed in seeds)
    return sched, a, b


@grader
def ddim_update(pipe) -> Exercise:
    """Exercise: ``ddim_update(noise_pred, t, latents, scheduler)`` → the DDIM step (eta 0)."""
    # Noise prediction, whatever the model predicts: the learner writes the ε form here, and
    # turns v into ε in the next exercise.
    sched, x, eps = _ddim(pipe, "epsilon", (10, 11))
    ts = [sched.timesteps[0], sched.timesteps[4], sched.timesteps[-1]]

    def reference(e, t, x, s):
        return ddim_step(s, e, t, x)

    def one_step_back(e, t, x, s):
        prev = _alpha_bar(s, max(int(t) - 1, 0))
        return prev ** 0.5 * predicted_x0(s, x, e, t) + (1 - prev) ** 0.5 * e

    def only_x0(e, t, x, s):
        return predicted_x0(s, x, e, t)

    def same_level(e, t, x, s):
        return x

    return Exercise(
        "ddim_update", reference, [(eps, t, x, sched) for t in ts],
        mistakes=[
            Mistake(one_step_back, "the previous timestep is t − num_train_timesteps // "
                                   "num_inference_steps, not t − 1"),
            Mistake(only_x0, "that is the predicted x0 — now re-noise it to the previous level: "
                             "√ᾱ_prev · x0 + √(1 − ᾱ_prev) · ε"),
            Mistake(same_level, "you used ᾱ_t twice, which gives x_t back: the second half needs "
                                "ᾱ of the previous timestep"),
        ], atol=1e-4)


@grader
def v_to_x0_and_noise(pipe) -> Exercise:
    """Exercise: ``v_to_x0_and_noise(v, t, latents, scheduler)`` → ``(x0, noise)`` from a
    v-prediction, derived from ``x_t = √ᾱ·x0 + √(1−ᾱ)·ε`` and ``v = √ᾱ·ε − √(1−ᾱ)·x0``."""
    sched, x, v = _ddim(pipe, "v_prediction", (14, 15))
    ts = [sched.timesteps[0], sched.timesteps[5], sched.timesteps[-1]]

    def reference(v, t, x, s):
        return x0_and_noise(s, x, v, t)

    def roots(s, t):
        a = _alpha_bar(s, t)
        return a ** 0.5, (1 - a) ** 0.5

    def as_if_noise(v, t, x, s):
        a, b = roots(s, t)
        return (x - b * v) / a, v

    def signs_flipped(v, t, x, s):
        a, b = roots(s, t)
        return a * x + b * v, a * v - b * x

    def weights_swapped(v, t, x, s):
        a, b = roots(s, t)
        return b * x - a * v, b * v + a * x

    def noise_first(v, t, x, s):
        return reference(v, t, x, s)[::-1]

    return Exercise(
        "v_to_x0_and_noise", reference, [(v, t, x, sched) for t in ts],
        mistakes=[
            Mistake(as_if_noise, "those are the noise-prediction formulas: v is not ε. Solve the "
                                 "two equations x_t = √ᾱ·x0 + √(1−ᾱ)·ε and v = √ᾱ·ε − √(1−ᾱ)·x0 "
                                 "for x0 and ε (multiply one by √ᾱ, the other by √(1−ᾱ), and "
                                 "use ᾱ + (1−ᾱ) = 1)"),
            Mistake(signs_flipped, "check the signs: put your x0 and ε back into v = √ᾱ·ε − "
                                   "√(1−ᾱ)·x0 — the x0 term of v is negative"),
            Mistake(weights_swapped, "the weights are swapped: at small t (ᾱ near 1) x_t is "
                                     "almost x0, so x0 weighs x_t by √ᾱ"),
            Mistake(noise_first, "right values, wrong order: return (x0, noise)"),
        ], atol=1e-4)
