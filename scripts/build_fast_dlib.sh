#!/usr/bin/env bash
# Build dlib from source against OpenBLAS (and CUDA when CMake finds a CUDA toolkit) and
# install it into the active Python environment in place of the dlib-bin wheel.
#
#   PYTHON=.venv/bin/python scripts/build_fast_dlib.sh
#
# Takes 7-10 minutes on 2 cores. Needs cmake, a C++ compiler and the BLAS/LAPACK
# headers (as root on Debian it installs libopenblas-dev and liblapack-dev). `frs doctor`
# then shows "BLAS yes". Reinstalling frs with pip brings dlib-bin back over it: run
# this script again afterwards. Measured effect: docs/performance.md.
set -euo pipefail
PY=${PYTHON:-python3}
VERSION=${DLIB_VERSION:-20.0.1}
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq cmake libopenblas-dev liblapack-dev >/dev/null
fi
"$PY" -m pip install -q wheel
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$PY" -m pip download -q --no-deps --no-binary dlib --no-build-isolation "dlib==$VERSION" -d "$work"
tar xzf "$work"/dlib-"$VERSION".tar.gz -C "$work"
# -march=native: without it the source build's HOG ran 1.8x slower than the wheel's
# (164 vs 91 ms on a 1280x720 frame); with it, 98 ms. The wheel is then for this CPU only.
# -mno-avx512f: on an AVX-512 CPU (AMD EPYC, Zen 4) GCC's 512-bit code made HOG 10% slower
# than the wheel's 256-bit AVX (44 vs 40 ms, three filters on 1280x720 luma); without it,
# 40.5 ms. Encoding (OpenBLAS picks its own kernels at run time) is unaffected.
(cd "$work/dlib-$VERSION" && CXXFLAGS="${CXXFLAGS:--O3 -march=native -mno-avx512f}" "$PY" setup.py -q bdist_wheel)
"$PY" -m pip uninstall -q -y dlib-bin || true
"$PY" -m pip install -q --force-reinstall --no-deps "$work/dlib-$VERSION"/dist/dlib-*.whl
"$PY" -c "import dlib; print('dlib', dlib.__version__, 'BLAS', dlib.DLIB_USE_BLAS, 'CUDA', dlib.DLIB_USE_CUDA, 'AVX', dlib.USE_AVX_INSTRUCTIONS)"
