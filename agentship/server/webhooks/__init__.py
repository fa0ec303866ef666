"""Webhooks for background responses, and A2A push notifications, through the state store's
outbox (:mod:`agentship.state.outbox`): settings and signing (:mod:`.settings`), the dispatcher
every replica runs (:mod:`.dispatcher`), and the A2A push sender over the same outbox (:mod:`.a2a`)."""
