// Last line of defence against leaks when the test process dies without running any hook
// (SIGKILL, SIGINT/SIGTERM default action, a crash in native code): a tiny `sh` watchdog in
// its own process group that we tell, over its stdin, which process groups and dirs are
// live. When the test process dies its stdin reaches EOF, and it SIGKILLs those groups and
// removes those dirs. Normal cleanup unregisters everything first, so it then does nothing.
import { type ChildProcess, spawn } from 'node:child_process';
import type { Socket } from 'node:net';

const SCRIPT = `
NL='
'
live="$NL"
while IFS= read -r l; do
  v=\${l#??}
  case "$l" in
    +*) live="$live$v$NL" ;;
    -*) case "$live" in *"$NL$v$NL"*) live="\${live%%"$NL$v$NL"*}$NL\${live#*"$NL$v$NL"}" ;; esac ;;
  esac
done
IFS="$NL"; set -f
# dash: "kill -9 -PGID" (it rejects "--" and "-s KILL -PGID")
for e in $live; do case "$e" in p*) kill -9 "-\${e#p}" 2>/dev/null ;; esac; done
sleep 0.2
for e in $live; do case "$e" in d*) rm -rf -- "\${e#d}" ;; esac; done
`;

let reaper: ChildProcess | null | undefined;

function send(line: string): void {
  if (reaper === undefined) {
    try {
      reaper = spawn('sh', ['-c', SCRIPT], { detached: true, stdio: ['pipe', 'ignore', 'ignore'] });
      reaper.on('error', () => {
        reaper = null;
      });
      reaper.stdin?.on('error', () => undefined);
      // Neither the watchdog nor its pipe may keep the test process alive.
      reaper.unref();
      (reaper.stdin as Socket | null)?.unref();
    } catch {
      reaper = null;
    }
  }
  reaper?.stdin?.write(`${line}\n`);
}

/** Kill this process group (leader pid) if the test process dies. */
export const watchGroup = (pid: number): void => send(`+ p${pid}`);
export const unwatchGroup = (pid: number): void => send(`- p${pid}`);
/** Remove this directory if the test process dies. */
export const watchDir = (dir: string): void => send(`+ d${dir}`);
export const unwatchDir = (dir: string): void => send(`- d${dir}`);
