"""Conformance of `dsv4 serve --demo` with the official `anthropic` Python SDK.

The SDK's MessageStream raises on a malformed event sequence (a delta for
the wrong block type, a missing message_start, bad input_json_delta), so
running its stream helpers is the check; the demo model's words are random.
"""

import anthropic

from harness import API_KEY, BASE, case, run

client = anthropic.Anthropic(base_url=BASE, api_key=API_KEY, max_retries=0, timeout=120)
MODEL = "dsv4-demo"  # any id is accepted (the Rust tests send Claude ids)

WEATHER = {
    "name": "get_weather",
    "description": "Weather forecast for a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string", "maxLength": 24}, "days": {"type": "integer", "minimum": 1, "maximum": 7}},
        "required": ["city", "days"],
    },
}


def check_weather(args):
    assert set(args) <= {"city", "days"} and isinstance(args["city"], str), args
    assert isinstance(args["days"], int) and 1 <= args["days"] <= 7, args


@case
def message_with_thinking():
    m = client.messages.create(
        model=MODEL, max_tokens=16, thinking={"type": "enabled", "budget_tokens": 6},
        system=[{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        messages=[{"role": "user", "content": "Hi"}],
    )
    assert m.content[0].type == "thinking" and m.content[0].signature, m.content
    assert m.content[1].type == "text"
    assert m.stop_reason == "max_tokens" and m.usage.output_tokens == 16


@case
def streaming_text_and_thinking():
    with client.messages.stream(
        model=MODEL, max_tokens=20, thinking={"type": "enabled", "budget_tokens": 8}, messages=[{"role": "user", "content": "Hello"}]
    ) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert [b.type for b in final.content] == ["thinking", "text"], final.content
    assert final.content[0].signature and final.content[1].text == text
    with client.messages.stream(
        model=MODEL, max_tokens=6, thinking={"type": "disabled"}, messages=[{"role": "user", "content": "Hello"}]
    ) as s:
        final = s.get_final_message()
    assert all(b.type == "text" for b in final.content)


@case
def forced_tool_use_and_tool_result_round_trip():
    with client.messages.stream(
        model=MODEL, max_tokens=260, tools=[WEATHER], tool_choice={"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
        thinking={"type": "disabled"}, messages=[{"role": "user", "content": "Weather in Oslo?"}],
    ) as s:
        final = s.get_final_message()
    assert final.stop_reason == "tool_use", final.stop_reason
    uses = [b for b in final.content if b.type == "tool_use"]
    assert uses and uses[0].id.startswith("toolu_")
    check_weather(uses[0].input)
    m = client.messages.create(
        model=MODEL, max_tokens=260, tools=[WEATHER], tool_choice={"type": "any", "disable_parallel_tool_use": True},
        messages=[{"role": "user", "content": "Weather in Oslo?"}],
    )
    check_weather(next(b for b in m.content if b.type == "tool_use").input)
    history = [
        {"role": "user", "content": "Weather in Oslo?"},
        {"role": "assistant", "content": [b.model_dump() for b in final.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": uses[0].id, "content": "sunny, 21C"}]},
    ]
    m = client.messages.create(model=MODEL, max_tokens=6, tools=[WEATHER], messages=history)
    assert m.role == "assistant"


@case
def count_tokens_matches_usage():
    msgs = [{"role": "user", "content": "Count these tokens, please."}]
    n = client.messages.count_tokens(model=MODEL, messages=msgs, tools=[WEATHER], system="sys").input_tokens
    m = client.messages.create(model=MODEL, max_tokens=2, messages=msgs, tools=[WEATHER], system="sys")
    assert m.usage.input_tokens + (m.usage.cache_read_input_tokens or 0) == n, (n, m.usage)


@case
def error_shapes():
    try:
        client.messages.create(model=MODEL, max_tokens=2, messages=[{"role": "user", "content": "word " * 20000}])
        raise AssertionError("expected 400")
    except anthropic.BadRequestError as e:
        assert e.body["error"]["type"] == "invalid_request_error" and "prompt is too long" in e.body["error"]["message"]
    bad = anthropic.Anthropic(base_url=BASE, api_key="wrong-key", max_retries=0)
    try:
        bad.messages.create(model=MODEL, max_tokens=2, messages=[{"role": "user", "content": "x"}])
        raise AssertionError("expected 401")
    except anthropic.AuthenticationError as e:
        assert e.body["error"]["type"] == "authentication_error"


if __name__ == "__main__":
    run("anthropic")
