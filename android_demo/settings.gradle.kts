// acre Android demo: `app` is the Android app. The runtime is the native core (../native), bound to Java
// by org.acre (../native/jni) and built into the app by its externalNativeBuild; its JVM tests run on the
// desktop (native/jni/test.sh, part of `make test`).
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
include(":app")
