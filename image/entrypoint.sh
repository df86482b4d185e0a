#!/bin/sh
# The image's entrypoint. Started as root (the default), it does the one thing root is needed
# for: volumes brought over from rpardini/docker-registry-proxy, or created by dockerd for a
# `-v /host/path:/docker_mirror_cache` line, are owned by root, so their ownership is handed to
# the unprivileged user (uid/gid 1000, `node`). Then it replaces itself with drp-server running
# as that user (setpriv: no groups, no capabilities, no new privileges). `exec` keeps one
# process: drp-server is PID 1 and receives docker's stop signal (SIGTERM) itself.
# Started as any other user (`docker run --user 1000:1000`), it just runs drp-server.
set -eu

RUN_AS=1000
SERVER="$(dirname "$0")/../packages/server/bin/drp-server.js"

if [ "$(id -u)" != "0" ]; then
  exec node "$SERVER" "$@"
fi

for dir in "${CACHE_DIR:-/docker_mirror_cache}" "${CA_DIR:-/ca}"; do
  mkdir -p "$dir"
  # Only entries not owned yet: a restart walks the tree but changes nothing. A read-only
  # volume cannot be changed; drp-server then says exactly which file it cannot use.
  if ! find "$dir" \( ! -user "$RUN_AS" -o ! -group "$RUN_AS" \) -exec chown -h "$RUN_AS:$RUN_AS" {} + 2>/dev/null; then
    echo "drp entrypoint: could not give $dir to uid $RUN_AS (read-only volume?); starting anyway" >&2
  fi
done

exec setpriv --reuid="$RUN_AS" --regid="$RUN_AS" --clear-groups --inh-caps=-all --no-new-privs \
  node "$SERVER" "$@"
