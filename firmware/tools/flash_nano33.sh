#!/usr/bin/env bash
# Build and flash the hilnas agent firmware onto an Arduino Nano 33 BLE (Sense) with arduino-cli.
#
#   firmware/tools/flash_nano33.sh /dev/ttyACM0        # build + upload
#   firmware/tools/flash_nano33.sh --build-only        # build only (no board needed)
#
# Needs arduino-cli (https://arduino.github.io/arduino-cli/) and the internet on first use.
# Versions are pinned so that a build is reproducible; change them together and re-run the
# hardware test (pytest --run-hardware --serial-port /dev/ttyACM0 tests/device_agent).
set -euo pipefail

CORE="arduino:mbed_nano@4.1.5"          # Arduino Mbed OS Nano Boards (nRF52840)
FQBN="arduino:mbed_nano:nano33ble"
# Arduino_TensorFlowLite, built from tensorflow/tflite-micro-arduino-examples at this commit
# (a 2023 sync of TFLM with MicroMutableOpResolver::AddUnidirectionalSequenceLSTM).
TFLM_REPO="https://github.com/tensorflow/tflite-micro-arduino-examples"
TFLM_COMMIT="07d1cca59a20508b9ab1e69e0cc76a3ace815eaa"

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"   # firmware/
BUILD="${HERE}/build/arduino"
SKETCH="${BUILD}/hilnas_agent"
LIBS="${BUILD}/libraries"

PORT="${1:-}"
command -v arduino-cli >/dev/null || { echo "arduino-cli not found: see the URL above" >&2; exit 1; }

arduino-cli core update-index
arduino-cli core install "${CORE}"

# The library is not in the Library Manager at this commit: fetch it at the pinned commit.
if [ ! -d "${LIBS}/Arduino_TensorFlowLite/.git" ]; then
  mkdir -p "${LIBS}"
  git clone --quiet "${TFLM_REPO}" "${LIBS}/Arduino_TensorFlowLite"
fi
git -C "${LIBS}/Arduino_TensorFlowLite" fetch --quiet origin "${TFLM_COMMIT}" || true
git -C "${LIBS}/Arduino_TensorFlowLite" checkout --quiet "${TFLM_COMMIT}"

# Stage the sketch: the thin .ino and its hardware files, plus the portable core under src/
# (Arduino compiles only the sketch folder and its src/ subfolder).
rm -rf "${SKETCH}"
mkdir -p "${SKETCH}/src/core"
cp "${HERE}"/arduino/hilnas_agent/* "${SKETCH}/"
cp "${HERE}"/core/*.h "${HERE}"/core/*.cpp "${SKETCH}/src/core/"

arduino-cli compile --fqbn "${FQBN}" --libraries "${LIBS}" \
  --build-property "compiler.cpp.extra_flags=-DNDEBUG" \
  --output-dir "${BUILD}/out" "${SKETCH}"

if [ "${PORT}" = "--build-only" ] || [ -z "${PORT}" ]; then
  echo "built ${BUILD}/out (pass a port, e.g. /dev/ttyACM0, to upload)"
  exit 0
fi
arduino-cli upload --fqbn "${FQBN}" --port "${PORT}" --input-dir "${BUILD}/out" "${SKETCH}"
echo "flashed ${PORT}; check it with: hilnas-agent serve --backend serial --serial-port ${PORT}"
