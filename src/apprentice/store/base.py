"""What every part of the store gateway shares: the session factory and one-transaction-per-call."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.orm import Session, sessionmaker


class StoreBase:
    """Holds the session factory; each public method of the gateway runs in one `_transaction`."""

    _sessions: sessionmaker[Session]

    @contextmanager
    def _transaction(self) -> Iterator[Session]:
        with self._sessions.begin() as session:
            yield session
