"""Child side of a bench module run: `python3 -m bench._module NAME QUICK OUT.json`.

Each module runs in a process of its own, so that one that exits, crashes
the interpreter, hangs or leaves signal handlers behind cannot take the
runner or the other modules with it.
"""

import json
import sys
import traceback


def run_in_process(name, quick):
    """{'ok': True, 'result': dict} or {'ok': False, 'error': text}; never raises Exception."""
    import importlib

    try:
        module = importlib.import_module(f"bench.bench_{name}")
        result = module.run(quick)
        if not isinstance(result, dict):
            raise TypeError(f"run() returned {type(result).__name__}, not dict")
        json.dumps(result)  # must be JSON-able for the results file
        return {"ok": True, "result": result}
    except Exception as exc:  # noqa: BLE001 - one module failing must not stop the others
        last = traceback.format_exception(exc)[-3:]
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}",
                "traceback": "".join(last)}


def main(argv):
    name, quick, out = argv[0], argv[1] == "1", argv[2]
    outcome = run_in_process(name, quick)
    with open(out, "w") as f:
        json.dump(outcome, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
