"""Graders of lesson 02, text: ``check.tokenize_prompt``, ``check.dropped_tokens``,
``check.encode_text``, ``check.encode_by_hand`` and ``check.uncond_embedding``.

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

from ..text import causal_mask, count_tokens, run_text_encoder, tokenize
from .common import grader
from .grading import Exercise, Mistake

# The long prompt of lesson 02, whose dropped tokens the learner predicts.
LONG_PROMPT = ", ".join(["a big red circle at the top left", "a small blue square in the center",
                         "a big green triangle at the bottom right"] * 4)


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


@grader
def dropped_tokens(pipe) -> Exercise:
    """Exercise (predict, then measure): ``dropped_tokens()`` → how many tokens of
    ``LONG_PROMPT`` the tokenizer drops."""
    tok = pipe.tokenizer
    total = count_tokens(tok, LONG_PROMPT)
    limit = tok.model_max_length

    def reference():
        return total - limit

    def content_minus_the_limit():
        return total - 2 - limit

    def without_punctuation():
        return total - LONG_PROMPT.count(",") - limit

    def all_of_them():
        return total

    return Exercise(
        "dropped_tokens", reference, [()],
        mistakes=[
            Mistake(content_minus_the_limit, "the 77 include the start and end tokens: 75 "
                                             "tokens of the prompt itself are kept"),
            Mistake(without_punctuation, "each comma is a token of its own — count them too"),
            Mistake(all_of_them, "that is how many tokens the prompt has; how many of them "
                                 "does the text encoder never see?"),
        ], atol=0, rtol=0, adapt=_as_int)


def _as_int(fn):
    """The answer as a number, whatever kind the learner returns."""

    def as_int(*args):
        return float(fn(*args))

    return as_int


@grader
def encode_by_hand(pipe) -> Exercise:
    """Exercise: ``encode_by_hand(input_ids, text_encoder)`` → the text encoder run by hand,
    equal to ``text_encoder(input_ids)[0]``."""
    tok, enc = pipe.tokenizer, pipe.text_encoder
    ids = tokenize(tok, ["a big red circle", "a small blue square at the top"]).input_ids

    @torch.no_grad()
    def reference(input_ids, text_encoder):
        return run_text_encoder(text_encoder, input_ids)

    @torch.no_grad()
    def encoded(input_ids, e, *, positions=True, mask=True, final_norm=True):
        """The encoder by hand, with one of its parts left out at will: the typical mistakes."""
        hidden = e.embeddings.token_embedding(input_ids)
        if positions:
            where = torch.arange(input_ids.shape[-1], device=input_ids.device)
            hidden = hidden + e.embeddings.position_embedding(where)[None]
        causal = causal_mask(input_ids.shape[-1], dtype=hidden.dtype, device=hidden.device) \
            if mask else None
        for layer in e.encoder.layers:
            hidden = layer(hidden, causal)
        return e.final_layer_norm(hidden) if final_norm else hidden

    def no_positions(input_ids, e):
        return encoded(input_ids, e, positions=False)

    def no_mask(input_ids, e):
        return encoded(input_ids, e, mask=False)

    def no_final_norm(input_ids, e):
        return encoded(input_ids, e, final_norm=False)

    return Exercise(
        "encode_by_hand", reference, [(ids.to(enc.device), enc)],
        mistakes=[
            Mistake(no_positions, "add the position embedding of positions 0, 1, …, 76 to the "
                                  "token embedding: without it the encoder cannot tell the "
                                  "order of the words"),
            Mistake(no_mask, "without the causal mask every position sees the whole sequence, "
                             "padding included: pass each layer the (1, 1, 77, 77) mask with "
                             "-inf above the diagonal"),
            Mistake(no_final_norm, "apply text_encoder.final_layer_norm after the last layer"),
        ], atol=1e-4)
