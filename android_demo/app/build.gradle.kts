plugins {
    id("com.android.application")
}

android {
    namespace = "org.acre.demo"
    compileSdk = 35

    defaultConfig {
        applicationId = "org.acre.demo"
        minSdk = 26  // java.nio.file, used by the core
        targetSdk = 35
        versionCode = 1
        versionName = "0.1"
        ndk {
            abiFilters += listOf("arm64-v8a", "x86_64")  // what the ExecuTorch AAR ships
        }
    }

    buildTypes {
        release {
            isMinifyEnabled = false
        }
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }

    packaging {
        jniLibs.useLegacyPackaging = false
    }
}

dependencies {
    implementation(project(":core"))
    implementation("org.pytorch:executorch-android:${property("executorchVersion")}")
}
