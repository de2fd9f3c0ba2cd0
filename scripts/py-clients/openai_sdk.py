"""The official `openai` Python SDK (PyPI) as a client of confab's gateway.

    python openai_sdk.py GATEWAY_URL API_KEY

GATEWAY_URL is the gateway's base URL (the SDK gets GATEWAY_URL + "/v1"),
API_KEY a confab API key. chat-service behind the gateway must answer with
the fake LLM's `echo` model (the answer is the last user message). Checks
`models.list()`, a non-streaming and a streaming (with usage) chat
completion, and that an unknown model raises `openai.NotFoundError`.
Prints what it did; exits non-zero on the first failure.

Run by bins/api-gateway/tests/python_clients.rs with the venv of
scripts/py-clients.sh.
"""

import sys
import traceback

import openai
from openai import OpenAI


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print(f"ok: {what}", flush=True)


def models(client):
    page = client.models.list()
    ids = [m.id for m in page.data]
    print(f"models: {ids}", flush=True)
    check("confab" in ids, "models.list() names `confab`")
    check(all(m.object == "model" for m in page.data), "every entry is a `model`")
    check(all(m.owned_by == "confab" for m in page.data), "every model is owned by confab")


# A conversation whose last user message is what `echo` answers with.
QUESTION = "What does the SDK see? ünïcödé ✓ 42"
MESSAGES = [
    {"role": "system", "content": "You are a helpful tutor."},
    {"role": "user", "content": "An earlier question."},
    {"role": "assistant", "content": "An earlier answer."},
    {"role": "user", "content": QUESTION},
]


def non_streaming(client):
    done = client.chat.completions.create(model="confab", messages=MESSAGES)
    print(f"completion: {done.model_dump_json()}", flush=True)
    check(done.object == "chat.completion", "object is chat.completion")
    check(done.id.startswith("chatcmpl-"), "id starts with chatcmpl-")
    check(done.model == "confab", "model is echoed back")
    check(len(done.choices) == 1, "one choice")
    choice = done.choices[0]
    check(choice.message.role == "assistant", "role is assistant")
    check(
        choice.message.content == QUESTION,
        f"content {choice.message.content!r} == the last user message",
    )
    check(choice.finish_reason == "stop", "finish_reason is stop")
    u = done.usage
    check(u is not None, "usage present")
    check(u.prompt_tokens > 0 and u.completion_tokens > 0, "usage counts tokens")
    check(
        u.total_tokens == u.prompt_tokens + u.completion_tokens,
        "total_tokens = prompt_tokens + completion_tokens",
    )


def streaming(client):
    stream = client.chat.completions.create(
        model="confab",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
    )
    text, finish, usage, chunks, ids = [], [], None, 0, set()
    roles = []
    for chunk in stream:
        chunks += 1
        ids.add(chunk.id)
        check_chunk = chunk.object == "chat.completion.chunk"
        if not check_chunk:
            raise AssertionError(f"chunk object {chunk.object!r}")
        if chunk.usage is not None:
            usage = chunk.usage
            if chunk.choices:
                raise AssertionError("the usage chunk must have no choices")
        for choice in chunk.choices:
            if choice.delta.role:
                roles.append(choice.delta.role)
            if choice.delta.content:
                text.append(choice.delta.content)
            if choice.finish_reason:
                finish.append(choice.finish_reason)
    print(f"stream: {chunks} chunks, text {''.join(text)!r}, finish {finish}, usage {usage}", flush=True)
    check(chunks >= 3, "several chunks")
    check(len(ids) == 1, "every chunk has the same id")
    check(roles[:1] == ["assistant"], "the first delta names the assistant role")
    check(len(text) > 1, "the text arrives in several deltas")
    check("".join(text) == QUESTION, "streamed content == the last user message")
    check(finish == ["stop"], "one finish_reason, stop")
    check(usage is not None, "usage chunk present (stream_options.include_usage)")
    check(usage.total_tokens > 0, "streamed usage counts tokens")


def unknown_model(client):
    try:
        client.chat.completions.create(
            model="gpt-nonexistent",
            messages=[{"role": "user", "content": "hi"}],
        )
    except openai.NotFoundError as e:
        print(f"unknown model: {e}", flush=True)
        check(e.status_code == 404, "unknown model is a 404")
        body = e.body if isinstance(e.body, dict) else {}
        check(body.get("code") == "model_not_found", "error code model_not_found")
        check("gpt-nonexistent" in str(body.get("message")), "the message names the model")
        return
    raise AssertionError("an unknown model did not raise openai.NotFoundError")


def bad_key(base):
    client = OpenAI(base_url=base, api_key="cfb_not-a-real-key", max_retries=0, timeout=30)
    try:
        client.models.list()
    except openai.AuthenticationError as e:
        print(f"bad key: {e}", flush=True)
        check(e.status_code == 401, "a wrong API key raises openai.AuthenticationError (401)")
        return
    raise AssertionError("a wrong API key did not raise openai.AuthenticationError")


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    base = sys.argv[1].rstrip("/") + "/v1"
    print(f"openai {openai.__version__} against {base}", flush=True)
    # No retries: a failure must show, not be papered over.
    client = OpenAI(base_url=base, api_key=sys.argv[2], max_retries=0, timeout=30)
    try:
        models(client)
        non_streaming(client)
        streaming(client)
        unknown_model(client)
        bad_key(base)
    except Exception:
        traceback.print_exc()
        print("FAILED", flush=True)
        return 1
    print("ALL OK", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
