"""Load benchmark for `dsv4 serve`: N concurrent streaming clients for D seconds.

Each client loops: it sends a streaming request (rotating OpenAI chat,
Anthropic messages and Responses, thinking on and off, its own session id),
reads the whole stream with the official SDK, and records the time to the
first token, the total latency and the output tokens. At the end it prints
errors, latency percentiles, throughput and the server's peak resident
memory (VmHWM of --server-pid). A benchmark, not a test: it only fails
(exit 1) when a request errored. Bounded in time and count; it talks only to
the given local address.

Usage: python tests/load/load.py --base-url http://127.0.0.1:PORT [--api-key K]
       [--clients 32] [--duration 60] [--max-tokens 64] [--server-pid PID]
"""

import argparse
import asyncio
import json
import statistics
import time
import urllib.request

import anthropic
import openai

SYSTEM = "You are a coding assistant. " + " ".join(f"Rule {i}: keep answers short." for i in range(40))


def pct(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    k = min(len(values) - 1, max(0, round(p / 100 * (len(values) - 1))))
    return values[k]


def peak_rss_mib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def server_metrics(base_url, api_key):
    """A few engine counters from /metrics (prompt reuse and throughput)."""
    names = {
        "dsv4_prompt_tokens_total": "prompt_tokens",
        "dsv4_prompt_tokens_cached_total": "prompt_tokens_cached",
        "dsv4_cache_hits_total": "cache_hits",
        "dsv4_generated_tokens_total": "generated_tokens",
        "dsv4_prefill_tokens_per_second": "prefill_tokens_per_s",
        "dsv4_decode_tokens_per_second": "decode_tokens_per_s",
        "dsv4_client_cancellations_total": "client_cancellations",
    }
    req = urllib.request.Request(f"{base_url}/metrics", headers={"authorization": f"Bearer {api_key}"})
    try:
        text = urllib.request.urlopen(req, timeout=10).read().decode()
    except OSError:
        return None
    out = {}
    for line in text.splitlines():
        parts = line.split(" ")
        if len(parts) == 2 and parts[0] in names:
            out[names[parts[0]]] = round(float(parts[1]), 1)
    return out


class Stats:
    def __init__(self):
        self.ttft, self.total, self.tokens, self.errors, self.kinds = [], [], 0, [], {}


async def one(kind, i, n, args, oa, an, stats):
    session = {"x-session-id": f"load-client-{i}"}
    question = f"Client {i} request {n}: explain item {n % 7}."
    thinking = n % 2 == 0
    t0 = time.perf_counter()
    first = None
    out_tokens = 0
    if kind == "chat":
        stream = await oa.chat.completions.create(
            model=args.model if thinking else f"{args.model}-chat",
            messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}],
            max_tokens=args.max_tokens, stream=True, stream_options={"include_usage": True}, extra_headers=session,
        )
        async for c in stream:
            if first is None and c.choices and (c.choices[0].delta.content or (c.choices[0].delta.model_extra or {}).get("reasoning_content")):
                first = time.perf_counter()
            if c.usage:
                out_tokens = c.usage.completion_tokens
    elif kind == "anthropic":
        async with an.messages.stream(
            model=args.model, max_tokens=args.max_tokens, system=SYSTEM, messages=[{"role": "user", "content": question}],
            thinking={"type": "enabled", "budget_tokens": 16} if thinking else {"type": "disabled"}, extra_headers=session,
        ) as s:
            async for e in s:
                if first is None and e.type == "content_block_delta":
                    first = time.perf_counter()
            out_tokens = (await s.get_final_message()).usage.output_tokens
    else:
        stream = await oa.responses.create(
            model=args.model, instructions=SYSTEM, input=question, max_output_tokens=args.max_tokens, stream=True,
            reasoning={"effort": "high" if thinking else "none"}, extra_headers=session,
        )
        async for e in stream:
            if first is None and e.type in ("response.output_text.delta", "response.reasoning_text.delta"):
                first = time.perf_counter()
            if e.type in ("response.completed", "response.incomplete"):
                out_tokens = e.response.usage.output_tokens
            if e.type == "response.failed":
                raise RuntimeError(f"response.failed: {e.response.error}")
    t1 = time.perf_counter()
    stats.ttft.append((first or t1) - t0)
    stats.total.append(t1 - t0)
    stats.tokens += out_tokens
    stats.kinds[kind] = stats.kinds.get(kind, 0) + 1


async def client(i, args, deadline, stats):
    oa = openai.AsyncOpenAI(base_url=f"{args.base_url}/v1", api_key=args.api_key, max_retries=0, timeout=600)
    an = anthropic.AsyncAnthropic(base_url=args.base_url, api_key=args.api_key, max_retries=0, timeout=600)
    kinds = ["chat", "chat", "anthropic", "responses"]
    n = 0
    while time.perf_counter() < deadline:
        kind = kinds[(i + n) % len(kinds)]
        try:
            await one(kind, i, n, args, oa, an, stats)
        except Exception as e:  # noqa: BLE001 - every failure is counted and reported
            stats.errors.append(f"{kind}: {type(e).__name__}: {e}"[:300])
        n += 1
    await oa.close()
    await an.close()


async def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base-url", required=True)
    ap.add_argument("--api-key", default="none")
    ap.add_argument("--model", default="dsv4-demo")
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--duration", type=float, default=60)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--server-pid", type=int)
    ap.add_argument("--json", help="also write the summary to this file")
    args = ap.parse_args()
    if not args.base_url.startswith(("http://127.", "http://localhost", "http://[::1]")):
        raise SystemExit("load.py only targets servers on this machine (loopback addresses)")
    stats = Stats()
    t0 = time.perf_counter()
    deadline = t0 + args.duration
    await asyncio.gather(*(client(i, args, deadline, stats) for i in range(args.clients)))
    wall = time.perf_counter() - t0
    done = len(stats.total)
    summary = {
        "clients": args.clients,
        "duration_s": round(wall, 1),
        "requests_ok": done,
        "errors": len(stats.errors),
        "by_api": stats.kinds,
        "requests_per_s": round(done / wall, 2),
        "output_tokens_per_s": round(stats.tokens / wall, 1),
        "ttft_s": {p: round(pct(stats.ttft, int(p[1:])), 3) for p in ("p50", "p90", "p99")},
        "latency_s": {p: round(pct(stats.total, int(p[1:])), 3) for p in ("p50", "p90", "p99")},
        "latency_mean_s": round(statistics.mean(stats.total), 3) if stats.total else None,
        "server_peak_rss_mib": peak_rss_mib(args.server_pid) if args.server_pid else None,
        "server": server_metrics(args.base_url, args.api_key),
    }
    print(json.dumps(summary, indent=2))
    for e in stats.errors[:10]:
        print("error:", e)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=2)
    return 1 if stats.errors else 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
