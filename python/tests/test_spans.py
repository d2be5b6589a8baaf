"""Response spans: only the response's own tokens, merged boundary tokens included, on both tiny tokenizers,
with and without offset trimming (a ByteLevel post-processor with trim_offsets), and on template styles
seen in real models (one that trims content, one that adds its own default system turn, one without a
system role)."""
import random

import pytest
from tokenizers import processors
from transformers import AutoTokenizer

from persona_axis import prompts
from persona_axis.spans import (
    ConversationText,
    SpanError,
    char_range_to_token_span,
    conversation_text,
    encode_conversations,
)
from persona_axis.tiny_models import NEOX_CHAT_TEMPLATE, OLMO2_CHAT_TEMPLATE, build_tokenizer

#: Training text that makes the tiny BPE learn merges across the header/response boundary:
#: "\n\n" (OLMo-2's "<|assistant|>\n" + a response starting with "\n") and "::" / "::)" (NeoX's
#: "Assistant:" + a response starting with ":" or ":)").
MERGE_TEXTS = ["Assistant::) yes\n\nNo.\n\n Sure:: ok\n\n"] * 200
WORDS = "the pirate sails a ship arr matey treasure map stoic virtue judge calm sea storm".split()


def trimming(tok):
    """Give a tokenizer the post-processor of GPT-2/RoBERTa-style fast tokenizers that trims whitespace
    from token offsets (token ids are unchanged)."""
    tok._tokenizer.post_processor = processors.ByteLevel(trim_offsets=True)
    return tok


@pytest.fixture(scope="module")
def toks():
    return {"olmo2": build_tokenizer(OLMO2_CHAT_TEMPLATE, MERGE_TEXTS), "gpt_neox": build_tokenizer(NEOX_CHAT_TEMPLATE, MERGE_TEXTS),
            "olmo2-trim": trimming(build_tokenizer(OLMO2_CHAT_TEMPLATE, MERGE_TEXTS)),
            "gpt_neox-trim": trimming(build_tokenizer(NEOX_CHAT_TEMPLATE, MERGE_TEXTS))}


def test_the_trimming_tokenizers_do_trim_offsets(toks):
    """The premise of the -trim cases: their own offsets give whitespace tokens zero width."""
    for arch in ("olmo2", "gpt_neox"):
        text = "ab  \n\n  cd   "
        plain = toks[arch](text, add_special_tokens=False, return_offsets_mapping=True)
        trim = toks[f"{arch}-trim"](text, add_special_tokens=False, return_offsets_mapping=True)
        assert plain["input_ids"] == trim["input_ids"]
        assert all(e > s for s, e in plain["offset_mapping"])
        assert any(e == s for s, e in trim["offset_mapping"])


def reference_span(tok, system_prompt, question, response):
    """Independent of spans.py: token character ends from cumulative decoding (not offsets); the
    response's characters start where render_prompt ends. Span = tokens intersecting the response."""
    text = prompts.render_conversation(tok, system_prompt, question, response)
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids, clean_up_tokenization_spaces=False) == text
    start = len(prompts.render_prompt(tok, system_prompt, question))
    end = start + len(response)
    ends = [len(tok.decode(ids[: i + 1], clean_up_tokenization_spaces=False)) for i in range(len(ids))]
    inside = [i for i in range(len(ids)) if ends[i] > start and (ends[i - 1] if i else 0) < end]
    return ids, inside[0], inside[-1] + 1


def token_strings(tok, ids):
    return [tok.decode([i], clean_up_tokenization_spaces=False) for i in ids]


def test_char_range_to_token_span_rules():
    offs = [(0, 3), (3, 5), (5, 7), (7, 7), (7, 9), (9, 20)]
    assert char_range_to_token_span(offs, 5, 9) == (2, 5)  # exact boundaries; zero-width inside kept
    assert char_range_to_token_span(offs, 4, 9) == (1, 5)  # straddling the start: included
    assert char_range_to_token_span(offs, 5, 8) == (2, 5)  # straddling the end: included
    assert char_range_to_token_span(offs, 7, 7) is None
    assert char_range_to_token_span(offs, 30, 40) is None


@pytest.mark.parametrize("arch", ["olmo2", "gpt_neox"])
def test_merged_header_token_is_included_and_header_and_eot_are_not(toks, arch):
    tok = toks[arch]
    response = "\n\nArr." if arch == "olmo2" else ":) Arr."
    ct = conversation_text(tok, "Be a pirate.", "Hi?", response)
    assert ct.text == prompts.render_conversation(tok, "Be a pirate.", "Hi?", response)
    [enc] = encode_conversations(tok, [ct])
    pieces = token_strings(tok, enc.input_ids)
    first = pieces[enc.span_start]
    # the first span token really straddles the boundary: it holds header characters too
    assert enc.merged_start
    assert first == ("\n\n" if arch == "olmo2" else "::)")
    # the token before the span is pure header; the end-of-turn token is not in the span (the sequence is
    # cut right after the span: later tokens cannot change the span's activations)
    header = "<|assistant|>\n" if arch == "olmo2" else "Assistant:"
    assert prompts.render_prompt(tok, "Be a pirate.", "Hi?").endswith(header)
    assert enc.span_end == len(enc.input_ids) < enc.full_length
    full_ids = tok(ct.text, add_special_tokens=False)["input_ids"]
    assert token_strings(tok, full_ids[enc.span_end:]) == ["<|endoftext|>"] + (["\n"] if arch == "gpt_neox" else [])
    assert "".join(pieces[enc.span_start:]) .endswith("Arr.")
    assert reference_span(tok, "Be a pirate.", "Hi?", response) == (full_ids, enc.span_start, enc.span_end)


@pytest.mark.parametrize("arch", ["olmo2", "gpt_neox", "olmo2-trim", "gpt_neox-trim"])
def test_spans_match_independent_reference_on_random_responses(toks, arch):
    tok = toks[arch]
    rng = random.Random(1)
    starts = ["", "\n", "\n\n", ":", "::", ":)", " ", "  ", "!", "Arr"]
    ends = ["", "\n", " ", "  ", ":", "::", "\n\n"]
    texts, expected, merged = [], [], 0
    for k in range(60):
        body = " ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 12)))
        response = rng.choice(starts) + body + rng.choice(ends)
        if not response.strip(" \n:!"):
            response = rng.choice(["x", " ", "  ", "\n", "\n\n", " \n "])  # whitespace-only replies too
        sp = rng.choice(["", "You are a pirate.", "Be calm: always."])
        q = rng.choice(["Hi?", "What be the map?"])
        texts.append(conversation_text(tok, sp, q, response))
        ids, s, e = reference_span(tok, sp, q, response)
        expected.append((ids, s, e))
    for (ids, s, e), enc in zip(expected, encode_conversations(tok, texts)):
        assert (enc.span_start, enc.span_end) == (s, e)
        assert list(enc.input_ids) == ids[:e]
        merged += enc.merged_start
    assert merged > 0  # the random set does exercise merged boundary tokens


@pytest.mark.parametrize("arch", ["olmo2", "gpt_neox", "olmo2-trim", "gpt_neox-trim"])
@pytest.mark.parametrize("response", ["  Arr, matey!  ", "Arr\n\n", "\n\nArr", " ", "\n\n", "   \n  "])
def test_edge_whitespace_is_response_content(toks, arch, response):
    tok = toks[arch]
    ct = conversation_text(tok, "Be a pirate.", "Hi?", response)
    [enc] = encode_conversations(tok, [ct])
    ids, s, e = reference_span(tok, "Be a pirate.", "Hi?", response)
    assert (enc.span_start, enc.span_end) == (s, e) and list(enc.input_ids) == ids[:e]
    assert response in tok.decode(list(enc.input_ids[enc.span_start:enc.span_end]), clean_up_tokenization_spaces=False)


#: Template styles of real models, written for the tiny tokenizers' special tokens.
DEFAULT_SYSTEM_TEMPLATE = (  # adds its own system turn when the conversation has none (Qwen2.5-style)
    "{% if messages[0]['role'] != 'system' %}{{ '<|system|>\nYou are a helpful assistant.\n' }}{% endif %}"
    "{% for message in messages %}{{ '<|' + message['role'] + '|>\n' + message['content'] + eos_token + '\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}")
NO_SYSTEM_TEMPLATE = (  # raises on a system turn (Gemma-style): the instruction joins the user turn
    "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'system' %}"
    "{{ raise_exception('System role not supported') }}{% endif %}"
    "{{ '<|' + message['role'] + '|>\n' + message['content'] + eos_token + '\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}")
TRIM_TEMPLATE = OLMO2_CHAT_TEMPLATE.replace("message['content'] + eos_token", "message['content'] | trim + eos_token")


@pytest.mark.parametrize("trim_offsets", [False, True])
@pytest.mark.parametrize("style", ["trims-content", "default-system-turn", "no-system-role"])
def test_template_styles(style, trim_offsets):
    template = {"trims-content": TRIM_TEMPLATE, "default-system-turn": DEFAULT_SYSTEM_TEMPLATE,
                "no-system-role": NO_SYSTEM_TEMPLATE}[style]
    tok = build_tokenizer(template, MERGE_TEXTS)
    if trim_offsets:
        trimming(tok)
    for sp in ["", "Be a pirate."]:
        for response in ["  Arr, matey!  ", "\n\nArr.", " ", "Arr"]:
            prompt = prompts.render_prompt(tok, sp, "Hi?")
            if style == "default-system-turn":
                assert ("You are a helpful assistant." in prompt) == (sp == "") and (sp in prompt)
            if style == "no-system-role":
                assert not prompts.supports_system_role(tok) and (sp + "\n\nHi?" if sp else "Hi?") in prompt
            ct = conversation_text(tok, sp, "Hi?", response)
            # what the model saw: the generation prompt, then the response verbatim
            assert ct.text.startswith(prompt + response) and ct.start == len(prompt)
            assert ct.rewritten_by_template == (style == "trims-content" and response != response.strip())
            [enc] = encode_conversations(tok, [ct])
            ids = tok(ct.text, add_special_tokens=False)["input_ids"]
            ends = [len(tok.decode(ids[: i + 1], clean_up_tokenization_spaces=False)) for i in range(len(ids))]
            inside = [i for i in range(len(ids)) if ends[i] > ct.start and (ends[i - 1] if i else 0) < ct.end]
            assert (enc.span_start, enc.span_end) == (inside[0], inside[-1] + 1), (sp, response)


def test_max_length_cuts_the_span_and_empty_span_is_none(toks):
    tok = toks["olmo2"]
    ct = conversation_text(tok, "", "Hi?", "the pirate sails a ship")
    [full] = encode_conversations(tok, [ct])
    [cut] = encode_conversations(tok, [ct], max_length=full.span_start + 2)
    assert cut.truncated and cut.span_length == 2 and len(cut.input_ids) == full.span_start + 2
    [gone] = encode_conversations(tok, [ct], max_length=full.span_start)
    assert gone is None
    empty = ConversationText(ct.text, ct.start, ct.start)
    assert encode_conversations(tok, [empty]) == [None]


def test_template_that_trims_content_is_rebuilt_as_generated():
    trim = OLMO2_CHAT_TEMPLATE.replace("message['content'] + eos_token", "message['content'] | trim + eos_token")
    tok = build_tokenizer(trim)
    response = "  Arr, matey!  "
    assert response not in prompts.render_conversation(tok, "", "Hi?", response)
    ct = conversation_text(tok, "", "Hi?", response)
    assert ct.rewritten_by_template
    assert ct.text == prompts.render_prompt(tok, "", "Hi?") + response + "<|endoftext|>"
    [enc] = encode_conversations(tok, [ct])
    assert tok.decode(list(enc.input_ids[enc.span_start:enc.span_end])) == response


def test_template_whose_prompt_is_not_a_prefix_fails_clearly():
    closing = "{{ '<|assistant|>\n' + message['content'] + eos_token }}"
    assert closing in OLMO2_CHAT_TEMPLATE
    odd = OLMO2_CHAT_TEMPLATE.replace(closing, "{{ '<|bot|>\n' + message['content'] + eos_token }}")
    tok = build_tokenizer(odd)
    with pytest.raises(SpanError, match="record 7: the chat template renders the conversation differently"):
        conversation_text(tok, "", "Hi?", "Arr", where="record 7")


def test_slow_tokenizer_is_refused(tiny_olmo2):
    tok = AutoTokenizer.from_pretrained(tiny_olmo2)

    class Slow:
        is_fast = False

    with pytest.raises(SpanError, match="fast tokenizer"):
        encode_conversations(Slow(), [ConversationText("x", 0, 1)])
    assert tok.is_fast
