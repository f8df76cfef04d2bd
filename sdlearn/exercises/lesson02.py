"""Graders of lesson 02, text: ``check.tokenize_prompt``, ``check.encode_text`` and
``check.uncond_embedding``.

>>> import sdlearn
>>> pipe = sdlearn.load_pipeline()
>>> def mine(prompt, tokenizer):
...     return tokenizer(prompt, return_tensors="pt").input_ids
>>> graded = tokenize_prompt(mine, pipe)  # doctest: +ELLIPSIS
✗ tokenize_prompt: pad every prompt to the same length: padding='max_length', ...
"""

from __future__ import annotations

import torch
from transformers.utils import logging

from ..text import tokenize
from .common import grader
from .grading import Exercise, Mistake


def _long_prompt() -> str:
    return "a big red circle at the top left and a small blue square in the center, " * 8


@grader
def tokenize_prompt(pipe) -> Exercise:
    """Exercise: ``tokenize_prompt(prompt, tokenizer)`` → input ids of shape (1, max_length)."""
    tok = pipe.tokenizer

    def reference(prompt, tokenizer):
        return tokenize(tokenizer, prompt, warn=False).input_ids

    def not_truncated(p, t):
        return t(p, padding="max_length", max_length=t.model_max_length,
                 return_tensors="pt").input_ids

    def not_padded(p, t):
        return t(p, return_tensors="pt").input_ids

    def no_special_tokens(p, t):
        return t(p, padding="max_length", max_length=t.model_max_length, truncation=True,
                 add_special_tokens=False, return_tensors="pt").input_ids

    return Exercise(
        "tokenize_prompt", reference, [("a small green triangle", tok), (_long_prompt(), tok)],
        mistakes=[
            Mistake(not_truncated, "long prompts must be cut to max_length too: add "
                                   "truncation=True"),
            Mistake(not_padded, "pad every prompt to the same length: padding='max_length', "
                                "max_length=tokenizer.model_max_length"),
            Mistake(no_special_tokens, "keep the start and end tokens (add_special_tokens=True, "
                                       "the default)"),
        ], adapt=_quiet)


def _quiet(fn):
    """Silence transformers' over-length chatter while grading tokenizer answers."""

    def quietly(*args):
        level = logging.get_verbosity()
        logging.set_verbosity_error()
        try:
            return fn(*args)
        finally:
            logging.set_verbosity(level)

    return quietly


@grader
def encode_text(pipe) -> Exercise:
    """Exercise: ``encode_text(prompts, tokenizer, text_encoder)`` → the UNet's conditioning."""
    tok, enc = pipe.tokenizer, pipe.text_encoder

    @torch.no_grad()
    def reference(prompts, t, e):
        return e(tokenize(t, prompts).input_ids.to(e.device))[0]

    @torch.no_grad()
    def pooled(prompts, t, e):
        return e(tokenize(t, prompts).input_ids.to(e.device)).pooler_output

    @torch.no_grad()
    def masked(prompts, t, e):
        batch = tokenize(t, prompts).to(e.device)
        return e(batch.input_ids, attention_mask=batch.attention_mask)[0]

    @torch.no_grad()
    def unpadded(prompts, t, e):
        return e(t(prompts, return_tensors="pt", padding=True).input_ids.to(e.device))[0]

    return Exercise(
        "encode_text", reference, [(["a big red circle", "a small blue square at the top"],
                                    tok, enc)],
        mistakes=[
            Mistake(pooled, "that is the pooled vector, one per prompt — the UNet reads one "
                            "vector per token: last_hidden_state (or output[0])"),
            Mistake(masked, "Stable Diffusion 1.x does not pass the attention mask to the text "
                            "encoder: call it with the input ids only"),
            Mistake(unpadded, "pad to tokenizer.model_max_length: the UNet was trained on 77 "
                              "tokens"),
        ], atol=1e-4)


@grader
def uncond_embedding(pipe) -> Exercise:
    """Exercise: ``uncond_embedding(tokenizer, text_encoder)`` → the embedding of ``""``."""
    tok, enc = pipe.tokenizer, pipe.text_encoder

    @torch.no_grad()
    def reference(t, e):
        return e(tokenize(t, "").input_ids.to(e.device))[0]

    def zeros(t, e):
        return torch.zeros_like(reference(t, e))

    def unpadded(t, e):
        return e(t("", return_tensors="pt").input_ids.to(e.device))[0]

    return Exercise(
        "uncond_embedding", reference, [(tok, enc)],
        mistakes=[
            Mistake(zeros, "the unconditional embedding is not zeros — it is the text "
                           "encoder's output for the empty prompt \"\""),
            Mistake(unpadded, "pad the empty prompt to tokenizer.model_max_length like any other "
                              "prompt: the UNet reads 77 token vectors"),
        ])
