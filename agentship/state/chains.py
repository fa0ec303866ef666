"""A conversation's history kept once, in the chain of its stored responses.

A response continuing another stores only its own items, with the other's id (``parent_id``);
its context is read back up the chain in one recursive statement, only as far as ``max_items``
needs. Before a parent is deleted (by its user, or as it expires), its children are *anchored*:
their whole history is written into them, and their parent cleared, in the same transaction.
The foreign key on ``parent_id`` refuses what would slip between the two (a child saved onto a
parent deleted meanwhile).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Float, Integer, and_, bindparam, func, literal, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from agentship.state.records import as_input_item, trim_history
from agentship.state.schema import responses

TIP_COLUMNS = (
    "id user_id conversation_id previous_response_id status background request input response "
    "created_at expires_at attempt released cancel_requested owner lease_until"
).split()
"""A response's columns besides those the chain reads (``parent_id``, ``history``, ``output``)."""


@functools.cache
def chain_query(dialect: str, tip: bool = False) -> Any:
    """The history and output of a response (``start``) and its ancestors, oldest first, read up
    the chain until ``seen`` (the items already in hand) and theirs reach ``max_items``, or a
    response with no parent. One recursive statement, whatever the chain's length; the user
    binds every step. ``tip``: ``start`` must not have expired by ``now``, and its row (the
    last) has its :data:`TIP_COLUMNS` too, so one statement reads a response and its context."""
    length = func.jsonb_array_length if dialect == "postgresql" else func.json_array_length
    size = lambda table: length(table.c.history) + length(table.c.output)  # noqa: E731
    first = select(
        responses.c.parent_id,
        responses.c.history,
        responses.c.output,
        literal(1, Integer).label("depth"),
        (bindparam("seen", type_=Integer) + size(responses)).label("seen"),
    ).where(responses.c.id == bindparam("start"), responses.c.user_id == bindparam("user"))
    if tip:
        first = first.where(responses.c.expires_at > bindparam("now", type_=Float))
    chain = first.cte("chain", recursive=True)
    up = responses.alias("up")
    chain = chain.union_all(
        select(up.c.parent_id, up.c.history, up.c.output, chain.c.depth + 1, chain.c.seen + size(up)).where(
            up.c.id == chain.c.parent_id,
            up.c.user_id == bindparam("user"),
            chain.c.seen < bindparam("max_items", type_=Integer),
            chain.c.depth < bindparam("max_items", type_=Integer),  # a link adds an item at least
        )
    )
    read = select(chain.c.parent_id, chain.c.history, chain.c.output)
    if tip:
        joined = chain.outerjoin(responses, and_(chain.c.depth == 1, responses.c.id == bindparam("start")))
        read = read.add_columns(*(responses.c[name] for name in TIP_COLUMNS)).select_from(joined)
    return read.order_by(chain.c.depth.desc())


def assemble(rows: Sequence[Any]) -> list[dict[str, Any]]:
    """The context the chain's rows (oldest first) leave a response continuing the last: each
    one's history, then its output as input items. Pure."""
    items: list[dict[str, Any]] = []
    for row in rows:
        items += row.history
        items += (as_input_item(item) for item in row.output)
    return items


async def inherited(
    conn: AsyncConnection, user_id: str, parent_id: str, seen: int, max_items: int
) -> list[dict[str, Any]]:
    """The context a response's parent leaves it (the parent's whole history, then its output),
    read as far back as ``max_items`` needs beyond the ``seen`` items the caller has already."""
    query = chain_query(conn.dialect.name)
    params = {"start": parent_id, "user": user_id, "seen": seen, "max_items": max_items}
    return assemble((await conn.execute(query, params)).all())


async def anchor_children(
    conn: AsyncConnection, parents: Any, max_items: int, live_after: float | None
) -> int:
    """Write their whole history into the children of ``parents`` (ids, or a query of them), so
    that deleting the parents next takes nothing from them; with ``live_after``, only the
    children that expire after it (the others go with the parents). Returns how many."""
    query = select(responses.c.id, responses.c.user_id, responses.c.parent_id, responses.c.history).where(
        responses.c.parent_id.in_(parents)
    )
    if live_after is not None:
        query = query.where(responses.c.expires_at >= live_after)
    children = (await conn.execute(query)).all()
    for child in children:
        before = await inherited(conn, child.user_id, child.parent_id, len(child.history), max_items)
        whole = trim_history([*before, *child.history], max_items)
        await conn.execute(
            update(responses).where(responses.c.id == child.id).values(history=whole, parent_id=None)
        )
    return len(children)
