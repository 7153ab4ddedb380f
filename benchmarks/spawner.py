"""Start measured processes from a small process, so their peak RSS is their own.

Linux carries a process's peak resident set across fork and exec: a child forked
from the benchmark (which by then holds certctl, cryptography and a built store,
~50 MiB) reports at least the benchmark's size as its own `ru_maxrss`. This script
is exec'd afresh (so it is small whenever it starts) and stays small (standard library
only, no site packages); it runs each command it is sent and answers with the
measurements. One JSON line in (argv, env, timeout, out, err), one JSON line out.
"""

import contextlib
import json
import os
import subprocess
import sys
import threading
import time


def run(request: dict) -> dict:  # type: ignore[type-arg]
    with open(request["out"], "wb") as out, open(request["err"], "wb") as err:
        killed = threading.Event()
        reaped = threading.Event()
        start = time.perf_counter()
        proc = subprocess.Popen(
            request["argv"], env=request["env"], stdin=subprocess.DEVNULL, stdout=out, stderr=err
        )

        def kill() -> None:
            if not reaped.is_set():
                killed.set()
                with contextlib.suppress(OSError):
                    os.kill(proc.pid, 9)

        timer = threading.Timer(request["timeout"], kill)
        timer.daemon = True
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            reaped.set()
            timer.cancel()
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped: keep Popen quiet
    # ru_maxrss is KiB on Linux, bytes on macOS.
    rss = usage.ru_maxrss if sys.platform == "darwin" else usage.ru_maxrss * 1024
    return {
        "wall": wall,
        "rss": rss,
        "cpu": usage.ru_utime + usage.ru_stime,
        "returncode": proc.returncode,
        "timed_out": killed.is_set(),
    }


def main() -> None:
    for line in sys.stdin:
        try:
            answer = run(json.loads(line))
        except OSError as e:
            answer = {"error": f"{type(e).__name__}: {e}"}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
