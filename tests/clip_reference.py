"""An independent re-implementation of OpenAI CLIP's original tokenizer (simple_tokenizer.py).

It works straight from the merges file, as the original does: clean the text, split it with
CLIP's regular expression, map bytes to characters, then apply the merges by rank. The tests
compare sdlearn's transformers-based tokenizer against it. The original also runs ftfy's
``fix_text``; on well-formed text that amounts to NFC normalisation, which we do instead.
"""

import gzip
import html
import unicodedata

import regex

from sdlearn.paths import data_path
from sdlearn.text import bytes_to_unicode

PATTERN = regex.compile(
    r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
    regex.IGNORECASE,
)


class ReferenceTokenizer:
    def __init__(self):
        path = data_path("clip", "bpe_simple_vocab_16e6.txt.gz")
        with gzip.open(path, "rt", encoding="utf-8") as f:
            merges = [tuple(line.split()) for line in f.read().split("\n")[1 : 49152 - 256 - 2 + 1]]
        self.byte_encoder = bytes_to_unicode()
        vocab = list(self.byte_encoder.values())
        vocab += [v + "</w>" for v in vocab]
        vocab += ["".join(m) for m in merges]
        vocab += ["<|startoftext|>", "<|endoftext|>"]
        self.encoder = {v: i for i, v in enumerate(vocab)}
        self.ranks = {m: i for i, m in enumerate(merges)}

    def bpe(self, token):
        word = tuple(token[:-1]) + (token[-1] + "</w>",)
        while len(word) > 1:
            pairs = {(word[i], word[i + 1]) for i in range(len(word) - 1)}
            best = min(pairs, key=lambda p: self.ranks.get(p, float("inf")))
            if best not in self.ranks:
                break
            merged, i = [], 0
            while i < len(word):
                if i < len(word) - 1 and (word[i], word[i + 1]) == best:
                    merged.append(word[i] + word[i + 1])
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            word = tuple(merged)
        return word

    def encode(self, text, context_length=None):
        text = unicodedata.normalize("NFC", html.unescape(html.unescape(text)).strip())
        text = " ".join(text.split()).lower()
        ids = [49406]
        for token in PATTERN.findall(text):
            token = "".join(self.byte_encoder[b] for b in token.encode("utf-8"))
            ids.extend(self.encoder[piece] for piece in self.bpe(token))
        ids.append(49407)
        if context_length is not None and len(ids) > context_length:
            ids = ids[: context_length - 1] + [49407]
        return ids
