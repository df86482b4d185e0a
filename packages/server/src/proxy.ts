/**
 * One proxy instance: configuration + @drp/ca + @drp/core + the network side (mitm.ts, the
 * http-mitm-proxy front; front/, TLS termination, tunnels and forwards) + log + metrics. Everything
 * it creates is owned by the returned object and released by `close()`; there is no
 * module-level state, so several proxies can run in one process.
 */
import { constants } from 'node:fs';
import { access, mkdir, readFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { type CertificateAuthority, loadOrCreateCA } from '@drp/ca';
import {
  createAddressResolver,
  createCidrList,
  createDestinationGuard,
  createRegistryCache,
  type RegistryCache,
  type RegistryCacheOptions,
  type UpstreamTarget,
} from '@drp/core';
import createDebug from 'debug';
import type { AccessLog } from './access-log.js';
import { writeCacheInfo } from './cache-info.js';
import type { WorkerSide } from './cluster/worker.js';
import { isIntercepted, type ServerConfig } from './config.js';
import { createEndpoints } from './endpoints.js';
import { ServerError } from './errors.js';
import { createAdmission } from './front/admission.js';
import { blockedDestinationsFor, exemptNames, tunnelPortsFor } from './front/egress.js';
import { clientOf as clientAddress } from './front/naming.js';
import { createCredentialCheck } from './front/proxy-auth.js';
import { createMetrics, type ProxyMetrics } from './metrics.js';
import { createMirror } from './mirror.js';
import { createMirrorTlsServer, type MirrorTlsServer } from './mirror-tls.js';
import { createMitmServer, type MitmServer } from './mitm.js';
import { formatRule } from './registries.js';
import { registryLabeler } from './registry-label.js';
import { startScrub } from './scrub.js';
import { createStatsCollector } from './stats.js';
import type { StatusReport } from './status-page.js';
import { VERSION } from './version.js';

const debug = createDebug('drp:server');

export interface CreateProxyOptions {
  readonly config: ServerConfig;
  /** Where request, tunnel and lifecycle lines go; undefined: nowhere. */
  readonly log?: AccessLog;
  /** Extra PEM certificates trusted upstream, besides UPSTREAM_CA_FILE. */
  readonly upstreamCaPem?: readonly string[];
  /** WORKERS=N: this process is one worker (its /metrics and /healthz speak for all). */
  readonly worker?: WorkerSide;
}

export interface DrpProxy {
  readonly config: ServerConfig;
  readonly ca: CertificateAuthority;
  readonly cache: RegistryCache;
  /** Set once listening. */
  readonly address: AddressInfo | undefined;
  /** The MIRROR_TLS_PORT listener's address, once listening (undefined when not configured). */
  readonly mirrorTlsAddress: AddressInfo | undefined;
  /** `http://host:port` a client on this machine can use (loopback for a wildcard bind). */
  readonly url: string;
  readonly draining: boolean;
  /** Binds `config.bind`:`config.port` (`::` falls back to 0.0.0.0 without IPv6). */
  listen(): Promise<AddressInfo>;
  /**
   * Graceful stop: no new connections, in-flight transfers may finish within `graceMs`
   * (default SHUTDOWN_TIMEOUT), then everything is closed. Idempotent.
   */
  close(graceMs?: number): Promise<void>;
}

/** Builds core's options from the daemon's configuration. */
export function cacheOptionsFrom(
  config: ServerConfig,
  caCertificates: readonly string[],
): RegistryCacheOptions {
  return {
    cacheDir: config.cacheDir,
    maxSize: config.maxSize,
    inactive: config.inactive,
    manifestCache: { ...config.manifestCache },
    credentials: config.credentials,
    allowPush: config.allowPush,
    verifyBlobAccess: config.verifyBlobAccess,
    upstream: {
      mappings: { ...config.upstreamMappings },
      caCertificates,
      verifyTls: config.verifyTls,
      ...(config.disableIpv6 ? { ipFamily: 4 as const } : {}),
      connectTimeout: config.timeouts.proxyConnectMs,
      responseTimeout: config.timeouts.proxySendMs,
      staleTimeout: config.timeouts.upstreamStaleMs,
      readTimeout: config.timeouts.proxyReadMs,
      blockedDestinations: blockedDestinationsFor(config),
      // Mapped names are exempt in core already; registries are exempt on their ports.
      exemptDestinations: exemptNames(config.registries, {}),
      ...(config.upstreamProxy ? { proxy: config.upstreamProxy, noProxy: config.upstreamNoProxy } : {}),
    },
  };
}

/** Creates `dir` if needed and checks drp can write it, with a message that says what to do. */
async function usableDir(dir: string, variable: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true });
    await access(dir, constants.R_OK | constants.W_OK | constants.X_OK);
  } catch (error) {
    const code = (error as { code?: string }).code ?? String(error);
    const hint =
      code === 'EACCES' || code === 'EPERM'
        ? ` (owned by another user? chown it to uid ${process.getuid?.() ?? '?'}, the user drp-server runs as)`
        : '';
    throw new ServerError('DRP_SERVER_DIR_UNUSABLE', `cannot use ${variable} ${dir}: ${code}${hint}`);
  }
}

function loopbackUrl(address: AddressInfo): string {
  const wildcard = address.address === '::' || address.address === '0.0.0.0';
  const host = wildcard ? '127.0.0.1' : address.address;
  return `http://${host.includes(':') ? `[${host}]` : host}:${address.port}`;
}

export async function createProxy(options: CreateProxyOptions): Promise<DrpProxy> {
  const { config, log } = options;
  const caCertificates = [...(options.upstreamCaPem ?? [])];
  if (config.upstreamCaFile) caCertificates.push(await readFile(config.upstreamCaFile, 'utf8'));

  await usableDir(config.cacheDir, 'CACHE_DIR');
  const ca = await loadOrCreateCA({
    ...(config.caFiles
      ? { certFile: config.caFiles.certFile, keyFile: config.caFiles.keyFile }
      : { dir: config.caDir }),
    ...(config.caPassphrase !== undefined ? { passphrase: config.caPassphrase } : {}),
  });
  ca.on('warning', (warning) => log?.event('warning', warning.message, { code: warning.code }));

  let cache: RegistryCache;
  try {
    cache = await createRegistryCache(cacheOptionsFrom(config, caCertificates));
  } catch (error) {
    ca.close();
    throw error;
  }

  try {
    // For `drp-server cache stats` and other tools reading the directory from outside.
    await writeCacheInfo(config.cacheDir, {
      maxBytes: cache.options.maxSizeBytes,
      version: VERSION,
      pid: process.pid,
      startedAt: new Date().toISOString(),
    });
  } catch (error) {
    debug('cannot record the cache info: %s', (error as Error).message);
  }
  const stats = createStatsCollector(cache.events);
  const stopScrub = startScrub(cache, config.scrubIntervalMs, log);
  const startedAt = Date.now();

  let address: AddressInfo | undefined;
  let draining = false;
  let closing: Promise<void> | undefined;
  let metrics: ProxyMetrics | undefined;

  const intercepting = config.registries.map(formatRule);
  const statusReport = (): StatusReport => {
    const c = cache.stats();
    return {
      version: VERSION,
      startedAt: new Date(startedAt).toISOString(),
      uptimeSeconds: Math.floor((Date.now() - startedAt) / 1000),
      ...stats.figures(),
      cacheBytes: c.bytes,
      cacheEntries: c.entries,
      cacheMaxBytes: c.maxBytes,
      ca: { fingerprint256: ca.fingerprint256, notAfter: ca.notAfter.toISOString() },
      intercepting,
    };
  };
  const endpoints = createEndpoints({
    caCertPem: ca.certPem,
    caFingerprint: ca.fingerprint256,
    intercepting,
    port: () => address?.port ?? config.port,
    draining: () => draining,
    metrics: !config.metrics
      ? undefined
      : options.worker
        ? options.worker.metrics
        : () => metrics?.render() ?? Promise.reject(new Error('no metrics')),
    ...(options.worker ? { health: options.worker.health } : {}),
    version: VERSION,
    status: statusReport,
  });

  const clientOf = (req: IncomingMessage) => clientAddress(req.socket);

  // Which upstream proxy failed, for the log line; parsed by core, so never with its password.
  const shownProxy = cache.options.upstream.proxy?.display;
  const proxyField = shownProxy ? { upstream_proxy: shownProxy } : undefined;
  const onRegistryRequest = (req: IncomingMessage, res: ServerResponse, target: UpstreamTarget) => {
    const client = clientOf(req);
    cache.handle(req, res, target).then(
      (outcome) => {
        log?.request(outcome, client, outcome.error === 'DRP_UPSTREAM_PROXY' ? proxyField : undefined);
        metrics?.request(outcome);
        stats.request(outcome);
      },
      (error: unknown) => debug('handle failed: %s', (error as Error).message),
    );
  };
  const mirror = createMirror({
    intercepts: (host, port) => isIntercepted(config.registries, host, port, 'https'),
    defaultRegistry: config.mirrorDefaultRegistry,
    serve: onRegistryRequest,
    answered: (outcome, req) => log?.request(outcome, clientOf(req)),
  });
  let mirrorTls: MirrorTlsServer | undefined;
  let mirrorTlsAddress: AddressInfo | undefined;

  const mitm: MitmServer = createMitmServer({
    intercepts: (host, port, scheme) => isIntercepted(config.registries, host, port, scheme),
    secureContext: (name) => ca.secureContext(name),
    onRegistryRequest,
    onDirectRequest: endpoints,
    onMirrorRequest: mirror,
    onTunnel(record) {
      log?.tunnel(record);
      metrics?.tunnel(record);
    },
    onForward(record) {
      log?.forward(record);
      metrics?.forward(record);
    },
    onRefused(record) {
      log?.event('refused', `${record.status} ${record.kind} ${record.target}: ${record.reason}`, {
        client: record.client,
        kind: record.kind,
        method: record.method,
        target: record.target,
        status: record.status,
      });
    },
    admission: createAdmission({
      allowedClients: config.allowedClients === 'all' ? 'all' : createCidrList(config.allowedClients),
      credentials: config.proxyUsers.length > 0 ? createCredentialCheck(config.proxyUsers) : undefined,
    }),
    destinations: createDestinationGuard({
      blocked: blockedDestinationsFor(config),
      exempt: exemptNames(config.registries, config.upstreamMappings),
    }),
    tunnelPorts: tunnelPortsFor(config.tunnelPorts, config.registries),
    resolveAddress: createAddressResolver(config.upstreamMappings),
    family: config.disableIpv6 ? 4 : undefined,
    // http-mitm-proxy's own CA (never used by drp): a 0700 directory next to drp's CA.
    sslCaDir: join(config.caDir, 'http-mitm-proxy'),
    timeouts: {
      clientHeaderMs: config.timeouts.clientHeaderMs,
      keepAliveMs: config.timeouts.keepAliveMs,
      sendMs: config.timeouts.sendMs,
      clientBodyMs: config.timeouts.clientBodyMs,
      tunnelIdleMs: config.timeouts.tunnelIdleMs,
      tunnelConnectMs: config.timeouts.tunnelConnectMs,
    },
  });

  if (config.metrics) {
    metrics = createMetrics(cache.events, {
      activeRequests: () => mitm.activeRequests,
      openTunnels: () => mitm.openTunnels,
      cacheStats: () => cache.stats(),
      rateLimits: () => stats.rateLimits(),
      registryLabel: registryLabeler(config.registries),
      caNotAfter: ca.notAfter,
      version: VERSION,
    });
    options.worker?.exposeRegistry(metrics.registry);
  }

  return {
    config,
    ca,
    cache,
    get address() {
      return address;
    },
    get mirrorTlsAddress() {
      return mirrorTlsAddress;
    },
    get url() {
      if (!address) throw new Error('the proxy is not listening yet');
      return loopbackUrl(address);
    },
    get draining() {
      return draining;
    },
    async listen() {
      try {
        address = await mitm.listen(config.port, config.bind);
      } catch (error) {
        const code = (error as { code?: string }).code;
        const noIpv6 = code === 'EAFNOSUPPORT' || code === 'EADDRNOTAVAIL';
        if (!(config.bind === '::' && noIpv6)) throw error;
        debug('IPv6 unavailable (%s): listening on 0.0.0.0', code);
        address = await mitm.listen(config.port, '0.0.0.0');
      }
      if (config.mirrorTlsPort !== undefined) {
        mirrorTls = createMirrorTlsServer({
          secureContext: (name) => ca.secureContext(name),
          handle: (req, res) => mitm.request(req, res),
          accepts: (socket) => mitm.accepts(socket),
          clientHeaderMs: config.timeouts.clientHeaderMs,
          keepAliveMs: config.timeouts.keepAliveMs,
        });
        mirrorTlsAddress = await mirrorTls.listen(config.mirrorTlsPort, address.address);
      }
      return address;
    },
    close(graceMs = config.timeouts.shutdownMs) {
      closing ??= (async () => {
        draining = true;
        await mitm.shutdown(graceMs, Math.min(1000, graceMs));
        await mirrorTls?.close();
        stopScrub();
        stats.close();
        await cache.close();
        ca.close();
        metrics?.close();
      })();
      return closing;
    },
  };
}
