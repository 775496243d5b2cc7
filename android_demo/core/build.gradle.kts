// The runtime core: plain Java 17, no Android dependency. On this repository's CI it is built and
// tested without Gradle by core/test.sh (javac + JUnit 4 against tests/vectors); this file makes
// the same sources a module the app uses.
plugins {
    `java-library`
}

java {
    sourceCompatibility = JavaVersion.VERSION_17
    targetCompatibility = JavaVersion.VERSION_17
}

dependencies {
    api("com.google.code.gson:gson:2.10.1")
    testImplementation("junit:junit:4.13.2")
}

tasks.test {
    // the shared vectors written by the Python runtime (tests/make_vectors.py)
    systemProperty("acre.vectors", rootDir.resolve("../tests/vectors").absolutePath)
}
