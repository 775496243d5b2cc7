// acre Android demo: `core` is the runtime core (plain Java, unit-tested on the JVM by core/test.sh
// or `gradle :core:test`), `app` is the Android app that runs it on ExecuTorch.
pluginManagement {
    repositories {
        google()
        mavenCentral()
        gradlePluginPortal()
    }
}

dependencyResolutionManagement {
    repositoriesMode.set(RepositoriesMode.FAIL_ON_PROJECT_REPOS)
    repositories {
        google()
        mavenCentral()
    }
}

rootProject.name = "acre-android-demo"
include(":core", ":app")
