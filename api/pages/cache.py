"""Rendered pages kept while the read models stand still.

A page is a function of the read models, the language, the business day and a few facts of
the deployment; the read models change only when a projection moves its position in the
event log. So a page rendered at positions P is served again, byte for byte, to the next
visitor who asks for it in the same language on the same day while the positions are still
P: one small query instead of a dozen and a render. Bounded (least recently used out);
``LEDGER_PAGE_CACHE_ENTRIES=0`` turns it off.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable

from sqlalchemy import Connection, select

from projections.tracking import projection_state


def positions(conn: Connection) -> tuple[tuple[str, int], ...]:
    """Every projection's position in the log: any change of a read model moves one."""
    rows = conn.execute(select(projection_state.c.name, projection_state.c.position))
    return tuple(sorted((str(name), int(position)) for name, position in rows))


class PageCache:
    def __init__(self, entries_max: int) -> None:
        self.entries_max = entries_max
        self._pages: OrderedDict[Hashable, str] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> str | None:
        if self.entries_max <= 0:
            return None
        with self._lock:
            html = self._pages.get(key)
            if html is not None:
                self._pages.move_to_end(key)
            return html

    def put(self, key: Hashable, html: str) -> None:
        if self.entries_max <= 0:
            return
        with self._lock:
            self._pages[key] = html
            self._pages.move_to_end(key)
            while len(self._pages) > self.entries_max:
                self._pages.popitem(last=False)
