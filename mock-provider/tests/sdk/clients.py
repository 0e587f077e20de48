"""Drive the mock provider with the official OpenAI and Anthropic Python SDKs.

Usage: clients.py BASE_URL

Each case prints one JSON line: what the SDK returned or raised. The Rust
test (tests/sdk.rs) checks these lines against the server's own log.
"""

import json
import sys
import time
import urllib.request

import anthropic
import openai

BASE = sys.argv[1]


def admin(path, body):
    req = urllib.request.Request(
        BASE + path,
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req) as r:
        return json.load(r)


def report(case, **fields):
    print(json.dumps({"case": case, **fields}), flush=True)


MESSAGES = [{"role": "user", "content": "Say something."}]

oa = openai.OpenAI(base_url=BASE + "/v1", api_key="free-key-0001")

# 1. Two 429s with retry-after: the SDK waits and retries (max_retries=2).
admin("/admin/fail-first", {"count": 2, "fault": "429"})
started = time.monotonic()
raw = oa.chat.completions.with_raw_response.create(
    model="fast", messages=MESSAGES, max_tokens=50,
    extra_headers={"x-case": "openai-retry"},
)
done = raw.parse()
report(
    "openai-retry",
    content=done.choices[0].message.content,
    completion_tokens=done.usage.completion_tokens,
    retries_taken=raw.retries_taken,
    seconds=time.monotonic() - started,
)

# 2. Streaming, with usage at the end.
stream = oa.chat.completions.create(
    model="streamer", messages=MESSAGES, max_tokens=50, stream=True,
    stream_options={"include_usage": True},
)
chunks, text, usage = 0, "", None
for chunk in stream:
    chunks += 1
    if chunk.choices and chunk.choices[0].delta.content:
        text += chunk.choices[0].delta.content
    if chunk.usage is not None:
        usage = chunk.usage.completion_tokens
report("openai-stream", chunks=chunks, words=len(text.split()), usage=usage)

# 3. No retries allowed: the 429 reaches the caller with its headers.
try:
    oa.with_options(max_retries=0).chat.completions.create(
        model="fast", messages=MESSAGES, max_tokens=50,
        extra_headers={"x-stormglass-fault": "429"},
    )
    report("openai-429", raised=None)
except openai.RateLimitError as e:
    report(
        "openai-429",
        raised=type(e).__name__,
        status=e.status_code,
        code=e.code,
        retry_after=e.response.headers.get("retry-after"),
        remaining=e.response.headers.get("x-ratelimit-remaining-requests"),
    )

# 4. A permanent quota error is not retried (x-should-retry: false).
try:
    oa.chat.completions.create(
        model="fast", messages=MESSAGES, max_tokens=50,
        extra_headers={"x-stormglass-fault": "insufficient_quota", "x-case": "openai-quota"},
    )
    report("openai-quota", raised=None)
except openai.RateLimitError as e:
    report("openai-quota", raised=type(e).__name__, code=e.code)

an = anthropic.Anthropic(base_url=BASE, api_key="ant-key-00001")

# 5. Two 529s: the SDK backs off and retries.
admin("/admin/fail-first", {"count": 2, "fault": "529"})
raw = an.messages.with_raw_response.create(
    model="claude", messages=MESSAGES, max_tokens=50,
    extra_headers={"x-case": "anthropic-retry"},
)
msg = raw.parse()
report(
    "anthropic-retry",
    text=msg.content[0].text,
    output_tokens=msg.usage.output_tokens,
    retries_taken=raw.retries_taken,
)

# 6. Streaming, whole.
with an.messages.stream(model="claude", messages=MESSAGES, max_tokens=50) as s:
    text = "".join(s.text_stream)
    final = s.get_final_message()
report("anthropic-stream", words=len(text.split()), stop_reason=final.stop_reason,
       output_tokens=final.usage.output_tokens)

# 7. A stream that breaks with an error event mid-way.
try:
    with an.messages.stream(
        model="claude", messages=MESSAGES, max_tokens=50,
        extra_headers={"x-stormglass-fault": "broken"},
    ) as s:
        got = "".join(s.text_stream)
    report("anthropic-broken", raised=None)
except anthropic.APIStatusError as e:
    report("anthropic-broken", raised=type(e).__name__, error_type=e.body.get("error", {}).get("type") if isinstance(e.body, dict) else None)
