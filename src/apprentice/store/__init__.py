"""The project store: the one gateway through which every module reads and writes the database.

SQLite in the project folder by default (WAL journal, foreign keys on, a busy timeout so that
concurrent writers wait instead of failing), or any SQLAlchemy URL such as PostgreSQL. Each public
method is one transaction: it commits whole or not at all, so a failed import leaves nothing behind.
The schema is created and upgraded only by Alembic migrations (`migrate`), never by `create_all`.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, func, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from apprentice.errors import ApprenticeError
from apprentice.store.gold import GoldAnswers
from apprentice.store.judges import JudgeQueries
from apprentice.store.judgment_history import JudgmentHistory
from apprentice.store.quality_queries import QualityQueries
from apprentice.store.records import (
    ComparisonPlan,
    GeneratedResponse,
    ImportSummary,
    PreferencePairRecord,
    PromptRecord,
    content_hash,
)
from apprentice.store.rounds import RoundQueries
from apprentice.store.tables import (
    Annotator,
    Comparison,
    ComparisonMember,
    Judgment,
    Policy,
    Prompt,
    Response,
    Run,
    utc_now,
)

MIGRATIONS = Path(__file__).parent / "migrations"
IMPORTED_POLICY = "imported"
# The tables whose row counts and value distributions steer the studio's leasing query (PostgreSQL's planner).
PLANNED_TABLES = ("comparisons", "comparison_members", "assignments", "judgments", "prompts", "responses")

__all__ = ["JudgedComparison", "OpenRun", "Policy", "Run", "Store", "StoreSummary"]
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class JudgedComparison:
    """A judgment with everything needed to turn it into preference data."""

    judgment_id: int
    comparison_id: int
    kind: str
    prompt_messages: list[dict[str, str]]
    responses: list[str]  # canonical positions
    answer: dict[str, Any]
    annotator: str
    annotator_id: int
    weight: float
    source: str
    annotator_kind: str = "human"  # human | simulated | imported | ai (a machine judge)
    rationale: str | None = None


@dataclass
class OpenRun:
    """A run in progress inside `Store.recording_run`: set `metrics` (and `output_path`, when the folder is
    known only later) before the block ends; they are stored when it closes, on failure too."""

    id: int
    output_path: str | None
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StoreSummary:
    prompts: int
    policies: int
    responses: int
    comparisons: int
    judgments: int
    annotators: int


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    # WAL + FULL: every commit is synced to disk before it returns, so what was acknowledged survives a power
    # cut, not only a killed process (NORMAL's promise). Its cost, measured: benchmarks/studio_load.py.
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.close()


class _Checkpointer:
    """A daemon thread that runs `PRAGMA wal_checkpoint(PASSIVE)` on its own connection every `interval` s."""

    def __init__(self, database: str, interval: float) -> None:
        self._database = database
        self._interval = interval
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpoints", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        connection = sqlite3.connect(self._database, isolation_level=None, check_same_thread=False)
        try:
            while not self._stopping.wait(self._interval):
                try:
                    connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error as error:  # a busy moment or a full disk: try again at the next tick
                    logger.warning("background WAL checkpoint failed: %s", error)
            with contextlib.suppress(sqlite3.Error):
                connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        finally:
            connection.close()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=30)


class Store(JudgmentHistory, GoldAnswers, QualityQueries, RoundQueries, JudgeQueries):
    """All reads and writes of one project's database; studio and quality queries live in their own files."""

    def __init__(self, url: str) -> None:
        try:
            parsed = make_url(url)
        except ArgumentError:
            raise ApprenticeError(f"store URL {url!r} is not a database URL") from None
        self.url = url
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        if self.is_sqlite and parsed.database:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        self.engine: Engine = create_engine(url, pool_pre_ping=not self.is_sqlite)
        self._checkpointer: _Checkpointer | None = None
        if self.is_sqlite:
            event.listen(self.engine, "connect", self._configure_sqlite)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def _configure_sqlite(self, dbapi_connection: Any, record: Any) -> None:
        _configure_sqlite(dbapi_connection, record)
        if self._checkpointer is not None:
            # Commits no longer checkpoint (a few milliseconds every thousand pages, on the request path):
            # the background thread does.
            dbapi_connection.execute("PRAGMA wal_autocheckpoint=0")

    @classmethod
    def open(cls, url: str, *, migrate: bool = True) -> Store:
        """Connect, and bring the schema up to the newest revision (a user's database is never rebuilt)."""
        store = cls(url)
        if migrate:
            store.migrate()
        return store

    def close(self) -> None:
        self.stop_background_checkpoints()
        self.engine.dispose()

    def start_background_checkpoints(self, interval: float = 0.25) -> None:
        """SQLite: copy the WAL into the database from a thread of its own instead of in the committing call.

        SQLite checkpoints inside the commit that fills its thousandth WAL page, a write and an fsync of the
        database file that a busy server's event loop waits for. With this, this store's connections leave that
        to a thread that runs a PASSIVE checkpoint every `interval` seconds (it blocks no reader or writer, and
        the GIL is released meanwhile). Durability is unchanged: a commit is durable in the WAL. Other
        processes' connections keep SQLite's automatic checkpoints. No-op on PostgreSQL or when running.
        """
        database = self.engine.url.database
        if not self.is_sqlite or self._checkpointer is not None or not database or database == ":memory:":
            return
        self._checkpointer = _Checkpointer(database, interval)
        self.engine.dispose()  # pooled connections reconnect with automatic checkpoints off

    def stop_background_checkpoints(self) -> None:
        checkpointer, self._checkpointer = self._checkpointer, None
        if checkpointer is not None:
            checkpointer.stop()
            self.engine.dispose()

    # -- schema ---------------------------------------------------------------------------------

    def _alembic_config(self) -> Config:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        return config

    def migrate(self, revision: str = "head") -> None:
        config = self._alembic_config()
        try:
            with self.engine.begin() as connection:
                config.attributes["connection"] = connection
                command.upgrade(config, revision)
        except OperationalError as error:
            raise ApprenticeError(f"cannot open the store at {self.url}: {error.orig}") from None

    def schema_revision(self) -> str | None:
        with self.engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()

    def head_revision(self) -> str | None:
        return ScriptDirectory.from_config(self._alembic_config()).get_current_head()

    def refresh_statistics(self, *, tables: Sequence[str] = PLANNED_TABLES, stale_only: bool = False) -> list[str]:
        """PostgreSQL: ANALYZE the tables the studio's queries plan on; returns those analyzed (SQLite: none).

        Without statistics the planner takes "status = 'open'" for a handful of rows, and leasing a task reads
        and sorts every open comparison (10 ms at 3,000, growing with the queue) instead of the first few in
        queue order (0.2 ms). Autovacuum refreshes statistics only a while after a bulk write, and not at all
        where it is turned off, so bulk writes call this at once on the tables they filled (as PostgreSQL's
        manual advises after loading data), and the studio calls it with `stale_only` when it starts: then
        only the tables never analyzed, or changed by more than autovacuum's default threshold since (50 rows
        + 10%), are analyzed.
        """
        if self.is_sqlite:
            return []
        tables = list(tables)
        with self.engine.connect() as connection:
            if stale_only:
                stale = connection.exec_driver_sql(
                    "SELECT relname FROM pg_stat_user_tables WHERE relname = ANY(%(tables)s) "
                    "AND schemaname = current_schema() AND (COALESCE(last_analyze, last_autoanalyze) IS NULL "
                    "OR n_mod_since_analyze > 50 + 0.1 * n_live_tup)",
                    {"tables": tables},
                ).scalars()
                tables = sorted(set(stale))
            if tables:
                # After the bulk write's commit: ANALYZE holds a lock that another ANALYZE of the table waits for.
                connection.exec_driver_sql("ANALYZE " + ", ".join(tables))
                connection.commit()
        return tables

    # -- prompts --------------------------------------------------------------------------------

    def import_prompts(
        self,
        prompts: Sequence[PromptRecord],
        pairs: Sequence[PreferencePairRecord],
        *,
        source: str,
    ) -> ImportSummary:
        """Store prompts and imported judged pairs in one transaction; repeats are counted, not duplicated.

        Lookups and inserts go in batches (a few statements per thousand rows, not a few per row),
        so importing all of HH-RLHF takes seconds.
        """
        summary = ImportSummary()
        with self._transaction() as session:
            records: dict[str, PromptRecord] = {}
            for record in [*prompts, *(pair.prompt for pair in pairs)]:
                records.setdefault(content_hash(record.messages), record)
            prompt_ids = self._ids_by_key(session, Prompt.content_hash, Prompt.id, list(records))
            summary.prompts_existing = len(prompt_ids)
            to_hold_out = [prompt_ids[key] for key, record in records.items() if record.held_out and key in prompt_ids]
            summary.moved_to_held_out, summary.kept_for_training = self._hold_out_unused(session, to_hold_out)
            new_prompts = {
                key: Prompt(
                    content_hash=key,
                    messages=record.messages,
                    text=record.text,
                    category=record.category,
                    source=source,
                    held_out=record.held_out,
                )
                for key, record in records.items()
                if key not in prompt_ids
            }
            session.add_all(new_prompts.values())
            session.flush()
            prompt_ids |= {key: row.id for key, row in new_prompts.items()}
            summary.prompts_added = len(new_prompts)
            if pairs:
                added = self._import_pairs(session, pairs, prompt_ids, source)
                summary.pairs_added = added
                summary.pairs_existing = len(pairs) - added
        if summary.pairs_added:
            self.refresh_statistics(tables=("comparisons", "comparison_members", "responses", "judgments"))
        return summary

    @staticmethod
    def _hold_out_unused(session: Session, prompt_ids: Sequence[int]) -> tuple[int, int]:
        """Hold out those of these training prompts that no response was made for; a prompt with responses may
        have been judged and trained on, and would leak into the evaluation. Returns (moved, kept)."""
        moved = kept = 0
        for start in range(0, len(prompt_ids), 500):
            chunk = list(prompt_ids[start : start + 500])
            training = set(session.scalars(select(Prompt.id).where(Prompt.id.in_(chunk), Prompt.held_out.is_(False))))
            used = set(session.scalars(select(Response.prompt_id).where(Response.prompt_id.in_(training)).distinct()))
            unused = sorted(training - used)
            if unused:
                session.execute(update(Prompt).where(Prompt.id.in_(unused)).values(held_out=True))
            moved += len(unused)
            kept += len(used)
        return moved, kept

    @staticmethod
    def _ids_by_key(session: Session, key_column: Any, id_column: Any, keys: Sequence[Any]) -> dict[Any, int]:
        """{key: id} for the keys already stored, looked up in chunks that every database accepts."""
        found: dict[Any, int] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            found.update(session.execute(select(key_column, id_column).where(key_column.in_(chunk))).all())
        return found

    def _import_pairs(
        self, session: Session, pairs: Sequence[PreferencePairRecord], prompt_ids: dict[str, int], source: str
    ) -> int:
        policy = self._policy_row(session, IMPORTED_POLICY, kind="imported", model_path=None)
        annotator = self._annotator_row(session, f"import:{source}", kind="imported")
        # Responses: each text once per prompt, whether stored before or twice in this file.
        wanted: dict[tuple[int, str], str] = {}
        for pair in pairs:
            prompt_id = prompt_ids[content_hash(pair.prompt.messages)]
            for text in (pair.chosen, pair.rejected):
                wanted.setdefault((prompt_id, content_hash(text)), text)
        response_ids: dict[tuple[int, str], int] = {}
        prompt_list = sorted({prompt_id for prompt_id, _ in wanted})
        for start in range(0, len(prompt_list), 500):
            rows = session.execute(
                select(Response.prompt_id, Response.text_hash, Response.id).where(
                    Response.prompt_id.in_(prompt_list[start : start + 500])
                )
            )
            response_ids.update({(prompt_id, text_hash): row_id for prompt_id, text_hash, row_id in rows})
        new_responses = {
            key: Response(prompt_id=key[0], policy_id=policy.id, text=text, text_hash=key[1], sampling={})
            for key, text in wanted.items()
            if key not in response_ids
        }
        session.add_all(new_responses.values())
        session.flush()
        response_ids |= {key: row.id for key, row in new_responses.items()}
        # Judgments: one per (prompt, chosen, rejected); the idempotency key makes re-imports no-ops.
        planned: dict[str, tuple[int, int, int]] = {}
        for pair in pairs:
            prompt_id = prompt_ids[content_hash(pair.prompt.messages)]
            chosen_id = response_ids[(prompt_id, content_hash(pair.chosen))]
            rejected_id = response_ids[(prompt_id, content_hash(pair.rejected))]
            planned.setdefault(
                "import:" + content_hash([prompt_id, chosen_id, rejected_id]), (prompt_id, chosen_id, rejected_id)
            )
        existing = self._ids_by_key(session, Judgment.idempotency_key, Judgment.id, list(planned))
        comparisons: list[tuple[str, bool, Comparison]] = []
        for key, (prompt_id, chosen_id, rejected_id) in planned.items():
            if key in existing:
                continue
            # The canonical order is fixed by a hash rather than "chosen first", so that position
            # statistics over imported data are not all one-sided.
            chosen_first = int(key[-1], 16) % 2 == 0
            ordered = [chosen_id, rejected_id] if chosen_first else [rejected_id, chosen_id]
            comparison = Comparison(kind="pair", prompt_id=prompt_id, overlap=1, status="complete")
            comparison.members = [ComparisonMember(position=i, response_id=r) for i, r in enumerate(ordered)]
            comparisons.append((key, chosen_first, comparison))
        session.add_all(comparison for _, _, comparison in comparisons)
        session.flush()
        session.add_all(
            Judgment(
                comparison_id=comparison.id,
                annotator_id=annotator.id,
                answer={"winner": 0 if chosen_first else 1, "tie": False, "both_bad": False},
                order_shown=None,
                idempotency_key=key,
                source="imported",
            )
            for key, chosen_first, comparison in comparisons
        )
        return len(comparisons)

    def prompts(self, *, held_out: bool | None = None, limit: int | None = None) -> list[Prompt]:
        with self._transaction() as session:
            query = select(Prompt).order_by(Prompt.id)
            if held_out is not None:
                query = query.where(Prompt.held_out == held_out)
            if limit is not None:
                query = query.limit(limit)
            return list(session.scalars(query))

    # -- policies and responses -----------------------------------------------------------------

    def _policy_row(
        self, session: Session, name: str, *, kind: str, model_path: str | None, parent_id: int | None = None
    ) -> Policy:
        policy = session.scalar(select(Policy).where(Policy.name == name))
        if policy is None:
            policy = Policy(name=name, kind=kind, model_path=model_path, parent_id=parent_id)
            session.add(policy)
            session.flush()
        return policy

    def ensure_policy(self, name: str, *, kind: str, model_path: str | None, parent_id: int | None = None) -> Policy:
        with self._transaction() as session:
            return self._policy_row(session, name, kind=kind, model_path=model_path, parent_id=parent_id)

    def policies(self) -> list[Policy]:
        with self._transaction() as session:
            return list(session.scalars(select(Policy).order_by(Policy.id)))

    def policy_named(self, name: str) -> Policy | None:
        with self._transaction() as session:
            return session.scalar(select(Policy).where(Policy.name == name))

    def response_counts(self) -> dict[int, int]:
        """{policy id: responses it generated} for the policies that have any."""
        with self._transaction() as session:
            rows = session.execute(select(Response.policy_id, func.count(Response.id)).group_by(Response.policy_id))
            return {policy_id: int(count) for policy_id, count in rows}

    def policy_at(self, model_path: str) -> Policy | None:
        """The newest policy whose weights are in this folder, written as given or resolved (a trained policy
        a later run starts from)."""
        written = {model_path, str(Path(model_path).resolve())}
        with self._transaction() as session:
            return session.scalar(select(Policy).where(Policy.model_path.in_(written)).order_by(Policy.id.desc()))

    def policy_for_model(self, name: str, model_path: str) -> Policy:
        """The policy a run on this model works with: the one the store holds at `model_path` (so the loop's
        next round generates and trains as round r's trained policy), else a new base policy named `name`."""
        known = self.policy_at(model_path)
        if known is not None:
            return known
        with self._transaction() as session:
            return self._policy_row(session, name, kind="base", model_path=model_path)

    def _response_row(
        self,
        session: Session,
        prompt_id: int,
        policy_id: int,
        text: str,
        num_tokens: int | None,
        finished: bool,
        sampling: dict[str, Any],
    ) -> Response:
        text_hash = content_hash(text)
        row = session.scalar(select(Response).where(Response.prompt_id == prompt_id, Response.text_hash == text_hash))
        if row is None:
            row = Response(
                prompt_id=prompt_id,
                policy_id=policy_id,
                text=text,
                text_hash=text_hash,
                num_tokens=num_tokens,
                finished=finished,
                sampling=sampling,
            )
            session.add(row)
            session.flush()
        return row

    def add_generation(
        self,
        policy_id: int,
        responses: Sequence[GeneratedResponse],
        sampling: dict[str, Any],
        comparisons_for: Any,
    ) -> tuple[list[int], int]:
        """Store generated responses (each text once per prompt) and the comparisons built on them.

        `comparisons_for(prompt_id, response_ids) -> list[ComparisonPlan]` is called per prompt with
        the distinct responses of this generation, inside the same transaction.
        Returns the ids of the responses and the number of comparisons created.
        """
        response_ids: list[int] = []
        by_prompt: dict[int, list[int]] = {}
        created = 0
        with self._transaction() as session:
            for generated in responses:
                row = self._response_row(
                    session,
                    generated.prompt_id,
                    policy_id,
                    generated.text,
                    generated.num_tokens,
                    generated.finished,
                    sampling,
                )
                response_ids.append(row.id)
                distinct = by_prompt.setdefault(generated.prompt_id, [])
                if row.id not in distinct:
                    distinct.append(row.id)
            for prompt_id, ids in by_prompt.items():
                for plan in comparisons_for(prompt_id, ids):
                    self._comparison_row(session, plan)
                    created += 1
        if created:
            self.refresh_statistics(tables=("comparisons", "comparison_members", "responses"))
        return response_ids, created

    def responses_for(self, prompt_id: int) -> list[Response]:
        with self._transaction() as session:
            return list(session.scalars(select(Response).where(Response.prompt_id == prompt_id).order_by(Response.id)))

    # -- comparisons ----------------------------------------------------------------------------

    def _comparison_row(self, session: Session, plan: ComparisonPlan, status: str = "open") -> Comparison:
        comparison = Comparison(
            kind=plan.kind,
            prompt_id=plan.prompt_id,
            round=plan.round,
            overlap=plan.overlap,
            gold=plan.gold,
            status=status,
        )
        comparison.members = [
            ComparisonMember(position=position, response_id=response_id)
            for position, response_id in enumerate(plan.response_ids)
        ]
        session.add(comparison)
        session.flush()
        return comparison

    def comparisons(self, *, kind: str | None = None, status: str | None = None) -> list[Comparison]:
        with self._transaction() as session:
            query = select(Comparison).order_by(Comparison.id)
            if kind is not None:
                query = query.where(Comparison.kind == kind)
            if status is not None:
                query = query.where(Comparison.status == status)
            return list(session.scalars(query))

    # -- annotators and judgments ---------------------------------------------------------------

    def _annotator_row(self, session: Session, name: str, *, kind: str = "human", role: str = "annotator") -> Annotator:
        annotator = session.scalar(select(Annotator).where(Annotator.name == name))
        if annotator is None:
            annotator = Annotator(name=name, kind=kind, role=role)
            session.add(annotator)
            session.flush()
        return annotator

    def ensure_annotator(self, name: str, *, kind: str = "human", role: str = "annotator") -> Annotator:
        with self._transaction() as session:
            return self._annotator_row(session, name, kind=kind, role=role)

    def judged_comparisons(self, *, kinds: Sequence[str] | None = None) -> list[JudgedComparison]:
        """Every judgment with its prompt, responses (canonical order) and annotator, oldest first: what training
        and the preference export use.

        Adjudication decides what a disagreement means: a comparison with a resolution gives that one answer
        (annotator "adjudicated", under the id of its first judgment) instead of its judgments, and a disputed
        one gives nothing until it is resolved. Attention checks never count.
        """
        with self._transaction() as session:
            query = (
                select(Judgment, Comparison, Prompt, Annotator)
                .join(Comparison, Judgment.comparison_id == Comparison.id)
                .join(Prompt, Comparison.prompt_id == Prompt.id)
                .join(Annotator, Judgment.annotator_id == Annotator.id)
                .where(Comparison.purpose.is_(None), Comparison.status != "disputed")
                .order_by(Judgment.id)
            )
            if kinds is not None:
                query = query.where(Comparison.kind.in_(list(kinds)))
            rows = session.execute(query).all()
            response_ids = {member.response_id for _, comparison, _, _ in rows for member in comparison.members}
            texts: dict[int, str] = dict(
                session.execute(select(Response.id, Response.text).where(Response.id.in_(response_ids))).all()
            )
            judged = []
            resolved: set[int] = set()
            for judgment, comparison, prompt, annotator in rows:
                resolution = comparison.resolution if isinstance(comparison.resolution, dict) else None
                if resolution is not None and comparison.id in resolved:
                    continue
                if resolution is not None:
                    resolved.add(comparison.id)
                judged.append(
                    JudgedComparison(
                        judgment_id=judgment.id,
                        comparison_id=comparison.id,
                        kind=comparison.kind,
                        prompt_messages=prompt.messages,
                        responses=[texts[member.response_id] for member in comparison.members],
                        answer=resolution if resolution is not None else judgment.answer,
                        annotator="adjudicated" if resolution is not None else annotator.name,
                        annotator_id=annotator.id,
                        weight=1.0 if resolution is not None else judgment.weight,
                        source="adjudicated" if resolution is not None else judgment.source,
                        annotator_kind="adjudicated" if resolution is not None else annotator.kind,
                        rationale=None if resolution is not None else judgment.rationale,
                    )
                )
            return judged

    # -- runs -----------------------------------------------------------------------------------

    def start_run(self, kind: str, config: dict[str, Any], output_path: str | None = None) -> Run:
        with self._transaction() as session:
            run = Run(kind=kind, config=config, output_path=output_path)
            session.add(run)
            session.flush()
            return run

    def finish_run(
        self, run_id: int, *, metrics: dict[str, Any], status: str = "done", output_path: str | None = None
    ) -> None:
        """Close a run with its metrics; `output_path` records where it wrote (when known only once it ran)."""
        with self._transaction() as session:
            run = session.get(Run, run_id)
            if run is None:
                raise ApprenticeError(f"no run with id {run_id}")
            run.metrics = metrics
            run.status = status
            run.finished_at = utc_now()
            if output_path is not None:
                run.output_path = output_path

    @contextlib.contextmanager
    def recording_run(self, kind: str, config: dict[str, Any], *, output_path: str | None = None) -> Iterator[OpenRun]:
        """Record the work done inside the block as one run: started now, closed when the block ends, as done
        with `run.metrics`, or as failed on any exception (Ctrl-C included), which goes on up."""
        row = self.start_run(kind, config, output_path)
        run = OpenRun(id=row.id, output_path=output_path)
        try:
            yield run
        except BaseException:
            self.finish_run(run.id, metrics=run.metrics, status="failed", output_path=run.output_path)
            raise
        self.finish_run(run.id, metrics=run.metrics, output_path=run.output_path)

    def runs(self, kind: str | None = None) -> list[Run]:
        with self._transaction() as session:
            query = select(Run).order_by(Run.id)
            if kind is not None:
                query = query.where(Run.kind == kind)
            return list(session.scalars(query))

    # -- overview -------------------------------------------------------------------------------

    def summary(self) -> StoreSummary:
        with self._transaction() as session:

            def count(table: Any) -> int:
                return int(session.scalar(select(func.count()).select_from(table)) or 0)

            return StoreSummary(
                prompts=count(Prompt),
                policies=count(Policy),
                responses=count(Response),
                comparisons=count(Comparison),
                judgments=count(Judgment),
                annotators=count(Annotator),
            )


def lease_deadline(seconds: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)
