"""Core statements run on the driver's own cursor, for the few statements that every studio judgment runs.

SQLAlchemy's execution path (cache lookup, execution context, result object) costs several times what SQLite
needs to run a statement by primary key, and a judgment runs about ten. A `Prepared` statement is compiled
once for the engine's dialect by SQLAlchemy, and its parameters and results go through the column types' own
processors, so it writes and reads exactly what `Connection.execute` would (tests check this on SQLite and
PostgreSQL); only the per-call bookkeeping is left out. It runs on the DB-API connection of a SQLAlchemy
`Connection`, inside that connection's transaction. Driver errors are raised as SQLAlchemy's exceptions.

Python-side column defaults are not applied here, so an INSERT names every column it needs: preparing one
that leaves out a column with such a default is refused.
"""

from __future__ import annotations

import typing
from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Insert, exc
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler


class Prepared:
    """One statement compiled for one dialect; `rows`, `first` and `scalar` run it on a connection."""

    def __init__(self, statement: ClauseElement, dialect: Dialect, *, column_keys: Sequence[str] = ()) -> None:
        if isinstance(statement, Insert):
            table = statement.table
            missing = [
                column.key
                for column in table.columns
                if column.default is not None and not column.primary_key and column.key not in column_keys
            ]
            if not column_keys or missing:
                raise ValueError(f"an INSERT into {table} must name its columns with defaults: {missing}")
        compiled = typing.cast(SQLCompiler, statement.compile(dialect=dialect, column_keys=list(column_keys) or None))
        self.sql = compiled.string
        self._dbapi_error: type[Exception] = dialect.loaded_dbapi.Error
        self._literals: dict[str, Any] = {}
        self._required: list[str] = []
        self._bind_processors: list[tuple[str, Callable[[Any], Any]]] = []
        for name, bind in compiled.binds.items():
            if bind.required:
                self._required.append(name)
            else:
                self._literals[name] = bind.effective_value
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None:
                if bind.required:
                    self._bind_processors.append((name, processor))
                else:  # a constant of the statement: converted once, here
                    self._literals[name] = processor(self._literals[name])
        self._positions: list[str] | None = list(compiled.positiontup) if compiled.positiontup else None
        columns = list(getattr(statement, "selected_columns", None) or getattr(statement, "exported_columns", []))
        self._result_processors = [
            (index, processor)
            for index, column in enumerate(columns)
            if (processor := column.type.dialect_impl(dialect).result_processor(dialect, None)) is not None
        ]
        # Unnamed columns (count(*)) become _0, _1, ... by position.
        self._row = namedtuple("Row", [str(column.key) for column in columns], rename=True) if columns else None

    def _parameters(self, values: Mapping[str, Any]) -> Any:
        missing = [name for name in self._required if name not in values]
        if missing:
            raise exc.ArgumentError(f"values are required for {missing} in: {self.sql}")
        parameters = {**self._literals, **{name: values[name] for name in self._required}}
        for name, processor in self._bind_processors:
            parameters[name] = processor(parameters[name])
        if self._positions is not None:
            return tuple(parameters[name] for name in self._positions)
        return parameters

    def rows(self, connection: Connection, values: Mapping[str, Any]) -> list[Any]:
        """Every row, converted by the column types (attribute access by column name)."""
        parameters = self._parameters(values)
        try:
            cursor = connection.connection.driver_connection.execute(  # type: ignore[union-attr]
                self.sql, parameters
            )
            fetched = cursor.fetchall() if self._row is not None else []
        except self._dbapi_error as error:
            raise exc.DBAPIError.instance(self.sql, parameters, error, self._dbapi_error) from error
        if self._row is None:
            return []
        rows = []
        for raw in fetched:
            converted = list(raw)
            for index, processor in self._result_processors:
                converted[index] = processor(converted[index])
            rows.append(self._row(*converted))
        return rows

    def first(self, connection: Connection, values: Mapping[str, Any]) -> Any | None:
        rows = self.rows(connection, values)
        return rows[0] if rows else None

    def scalar(self, connection: Connection, values: Mapping[str, Any]) -> Any:
        """The first column of the only row (raises when there is none)."""
        row = self.first(connection, values)
        if row is None:
            raise exc.NoResultFound(f"no row from: {self.sql}")
        return row[0]
