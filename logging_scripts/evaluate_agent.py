"""Evaluate a registered or served agent with ``mlflow.genai.evaluate``, and gate an alias.

    python logging_scripts/evaluate_agent.py models:/openai-agents-assistant@champion \
        --dataset datasets/example_agent.jsonl [--promote production --min-score expected_facts=0.8]

See ``agentship/evaluation/cli.py`` (``--help``) and README "Evaluation". It honours
``MLFLOW_TRACKING_URI`` and ``MLFLOW_EXPERIMENT_NAME`` (default experiment: ``agentship``).
The last line of stdout is the evaluation run's id.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # running from a checkout without `pip install -e .`
    sys.path.append(str(REPO_ROOT))

from agentship.evaluation.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
