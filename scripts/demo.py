"""The main job, end to end: log and register the example agent, serve it, call it.

With neither OPENAI_API_KEY nor OPENAI_BASE_URL set it runs offline against the scripted model
server; with them set it uses that endpoint (``--model`` picks the model name).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from agentship.testing.processes import start_mlflow_serve, start_scripted_llm  # noqa: E402


def describe(response: dict) -> str:
    lines = []
    for item in response.get("output", []):
        kind = item.get("type")
        if kind == "function_call":
            lines.append(f"  tool call    {item['name']}({item['arguments']})")
        elif kind == "function_call_output":
            lines.append(f"  tool result  {item['output']}")
        elif kind == "reasoning":
            lines.append(f"  reasoning    {' '.join(s['text'] for s in item['summary'])}")
        elif kind == "message":
            lines.append(f"  answer       {''.join(c.get('text', '') for c in item['content'])}")
    usage = response.get("usage") or {}
    lines.append(
        f"  usage        input={usage.get('input_tokens')} output={usage.get('output_tokens')} "
        f"total={usage.get('total_tokens')}"
    )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("question", nargs="?", default="What is the weather in Paris?")
    parser.add_argument("--model", default=os.environ.get("DEMO_MODEL", "gpt-4.1-mini"))
    parser.add_argument("--api", choices=["responses", "chat_completions"], default=None)
    args = parser.parse_args()

    work = REPO / ".demo"
    work.mkdir(exist_ok=True)
    logs = Path(tempfile.mkdtemp(prefix="agentship-demo-"))
    env = dict(os.environ)
    env.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{work / 'mlflow.db'}")
    env.setdefault("MLFLOW_EXPERIMENT_NAME", "agentship-demo")
    offline = not env.get("OPENAI_API_KEY") and not env.get("OPENAI_BASE_URL")
    overrides: list[str] = []
    servers = []
    try:
        if offline:
            scripted = start_scripted_llm(logs, "--chunks", "6")
            servers.append(scripted)
            env["OPENAI_BASE_URL"] = scripted.url + "/v1"
            print(f"offline: no OPENAI_API_KEY, using the scripted model at {scripted.url}")
        else:
            api = args.api or ("chat_completions" if env.get("OPENAI_BASE_URL") else "responses")
            overrides = ["--set", f"model={args.model}", "--set", f"api={api}"]
            print(f"online: model {args.model} at {env.get('OPENAI_BASE_URL', 'api.openai.com')}")

        print("$ python logging_scripts/log_agent.py --agent openai-agents --alias champion")
        logged = subprocess.run(
            [sys.executable, str(REPO / "logging_scripts" / "log_agent.py"), "--agent", "openai-agents",
             "--alias", "champion", *overrides],
            env=env, cwd=work, capture_output=True, text=True, check=False,
        )  # fmt: skip
        if logged.returncode != 0:
            print(logged.stderr[-3000:], file=sys.stderr)
            return logged.returncode
        model_uri = logged.stdout.strip().splitlines()[-1]
        print(f"registered {model_uri}")

        print(f"$ mlflow models serve -m {model_uri} --env-manager local")
        served = start_mlflow_serve(model_uri, logs, env)
        servers.append(served)
        print(f"serving at {served.url}")

        body = {"input": [{"role": "user", "content": args.question}]}
        print(f"$ curl {served.url}/invocations -d '{json.dumps(body)}'")
        reply = httpx.post(f"{served.url}/invocations", json=body, timeout=120)
        if reply.status_code != 200:
            print(f"HTTP {reply.status_code}: {reply.text[:2000]}", file=sys.stderr)
            return 1
        print(describe(reply.json()))
        print(f"traces: mlflow ui --backend-store-uri {env['MLFLOW_TRACKING_URI']}")
        return 0
    finally:
        for server in reversed(servers):
            server.stop()


if __name__ == "__main__":
    sys.exit(main())
