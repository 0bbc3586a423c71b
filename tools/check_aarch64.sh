#!/usr/bin/env bash
# The aarch64 check: a Debian 13 arm64 root, run under qemu-user emulation on this x86_64 machine, installs the
# runtime as a user would (pip install -c constraints.txt -e ".[openvino]"), runs the runtime tests, and parses the
# shared photos (every shipped model, FP32 and INT8, ONNX Runtime and OpenVINO) and the shared video; the same
# commands run natively, and tools/aarch64_report.py compares the two sides' faces and label maps.
#
#   make check-aarch64      (as root: debootstrap, chroot and mounts; about an hour, most of it emulated tests)
#
# Writes benchmarks/results/aarch64/check.{md,json}. The arm64 root (ROOT) is kept for the next run.
# Emulation traps handled here: binfmt_misc may need mounting; qemu-user shows the host's /proc/cpuinfo,
# whose x86 flags crash ONNX Runtime's import, so the root sees an ARM one (tools/aarch64_cpuinfo.txt); and
# without /sys, OpenVINO's CPU plugin (hwloc's topology discovery) dies of a segmentation fault when it
# compiles, so sysfs is mounted as on any real system. The emulated CPU is a Cortex-A76 (Raspberry Pi 5; no SVE),
# as the cpuinfo says: under qemu's default `max` CPU, with SVE (which a Pi 5 or a Jetson Orin lacks, and a
# Graviton 3 has), OpenVINO's RetinaFace finds other faces than ONNX Runtime's (13 against 5 on the video's frame
# 240; with SVE off they agree). Whether qemu or OpenVINO is wrong there, only SVE hardware can tell.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
SHARED=$(cd "${SHARED:-$REPO/../shared}" && pwd)
ROOT=${ROOT:-/var/tmp/faceparse-arm64}
WORK=${WORK:-/var/tmp/faceparse-aarch64-check}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
QEMU_CPU=${QEMU_CPU:-cortex-a76}
X86_BIN=${X86_BIN:-$REPO/.venv/bin}
RUNTIME_TESTS=${RUNTIME_TESTS:-tests/test_api.py tests/test_detectors.py tests/test_runtime.py tests/test_alignment.py}

if [ "$(id -u)" != 0 ]; then echo "error: the aarch64 check needs root (debootstrap, chroot, mounts)" >&2; exit 1; fi
if [ ! -x "$X86_BIN/faceparse-edge" ]; then echo "error: no x86_64 install at $X86_BIN: run make setup first" >&2; exit 1; fi
for tool in debootstrap:debootstrap qemu-aarch64-static:qemu-user-static update-binfmts:binfmt-support; do
  command -v "${tool%%:*}" >/dev/null || apt-get install -y -q "${tool##*:}"
done
[ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || update-binfmts --enable qemu-aarch64

if [ ! -e "$ROOT/.complete" ]; then
  rm -rf "$ROOT"
  debootstrap --arch=arm64 --variant=minbase --include=python3,python3-venv,ca-certificates trixie "$ROOT" "$MIRROR"
  touch "$ROOT/.complete"
fi
# pip reaches PyPI from inside, trusting what this machine trusts (a proxy's own CA, where there is one)
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
cp /etc/ssl/certs/ca-certificates.crt "$ROOT/etc/ssl/certs/host-ca-certificates.crt"

unmount() { for m in work/shared proc/cpuinfo proc sys dev; do umount -l "$ROOT/$m" 2>/dev/null || true; done; }
unmount
trap unmount EXIT
mkdir -p "$ROOT/work/shared"
mount -t proc proc "$ROOT/proc"
mount --bind "$REPO/tools/aarch64_cpuinfo.txt" "$ROOT/proc/cpuinfo"
mount -t sysfs sysfs "$ROOT/sys"
mount --bind /dev "$ROOT/dev"
mount --bind "$SHARED" "$ROOT/work/shared"
mount -o remount,bind,ro "$ROOT/work/shared"

# The working tree as git sees it (tracked and untracked files, nothing ignored), copied afresh.
rm -rf "$ROOT/work/main" "$ROOT/work/out" && mkdir -p "$ROOT/work/main" "$ROOT/work/out"
git -C "$REPO" ls-files -z --cached --others --exclude-standard | tar -C "$REPO" --null -T - -c | tar -C "$ROOT/work/main" -x

rm -rf "$WORK" && mkdir -p "$WORK"
echo "== x86_64: the commands natively"
(cd "$REPO" && tools/aarch64_runs.sh "$WORK/x86_64" "$X86_BIN/faceparse-edge" "$SHARED/media")

echo "== arm64: install, runtime tests, the commands (emulated)"
start=$(date +%s)
chroot "$ROOT" /usr/bin/env -i HOME=/root PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 RUNTIME_TESTS="$RUNTIME_TESTS" \
  QEMU_CPU="$QEMU_CPU" \
  PIP_CERT=/etc/ssl/certs/host-ca-certificates.crt SSL_CERT_FILE=/etc/ssl/certs/host-ca-certificates.crt \
  ${HTTPS_PROXY:+HTTPS_PROXY=$HTTPS_PROXY} ${HTTP_PROXY:+HTTP_PROXY=$HTTP_PROXY} \
  /bin/bash -euo pipefail -c '
    cd /work/main
    echo "$(uname -m), qemu-user CPU $QEMU_CPU" > /work/out/uname.txt
    python3 --version > /work/out/python.txt
    python3 -m venv /work/venv
    /work/venv/bin/pip install -q -c constraints.txt --upgrade pip
    /work/venv/bin/pip install -q -c constraints.txt -e ".[openvino]" pytest onnx
    /work/venv/bin/pip freeze --all > /work/out/freeze.txt
    status=0
    /work/venv/bin/python -m pytest -q -p no:cacheprovider $RUNTIME_TESTS > /work/out/tests.txt 2>&1 || status=$?
    echo "$status" > /work/out/tests_status.txt
    tools/aarch64_runs.sh /work/out/arm64 /work/venv/bin/faceparse-edge /work/shared/media'
echo $(( $(date +%s) - start )) > "$ROOT/work/out/emulated_seconds.txt"
cp -r "$ROOT/work/out" "$WORK/arm64-run"

"$X86_BIN/python" "$REPO/tools/aarch64_report.py" "$WORK/x86_64" "$WORK/arm64-run" "$REPO/benchmarks/results/aarch64"
