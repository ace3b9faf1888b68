import jinja2

from rlvr.chat import CHAT_TEMPLATE, EOS_TOKEN, render_chat, render_segments

CHATS = [
    [{"role": "user", "content": "Hi"}],
    [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}],
    [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "a\n\tb"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "again"},
    ],
]


def jinja_render(messages, add_generation_prompt):
    template = jinja2.Environment().from_string(CHAT_TEMPLATE)
    return template.render(
        messages=messages,
        bos_token=EOS_TOKEN,
        eos_token=EOS_TOKEN,
        add_generation_prompt=add_generation_prompt,
    )


def test_the_documented_format():
    chat = [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]
    assert render_chat(chat) == "<|endoftext|><|user|>\n2+2?\n<|assistant|>\n4<|endoftext|>"
    prompt = render_chat(chat[:1], add_generation_prompt=True)
    assert prompt == "<|endoftext|><|user|>\n2+2?\n<|assistant|>\n"


def test_python_renderer_matches_jinja_template():
    for messages in CHATS:
        for gen in (False, True):
            assert render_chat(messages, gen) == jinja_render(messages, gen)


def test_segments_cover_the_text_and_mark_only_assistant_output():
    for messages in CHATS:
        segments = render_segments(messages)
        assert "".join(text for text, _ in segments) == render_chat(messages)
        trained = [text for text, is_output in segments if is_output]
        expected = [m["content"] + EOS_TOKEN for m in messages if m["role"] == "assistant"]
        assert trained == expected
