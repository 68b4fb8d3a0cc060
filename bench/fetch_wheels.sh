#!/usr/bin/env bash
# Wheels for the lent GPU machine (Python 3.12, x86_64, nothing can be fetched there), into
# the git-ignored folder .whl/ at the repository root:  bash bench/fetch_wheels.sh
#
# The image there has torch, torchvision, OpenCV, numpy, pandas, pyarrow, scikit-image,
# click and tqdm, but not PyAV (av) nor PySceneDetect (scenedetect); scenedetect also needs
# platformdirs, which the image lacks (its other requirements, click, numpy, opencv-python,
# tqdm, are there: opencv-python-headless provides cv2). Same versions as the development
# machine. The device call names .whl in `carry`; bench/gpu_check.sh installs them with
# --no-deps into /tmp/site. Nothing here touches the image's torch.
set -euo pipefail
cd "$(dirname "$0")/.."
WHEELS=(av==18.1.0 scenedetect==0.7.2 platformdirs==4.14.9)
mkdir -p .whl
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux1_x86_64 -d .whl "${WHEELS[@]}"
# one version of each package: two stop the install on the device
for name in av scenedetect platformdirs; do
    n=$(ls .whl/ | grep -c "^${name}-" || true)
    if [ "$n" != 1 ]; then echo "expected one ${name} wheel in .whl/, found $n" >&2; exit 1; fi
done
# requirements of each wheel (the image must have each one that is not in .whl/)
for w in .whl/*.whl; do
    echo "$(basename "$w"): $(unzip -p "$w" '*/METADATA' | grep '^Requires-Dist' \
        | grep -v 'extra ==' | sed 's/Requires-Dist: //' | tr '\n' ' ')"
done
du -ch .whl/*.whl | tail -1
