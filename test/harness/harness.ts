// createHarness(t): a per-test owner of temp dirs, processes and servers, all torn down in
// t.after() whether the test passed or not. A process 'exit' hook removes dirs left over
// (processes have their own hook in process.ts), and reaper.ts covers a killed test process.
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestCA, type TestCA } from './ca.ts';
import { type PullOptions, type PullResult, pullImage, type RegistryEndpoint } from './clients.ts';
import {
  type Front,
  type FrontOptions,
  type HttpsServer,
  type HttpsServerOptions,
  type RequestHandler,
  startFront,
  startHttpsServer,
} from './front.ts';
import {
  createImage,
  createIndex,
  type ImageInfo,
  type ImageOptions,
  type IndexInfo,
  type IndexOptions,
  type Platform,
} from './image.ts';
import {
  type Daemon,
  type DaemonOptions,
  type RunOptions,
  type RunResult,
  run,
  spawnDaemon,
} from './process.ts';
import { unwatchDir, watchDir } from './reaper.ts';
import { type Registry, type RegistryOptions, startRegistry } from './registry.ts';

/** What createHarness needs from node:test's TestContext (or a suite hook). */
export interface CleanupHost {
  after(fn: () => Promise<void> | void): void;
}

export interface Harness {
  /** This harness's own temp dir (removed at cleanup unless DRP_TEST_KEEP=1). */
  readonly dir: string;
  /** A fresh, empty dir inside `dir`; `name` is a readable prefix. */
  tempDir(name?: string): string;
  /** The harness's CA (created once, shared by every server it starts). */
  testCA(): Promise<TestCA>;
  startRegistry(opts?: RegistryOptions): Promise<Registry>;
  startFront(opts: FrontOptions): Promise<Front>;
  /** A fully fake HTTPS host; `opts` is { names } or just the names array. */
  startHttpsServer(handler: RequestHandler, opts?: HttpsServerOptions | string[]): Promise<HttpsServer>;
  /** createImage into a new temp layout. */
  createImage(opts: ImageOptions): Promise<ImageInfo>;
  /** createIndex into a new temp layout. */
  createIndex(platforms: Platform[], layerSizes: number[], opts?: IndexOptions): Promise<IndexInfo>;
  /** pullImage into a new temp dir unless `into` is given. */
  pullImage(source: RegistryEndpoint, repoRef: string, opts?: Partial<PullOptions>): Promise<PullResult>;
  /** run(), re-exported for convenience (tracked by the process exit hook). */
  run(cmd: string, args: string[], opts?: RunOptions): Promise<RunResult>;
  /** A long-lived process stopped at cleanup (SIGTERM, then SIGKILL). */
  spawn(cmd: string, args: string[], opts?: DaemonOptions): Daemon;
  /** Registers extra cleanup; runs in reverse order, before processes are killed and dirs removed. */
  defer(fn: () => unknown): void;
  /** Runs the cleanup now (idempotent). Called automatically via t.after(). */
  close(): Promise<void>;
}

const liveDirs = new Set<string>();
let exitHook = false;
function trackDir(dir: string): void {
  if (!exitHook) {
    exitHook = true;
    process.on('exit', () => {
      for (const d of liveDirs) rmSync(d, { recursive: true, force: true });
    });
  }
  liveDirs.add(dir);
  watchDir(dir);
}

/**
 * Creates a harness bound to a node:test context: `createHarness(t)` inside a test, or
 * `createHarness()` in a before() hook and `await h.close()` in after().
 */
export function createHarness(t?: CleanupHost): Harness {
  const keep = process.env.DRP_TEST_KEEP === '1';
  const dir = mkdtempSync(join(process.env.DRP_TEST_TMPDIR ?? tmpdir(), 'drp-test-'));
  if (!keep) trackDir(dir);
  const deferred: (() => unknown)[] = [];
  const daemons: Daemon[] = [];
  let ca: Promise<TestCA> | undefined;
  let closing: Promise<void> | undefined;
  let seq = 0;

  const tempDir = (name = 'tmp') => {
    seq += 1;
    const d = join(dir, `${name.replace(/[^\w.-]/g, '_')}-${seq}`);
    mkdirSync(d, { recursive: true });
    return d;
  };
  const testCA = () => {
    ca ??= createTestCA(join(dir, 'ca'));
    return ca;
  };
  const defer = (fn: () => unknown) => {
    deferred.push(fn);
  };

  async function cleanup(): Promise<void> {
    const errors: unknown[] = [];
    for (const fn of deferred.reverse()) {
      try {
        await fn();
      } catch (e) {
        errors.push(e);
      }
    }
    await Promise.all(daemons.map((d) => d.stop()));
    if (keep) {
      process.stderr.write(`DRP_TEST_KEEP: leaving ${dir}\n`);
    } else {
      try {
        await rm(dir, { recursive: true, force: true, maxRetries: 3 });
        if (liveDirs.delete(dir)) unwatchDir(dir);
      } catch (e) {
        errors.push(e);
      }
    }
    if (errors.length > 0) throw new AggregateError(errors, `harness cleanup failed for ${dir}`);
  }

  const h: Harness = {
    dir,
    tempDir,
    testCA,
    async startRegistry(opts) {
      const registry = await startRegistry(tempDir('registry'), await testCA(), opts);
      daemons.push(registry.daemon);
      return registry;
    },
    async startFront(opts) {
      const front = await startFront(await testCA(), opts);
      defer(() => front.close());
      return front;
    },
    async startHttpsServer(handler, opts) {
      const server = await startHttpsServer(await testCA(), handler, opts);
      defer(() => server.close());
      return server;
    },
    createImage: (opts) => createImage(tempDir('image'), opts),
    createIndex: (platforms, layerSizes, opts) => createIndex(tempDir('index'), platforms, layerSizes, opts),
    pullImage: (source, repoRef, opts = {}) =>
      pullImage(source, repoRef, { ...opts, into: opts.into ?? tempDir('pull') }),
    run: (cmd, args, opts) => run(cmd, args, opts),
    spawn(cmd, args, opts) {
      const d = spawnDaemon(cmd, args, opts);
      daemons.push(d);
      return d;
    },
    defer,
    close() {
      closing ??= cleanup();
      return closing;
    },
  };
  t?.after(() => h.close());
  return h;
}
