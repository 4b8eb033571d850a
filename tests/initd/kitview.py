"""Replay helpers: the kit layer (built once) and one case run in a view by viewdrive.py."""

import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(os.path.dirname(os.path.dirname(HERE)), "src")
VECTORS = os.path.join(os.path.dirname(os.path.dirname(HERE)), "..", "shared", "vectors",
                       "initd-kit.json")

# ubus in the view: records each call the kit makes during a step (KITREC_DIR set),
# as the recorder's wrapper did, then passes everything through.
# With $KITREC_DIR/expect present (replay against the recording), the call
# is answered with the recorded reply of the same position instead.
RECORDING_UBUS = r"""#!/bin/sh
[ -n "$KITREC_DIR" ] || exec /usr/lib/kitrec/ubus "$@"  # exec keeps the real wrapper's $0 out of it
i=0
while ! mkdir "$KITREC_DIR/$i" 2>/dev/null; do i=$((i+1)); done
d="$KITREC_DIR/$i"
printf '%s\0' "$@" > "$d/argv"
e="$KITREC_DIR/expect/$i"
if [ -d "$KITREC_DIR/expect" ]; then
	if [ -d "$e" ]; then
		cat "$e/stdout" > "$d/stdout"; cat "$e/stderr" > "$d/stderr"; rc=$(cat "$e/rc")
	else
		: > "$d/stdout"; echo "unexpected ubus call" > "$d/stderr"; rc=1
	fi
else
	/usr/lib/kitrec/ubus "$@" > "$d/stdout" 2> "$d/stderr"
	rc=$?
fi
echo "$rc" > "$d/rc"
cat "$d/stdout"
cat "$d/stderr" >&2
exit "$rc"
"""


def missing_tools():
    need = ["unshare", "mount", "busybox"]
    return [t for t in need if shutil.which(t) is None]


def build_layer(base):
    """The kit as `pyprocd kit install` lays it out, over a merged-usr skeleton."""
    layer = os.path.join(base, "layer")
    os.makedirs(os.path.join(layer, "usr", "bin"))
    os.makedirs(os.path.join(layer, "usr", "sbin"))
    os.makedirs(os.path.join(layer, "usr", "lib"))
    for name in ("bin", "sbin", "lib"):
        os.symlink("usr/" + name, os.path.join(layer, name))
    env = dict(os.environ, PYTHONPATH=SRC)
    subprocess.run([sys.executable, "-m", "pyprocd", "kit", "install", "--root", layer],
                   check=True, env=env, stdout=subprocess.DEVNULL)
    kitrec = os.path.join(layer, "usr", "lib", "kitrec")
    os.makedirs(kitrec)
    with open(os.path.join(layer, "usr", "bin", "ubus")) as f:
        real = f.read().replace('lib="${0%/*}/../lib/pyprocd"', 'lib=/usr/lib/pyprocd')
    with open(os.path.join(kitrec, "ubus"), "w") as f:
        f.write(real)
    os.chmod(os.path.join(kitrec, "ubus"), 0o755)
    with open(os.path.join(layer, "usr", "bin", "ubus"), "w") as f:
        f.write(RECORDING_UBUS)
    os.chmod(os.path.join(layer, "usr", "bin", "ubus"), 0o755)
    os.symlink(shutil.which("busybox"), os.path.join(layer, "usr", "bin", "sh"))
    return layer


def run_case(layer, group, case, timeout=1800, mode="live"):
    work = tempfile.mkdtemp(prefix="kitview-")
    try:
        job = {"work": work, "layer": layer, "group": group, "case": case, "mode": mode,
               "python_prefix": sys.base_prefix if not sys.base_prefix.startswith("/usr") else None}
        job_path = os.path.join(work, "job.json")
        with open(job_path, "w") as f:
            json.dump(job, f)
        result_path = os.path.join(work, "result.json")
        fd = os.open(result_path, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            p = subprocess.run(["unshare", "-m", "--propagation", "private", sys.executable,
                                os.path.join(HERE, "viewdrive.py"), job_path, str(fd)],
                               pass_fds=(fd,), capture_output=True, timeout=timeout, check=False,
                               env=dict(os.environ, PYTHONPATH=SRC))
        finally:
            os.close(fd)
        with open(result_path) as f:
            text = f.read()
        assert p.returncode == 0 and text, f"driver failed: {p.stderr.decode()[-4000:]}"
        return json.loads(text)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def load_vectors():
    with open(VECTORS) as f:
        return json.load(f)
