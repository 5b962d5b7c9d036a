"""Concept-word token ids, split-word errors, substitutes, and the bundle's vocabulary.hex."""

from __future__ import annotations

import pytest
from helpers import BUNDLE_FIXTURES, tiny_tokenizer
from tokenizers import Tokenizer, models, pre_tokenizers

import icgt
from icgt.models.bundles import read_bundle_file
from icgt.models.tokens import (DAY_NAMES, DEFAULT_WORDS, PROTOCOL_WORDS, SPARE_NOUNS, SplitWordsError,
                         concept_token_ids, substitute_split_words, surface_bytes, vocabulary_hex)

REAL_MODELS = ["smollm2-135m", "gemma3-270m", "qwen2.5-coder-1.5b"]
# Plain nouns that every real tokenizer splits (checked by the tests below).
SPLIT_NOUNS = ["xylophone", "armadillo", "kumquat"]
# Text exercising spaces, newlines, accents, CJK, emoji and (for Gemma) byte-fallback characters.
ROUND_TRIP_TEXT = " apple bird\n  milk\tcafé naïve 漢字 😀 ꙮ \u0378 end"


@pytest.fixture(scope="module", params=REAL_MODELS)
def real(request):
    """(model name, bundle path, its tokenizer)."""
    bundle = request.getfixturevalue(BUNDLE_FIXTURES[request.param])
    return request.param, bundle, icgt.load_tokenizer(bundle)


def test_every_default_word_is_one_distinct_token(real):
    name, _, tokenizer = real
    words = DEFAULT_WORDS[name]
    ids = concept_token_ids(tokenizer, words)
    assert len(words) == len(set(words)) == 30
    assert len(set(ids)) == len(ids)
    assert [tokenizer.decode([token_id]).strip() for token_id in ids] == list(words)


def test_no_protocol_word_splits_for_the_built_in_models(real):
    _, _, tokenizer = real
    concept_token_ids(tokenizer, PROTOCOL_WORDS)  # docs/models.md reports this
    assert DEFAULT_WORDS[real[0]] == PROTOCOL_WORDS


def test_every_day_name_is_one_token(real):
    _, _, tokenizer = real
    assert len(set(concept_token_ids(tokenizer, DAY_NAMES))) == 7


def test_the_error_names_every_split_word_and_its_pieces(real):
    _, _, tokenizer = real
    with pytest.raises(SplitWordsError) as raised:
        concept_token_ids(tokenizer, ["apple", *SPLIT_NOUNS, "bird"])
    error = raised.value
    assert isinstance(error, ValueError)
    assert list(error.splits) == SPLIT_NOUNS
    for word, pieces in error.splits.items():
        assert "".join(pieces) == " " + word and len(pieces) > 1
        assert repr(word) in str(error) and repr(pieces) in str(error)


def test_substitutes_replace_only_split_words(real):
    _, _, tokenizer = real
    words = ["apple", SPLIT_NOUNS[0], "bird", SPLIT_NOUNS[1]]
    substituted = substitute_split_words(tokenizer, words)
    assert substituted == ["apple", SPARE_NOUNS[0], "bird", SPARE_NOUNS[1]]
    concept_token_ids(tokenizer, substituted)


def test_substitutes_skip_spares_already_in_use_and_spares_that_split():
    tokenizer = tiny_tokenizer()  # only protocol words are single tokens here
    spares = ("quagga", "apple", "bird")
    assert substitute_split_words(tokenizer, ["zebra", "apple"], spares=spares) == ["bird", "apple"]


def test_running_out_of_spares_is_an_error():
    with pytest.raises(ValueError, match="no single-token spare noun left to replace 'zebra'"):
        substitute_split_words(tiny_tokenizer(), ["zebra"], spares=("quagga",))


def test_every_spare_noun_is_one_token_and_not_a_protocol_word(real):
    _, _, tokenizer = real
    assert not set(SPARE_NOUNS) & set(PROTOCOL_WORDS) and len(set(SPARE_NOUNS)) == len(SPARE_NOUNS)
    concept_token_ids(tokenizer, SPARE_NOUNS)


def test_vocabulary_hex_gives_each_concept_word_with_its_leading_space(real):
    _, bundle, tokenizer = real
    lines = read_bundle_file(bundle, "vocabulary.hex").decode("ascii").split("\n")
    assert lines[-1] == ""  # every line, the last included, ends with '\n'
    lines = lines[:-1]
    assert len(lines) == icgt.read_bundle_config(bundle)["vocab_size"]
    assert all(line == line.lower() for line in lines)
    by_surface = {}
    for token_id, line in enumerate(lines):
        by_surface.setdefault(bytes.fromhex(line), token_id)
    for word, token_id in zip(PROTOCOL_WORDS, concept_token_ids(tokenizer, PROTOCOL_WORDS), strict=True):
        assert lines[token_id] == (" " + word).encode().hex()
        assert by_surface[(" " + word).encode()] == token_id  # what a C++ lookup by bytes finds


def test_surface_bytes_of_any_encoding_concatenate_to_the_text(real):
    _, _, tokenizer = real
    surfaces = surface_bytes(tokenizer)
    ids = tokenizer.encode(ROUND_TRIP_TEXT, add_special_tokens=False).ids
    assert b"".join(surfaces[token_id] for token_id in ids) == ROUND_TRIP_TEXT.encode("utf-8")


def test_gemma_byte_fallback_tokens_are_their_byte(gemma3_bundle):
    tokenizer = icgt.load_tokenizer(gemma3_bundle)
    encoding = tokenizer.encode("ꙮ", add_special_tokens=False)
    assert encoding.tokens == ["<0xEA>", "<0x99>", "<0xAE>"]
    surfaces = surface_bytes(tokenizer)
    assert [surfaces[token_id] for token_id in encoding.ids] == [b"\xea", b"\x99", b"\xae"]


def test_special_tokens_contribute_their_text(real):
    name, bundle, tokenizer = real
    bos = icgt.read_bundle_config(bundle)["bos_token_id"]
    expected = {"smollm2-135m": b"<|im_start|>", "gemma3-270m": b"<bos>", "qwen2.5-coder-1.5b": b"<|endoftext|>"}
    assert surface_bytes(tokenizer)[bos] == expected[name]


def test_ids_past_the_tokenizer_get_empty_lines():
    tokenizer = tiny_tokenizer()
    lines = vocabulary_hex(tokenizer, tokenizer.get_vocab_size() + 2).split("\n")
    assert lines[-3:] == ["", "", ""] and lines[-4] != ""


def test_an_unsupported_decoder_is_refused():
    tokenizer = Tokenizer(models.WordLevel({"[UNK]": 0, "apple": 1}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    with pytest.raises(ValueError, match="unsupported tokenizer decoder"):
        surface_bytes(tokenizer)


def test_the_bundle_records_whether_the_tokenizer_adds_bos(real):
    # SmolLM2's and Qwen's tokenizers add nothing; Gemma's puts <bos> first.
    name, bundle, _ = real
    assert icgt.read_bundle_config(bundle)["add_bos"] is (name == "gemma3-270m")
