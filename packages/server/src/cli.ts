/**
 * `drp-server`: the daemon as users start it (`npx drp-server`, the container image).
 *
 *   drp-server [flags]             serve (flags > environment > defaults)
 *   drp-server ca print            print the CA certificate (PEM), creating the CA if needed
 *   drp-server ca fingerprint      print its SHA-256 fingerprint
 *   drp-server ca rotate           replace the CA (the old pair is kept as *.bak)
 *   drp-server cache ...           inspect and manage the cache directory (commands/cache.ts)
 *   drp-server prefetch ...        warm the cache through a running proxy (commands/prefetch.ts)
 *
 * Exit status: 0 after a clean stop, 2 for bad configuration, 1 for anything else.
 */
import cluster from 'node:cluster';
import { isCaError, loadOrCreateCA, rotateCA } from '@drp/ca';
import createDebug from 'debug';
import { type AccessLog, createAccessLog, streamSink } from './access-log.js';
import { workerGraceMs } from './cluster/messages.js';
import { joinCluster, type WorkerSide } from './cluster/worker.js';
import { runTool } from './commands/tools.js';
import {
  ConfigError,
  FLAGS,
  isIntercepted,
  loadConfig,
  parseFlags,
  type ServerConfig,
  VARIABLES,
} from './config.js';
import { isServerError, SERVER_ERROR_CODES } from './errors.js';
import { onShutdownSignals } from './lifecycle.js';
import { registryTarget } from './mirror.js';
import { createProxy, type DrpProxy } from './proxy.js';
import { formatRule } from './registries.js';
import { VERSION } from './version.js';

export function usage(): string {
  const flags = Object.entries(FLAGS).map(([name, f]) => {
    const left = `${f.short ? `-${f.short}, ` : '    '}--${name} <value>`;
    return `  ${left.padEnd(34)} ${f.help} (${f.variable})`;
  });
  const variables = Object.entries(VARIABLES).flatMap(([name, row]) => {
    const value = row.default;
    const shown = value === undefined ? '(unset)' : value === '' ? '(empty)' : `'${value}'`;
    return [`  ${name.padEnd(32)} ${shown}`, `      ${row.doc}`];
  });
  return [
    `drp-server ${VERSION}: a caching proxy for container registries`,
    '',
    'Usage:',
    '  drp-server [flags]           start the proxy',
    '  drp-server ca print          print the CA certificate (PEM)',
    '  drp-server ca fingerprint    print the CA certificate SHA-256 fingerprint',
    '  drp-server ca rotate         replace the CA; clients must trust the new one',
    '  drp-server cache stats|ls|verify|rm|prune [--cache-dir DIR]',
    '                               inspect and manage the cache (drp-server cache --help)',
    '  drp-server prefetch --proxy URL IMAGE...',
    '                               pull images through a running proxy (drp-server prefetch --help)',
    '',
    'Flags (they win over the environment):',
    ...flags,
    '  -h, --help                         this text',
    '  -v, --version                      print the version',
    '',
    'Environment variables and their defaults (docs/configuration.md explains each):',
    ...variables,
    '',
    'CACHE_DIR and CA_DIR default to /docker_mirror_cache and /ca when /docker_mirror_cache',
    'exists (the container image), and to ./.drp/cache and ./.drp/ca otherwise.',
    'Admission and egress (docs/security.md): ALLOWED_CLIENTS `all` admits anyone; with',
    'PROXY_AUTH(_FILE) clients use HTTPS_PROXY=http://user:password@drp:3128. TUNNEL_PORTS also',
    "allows every port REGISTRIES names (`*`: any); BLOCKED_DESTINATIONS also holds the proxy's",
    'own addresses unless set (empty: none); REGISTRIES and UPSTREAM_MAPPINGS hosts are exempt.',
    '',
    'Mirror mode: /v2/... requests sent to drp itself (containerd hosts.toml, podman',
    'registries.conf mirrors, dockerd registry-mirrors) are served from the cache too, for the',
    'registry in ?ns=, a registry-host path prefix, or MIRROR_DEFAULT_REGISTRY (docs/clients/mirror.md).',
    '',
    "drp's own upstream connections use UPSTREAM_PROXY only: HTTPS_PROXY and HTTP_PROXY in drp's",
    'environment are ignored on purpose (they often point at drp itself).',
    'REGISTRIES entries are separated by spaces or commas: host, host:port, host:* or',
    '*.domain (every host under domain).',
    'PROXY_SEND_TIMEOUT differs from the original: drp waits that long for upstream response',
    'headers (the original waited up to PROXY_READ_TIMEOUT, 900s in practice); set 900s for that.',
    '',
  ].join('\n');
}

function fail(message: string, code: number): void {
  process.stderr.write(`drp-server: ${message}\n`);
  process.exitCode = code;
}

function printStartup(log: AccessLog, config: ServerConfig, info: Record<string, unknown>): void {
  log.event('startup', `drp-server ${VERSION} listening on ${String(info.listen)}`, info);
  const url = String(info.url);
  log.event(
    'hint',
    `point clients at the proxy: HTTPS_PROXY=${url} HTTP_PROXY=${url} (from other machines use this host's address), trust ${url}/ca.crt; dockerd on systemd: curl -fsSL ${url}/setup/systemd | sudo sh; or, with no CA, use ${url} as a registry mirror (docs/clients/mirror.md)`,
  );
  // Parsed by core: `display` never carries the password.
  const upstreamProxy = info.upstream_proxy;
  const envProxy = ['HTTPS_PROXY', 'https_proxy', 'HTTP_PROXY', 'http_proxy'].filter((n) => process.env[n]);
  if (upstreamProxy || envProxy.length > 0) {
    const route = upstreamProxy
      ? `through UPSTREAM_PROXY ${String(upstreamProxy)}`
      : 'direct (no UPSTREAM_PROXY)';
    log.event(
      'notice',
      `upstream connections go ${route}; HTTPS_PROXY/HTTP_PROXY in drp's environment are ignored on purpose (they often point at drp itself)${envProxy.length > 0 ? `: ${envProxy.join(', ')} set and not used` : ''}`,
    );
  }
  const mirrorDefault = registryTarget(config.mirrorDefaultRegistry);
  if (!mirrorDefault || !isIntercepted(config.registries, mirrorDefault.host, mirrorDefault.port)) {
    log.event(
      'notice',
      `MIRROR_DEFAULT_REGISTRY ${config.mirrorDefaultRegistry} is not in REGISTRIES: mirror requests without ?ns= or a registry prefix get 404`,
    );
  }
  if (config.compat.caSerialFile) {
    log.event('notice', 'CA_SRL_FILE is accepted but unused: drp issues random serial numbers');
  }
  if (!config.compat.proxyRequestBuffering) {
    log.event('notice', 'PROXY_REQUEST_BUFFERING=false is what drp always does: request bodies are streamed');
  }
}

async function runCa(subcommand: string, config: ServerConfig): Promise<void> {
  const source = config.caFiles
    ? { certFile: config.caFiles.certFile, keyFile: config.caFiles.keyFile }
    : { dir: config.caDir };
  const passphrase = config.caPassphrase !== undefined ? { passphrase: config.caPassphrase } : {};
  const ca =
    subcommand === 'rotate'
      ? await rotateCA({ ...source, ...passphrase })
      : await loadOrCreateCA({ ...source, ...passphrase });
  try {
    if (subcommand === 'print')
      process.stdout.write(ca.certPem.endsWith('\n') ? ca.certPem : `${ca.certPem}\n`);
    else if (subcommand === 'fingerprint') process.stdout.write(`${ca.fingerprint256}\n`);
    else {
      process.stdout.write(
        `drp-server: new CA ${ca.subject}, SHA-256 ${ca.fingerprint256}, valid until ${ca.notAfter.toISOString()}\n` +
          `drp-server: written to ${ca.files?.certFile ?? source.dir}; restart drp-server and give clients the new ca.crt\n`,
      );
    }
  } finally {
    ca.close();
  }
}

export interface MainHooks {
  /** Called when drp-server installs its own SIGTERM/SIGINT handlers (the bin's early ones go). */
  replaceEarlySignalHandlers?: () => void;
}

export async function main(argv: string[], hooks: MainHooks = {}): Promise<void> {
  if (argv[0] === 'cache' || argv[0] === 'prefetch') {
    // One-shot tools: default signal behaviour, their own flags.
    hooks.replaceEarlySignalHandlers?.();
    process.exitCode = await runTool(argv[0], argv.slice(1));
    return;
  }
  let config: ServerConfig;
  let command: ReturnType<typeof parseFlags>;
  try {
    command = parseFlags(argv);
    if (command.command === 'help') {
      process.stdout.write(usage());
      return;
    }
    if (command.command === 'version') {
      process.stdout.write(`${VERSION}\n`);
      return;
    }
    config = loadConfig({ overrides: command.overrides });
  } catch (error) {
    if (error instanceof ConfigError) return fail(error.message, 2);
    throw error;
  }

  // DEBUG=true is the original's switch; debug's own namespace syntax (DEBUG=drp:*) works too.
  createDebug.enable(config.debugNamespaces ?? '');

  if (command.command === 'ca') {
    // Default signal behaviour for one-shot commands: an interrupted rotation is not a success.
    hooks.replaceEarlySignalHandlers?.();
    try {
      await runCa(command.subcommand ?? 'print', config);
    } catch (error) {
      if (isCaError(error)) return fail(`CA: ${error.message}`, 1);
      throw error;
    }
    return;
  }

  if (config.workers > 1 && cluster.isPrimary) {
    // WORKERS=N: this process forks and supervises; the workers serve (cluster/primary.ts).
    hooks.replaceEarlySignalHandlers?.();
    const primaryLog = createAccessLog(config.logFormat, streamSink(process.stdout));
    const { runPrimary } = await import('./cluster/primary.js');
    runPrimary({ config, log: primaryLog, announce: (info) => printStartup(primaryLog, config, info) });
    return;
  }
  const worker = config.workers > 1 ? joinCluster(config.workers) : undefined;
  const log = createAccessLog(
    config.logFormat,
    streamSink(process.stdout),
    undefined,
    worker ? { worker: worker.id, workerInText: true } : {},
  );
  let proxy: DrpProxy | undefined;
  // Installed before anything is printed: a supervisor that signals right after the startup
  // line must reach this handler, not the default one (which would kill the process).
  let started: Promise<void> = Promise.resolve();
  hooks.replaceEarlySignalHandlers?.();
  const signals = onShutdownSignals(async (signal) => {
    // A worker finishes before its primary's deadline (SHUTDOWN_TIMEOUT).
    const graceMs = worker ? workerGraceMs(config.timeouts.shutdownMs) : config.timeouts.shutdownMs;
    log.event(
      'shutdown',
      `${signal}: new clients refused; letting in-flight pulls and pushes finish (up to ${graceMs} ms)`,
    );
    const since = Date.now();
    await started.catch(() => {});
    await proxy?.close(graceMs);
    log.event('shutdown', `stopped after ${Date.now() - since} ms`);
  });
  worker?.onStop(() => signals.stop('SIGTERM'));
  started = serve(
    config,
    log,
    (p) => {
      proxy = p;
    },
    worker,
  );
  await started;
  // A worker that could not start exits now: its IPC channel would keep it alive.
  if (worker && !proxy?.address) process.exit(typeof process.exitCode === 'number' ? process.exitCode : 1);
}

async function serve(
  config: ServerConfig,
  log: AccessLog,
  created: (proxy: DrpProxy) => void,
  worker: WorkerSide | undefined,
): Promise<void> {
  let proxy: DrpProxy;
  try {
    proxy = await createProxy({ config, log, ...(worker ? { worker } : {}) });
  } catch (error) {
    if (isCaError(error)) return fail(`CA: ${error.message}`, 1);
    if (error instanceof Error && (error as { code?: string }).code === 'DRP_CONFIG_INVALID') {
      return fail(error.message, 2);
    }
    if (isServerError(error)) return fail(error.message, SERVER_ERROR_CODES[error.code].exit);
    throw error;
  }
  created(proxy);
  try {
    await proxy.listen();
  } catch (error) {
    await proxy.close(0);
    const code = (error as { code?: string }).code;
    return fail(
      `cannot listen on ${config.bind}:${config.port}: ${code === 'EADDRINUSE' ? 'the port is in use' : (error as Error).message}`,
      1,
    );
  }

  const address = proxy.address!;
  const info = {
    listen: `${address.address.includes(':') ? `[${address.address}]` : address.address}:${address.port}`,
    port: address.port,
    url: proxy.url,
    cache_dir: config.cacheDir,
    ca_dir: config.caFiles ? undefined : config.caDir,
    ca_cert: proxy.ca.files?.certFile,
    ca_origin: proxy.ca.origin,
    ca_fingerprint: proxy.ca.fingerprint256,
    ca_not_after: proxy.ca.notAfter.toISOString(),
    intercepting: config.registries.map(formatRule),
    manifest_cache: config.manifestCache.enabled,
    allow_push: config.allowPush,
    metrics: config.metrics,
    mirror_default_registry: config.mirrorDefaultRegistry,
    mirror_tls_port: proxy.mirrorTlsAddress?.port,
    upstream_proxy: proxy.cache.options.upstream.proxy?.display,
    upstream_no_proxy: config.upstreamProxy ? config.upstreamNoProxy || undefined : undefined,
  };
  // A worker's primary prints the startup line once every worker listens.
  if (worker) worker.listening(info);
  else printStartup(log, config, info);
}
