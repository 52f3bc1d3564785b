#!/usr/bin/env bash
# Debian packages objrec's demo and tests use: the Fashion-MNIST IDX files
# (/usr/share/datasets/fashion-mnist) and Chromium for the browser tests of the
# HTML report and the web page. Installs only what is missing; skips quietly off Debian.
set -euo pipefail
want=(dataset-fashion-mnist chromium)
command -v apt-get >/dev/null || { echo "system-deps: no apt-get, skipping ${want[*]}"; exit 0; }
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "system-deps: installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
