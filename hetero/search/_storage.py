"""Where a study lives, how a killed run resumes, and how several processes share one study.

The default storage is an Optuna journal file inside the run folder; ``--storage URL`` takes any
Optuna RDB URL (``sqlite:///...``, ``postgresql://...``) and enables Optuna's heartbeat, so that
trials of a dead worker on another machine are failed and retried. Every trial records the
process running it (``worker`` attribute), so a trial left ``RUNNING`` by a killed process on
this machine is failed and retried (same parameters) as soon as a run resumes, in any storage.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import re
import socket
import time
import warnings
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from hetero.errors import UserError
from hetero.runtime import progress

__all__ = [
    "DEFAULT_STUDY",
    "JOURNAL_FILE",
    "FINISHED",
    "check_storage",
    "open_storage",
    "open_study",
    "redact",
    "run_lock",
    "worker_seed",
    "run_trials",
    "fail_dead_trials",
    "worker_id",
]

DEFAULT_STUDY = "hetero-search"
JOURNAL_FILE = "study.journal"
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
#: RDB heartbeat: a worker that has not beaten for GRACE_S seconds is dead (Optuna fails its trial).
HEARTBEAT_S, GRACE_S = 10, 60
#: How often a trial killed mid-way is retried before it is left failed.
MAX_RETRY = 2
#: A RUNNING trial that never recorded its worker this long after it started was orphaned.
UNCLAIMED_S = 30.0
#: Tries at opening an RDB storage (workers started together race to create its tables).
OPEN_ATTEMPTS = 3


@contextlib.contextmanager
def _quiet_experimental() -> Iterator[None]:
    """Silence Optuna's ExperimentalWarning for the heartbeat and retry API (in Optuna since 2.8)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield


def redact(url: str) -> str:
    """``url`` with its password replaced by ``***`` (for files and messages)."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)


def open_storage(url: str | None, run_dir: Path) -> tuple[optuna.storages.BaseStorage, str]:
    """Open the study storage: ``url``, or a journal file in ``run_dir``.

    Returns:
        The storage and its description for messages (password redacted).

    Raises:
        UserError: The URL's database driver is missing or the database cannot be reached.
    """
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    url = check_storage(url)
    if url is None or "://" not in url:
        path = Path(url) if url else run_dir / JOURNAL_FILE
        if not url:  # the run folder is hetero's own; a user's journal path must already have its folder
            path.parent.mkdir(parents=True, exist_ok=True)
        backend = JournalFileBackend(str(path))
        _drop_torn_record(path)
        return JournalStorage(backend), f"journal file {path}"
    error: Exception | None = None
    for attempt in range(OPEN_ATTEMPTS):
        if attempt:  # workers started together race to create Optuna's tables; a later try finds them
            time.sleep(attempt)
        try:
            return _rdb_storage(url), redact(url)
        except ImportError as exc:  # Optuna re-raises the driver's ModuleNotFoundError as ImportError
            missing = getattr(exc.__cause__, "name", None) or getattr(exc, "name", None) or "its database driver"
            raise UserError(
                f"--storage {redact(url)} needs the Python module {missing!r}; install it "
                "(for PostgreSQL: pip install 'hetero[search]', which brings psycopg)"
            ) from None
        except Exception as exc:  # sqlalchemy's OperationalError, ArgumentError... for a bad URL or server
            error = exc
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    raise UserError(f"--storage {redact(url)} cannot be opened ({first}); check the URL and that the server is up")


#: File endings --storage accepts as a path: an Optuna journal, or an SQLite database.
JOURNAL_SUFFIXES = (".journal", ".log")
SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")


def check_storage(url: str | None) -> str | None:
    """``--storage`` as :func:`open_storage` will open it, or a one-line refusal; touches nothing.

    Accepted: an RDB URL SQLAlchemy can parse (``sqlite:///FILE``, ``postgresql://USER@HOST/DB``,
    ...), a journal file path (``.journal``, ``.log``) or an SQLite file path (``.db``, ``.sqlite``,
    ``.sqlite3``; opened as ``sqlite:///PATH``), either path in an existing folder. Anything else
    (a typo such as ``notaurl:::``) would silently become a file of that name in the current folder.

    Returns:
        ``None`` (the run folder's journal), the URL, or the journal path.

    Raises:
        UserError: ``url`` is none of these.
    """
    if url is None:
        return None
    usage = "pass sqlite:///FILE, postgresql://USER@HOST/DB or a journal file path ending in .journal"
    if "://" in url:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            make_url(url).get_dialect()  # NoSuchModuleError (an ArgumentError): no such kind of database
        except (ArgumentError, ValueError) as exc:
            raise UserError(f"--storage {redact(url)} is not a valid storage URL ({exc}); {usage}") from None
        return url
    path = Path(url)
    suffix = path.suffix.lower()
    if suffix not in JOURNAL_SUFFIXES + SQLITE_SUFFIXES:
        raise UserError(f"--storage {url!r} is neither a storage URL nor a journal or SQLite file path; {usage}")
    if path.exists() and not path.is_file():
        raise UserError(f"--storage {url} is a folder, not a file; {usage}")
    if not path.parent.is_dir():
        raise UserError(f"--storage {url}: the folder {path.parent} does not exist; create it or pass another path")
    return f"sqlite:///{path.resolve()}" if suffix in SQLITE_SUFFIXES else url


def _rdb_storage(url: str) -> optuna.storages.RDBStorage:
    with _quiet_experimental():
        return optuna.storages.RDBStorage(
            url,
            heartbeat_interval=HEARTBEAT_S,
            grace_period=GRACE_S,
            heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY),
        )


def _drop_torn_record(path: Path) -> None:
    """Cut a journal's last line if a writer killed mid-write left it without its newline.

    Optuna skips such a line only while it is the last one; the next record appended after it
    would make the journal unreadable. The cut runs under the journal's own lock.
    """
    from optuna.storages.journal import JournalFileSymlinkLock

    if not path.stat().st_size:
        return
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        if f.read(1) == b"\n":
            return
    lock = JournalFileSymlinkLock(str(path))
    lock.acquire()
    try:
        data = path.read_bytes()
        if not data.endswith(b"\n"):
            with open(path, "r+b") as f:
                f.truncate(data.rfind(b"\n") + 1)
    finally:
        lock.release()


def open_study(storage, name: str, directions: list[str], sampler, pruner, settings: dict[str, Any],
               metric_names: list[str] | None = None) -> optuna.Study:
    """Create or load study ``name``; a loaded study must have been made with the same ``settings``.

    ``metric_names`` (one per direction, extra ones ignored) label the objectives in optuna-dashboard.

    Raises:
        UserError: The study exists with other directions or settings (a different search).
    """
    study = optuna.create_study(
        storage=storage, study_name=name, directions=[optuna.study.StudyDirection[d.upper()] for d in directions], sampler=sampler, pruner=pruner, load_if_exists=True
    )
    found = [d.name.lower() for d in study.directions]
    if found != directions:
        raise UserError(
            f"study {name!r} exists with objectives {found}, this search needs {directions}; "
            "pass another --study or --out to start a new search"
        )
    recorded = study.user_attrs.get("hetero")
    if recorded is None:
        study.set_user_attr("hetero", settings)
        if metric_names:
            with _quiet_experimental():
                study.set_metric_names(metric_names[: len(directions)])
    elif recorded != settings:
        diff = sorted(k for k in set(recorded) | set(settings) if recorded.get(k) != settings.get(k))
        details = ", ".join(f"{k}: {recorded.get(k)!r} -> {settings.get(k)!r}" for k in diff)
        raise UserError(
            f"study {name!r} was started with other settings ({details}); re-run with the same options "
            "to resume it, or pass another --study or --out to start a new search"
        )
    return study


def _start_time(pid: int) -> str | None:
    """The kernel's start time of process ``pid`` (tells a reused pid apart), or None off Linux."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def worker_id() -> str:
    """``host:pid:start`` of this process."""
    return f"{socket.gethostname()}:{os.getpid()}:{_start_time(os.getpid()) or '?'}"


#: The run folder's count of search processes started in it (the next one's worker number).
WORKERS_FILE = "workers.json"


def worker_seed(seed: int, run_dir: Path, shared_storage: bool) -> int:
    """The sampler seed of this search process: ``seed`` for the first process of a run folder.

    Workers sharing a study must not draw the same trials, so each process started in
    ``run_dir`` takes the next worker number (counted under a lock in ``WORKERS_FILE``), which
    enters the seed: a lone search is reproducible from ``--seed``, and a second worker, or a
    resumed run, draws other trials. Workers of a storage the user gave (``--storage``) may run on
    other machines with run folders of their own, so there the process's identity enters it too.
    """
    from hetero._io import read_json, write_json

    path = run_dir / WORKERS_FILE
    with run_lock(run_dir / ".workers.lock"):
        number = int(read_json(path).get("started", 0)) if path.exists() else 0
        write_json(path, {"started": number + 1})
    identity = zlib.crc32(worker_id().encode()) if shared_storage else 0
    return (seed * 1_000_003 + number * 7_919 + identity) % 2**31


def _is_dead(worker: str) -> bool:
    """Whether the process ``worker`` names is gone; a worker on another machine is not judged here."""
    host, pid_text, start = worker.rsplit(":", 2)
    if host != socket.gethostname():
        return False
    pid = int(pid_text)
    if start != "?":
        return _start_time(pid) != start
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def fail_dead_trials(study: optuna.Study) -> list[int]:
    """Fail the RUNNING trials of dead processes and enqueue each once more (same parameters).

    Returns:
        The numbers of the trials this call failed.
    """
    with _quiet_experimental():
        retry = RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)
    now = _dt.datetime.now()
    failed = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = trial.user_attrs.get("worker")
        if worker is None:
            started = trial.datetime_start or now
            dead = (now - started).total_seconds() > UNCLAIMED_S
        else:
            dead = _is_dead(worker)
        if not dead:
            continue
        try:
            study.tell(trial.number, state=TrialState.FAIL)
        except (ValueError, RuntimeError, optuna.exceptions.UpdateFinishedTrialError):
            continue  # another process finished or failed it first
        failed.append(trial.number)
        retry(study, study.get_trials(deepcopy=False)[trial.number])
    return failed


def run_trials(study: optuna.Study, objective: Callable[[optuna.Trial], Any], n_trials: int, desc: str,
               poll_s: float = 1.0, recount: Callable[[int], int] | None = None) -> int:
    """Run trials until ``study`` holds ``n_trials`` finished (complete or pruned) ones.

    Trials other processes finish count, so several workers on one storage share the work: a
    worker starts a trial only while finished plus running trials are fewer than ``n_trials``,
    and waits while the rest is running elsewhere. A trial that raises fails and the error
    propagates; a trial left RUNNING by a killed process is failed and retried.

    ``recount``, where given, is asked after each trial this process ran, with the number
    finished, for the count to reach from then on (a time budget's count, set again as the
    trials' pace is measured).

    Returns:
        The number of trials this process ran.
    """
    worker = worker_id()

    def claimed(trial: optuna.Trial) -> Any:
        trial.set_user_attr("worker", worker)
        return objective(trial)

    bar = progress(total=n_trials, desc=desc, unit="trial")
    ran, waiting_since, recount_due = 0, None, False
    try:
        while True:
            fail_dead_trials(study)
            with _quiet_experimental():
                optuna.storages.fail_stale_trials(study)  # RDB heartbeat: workers dead on other machines
            states = [t.state for t in study.get_trials(deepcopy=False)]
            finished = sum(s in FINISHED for s in states)
            if recount is not None and recount_due:  # after a trial of this process: the count, set again
                n_trials, recount_due = recount(finished), False
                bar.total = n_trials
            bar.n = min(finished, n_trials)
            bar.refresh()
            if finished >= n_trials:
                return ran
            if finished + states.count(TrialState.RUNNING) >= n_trials:
                waiting_since = waiting_since or time.monotonic()
                bar.set_postfix_str(f"waiting {time.monotonic() - waiting_since:.0f} s for trials of other workers")
                time.sleep(poll_s)
                continue
            waiting_since = None
            study.optimize(claimed, n_trials=1)
            ran += 1
            recount_due = True
    finally:
        bar.close()


@contextlib.contextmanager
def run_lock(path: Path) -> Iterator[None]:
    """An exclusive lock between the processes of one run folder (held while the block runs).

    Guards work done once per run (the supernet, the reference, the final files) when several
    workers share the run folder; other workers wait, then reuse the result.
    """
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
