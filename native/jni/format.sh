#!/bin/sh
# Formats org.acre's Java and the Android app's with google-java-format 1.28.0 (the newest that runs on Java 17), or with --check
# says which files it would change (make lint). The jars are looked up in Maven's local repository
# (~/.m2: google-java-format, guava, failureaccess; `mvn dependency:get
# -Dartifact=com.google.googlejavaformat:google-java-format:1.28.0` puts them there) or given as GJF_CLASSPATH.
# Without them it says so and checks nothing.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
M2=${M2_REPO:-$HOME/.m2/repository}
CP=${GJF_CLASSPATH:-$M2/com/google/googlejavaformat/google-java-format/1.28.0/google-java-format-1.28.0.jar:$M2/com/google/guava/guava/33.4.8-jre/guava-33.4.8-jre.jar:$M2/com/google/guava/failureaccess/1.0.3/failureaccess-1.0.3.jar}
for jar in $(echo "$CP" | tr ':' ' '); do
    [ -f "$jar" ] || { echo "format.sh: $jar not found: the Java is NOT format-checked (see this script)" >&2; exit 0; }
done
FILES=$(find "$HERE/java" "$HERE/tests" "$HERE/../../android_demo/app/src" -name '*.java' | sort)
OPENS=""
for p in api code file parser tree util; do OPENS="$OPENS --add-exports=jdk.compiler/com.sun.tools.javac.$p=ALL-UNNAMED"; done
if [ "${1:-}" = --check ]; then
    # shellcheck disable=SC2086
    CHANGED=$(java $OPENS -cp "$CP" com.google.googlejavaformat.java.Main --dry-run $FILES)
    [ -z "$CHANGED" ] || { echo "google-java-format would change:"; echo "$CHANGED"; exit 1; }
else
    # shellcheck disable=SC2086
    java $OPENS -cp "$CP" com.google.googlejavaformat.java.Main --replace $FILES
fi
