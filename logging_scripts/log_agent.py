"""Log an agent as an MLflow model from code and register it: the repository's entry to
``agentship log`` (:mod:`agentship.log_cli`), which an installed wheel has as a command.

    python logging_scripts/log_agent.py --agent openai-agents \
        [--config FILE] [--registered-model-name NAME] [--alias ALIAS] [--code-path DIR ...]

The last line of stdout is the model URI, ``models:/NAME/VERSION``. It honours
``MLFLOW_TRACKING_URI`` and ``MLFLOW_EXPERIMENT_NAME`` (default experiment: ``agentship``);
without a tracking URI it uses a local SQLite store, ``./mlflow.db``. Under ``mlflow run`` it
logs into the project's run. The model backend does not need to be reachable.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # running from a checkout without `pip install -e .`
    sys.path.append(str(REPO_ROOT))

from agentship.log_cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
