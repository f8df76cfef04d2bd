import warnings

import pytest
from clip_reference import ReferenceTokenizer

from sdlearn import PromptTruncatedWarning, count_tokens, tokenize, tokens_table


@pytest.fixture(scope="module")
def reference():
    return ReferenceTokenizer()


def test_flooble_ids_match_the_reference_tutorials(tokenizer):
    ids = tokenizer("A painting of a flooble").input_ids
    assert ids == [49406, 320, 3086, 539, 320, 4062, 1059, 49407]
    pieces = [p for _, _, p in tokens_table(tokenizer, "A painting of a flooble")]
    assert pieces[5:7] == ["floo", "ble</w>"]


def test_stable_diffusion_1_conventions(tokenizer):
    assert len(tokenizer) == 49408
    assert tokenizer.model_max_length == 77
    assert (tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id) == (
        49406, 49407, 49407)


def test_pads_to_77_with_end_token_and_mask(tokenizer):
    batch = tokenize(tokenizer, ["a red circle", "a big blue square at the top left"])
    assert tuple(batch.input_ids.shape) == (2, 77)
    assert batch.input_ids[0, :5].tolist() == [49406, 320, 736, 7117, 49407]
    assert (batch.input_ids[0, 5:] == 49407).all()
    assert batch.attention_mask.sum(dim=1).tolist() == [5, 10]


def test_long_prompt_is_cut_and_reported(tokenizer):
    prompt = "a red circle and " * 30
    n = count_tokens(tokenizer, prompt)
    assert n == 2 + 4 * 30
    with pytest.warns(PromptTruncatedWarning, match=f"{n} tokens.*{n - 77} tokens were dropped"):
        batch = tokenize(tokenizer, prompt)
    assert tuple(batch.input_ids.shape) == (1, 77)
    assert batch.input_ids[0, -1].item() == 49407


def test_short_prompt_gives_no_warning(tokenizer):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tokenize(tokenizer, "a red circle")


TEXTS = [
    "A painting of a flooble",
    "a photograph of an astronaut riding a horse",
    "café crème brûlée à la façon de Zoë",
    "Straße, Ångström, naïve résumé, São Paulo",
    "東京の猫はかわいい",
    "한국어 텍스트와 中文字符",
    "emoji time 🐱🚀✨ and 👩‍👩‍👧",
    "numbers 1234567 and 3.14159, 2nd, 10x",
    "punctuation!!! (parens) [brackets] {braces} -- \"quotes\" 'single' ... ?!",
    "UPPER Case MiXeD tExT",
    "don't won't it's we've they're I'm you'll he'd",
    "tabs\tand\nnewlines   and    spaces",
    "a big red circle at the top left and a small blue square in the center on a yellow "
    "background, " * 6,
]


@pytest.mark.parametrize("text", TEXTS)
def test_agrees_with_original_clip_tokenizer(tokenizer, reference, text):
    assert tokenizer(text, truncation=False, verbose=False).input_ids == reference.encode(text)
    expected = reference.encode(text, context_length=77)
    assert tokenizer(text, truncation=True, max_length=77).input_ids == expected


def test_known_difference_html_entities(tokenizer, reference):
    """OpenAI's original unescapes HTML entities; transformers' CLIPTokenizer keeps them."""
    text = "salt &amp; pepper"
    assert reference.encode(text) == reference.encode("salt & pepper")
    assert tokenizer(text).input_ids != reference.encode(text)


@pytest.fixture(scope="module", params=["tiny", "other sizes"])
def text_pipe(request, tiny_pipe, small_model_dir):
    from sdlearn import load_pipeline

    return tiny_pipe if request.param == "tiny" else load_pipeline(small_model_dir)


def test_run_text_encoder_equals_the_text_encoder(text_pipe):
    import torch

    from sdlearn.text import run_text_encoder

    ids = tokenize(text_pipe.tokenizer, ["a big red circle", "", "a small blue square at the "
                                         "top left"]).input_ids
    enc = text_pipe.text_encoder
    with torch.no_grad():
        out = enc(ids, output_hidden_states=True)
        assert torch.allclose(run_text_encoder(enc, ids), out.last_hidden_state, atol=1e-5)
        # clip skip: the penultimate layer's states, through the final layer norm
        skipped = run_text_encoder(enc, ids, skip=1)
        assert torch.allclose(skipped, enc.final_layer_norm(out.hidden_states[-2]), atol=1e-5)
        assert not torch.allclose(skipped, out.last_hidden_state, atol=1e-3)


def test_run_text_encoder_is_causal_and_refuses_a_bad_skip(tiny_pipe):
    import torch

    from sdlearn.text import causal_mask, run_text_encoder

    mask = causal_mask(4)
    assert mask.shape == (1, 1, 4, 4)
    assert (mask[0, 0].isinf() == torch.ones(4, 4, dtype=torch.bool).triu(1)).all()
    ids = tokenize(tiny_pipe.tokenizer, ["a big red circle", "a big red square"]).input_ids
    with torch.no_grad():
        states = run_text_encoder(tiny_pipe.text_encoder, ids)
    assert torch.equal(states[0, :4], states[1, :4])  # before "circle"/"square": unchanged
    assert not torch.allclose(states[0, 4], states[1, 4])
    layers = len(tiny_pipe.text_encoder.encoder.layers)
    with pytest.raises(ValueError, match=f"skip={layers}.*{layers} layers"):
        run_text_encoder(tiny_pipe.text_encoder, ids, skip=layers)
