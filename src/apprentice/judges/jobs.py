"""Judges on a project: build each judge's model, let it judge through a studio, calibrate it, weight it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from apprentice.errors import ApprenticeError
from apprentice.judges.base import JudgeBackend
from apprentice.judges.calibration import JudgeCalibration, calibrate_judge, judge_weights
from apprentice.judges.runner import JudgeRunStats, StudioJudge
from apprentice.project import Project
from apprentice.store.judges import AI_KIND, JudgeRecord
from apprentice.store.quality_queries import QualityJudgment


def backend_for(record: JudgeRecord) -> JudgeBackend:
    if record.backend == "local":
        from apprentice.judges.local import LocalJudge

        return LocalJudge(record.model)
    from apprentice.judges.endpoint import EndpointJudge

    if record.url is None:
        raise ApprenticeError(f"judge {record.name} has no endpoint URL")
    return EndpointJudge(record.url, record.model, api_key_env=record.api_key_env)


def _chosen(project: Project, names: Sequence[str] | None) -> list[JudgeRecord]:
    judges = [project.store.judge(name) for name in names] if names else project.store.judges()
    if not judges:
        raise ApprenticeError("no judges yet: add one with `apprentice judges add NAME --model MODEL`")
    disabled = [judge.name for judge in judges if judge.disabled]
    if disabled:
        raise ApprenticeError(f"judge {disabled[0]} is disabled (apprentice annotators enable {disabled[0]})")
    return judges


def run_judges(
    project: Project,
    names: Sequence[str] | None = None,
    *,
    limit: int | None = None,
    base_url: str | None = None,
) -> list[JudgeRunStats]:
    """Let each judge (all by default) answer what the studio gives it, `limit` tasks at most each.

    With `base_url` the judges use a running studio; otherwise one is started on the project meanwhile.
    Each judge's run is recorded (kind `judge`) with what it asked, labelled and abstained on.
    """
    from apprentice.studio.security import issue_api_token

    judges = _chosen(project, names)
    backends = {judge.name: backend_for(judge) for judge in judges}

    def work(url: str) -> list[JudgeRunStats]:
        results = []
        for judge in judges:
            account = project.store.annotator_account(annotator_id=judge.annotator_id)
            if account is None:
                raise ApprenticeError(f"judge {judge.name} has no annotator account")
            token = issue_api_token(project.store, account)
            config = {"judge": judge.name, "backend": judge.backend, "model": judge.model}
            with (
                project.store.recording_run("judge", config) as run,
                httpx.Client(base_url=url, timeout=120.0) as client,
            ):
                stats = StudioJudge(judge.name, backends[judge.name], client, token).judge(limit=limit)
                run.metrics = {
                    "asked": stats.asked,
                    "labelled": stats.labelled,
                    "abstained": stats.abstained,
                    "not_pairs": stats.not_pairs,
                }
            results.append(stats)
        return results

    if base_url is not None:
        return work(base_url)
    from apprentice.studio.process import StudioServer

    with StudioServer(project.root) as server:
        return work(server.base_url)


@dataclass(frozen=True)
class Consistency:
    asked: int
    consistent: int


def recorded_consistency(project: Project) -> dict[str, Consistency]:
    """Each judge's pairs asked and answered consistently in both orders, over all its finished runs."""
    totals: dict[str, Consistency] = {}
    for run in project.store.runs("judge"):
        if run.status != "done":
            continue
        name = str(run.config.get("judge"))
        before = totals.get(name, Consistency(0, 0))
        totals[name] = Consistency(
            before.asked + int(run.metrics.get("asked", 0)), before.consistent + int(run.metrics.get("labelled", 0))
        )
    return totals


def calibrate_judges(project: Project) -> list[JudgeCalibration]:
    """Every judge against the project's people (see `calibration`)."""
    people = project.store.quality_judgments(kinds=["pair"])
    machine = project.store.quality_judgments(kinds=["pair"], annotator_kinds=[AI_KIND])
    consistency = recorded_consistency(project)
    calibrations = []
    for judge in project.store.judges():
        own = [j for j in machine if j.annotator == judge.name]
        counts = consistency.get(judge.name, Consistency(0, 0))
        calibrations.append(calibrate_judge(judge.name, own, people, asked=counts.asked, consistent=counts.consistent))
    return calibrations


def calibrate_and_report(project: Project, folder: Path) -> tuple[list[JudgeCalibration], Path, Path]:
    """Every judge calibrated against people, and judges.html and judges.json written to `folder` (with
    examples of each judge's errors); returns the calibrations and the two files."""
    from apprentice.judges.report import error_examples, write_judges_report

    calibrations = calibrate_judges(project)
    judged = project.store.judged_comparisons(kinds=["pair"])
    examples = {calibration.name: error_examples(judged, calibration.name) for calibration in calibrations}
    html_path, json_path = write_judges_report(calibrations, examples, folder)
    return calibrations, html_path, json_path


def weight_judges(project: Project, calibrations: Sequence[JudgeCalibration], *, run_id: int | None = None) -> int:
    """Write each judge's weight onto its judgments, which reward training reads; returns how many.

    The weights are kept under the quality run `run_id`, or under a quality run of their own."""
    machine = project.store.quality_judgments(kinds=["pair"], annotator_kinds=[AI_KIND])
    by_judge: dict[str, list[QualityJudgment]] = {}
    for judgment in machine:
        by_judge.setdefault(judgment.annotator, []).append(judgment)
    weights = judge_weights(calibrations, by_judge)
    if not weights:
        return 0
    if run_id is not None:
        return project.store.set_judgment_weights(weights, run_id=run_id)
    with project.store.recording_run("quality", {"source": "judges"}) as run:
        run.metrics = {"judgments": project.store.set_judgment_weights(weights, run_id=run.id)}
    return int(run.metrics["judgments"])
