// Spawning external programs for tests: one-shot commands (`run`) and long-lived daemons
// (`spawnDaemon`). Every child is started in its own process group and tracked in a global
// set, so a synchronous `process.on('exit')` hook can SIGKILL whatever is still alive even
// if a test crashed before its cleanup ran; reaper.ts covers deaths that run no hook at all.
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { unwatchGroup, watchGroup } from './reaper.ts';

const live = new Set<ChildProcess>();
let exitHookInstalled = false;

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    // Negative pid: the whole process group (children of children too, e.g. podman's conmon).
    process.kill(-child.pid, signal);
  } catch {
    try {
      child.kill(signal);
    } catch {
      // already gone
    }
  }
}

function track(child: ChildProcess): void {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on('exit', () => {
      for (const c of live) killGroup(c, 'SIGKILL');
    });
  }
  live.add(child);
  const pid = child.pid;
  if (pid !== undefined) watchGroup(pid);
  const forget = () => {
    if (!live.delete(child)) return;
    if (pid !== undefined) unwatchGroup(pid);
  };
  child.once('exit', forget);
  child.once('error', forget);
}

/** True while the child has neither exited nor failed to spawn. */
export function isRunning(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null && live.has(child);
}

/**
 * Stops a child: SIGTERM to its process group, then SIGKILL if it is still alive after
 * `graceMs`. Resolves once the child has exited (never rejects).
 */
export async function stopProcess(child: ChildProcess, graceMs = 3000): Promise<void> {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit').then(
    () => true,
    () => true,
  );
  killGroup(child, 'SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), graceMs);
  });
  const done = await Promise.race([exited, timedOut]);
  clearTimeout(timer);
  if (!done) {
    killGroup(child, 'SIGKILL');
    await exited;
  }
}

export interface RunOptions {
  /** Extra environment variables, merged over process.env (a value of undefined removes one). */
  env?: Record<string, string | undefined>;
  cwd?: string;
  /** Kill the command (SIGTERM, then SIGKILL after 2 s) and reject after this long. Default 120 s. */
  timeoutMs?: number;
  /** Written to stdin, which is then closed. Without it stdin is /dev/null. */
  input?: string | Buffer;
  /** Reject on a non-zero exit (default true). With false, inspect `code` yourself. */
  check?: boolean;
}

export interface RunResult {
  cmd: string;
  args: string[];
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  durationMs: number;
}

/** A command failed or timed out; the message carries the command line and the full stderr. */
export class RunError extends Error {
  constructor(
    message: string,
    readonly result: RunResult,
  ) {
    super(message);
    this.name = 'RunError';
  }
}

export function mergeEnv(env: Record<string, string | undefined> | undefined): NodeJS.ProcessEnv {
  const merged: NodeJS.ProcessEnv = { ...process.env };
  for (const [k, v] of Object.entries(env ?? {})) {
    if (v === undefined) delete merged[k];
    else merged[k] = v;
  }
  return merged;
}

export function quoteCommand(cmd: string, args: readonly string[]): string {
  return [cmd, ...args]
    .map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`))
    .join(' ');
}

/** Runs a command to completion, capturing stdout and stderr. */
export async function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const started = Date.now();
  const child = spawn(cmd, args, {
    cwd: opts.cwd,
    env: mergeEnv(opts.env),
    detached: true,
    stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
  });
  track(child);
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout?.on('data', (b: Buffer) => out.push(b));
  child.stderr?.on('data', (b: Buffer) => err.push(b));
  if (opts.input !== undefined) child.stdin?.end(opts.input);

  let timedOut = false;
  const timeoutMs = opts.timeoutMs ?? 120_000;
  const timer = setTimeout(() => {
    timedOut = true;
    void stopProcess(child, 2000);
  }, timeoutMs);

  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve, reject) => {
    child.once('error', reject);
    // 'close' (not 'exit') so all output has been read.
    child.once('close', (c: number | null, s: NodeJS.Signals | null) => resolve([c, s]));
  }).finally(() => clearTimeout(timer));

  const result: RunResult = {
    cmd,
    args: [...args],
    code,
    signal,
    stdout: Buffer.concat(out).toString('utf8'),
    stderr: Buffer.concat(err).toString('utf8'),
    durationMs: Date.now() - started,
  };
  const line = quoteCommand(cmd, args);
  if (timedOut) {
    throw new RunError(`timed out after ${timeoutMs} ms: ${line}\n--- stderr ---\n${result.stderr}`, result);
  }
  if (opts.check !== false && code !== 0) {
    throw new RunError(
      `exit ${code ?? signal}: ${line}\n--- stderr ---\n${result.stderr}${result.stdout ? `\n--- stdout ---\n${result.stdout}` : ''}`,
      result,
    );
  }
  return result;
}

export interface DaemonOptions {
  env?: Record<string, string | undefined>;
  cwd?: string;
  /** Called with every complete line the daemon writes (stdout and stderr). */
  onLine?: (line: string, stream: 'stdout' | 'stderr') => void;
  /** How many trailing output lines to keep for error messages (default 200). */
  keepLines?: number;
}

/** A long-running child process (a registry, containerd...). */
export interface Daemon {
  readonly child: ChildProcess;
  readonly pid: number;
  /** Resolves with the exit code (or signal name) when the process ends. */
  readonly exited: Promise<number | string>;
  /** Last output lines, for diagnostics. */
  output(): string;
  running(): boolean;
  /** SIGTERM, then SIGKILL after `graceMs`. Idempotent. */
  stop(graceMs?: number): Promise<void>;
}

function splitLines(stream: NodeJS.ReadableStream | null, onLine: (line: string) => void): void {
  if (!stream) return;
  let partial = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    const parts = (partial + chunk).split('\n');
    partial = parts.pop() ?? '';
    for (const p of parts) onLine(p);
  });
  stream.on('end', () => {
    if (partial) onLine(partial);
    partial = '';
  });
}

/** Starts a long-lived process; output is split into lines and offered to `onLine`. */
export function spawnDaemon(cmd: string, args: readonly string[], opts: DaemonOptions = {}): Daemon {
  const child = spawn(cmd, args, {
    cwd: opts.cwd,
    env: mergeEnv(opts.env),
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  track(child);
  const keep = opts.keepLines ?? 200;
  const tail: string[] = [];
  const onLine = (stream: 'stdout' | 'stderr') => (line: string) => {
    tail.push(line);
    if (tail.length > keep) tail.shift();
    opts.onLine?.(line, stream);
  };
  splitLines(child.stdout, onLine('stdout'));
  splitLines(child.stderr, onLine('stderr'));
  const exited = new Promise<number | string>((resolve) => {
    child.once('error', (e) => resolve(`spawn error: ${e.message}`));
    child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown'));
  });
  return {
    child,
    get pid() {
      return child.pid ?? -1;
    },
    exited,
    output: () => tail.join('\n'),
    running: () => isRunning(child),
    stop: (graceMs?: number) => stopProcess(child, graceMs),
  };
}
