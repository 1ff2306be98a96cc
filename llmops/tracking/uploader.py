"""The uploader: a helper process that readies MLflow while the tests sample.

Importing MLflow and opening its store (SQLAlchemy, the store's tables, the experiment)
takes two to four seconds of CPU.  In the pytest process that time is either added at the
session's end or, in a background thread, taken from the sampling loop (one GIL).  So when
a session first samples, the plugin starts this process (``python -m
llmops.tracking URI EXPERIMENT``): it opens the store on the other core and waits.
At the session's end the record is spooled as always (``llmops.tracking.spool``) and the
spool file's path is sent on the helper's stdin; it uploads the file, removes it, and
answers one line of JSON, what ``llmops.tracking.upload_file`` returns.

Nothing is lost if the helper cannot help (it died, its Python cannot import MLflow, it
does not answer in time): the session publishes in its own process as before, from the
same spool file.  The helper exits when its stdin closes, so it never outlives pytest.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from llmops.redact import redact


def main(argv: list[str]) -> None:
    from llmops.tracking import _open, upload_file

    uri, experiment = (argv[0] or None), argv[1]
    store: Any = None
    with contextlib.suppress(Exception):  # a store that does not open now is tried again when asked
        store = _open(uri, experiment)
        store.client.search_prompts(max_results=1)  # the prompt registry is a store of its own: open it too
    line = sys.stdin.readline()
    if not line.strip():
        return  # pytest ended without a record (interrupted early, no results)
    answer = upload_file(Path(line.strip()), uri, experiment, store)
    sys.stdout.write(json.dumps(redact(answer)) + "\n")
    sys.stdout.flush()
    # Everything is written (each MLflow call commits); MLflow's exit hooks (telemetry, the
    # stores' engines) would keep pytest waiting most of a second for nothing.
    os._exit(0)


class Uploader:
    """The pytest side: start the helper early, hand it the spool file at the end."""

    def __init__(self, uri: str | None, experiment: str, cwd: str | os.PathLike[str]) -> None:
        self.proc: subprocess.Popen[str] | None
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "llmops.tracking", uri or "", experiment],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,  # MLflow's own noise; failures come back as the answer
                cwd=cwd,
                text=True,
            )
        except OSError:
            self.proc = None  # the session publishes in its own process

    def upload(self, path: Path, timeout: float) -> dict[str, str] | None:
        """The helper's answer for this spool file, or None when it could not give one."""
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        if proc.poll() is not None:  # it died: close its pipes
            _reap(proc)
            return None
        try:
            out, _ = proc.communicate(f"{path}\n", timeout=timeout)
        except (subprocess.TimeoutExpired, OSError):
            _reap(proc)
            return None
        try:
            answer = json.loads(out.strip().splitlines()[-1])
        except (ValueError, IndexError):  # it died before answering: the session uploads itself
            return None
        return answer if isinstance(answer, dict) and ("run_id" in answer or "error" in answer) else None

    def close(self) -> None:
        """No record to upload (or the session is ending early): let the helper go."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        try:
            proc.communicate("\n" if proc.poll() is None else None, timeout=5)
        except (subprocess.TimeoutExpired, OSError, ValueError):
            # Still opening the store (a new one is being migrated): never killed half-way; it
            # reads the end of its input once the store is open, and exits by itself, reaped
            # by a thread that holds it until then.
            for pipe in (proc.stdin, proc.stdout):
                with contextlib.suppress(OSError, ValueError):
                    pipe.close()  # type: ignore[union-attr]
            threading.Thread(target=proc.wait, name="llmops-uploader-reaper", daemon=True).start()


def _reap(proc: subprocess.Popen[str]) -> None:
    """Kill the helper if it still runs, and close its pipes."""
    with contextlib.suppress(OSError):
        proc.kill()
    with contextlib.suppress(OSError, ValueError):
        proc.communicate()
