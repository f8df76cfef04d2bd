"""Graders of lesson 04, the scheduler: ``check.add_noise_by_hand`` and ``check.ddim_update``.

>>> import sdlearn, torch
>>> pipe = sdlearn.load_pipeline()
>>> def mine(x0, noise, t, scheduler):
...     return scheduler.add_noise(x0, noise, torch.tensor([t]))
>>> graded = add_noise_by_hand(mine, pipe)
✓ add_noise_by_hand: correct (3 checks).
"""

from __future__ import annotations

from ..sampling import ddim_step, predicted_x0
from .common import ddim_inputs, grader, seeded_latents
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


@grader
def ddim_update(pipe) -> Exercise:
    """Exercise: ``ddim_update(noise_pred, t, latents, scheduler)`` → the DDIM step (eta 0)."""
    sched, x, eps = ddim_inputs(pipe, (10, 11))
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
