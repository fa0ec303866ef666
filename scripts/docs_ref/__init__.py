"""The docs site's reference pages, generated from the code (``python scripts/gen_ref.py``).

Each module renders one kind of reference as Markdown and is pure but for the imports it is
handed: :mod:`.cli_ref` argparse parsers, :mod:`.config_ref` pydantic config models,
:mod:`.env_ref` the environment variables the code reads (scanned from its source, described in
:mod:`.env_catalog`), :mod:`.metrics_ref` the Prometheus metrics, :mod:`.openapi_ref` an OpenAPI
document. :mod:`.pages` puts them together; ``scripts/docs.sh`` runs it before ``mkdocs build``.
"""
