"""The CLIP tokenizer, built offline from the original BPE merges, and prompt helpers.

Stable Diffusion 1.x reads prompts with OpenAI CLIP's byte-pair-encoding tokenizer. Its whole
vocabulary follows from one file of merges (``bpe_simple_vocab_16e6.txt.gz``, shipped in
``sdlearn/data/clip``): 256 byte symbols, the same 256 ending a word, one token per merge, and
two special tokens. We rebuild it here so that no model hub is needed.

:func:`run_text_encoder` runs a CLIP text encoder by hand (embeddings, the layers under a causal
mask, the final layer norm), as lesson 02 teaches it; it equals ``text_encoder(ids)[0]``.

>>> tok = load_tokenizer()
>>> tok("A painting of a flooble").input_ids
[49406, 320, 3086, 539, 320, 4062, 1059, 49407]
"""

from __future__ import annotations

import gzip
import json
import tempfile
import warnings
from functools import lru_cache
from pathlib import Path

from .paths import data_path

BOS, EOS = "<|startoftext|>", "<|endoftext|>"
MODEL_MAX_LENGTH = 77
N_MERGES = 49152 - 256 - 2  # CLIP keeps the first 48894 merges of the file


class PromptTruncatedWarning(UserWarning):
    """A prompt was longer than the text encoder can read; its end was dropped."""


def bytes_to_unicode() -> dict[int, str]:
    """Map each byte to a printable character, as GPT-2 and CLIP do, so BPE never sees spaces."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
                 *range(ord("®"), ord("ÿ") + 1)]
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, chars), strict=True))


@lru_cache(maxsize=1)
def clip_vocab_and_merges() -> tuple[dict[str, int], list[str]]:
    """The CLIP vocabulary (token → id, 49408 entries) and its merges, from the shipped file."""
    with gzip.open(data_path("clip", "bpe_simple_vocab_16e6.txt.gz"), "rt", encoding="utf-8") as f:
        lines = f.read().split("\n")
    merges = lines[1 : N_MERGES + 1]  # the first line is a version header
    symbols = list(bytes_to_unicode().values())
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m.split()) for m in merges]
    tokens += [BOS, EOS]
    return {t: i for i, t in enumerate(tokens)}, merges


def write_tokenizer_files(folder: str | Path) -> Path:
    """Write ``vocab.json`` and ``merges.txt``, the files ``CLIPTokenizer`` reads."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab, merges = clip_vocab_and_merges()
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n",
                                       encoding="utf-8")
    return folder


def load_tokenizer():
    """A transformers ``CLIPTokenizer`` with Stable Diffusion 1.x conventions, built offline.

    bos 49406, eos 49407, padding with 49407 (``<|endoftext|>``), ``model_max_length`` 77.

    >>> load_tokenizer().model_max_length
    77
    """
    from transformers import CLIPTokenizer

    with tempfile.TemporaryDirectory() as tmp:
        write_tokenizer_files(tmp)
        return CLIPTokenizer.from_pretrained(
            tmp, bos_token=BOS, eos_token=EOS, unk_token=EOS, pad_token=EOS,
            model_max_length=MODEL_MAX_LENGTH,
        )


def count_tokens(tokenizer, prompt: str) -> int:
    """How many tokens ``prompt`` has, start and end tokens included, before any truncation."""
    return len(tokenizer(prompt, truncation=False, verbose=False).input_ids)


def tokenize(tokenizer, prompts: str | list[str], *, warn: bool = True):
    """Tokenize like Stable Diffusion: pad or cut to ``tokenizer.model_max_length``, as tensors.

    Prompts longer than that are cut, and a :class:`PromptTruncatedWarning` says how many tokens
    were dropped and which words they were.

    >>> batch = tokenize(load_tokenizer(), "a red circle")
    >>> tuple(batch.input_ids.shape), int(batch.attention_mask.sum())
    ((1, 77), 5)
    """
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    limit = tokenizer.model_max_length
    if warn:
        for prompt in prompts:
            ids = tokenizer(prompt, truncation=False, verbose=False).input_ids
            if len(ids) > limit:
                dropped = tokenizer.decode(ids[limit - 1 : -1])
                warnings.warn(
                    f"The prompt has {len(ids)} tokens but the text encoder reads {limit}: "
                    f"{len(ids) - limit} tokens were dropped ({dropped!r}).",
                    PromptTruncatedWarning, stacklevel=2,
                )
    return tokenizer(prompts, padding="max_length", max_length=limit, truncation=True,
                     return_tensors="pt")


def tokens_table(tokenizer, prompt: str) -> list[tuple[int, int, str]]:
    """Rows ``(position, id, piece)`` of the prompt's tokens, start and end tokens included.

    >>> tokens_table(load_tokenizer(), "a red circle")[1]
    (1, 320, 'a</w>')
    """
    ids = tokenizer(prompt, truncation=False, verbose=False).input_ids
    return [(i, t, tokenizer.convert_ids_to_tokens(t)) for i, t in enumerate(ids)]


def causal_mask(length: int, *, dtype=None, device=None):
    """The additive causal attention mask of shape ``(1, 1, length, length)``: 0 where a
    position may look (itself and the positions before it), -inf where it may not.

    >>> causal_mask(3)[0, 0].tolist()
    [[0.0, -inf, -inf], [0.0, 0.0, -inf], [0.0, 0.0, 0.0]]
    """
    import torch

    mask = torch.full((length, length), float("-inf"), dtype=dtype, device=device)
    return mask.triu(1)[None, None]


def run_text_encoder(text_encoder, input_ids, *, skip: int = 0):
    """A ``CLIPTextModel`` run by hand: token embedding + position embedding, every layer under
    a causal mask, the final layer norm. Equal to ``text_encoder(input_ids)[0]``.

    ``skip`` stops that many layers before the last ("clip skip"; ``skip=1`` reads the
    penultimate layer), and still applies the final layer norm, as diffusers' ``clip_skip`` does.

    >>> import sdlearn, torch
    >>> pipe = sdlearn.load_pipeline()
    >>> ids = tokenize(pipe.tokenizer, "a red circle").input_ids
    >>> with torch.no_grad():
    ...     mine, theirs = run_text_encoder(pipe.text_encoder, ids), pipe.text_encoder(ids)[0]
    >>> bool((mine - theirs).abs().max() < 1e-5)
    True
    """
    import torch

    layers = text_encoder.encoder.layers
    if not 0 <= skip < len(layers):
        raise ValueError(f"skip={skip}: the text encoder has {len(layers)} layers, so skip must "
                         f"be from 0 (all of them) to {len(layers) - 1}")
    emb = text_encoder.embeddings
    ids = input_ids.to(emb.token_embedding.weight.device)
    positions = torch.arange(ids.shape[-1], device=ids.device)
    hidden = emb.token_embedding(ids) + emb.position_embedding(positions)[None]
    mask = causal_mask(ids.shape[-1], dtype=hidden.dtype, device=hidden.device)
    for layer in layers[:len(layers) - skip]:
        hidden = layer(hidden, mask)
    return text_encoder.final_layer_norm(hidden)
