"""tune's Optuna studies: where one is kept (a journal file under exp/tune, or a database
URL several machines share), opening one (`open_study`: a study made with another space is
refused), finding one (`newest_study`), and a URL's password never shown (`masked`).
Imports optuna (when called), `errors` and the standard library."""
from __future__ import annotations

import json
import re
import time
import urllib.parse
from pathlib import Path
from typing import Any

from .errors import UsageError

STORAGE_ENV = "PPO_TUNE_STORAGE"  # how workers get the storage URL: never on a command line


def masked(text: str, *urls: str | None) -> str:
    """`text` with the password of each URL in `urls` shown as ***, wherever it appears."""
    for secret in sorted({form for url in urls for form in _password_forms(url)}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def _password_forms(url: str | None) -> set[str]:
    """The ways a URL's password may be printed: as typed, percent-decoded, escaped as in a
    repr (a newline as \\n), and split at an @ (a library that parsed the URL otherwise).
    The password: what stands between "//user:" and the URL's last @, whatever it holds (a
    space, a newline, a /, an @); in a URL too malformed to parse as well."""
    found = re.search(r"//[^:/@]*:", url or "")
    if not found or "@" not in url[found.end():]:
        return set()
    typed = url[found.end():url.rindex("@")]
    forms = {typed, urllib.parse.unquote(typed)}
    forms |= {repr(f)[1:-1] for f in forms} | {part for f in forms for part in f.split("@") if len(part) >= 3}
    return {f for f in forms if f}


def open_study(storage: str | None, study_name: str, logdir: str, space: dict[str, Any] | None = None,
               fixed: dict[str, Any] | None = None, create: bool = True, objective: str = "mean") -> Any:
    """The study: in a journal file under `logdir` unless a database URL is given (several
    machines then share it, Optuna's own distributed mode). To run trials (`create`), a
    study made with another space or other fixed flags is refused, untouched; to show one
    (`create=False`), its name alone finds it."""
    import optuna
    journal = Path(logdir) / "tune" / f"{study_name}.journal"
    if not create and not storage and not journal.is_file():
        there = sorted(p.name[:-len(".journal")] for p in journal.parent.glob("*.journal"))
        raise UsageError(f"no study '{study_name}' in {journal.parent}; " + (
            f"it holds {', '.join(there[:10])}: pass one of them to --study" if there else "run tune first"))
    backend, names = _storage(storage, journal, create)
    described = dict(space=space, fixed={k: str(v) for k, v in (fixed or {}).items()},
                     **({"objective": objective} if objective != "mean" else {}))  # studies before it: mean
    if study_name in names:
        study = optuna.load_study(study_name=study_name, storage=backend)
        if not create:
            return study
        if "described" not in study.user_attrs:  # another process created it a moment ago
            _describe(study, described, fixed)
        elif study.user_attrs["described"] != json.loads(json.dumps(described)):
            raise UsageError(f"study '{study_name}' was created with another search space, other fixed "
                             "flags or another --objective; pass --study NAME for a new study, or the same "
                             "flags to continue it")
        return study
    if not create:
        raise UsageError(masked(f"no study '{study_name}' in {storage or Path(logdir) / 'tune'}; run tune first"
                                + (f" (it holds: {', '.join(sorted(names)[:10])})" if names else ""), storage))
    study = optuna.create_study(study_name=study_name, storage=backend, direction="maximize", load_if_exists=True,
                                sampler=optuna.samplers.TPESampler(), pruner=optuna.pruners.MedianPruner(
                                    n_startup_trials=5, n_warmup_steps=0))
    _describe(study, described, fixed)
    return study


def _describe(study: Any, described: dict[str, Any], fixed: dict[str, Any] | None) -> None:
    """What a study is (checked when it is continued) and the fixed flags --show puts in
    its best command."""
    study.set_user_attr("described", described)
    study.set_user_attr("fixed_flags", as_flags(fixed or {}))


def newest_study(storage: str | None, logdir: str) -> str:
    """The study `tune --show` shows without --study: the newest journal under `logdir`,
    or the only study in a --storage (one of several: ask for its name)."""
    if storage:
        _, names = _storage(storage, None, create=False)
        if len(names) == 1:
            return names[0]
        raise UsageError(masked(f"{storage} holds {len(names)} studies" + (f" ({', '.join(sorted(names)[:10])})"
                                if names else "") + "; pass --study NAME", storage))
    journals = sorted(Path(logdir, "tune").glob("*.journal"), key=lambda p: p.stat().st_mtime)
    if not journals:
        raise UsageError(f"no study in {Path(logdir) / 'tune'}; run tune first")
    return journals[-1].name[:-len(".journal")]


def _storage(storage: str | None, default_journal: Path | None, create: bool) -> tuple[Any, list[str]]:
    """Optuna's storage for --storage (a database URL or a .journal file), else the journal
    `default_journal`; and the names of the studies in it."""
    import optuna
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # a failed (interrupted) trial is said in one line
    if storage and "://" not in storage and not storage.endswith(".journal"):
        raise UsageError(f"--storage {masked(storage, storage)[:80]} is neither a database URL (postgresql://user:password@host/db, "
                         "mysql://..., sqlite:///study.db) nor a .journal file")
    try:
        if storage and "://" in storage:
            backend = _database(storage, create)
        else:
            backend = _journal(Path(storage or default_journal), create)
        return backend, optuna.get_all_study_names(backend)
    except UsageError:
        raise
    except Exception as e:  # noqa: BLE001 - bad URLs, unreachable servers, missing drivers
        said = masked(str(e), storage).strip()  # before it is cut: a cut password is no longer found
        first = said.splitlines()[0][:160] if said else type(e).__name__
        raise UsageError(masked(f"cannot open the study storage {storage or 'file'} ({first}); check the URL, "
                                "e.g. postgresql://user:password@host/dbname, and that the server is reachable", storage)) from None


def _database(url: str, create: bool) -> Any:
    """Optuna's storage in a database (PostgreSQL through psycopg 3 where it is installed)."""
    import optuna
    connect = {}
    if url.startswith(("postgresql://", "postgres://")):
        connect = {"connect_timeout": 10}
        try:  # the README's driver, psycopg 3 (SQLAlchemy 2.0's default would be psycopg2)
            import psycopg  # noqa: F401
            url = "postgresql+psycopg://" + url.split("://", 1)[1]
        except ImportError:
            pass
    for attempt in range(3):  # workers starting together on an empty database race to make its tables
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": connect},
                                              skip_table_creation=not create)
        except Exception as e:  # noqa: BLE001
            if attempt == 2 or "duplicate" not in str(e).lower() and "exists" not in str(e).lower():
                raise
            time.sleep(1)


def _journal(path: Path, create: bool) -> Any:
    """Optuna's storage in a journal file, a regular one (a FIFO would hang the journal's reader)."""
    from optuna.storages.journal import JournalFileBackend, JournalStorage
    if path.exists() and not path.is_file():
        raise UsageError(f"the study journal {path} is not a regular file; pass another --storage")
    if not create and not path.is_file():
        raise UsageError(f"no study at {path}; run tune first")
    path.parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(path)))


def as_flags(settings: dict[str, Any]) -> list[str]:
    """Training settings as command-line flags, e.g. {"hidden_sizes": (64, 64)} -> --hidden-sizes 64,64."""
    flags = []
    for name, value in settings.items():
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            flags.append(flag if value else "--no-" + name.replace("_", "-"))
        elif value is not None:
            flags += [flag, ",".join(map(str, value)) if isinstance(value, tuple) else str(value)]
    return flags
