#!/bin/sh
# The JVM tests of the Java API org.acre over libacre_jni, against the real ExecuTorch runtime: builds the
# JNI library with CMake (build/jni, against the installed executorch wheel, as the core's own build),
# compiles org.acre and its tests with javac --release 17, exports the tests' tiny random-weight Llama as a
# .pte bundle and records the Python session's greedy answers on it and Python's rendering of the chat
# templates the binding knows (native/jni/tests/make_fixture.py, into build/jni-test; the export is
# kept), and runs the tests with JUnit 4. Run from anywhere.
# Needs a JDK 17 and Debian's junit4 (installed if missing), and the repository's .venv (scripts/setup.sh).
# JOBS (default 2) is the build's parallelism.
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
VENV="$REPO/.venv/bin"
BUILD="$REPO/build/jni"
FIXTURE="$REPO/build/jni-test"
CLASSES="$BUILD/classes"
JUNIT=/usr/share/java/junit4.jar
HAMCREST=/usr/share/java/hamcrest.jar

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        echo "test.sh: need root (or sudo) to run: $*" >&2; exit 2; fi
}
install() {  # apt-get install, refreshing the package lists once if they are missing or stale
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" \
        || { as_root apt-get update && as_root env DEBIAN_FRONTEND=noninteractive \
             apt-get install -y --no-install-recommends "$@"; }
}
command -v javac >/dev/null || install openjdk-17-jdk-headless
if [ ! -f "$JUNIT" ] || [ ! -f "$HAMCREST" ]; then install junit4; fi
JAVA_HOME=${JAVA_HOME:-$(dirname "$(dirname "$(readlink -f "$(command -v javac)")")")}
export JAVA_HOME

PATH="$VENV:$PATH" cmake -S "$REPO/native" -B "$BUILD" -G Ninja -DPython_EXECUTABLE="$VENV/python" \
    -DACRE_BUILD_TESTS=OFF -DACRE_BUILD_PYTHON=OFF -DACRE_BUILD_JNI=ON >/dev/null
PATH="$VENV:$PATH" cmake --build "$BUILD" --target acre_jni -j"${JOBS:-2}"

rm -rf "$CLASSES" && mkdir -p "$CLASSES" "$FIXTURE"
find "$HERE/java" "$HERE/tests" -name '*.java' > "$BUILD/sources.txt"
javac --release 17 -Xlint:all -Werror -encoding UTF-8 -cp "$JUNIT" -d "$CLASSES" @"$BUILD/sources.txt"

# the chat templates the binding knows, for Python to render; then the bundle and Python's answers
java -Djava.library.path="$BUILD" -cp "$CLASSES" org.acre.KnownTemplates "$FIXTURE/templates.txt"
"$VENV/python" "$HERE/tests/make_fixture.py" "$FIXTURE" "$FIXTURE/templates.txt" 2>"$FIXTURE.log" \
    || { cat "$FIXTURE.log" >&2; exit 1; }
TESTS=$(cd "$HERE/tests" && find . -name '*Test.java' | sed 's|^\./||; s|\.java$||; s|/|.|g' | sort)
# shellcheck disable=SC2086  # one class name per word
exec java -Xcheck:jni -Djava.library.path="$BUILD" -Dacre.fixture="$FIXTURE" \
    -cp "$CLASSES:$JUNIT:$HAMCREST" org.junit.runner.JUnitCore $TESTS
