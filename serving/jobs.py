"""The service's embedded store: job states in sqlite, results as folders, and the job runner.

Everything lives in one data directory, so a restart loses no finished result::

    DATA_DIR/odontoscan.sqlite3    job table (state, progress, error, result id)
    DATA_DIR/results/<id>/         findings.json, labels.nii.gz, overlays/*.png, report.html
    DATA_DIR/jobs/<id>/upload.*    the scan of a job not yet finished (deleted when it ends)
    DATA_DIR/tmp/                  uploads of synchronous requests while they run

A result folder appears in one rename, complete or not at all. Several worker
processes may share the data directory (one host): sqlite serialises the writes, a
worker claims a queued job atomically, and every update of a running job names the
worker that owns it, so a worker that lost a job can no longer change it.

Jobs whose worker died (kill, crash, power loss) are marked failed when a worker
starts; jobs still queued are run. A worker that stops cleanly puts its running job
back in the queue. Uploads of finished or failed jobs are deleted: they may carry
patient identifiers in their DICOM headers.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import sqlite3
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from odontoscan.datasets.errors import OdontoscanError

log = logging.getLogger(__name__)

DB_FILE = "odontoscan.sqlite3"
ID_PATTERN = re.compile(r"^[0-9a-f]{32}$")
INTERRUPTED = (
    "interrupted",
    "The service stopped while this job was running (restart, crash or out of memory); submit the scan again.",
)
INTERNAL = ("internal_error", "The analysis failed unexpectedly; the server log has the details. Try again or report the problem.")
STALE_TMP_S = 24 * 3600

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    stage TEXT NOT NULL,
    fraction REAL NOT NULL,
    options TEXT NOT NULL,
    upload TEXT NOT NULL,
    result_id TEXT,
    error_code TEXT,
    error_message TEXT,
    owner TEXT,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status, created);
"""


class JobState(str, Enum):
    """Life cycle of a job: queued -> running -> done | failed."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True)
class Job:
    """One row of the job table. ``options`` is the request's options as JSON;
    ``upload`` the scan's file name inside the job folder; times are Unix seconds."""

    id: str
    status: JobState
    stage: str
    fraction: float
    options: str
    upload: str
    result_id: str | None
    error_code: str | None
    error_message: str | None
    owner: str | None
    created: float
    updated: float


def new_id() -> str:
    """A fresh random id for a job or a result (32 hex digits)."""
    return uuid.uuid4().hex


def valid_id(value: str) -> bool:
    """Whether ``value`` has the form of an id (so it is safe as a folder name)."""
    return bool(ID_PATTERN.match(value))


def process_owner() -> str:
    """Identity of this process for job ownership: pid and start time (pids are reused)."""
    import psutil  # a BentoML dependency: the store only runs inside the service

    return f"{os.getpid()}:{psutil.Process().create_time():.3f}"


def owner_alive(owner: str | None) -> bool:
    """Whether the process named by ``owner`` (see :func:`process_owner`) still runs."""
    import psutil

    try:
        pid, started = owner.split(":") if owner else ("", "")
        return f"{psutil.Process(int(pid)).create_time():.3f}" == started
    except (ValueError, psutil.Error):
        return False


class Store:
    """Jobs and results under one data directory (see the module docstring)."""

    def __init__(self, data_dir: str | Path) -> None:
        self.root = Path(data_dir)
        self.results = self.root / "results"
        self.jobs = self.root / "jobs"
        self.tmp = self.root / "tmp"
        for folder in (self.results, self.jobs, self.tmp):
            folder.mkdir(parents=True, exist_ok=True)
        self.db_path = self.root / DB_FILE
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.db_path, timeout=30, isolation_level=None)
        db.row_factory = sqlite3.Row
        try:
            yield db
        finally:
            db.close()

    # --- results -------------------------------------------------------------------

    def result_dir(self, result_id: str) -> Path | None:
        """The folder of a finished result, or None when there is no such result."""
        if not valid_id(result_id):
            return None
        folder = self.results / result_id
        return folder if folder.is_dir() else None

    @contextmanager
    def new_result(self) -> Iterator[tuple[str, Path]]:
        """Yield ``(result_id, staging folder)``; the folder becomes the result in one
        rename when the block succeeds, and is removed when it raises."""
        result_id = new_id()
        staging = self.results / f".tmp-{result_id}"
        try:
            yield result_id, staging
            staging.rename(self.results / result_id)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def delete_result(self, result_id: str) -> bool:
        """Remove a result's folder; False when there was none."""
        folder = self.result_dir(result_id)
        if folder is None:
            return False
        trash = self.results / f".del-{result_id}"
        folder.rename(trash)  # gone for readers at once, even if removal takes a while
        shutil.rmtree(trash, ignore_errors=True)
        return True

    def clean_stale(self, max_age_s: float = STALE_TMP_S) -> None:
        """Remove leftovers of interrupted requests (staging folders, temp uploads)
        older than ``max_age_s``; younger ones may belong to a request in flight."""
        limit = time.time() - max_age_s
        leftovers = [*self.tmp.iterdir(), *self.results.glob(".tmp-*"), *self.results.glob(".del-*")]
        for path in leftovers:
            try:
                if path.stat().st_mtime < limit:
                    shutil.rmtree(path) if path.is_dir() else path.unlink()
            except OSError:
                pass

    # --- jobs ----------------------------------------------------------------------

    def job_dir(self, job_id: str) -> Path:
        return self.jobs / job_id

    def add_job(self, job_id: str, upload: str, options: str) -> Job:
        """Queue a job whose scan is already at ``job_dir(job_id) / upload``."""
        now = time.time()
        with self._connect() as db:
            db.execute(
                "INSERT INTO jobs (id, status, stage, fraction, options, upload, created, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (job_id, JobState.QUEUED.value, "queued", 0.0, options, upload, now, now),
            )
        return self.get_job(job_id)

    def get_job(self, job_id: str) -> Job | None:
        if not valid_id(job_id):
            return None
        with self._connect() as db:
            row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return _job(row) if row else None

    def claim(self, owner: str) -> Job | None:
        """Take the oldest queued job for ``owner`` (marks it running), or None."""
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                row = db.execute("SELECT id FROM jobs WHERE status = ? ORDER BY created LIMIT 1", (JobState.QUEUED.value,)).fetchone()
                if row is not None:
                    db.execute(
                        "UPDATE jobs SET status = ?, stage = ?, owner = ?, updated = ? WHERE id = ?",
                        (JobState.RUNNING.value, "starting", owner, time.time(), row["id"]),
                    )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return self.get_job(row["id"]) if row is not None else None

    def _update_own(self, job_id: str, claimed_by: str, **fields: object) -> bool:
        """Change a running job if ``claimed_by`` still owns it; False otherwise."""
        fields["updated"] = time.time()
        assignments = ", ".join(f"{name} = ?" for name in fields)
        values = [v.value if isinstance(v, Enum) else v for v in fields.values()]
        with self._connect() as db:
            changed = db.execute(
                f"UPDATE jobs SET {assignments} WHERE id = ? AND owner = ? AND status = ?",
                (*values, job_id, claimed_by, JobState.RUNNING.value),
            ).rowcount
        return changed == 1

    def progress(self, job_id: str, owner: str, stage: str, fraction: float) -> bool:
        return self._update_own(job_id, owner, stage=stage, fraction=fraction)

    def finish(self, job_id: str, owner: str, result_id: str) -> bool:
        """Mark a running job of ``owner`` done; False when it is no longer its job."""
        return self._update_own(job_id, owner, status=JobState.DONE, stage="done", fraction=1.0, result_id=result_id)

    def fail(self, job_id: str, owner: str, code: str, message: str) -> bool:
        return self._update_own(job_id, owner, status=JobState.FAILED, stage="failed", error_code=code, error_message=message)

    def requeue(self, job_id: str, owner: str) -> bool:
        """Put a running job of ``owner`` back in the queue (clean shutdown)."""
        return self._update_own(job_id, owner, status=JobState.QUEUED, stage="queued", fraction=0.0, owner=None)

    def recover(self) -> list[str]:
        """Mark failed the running jobs whose worker process is gone; returns their ids."""
        with self._connect() as db:
            rows = db.execute("SELECT id, owner FROM jobs WHERE status = ?", (JobState.RUNNING.value,)).fetchall()
        lost = []
        for row in rows:
            if owner_alive(row["owner"]):
                continue
            code, message = INTERRUPTED
            if self._update_own(row["id"], row["owner"], status=JobState.FAILED, stage="failed", error_code=code, error_message=message):
                self.discard_upload(row["id"])
                lost.append(row["id"])
                log.warning("job %s was running in a worker that stopped; marked failed", row["id"])
        return lost

    def discard_upload(self, job_id: str) -> None:
        shutil.rmtree(self.job_dir(job_id), ignore_errors=True)


def _job(row: sqlite3.Row) -> Job:
    values = dict(row)
    values["status"] = JobState(values["status"])
    return Job(**values)


Progress = Callable[[str, float], None]  # (stage name, fraction 0..1)


class JobRunner:
    """A background thread that runs this worker's share of the queued jobs, one at a time.

    ``run(job, progress)`` does the work and returns the result id; an
    OdontoscanError fails the job with its code and message, any other exception
    with a generic message (its type and stack go to the log, never its text).
    """

    def __init__(self, store: Store, run: Callable[[Job, Progress], str], *, poll_s: float = 0.5) -> None:
        self.store = store
        self.run = run
        self.poll_s = poll_s
        self.owner = process_owner()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._current: str | None = None
        self._thread = threading.Thread(target=self._loop, name="odontoscan-jobs", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        """Look for a queued job now instead of at the next poll."""
        self._wake.set()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        """Stop taking jobs; a job still running goes back to the queue for the next start."""
        self._stop.set()
        self._wake.set()
        current = self._current
        if current is not None and self.store.requeue(current, self.owner):
            log.info("job %s put back in the queue (service stopping)", current)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                job = self.store.claim(self.owner)
            except sqlite3.Error as exc:
                log.error("job store unavailable (%s); retrying", type(exc).__name__)
                job = None
            if job is None:
                self._wake.wait(self.poll_s)
                self._wake.clear()
                continue
            self._execute(job)

    def _execute(self, job: Job) -> None:
        self._current = job.id
        log.info("job %s started", job.id)
        try:
            result_id = self.run(job, lambda stage, fraction: self.store.progress(job.id, self.owner, stage, fraction))
        except OdontoscanError as exc:
            ended = self.store.fail(job.id, self.owner, exc.code, exc.message)
            log.info("job %s failed: %s", job.id, exc.code)
        except Exception as exc:  # noqa: BLE001 - a job must never take the worker down
            log.error("job %s failed unexpectedly: %s\n%s", job.id, type(exc).__name__, "".join(traceback.format_tb(exc.__traceback__)))
            ended = self.store.fail(job.id, self.owner, *INTERNAL)
        else:
            ended = self.store.finish(job.id, self.owner, result_id)
            if not ended:  # put back in the queue meanwhile: it will run again
                self.store.delete_result(result_id)
            log.info("job %s done", job.id)
        finally:
            self._current = None
        if ended:  # a job put back in the queue keeps its upload
            self.store.discard_upload(job.id)


__all__ = ["Store", "Job", "JobState", "JobRunner", "Progress", "new_id", "valid_id", "process_owner", "owner_alive", "INTERRUPTED"]
