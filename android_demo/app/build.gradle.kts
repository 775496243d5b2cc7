// The app: org.acre's Java API (native/jni/java) and its JNI library libacre_jni, built from the core's
// own CMake (native/CMakeLists.txt, ACRE_BUILD_JNI) through the NDK. Never compiled (no Android SDK on
// the machine this was written on); see android_demo/README.md for what the native build needs.
plugins {
    id("com.android.application")
}

// Where the NDK builds of the core's native dependencies live (one prefix per ABI, see the README):
//   acre.androidPrefix=/path/to/prefix   holds <abi>/{include,lib}: ExecuTorch (its CMake package under
//                                        lib/cmake), PCRE2, OpenSSL's libcrypto, nlohmann_json
val androidPrefix = providers.gradleProperty("acre.androidPrefix").orNull

android {
    namespace = "org.acre.demo"
    compileSdk = 35
    ndkVersion = "27.2.12479018"

    defaultConfig {
        applicationId = "org.acre.demo"
        minSdk = 26  // java.nio.file
        targetSdk = 35
        versionCode = 1
        versionName = "0.1"
        ndk {
            abiFilters += listOf("arm64-v8a", "x86_64")
        }
        externalNativeBuild {
            cmake {
                targets += "acre_jni"
                arguments += listOf(
                    "-DACRE_BUILD_JNI=ON",
                    "-DACRE_BUILD_TESTS=OFF",
                    "-DACRE_BUILD_PYTHON=OFF",
                    "-DANDROID_STL=c++_shared",
                )
                if (androidPrefix != null) {
                    // native/CMakeLists.txt looks in <prefix>/<the ABI it is configured for>
                    arguments += "-DACRE_ANDROID_PREFIX=$androidPrefix"
                }
            }
        }
    }

    externalNativeBuild {
        cmake {
            path = file("../../native/CMakeLists.txt")
            version = "3.31.6"  // ExecuTorch's CMake package needs 3.28 or newer
        }
    }

    sourceSets {
        getByName("main") {
            java.srcDir("../../native/jni/java")  // org.acre: Bundle, Session, Answer, the exceptions
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
        jniLibs.useLegacyPackaging = false  // model.pte is mmapped by the core; the .so files stay aligned
    }
}
