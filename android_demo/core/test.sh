#!/bin/sh
# The JVM core's tests: compile src/main and src/test with javac --release 17 into build/ and run
# every *Test class with JUnit 4 (JUnitCore, via RunTests: it also names skipped tests) against the shared vectors in tests/vectors/. Run from anywhere.
# Needs a JDK 17 and the Debian packages libgoogle-gson-java and junit4 (installed if missing).
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
BUILD="$HERE/build"
GSON=/usr/share/java/gson.jar
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
if [ ! -f "$GSON" ] || [ ! -f "$JUNIT" ] || [ ! -f "$HAMCREST" ]; then
    install libgoogle-gson-java junit4
fi

rm -rf "$BUILD/main" "$BUILD/test"
mkdir -p "$BUILD/main" "$BUILD/test"
find "$HERE/src/main/java" -name '*.java' > "$BUILD/main-sources.txt"
find "$HERE/src/test/java" -name '*.java' > "$BUILD/test-sources.txt"
javac --release 17 -Xlint:all -encoding UTF-8 -cp "$GSON" -d "$BUILD/main" @"$BUILD/main-sources.txt"
javac --release 17 -Xlint:all -encoding UTF-8 -cp "$BUILD/main:$GSON:$JUNIT:$HAMCREST" \
    -d "$BUILD/test" @"$BUILD/test-sources.txt"
cp -r "$HERE/src/test/resources/." "$BUILD/test/"

CLASSES=$(cd "$HERE/src/test/java" && find . -name '*Test.java' | sed 's|^\./||; s|\.java$||; s|/|.|g' | sort)
# shellcheck disable=SC2086  # one class name per word
exec java -Dacre.vectors="$REPO/tests/vectors" -cp "$BUILD/main:$BUILD/test:$GSON:$JUNIT:$HAMCREST" \
    org.acre.core.RunTests $CLASSES
