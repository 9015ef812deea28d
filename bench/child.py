"""Run one benchmark contender in this (fresh) process: `python -m bench.child module:function JSON`.

The function gets the decoded JSON args and returns a dict with at least `seconds` (the timed work,
measured inside the function after its imports). Peak RSS of this process is added here.
"""

from __future__ import annotations

import importlib
import json
import resource
import sys


def main() -> None:
    target, raw = sys.argv[1], sys.argv[2]
    module, _, name = target.partition(":")
    function = getattr(importlib.import_module(module), name)
    result = function(json.loads(raw))
    # Linux reports ru_maxrss in KiB
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("BENCH-RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
