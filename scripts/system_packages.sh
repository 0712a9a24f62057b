#!/usr/bin/env bash
# Debian packages outside pip: Chromium for the browser tests (tests/e2e/) and `make bench-ui`, and the
# Pango libraries WeasyPrint needs for the PDF report. Installs what is missing (apt-get update once,
# as root); skipped entirely when everything is present.
#   scripts/system_packages.sh          both (make test, make bench-ui): exit 1 when something is missing
#   scripts/system_packages.sh --pdf    only the PDF libraries, and only a warning (make run)
set -u
CHROMIUM="${WATCHPOST_CHROMIUM:-/usr/bin/chromium}"
PDF_LIBS=(libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-dejavu-core)
only_pdf=false; [ "${1:-}" = "--pdf" ] && only_pdf=true

have_pdf_libs() { ldconfig -p 2>/dev/null | grep -q 'libpango-1.0.so.0' && ldconfig -p | grep -q 'libpangoft2-1.0.so.0'; }
missing=()
have_pdf_libs || missing+=("${PDF_LIBS[@]}")
$only_pdf || [ -x "$CHROMIUM" ] || missing+=(chromium)
[ ${#missing[@]} -eq 0 ] && exit 0

if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = "0" ]; then
  echo "Installing Debian packages: ${missing[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if ! have_pdf_libs; then
  echo "WARNING: Pango is missing, so PDF reports will fail (apt-get install -y ${PDF_LIBS[*]})." >&2
  $only_pdf || exit 1
fi
if ! $only_pdf && [ ! -x "$CHROMIUM" ]; then
  echo "ERROR: $CHROMIUM is missing (apt-get install -y chromium, as root)." >&2
  exit 1
fi
exit 0
