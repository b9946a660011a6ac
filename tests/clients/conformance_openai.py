"""Conformance of `dsv4 serve --demo` with the official `openai` Python SDK.

The SDK is the oracle: its models, stream accumulators (`.stream()` helpers)
and structured-output parser (`.parse()`) must accept what the server sends.
The demo model has random weights, so the checks are about shapes, grammars
and constraints, never about the words.
"""

import json

import openai
from pydantic import BaseModel, Field

from harness import API_KEY, BASE, MODEL, case, run

client = openai.OpenAI(base_url=f"{BASE}/v1", api_key=API_KEY, max_retries=0, timeout=120)

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather forecast for a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "maxLength": 24},
                "days": {"type": "integer", "minimum": 1, "maximum": 7},
            },
            "required": ["city", "days"],
        },
    },
}
SEARCH = {
    "type": "function",
    "function": {
        "name": "search",
        "parameters": {"type": "object", "properties": {"query": {"type": "string", "maxLength": 40}}, "required": ["query"]},
    },
}


def check_weather(arguments):
    args = json.loads(arguments)
    assert set(args) <= {"city", "days"} and isinstance(args["city"], str), args
    assert isinstance(args["days"], int) and 1 <= args["days"] <= 7, args


def user(text):
    return [{"role": "user", "content": text}]


@case
def models_list_and_retrieve():
    ids = [m.id for m in client.models.list()]
    assert MODEL in ids and f"{MODEL}-chat" in ids, ids
    assert client.models.retrieve(MODEL).id == MODEL
    try:
        client.models.retrieve("no-such-model")
        raise AssertionError("expected 404")
    except openai.NotFoundError as e:
        assert e.status_code == 404


@case
def chat_with_and_without_reasoning():
    r = client.chat.completions.create(model=MODEL, messages=user("Hi"), max_tokens=8)
    m = r.choices[0].message
    assert (m.model_extra or {}).get("reasoning_content"), "thinking on: reasoning_content is filled"
    assert r.usage.completion_tokens == 8 and r.usage.completion_tokens_details.reasoning_tokens == 8
    assert r.usage.prompt_tokens_details.cached_tokens >= 0
    r = client.chat.completions.create(model=f"{MODEL}-chat", messages=user("Hi"), max_tokens=8)
    m = r.choices[0].message
    assert m.content and not (m.model_extra or {}).get("reasoning_content")
    r = client.chat.completions.create(model=MODEL, messages=user("Hi"), max_tokens=4, reasoning_effort="none")
    assert r.choices[0].message.content
    assert r.choices[0].finish_reason == "length"


@case
def chat_streaming_with_usage():
    chunks = list(
        client.chat.completions.create(
            model=MODEL, messages=user("Hello"), max_tokens=10, stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 10
    assert chunks[-2].choices[0].finish_reason == "length"
    reasoning = "".join((c.choices[0].delta.model_extra or {}).get("reasoning_content") or "" for c in chunks[:-1])
    assert reasoning
    # The SDK's accumulator (get_final_completion refuses finish_reason
    # "length", which is all a random model can reach without a stop string).
    with client.chat.completions.stream(model=f"{MODEL}-chat", messages=user("Hello"), max_tokens=6) as s:
        deltas = "".join(e.delta for e in s if e.type == "content.delta")
        snapshot = s.current_completion_snapshot
    assert snapshot.choices[0].message.content == deltas and deltas


@case
def tool_choice_required_and_named():
    r = client.chat.completions.create(
        model=f"{MODEL}-chat", messages=user("Weather in Paris?"), tools=[WEATHER, SEARCH], tool_choice="required", max_tokens=260,
        parallel_tool_calls=False,
    )
    assert r.choices[0].finish_reason == "tool_calls"
    for call in r.choices[0].message.tool_calls:
        assert call.id.startswith("call_") and call.type == "function"
        if call.function.name == "get_weather":
            check_weather(call.function.arguments)
        else:
            assert call.function.name == "search" and isinstance(json.loads(call.function.arguments)["query"], str)
    named = {"type": "function", "function": {"name": "get_weather"}}
    with client.chat.completions.stream(
        model=MODEL, messages=user("Weather?"), tools=[WEATHER, SEARCH], tool_choice=named, max_tokens=320, parallel_tool_calls=False
    ) as s:
        final = s.get_final_completion()
    calls = final.choices[0].message.tool_calls
    assert len(calls) == 1 and calls[0].function.name == "get_weather", calls
    check_weather(calls[0].function.arguments)


class Verdict(BaseModel):
    answer: str = Field(max_length=20)
    score: int = Field(ge=0, le=10)
    ok: bool


@case
def structured_output_parse():
    r = client.chat.completions.parse(
        model=f"{MODEL}-chat", messages=user("Judge it"), response_format=Verdict, max_tokens=120
    )
    v = r.choices[0].message.parsed
    assert isinstance(v, Verdict) and len(v.answer) <= 20 and 0 <= v.score <= 10, r.choices[0].message.content


@case
def completions_and_fim():
    r = client.completions.create(model=MODEL, prompt="def add(a, b):", max_tokens=5)
    assert r.object == "text_completion" and r.usage.completion_tokens == 5
    r = client.completions.create(model=MODEL, prompt="def f(x):\n    ", suffix="\n    return y\n", max_tokens=4)
    assert isinstance(r.choices[0].text, str)
    texts = [c.choices[0].text for c in client.completions.create(model=MODEL, prompt="x", max_tokens=3, stream=True)]
    assert "".join(texts)


RESP_TOOL = {"type": "function", "name": "get_weather", "parameters": WEATHER["function"]["parameters"]}
PATCH_TOOL = {
    "type": "custom",
    "name": "apply_patch",
    "description": "Apply a patch to files",
    "format": {"type": "grammar", "syntax": "lark", "definition": 'start: "*** Begin Patch" /(.|\\n)*/ "*** End Patch"'},
}


@case
def responses_function_call_round_trip():
    r = client.responses.create(
        model=MODEL, input="Weather in Rome?", instructions="Use tools.", tools=[RESP_TOOL], tool_choice="required",
        max_output_tokens=260, parallel_tool_calls=False, reasoning={"effort": "none"},
    )
    assert r.status == "completed", r.status
    calls = [o for o in r.output if o.type == "function_call"]
    assert calls, r.output
    check_weather(calls[0].arguments)
    r2 = client.responses.create(
        model=MODEL, previous_response_id=r.id, tools=[RESP_TOOL], max_output_tokens=5, reasoning={"effort": "none"},
        input=[{"type": "function_call_output", "call_id": calls[0].call_id, "output": '{"temp": 21}'}],
    )
    assert r2.previous_response_id == r.id and r2.usage.input_tokens > r.usage.input_tokens
    with client.responses.stream(
        model=MODEL, input="Weather?", tools=[RESP_TOOL], tool_choice={"type": "function", "name": "get_weather"},
        max_output_tokens=340, parallel_tool_calls=False, reasoning={"effort": "high", "summary": "auto"},
    ) as s:
        final = s.get_final_response()
    assert final.status == "completed"
    types = [o.type for o in final.output]
    assert types[0] == "reasoning" and "function_call" in types, types
    check_weather(next(o for o in final.output if o.type == "function_call").arguments)


@case
def responses_custom_tool_apply_patch():
    r = client.responses.create(
        model=MODEL, input="Fix the bug", tools=[PATCH_TOOL], tool_choice={"type": "custom", "name": "apply_patch"},
        max_output_tokens=200, reasoning={"effort": "none"},
    )
    call = next(o for o in r.output if o.type == "custom_tool_call")
    assert call.name == "apply_patch" and isinstance(call.input, str)
    back = [{"role": "user", "content": "Fix the bug"}, call.model_dump(), {"type": "custom_tool_call_output", "call_id": call.call_id, "output": "Done"}]
    r2 = client.responses.create(model=MODEL, input=back, tools=[PATCH_TOOL], max_output_tokens=4, store=False)
    assert r2.status in ("completed", "incomplete")


@case
def error_shapes():
    try:
        client.chat.completions.create(model=MODEL, messages=user("word " * 20000), max_tokens=2)
        raise AssertionError("expected 400")
    except openai.BadRequestError as e:
        assert e.code == "context_length_exceeded", e.body
    try:
        client.chat.completions.create(model=MODEL, messages=user("x"), n=2)
        raise AssertionError("expected 400")
    except openai.BadRequestError as e:
        assert e.param == "n"
    bad = openai.OpenAI(base_url=f"{BASE}/v1", api_key="wrong-key", max_retries=0)
    try:
        bad.models.list()
        raise AssertionError("expected 401")
    except openai.AuthenticationError as e:
        assert e.status_code == 401


if __name__ == "__main__":
    run("openai")
