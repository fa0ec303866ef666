"""The playground: a page in the browser that chats with the served agent (``/playground``).

Plain HTML, CSS and JavaScript modules shipped beside this file, served as they are (no build
step, nothing fetched from elsewhere). The page calls the server's own ``POST /v1/responses``
with ``stream: true`` and shows the stream as it comes: text, reasoning, tool calls with their
arguments and results, approvals with approve and reject buttons, and a link to each request's
MLflow trace. :mod:`.routes` serves the files and the page's settings (``/playground/config``).
"""
