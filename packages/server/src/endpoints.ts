/**
 * drp's own plain-HTTP endpoints, answered for origin-form requests on the proxy port:
 *
 *   /               a short status text
 *   /ca.crt         the CA certificate (PEM), what clients trust
 *   /setup/systemd  a shell script configuring dockerd (CA trust, then proxy drop-in, restart)
 *   /healthz        200 `{"status":"ok"}` while serving, 503 while shutting down (WORKERS=N:
 *                   plus `workers` and `workers_up`; ok while the worker answering serves)
 *   /metrics        Prometheus text format (when METRICS is on)
 *   /status         an HTML status page for operators; /status.json the same figures
 *
 * Anything else is a 404: a direct request is never forwarded anywhere, so it cannot loop back
 * into the proxy.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { renderStatusPage, type StatusReport } from './status-page.js';

export interface EndpointsOptions {
  readonly caCertPem: string;
  readonly caFingerprint: string;
  /** Hosts being intercepted, as shown on `/`. */
  readonly intercepting: readonly string[];
  /** The listening port, for URLs when the request has no usable `Host`. */
  readonly port: () => number;
  readonly draining: () => boolean;
  readonly metrics: (() => Promise<{ contentType: string; body: string }>) | undefined;
  /** Extra /healthz fields (WORKERS=N: how many workers are up). */
  readonly health?: () => Readonly<Record<string, number>>;
  /** The status page's figures, computed per request. */
  readonly status: () => StatusReport;
  readonly version: string;
}

/** A `Host` header safe to paste into a shell script and a URL. */
const SAFE_HOST = /^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/;

export function proxyUrlFor(req: IncomingMessage, port: number): string {
  const host = req.headers.host;
  if (host && SAFE_HOST.test(host)) return `http://${host}`;
  return `http://127.0.0.1:${port}`;
}

function send(req: IncomingMessage, res: ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, {
    'content-type': type,
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
  });
  res.end(req.method === 'HEAD' ? undefined : body);
}

/**
 * The original's /setup/systemd script, kept compatible (`curl http://proxy:3128/setup/systemd | sh`),
 * plus NO_PROXY, RHEL-style trust stores and an optional proxy URL argument.
 */
export function systemdSetupScript(proxyUrl: string): string {
  return `#!/bin/sh
# Configures dockerd on this host to use drp (docker registry proxy) at ${proxyUrl}:
# the proxy's CA in the system trust store first, then a systemd drop-in with HTTP(S)_PROXY and
# NO_PROXY, then daemon-reload and a restart of docker. Any failed step stops the script
# (set -e); because the drop-in comes last, a failure never leaves docker pointed at a proxy
# whose CA it does not trust.
#   curl -fsSL ${proxyUrl}/setup/systemd | sudo sh
#   curl -fsSL ${proxyUrl}/setup/systemd | sudo sh -s -- http://other-proxy:3128
set -eu

PROXY_URL="\${1:-${proxyUrl}}"
NO_PROXY_LIST="\${NO_PROXY_LIST:-localhost,127.0.0.0/8,::1}"

if [ "$(id -u)" != "0" ]; then
  echo "drp setup: run this as root (curl ... | sudo sh)" >&2
  exit 1
fi
if [ ! -d /etc/systemd/system ]; then
  echo "drp setup: /etc/systemd/system not found; this script is for systemd hosts" >&2
  exit 1
fi

# 1. Get the CA certificate from the proxy and make it a trusted root. A failed download
# leaves at most a .tmp file, which trust stores ignore.
fetch_ca() {
  curl -fsSL "$PROXY_URL/ca.crt" -o "$1.tmp"
  mv "$1.tmp" "$1"
}
if command -v update-ca-certificates >/dev/null 2>&1 && [ -d /usr/local/share/ca-certificates ]; then
  fetch_ca /usr/local/share/ca-certificates/docker_registry_proxy.crt
  update-ca-certificates
elif command -v update-ca-trust >/dev/null 2>&1; then
  fetch_ca /etc/pki/ca-trust/source/anchors/docker_registry_proxy.crt
  update-ca-trust extract
else
  echo "drp setup: no update-ca-certificates or update-ca-trust; install $PROXY_URL/ca.crt by hand" >&2
  exit 1
fi

# 2. Only then point dockerd at the proxy (written to a temporary file, renamed into place).
mkdir -p /etc/systemd/system/docker.service.d
cat > /etc/systemd/system/docker.service.d/http-proxy.conf.tmp <<EOD
[Service]
Environment="HTTPS_PROXY=$PROXY_URL"
Environment="HTTP_PROXY=$PROXY_URL"
Environment="NO_PROXY=$NO_PROXY_LIST"
EOD
mv /etc/systemd/system/docker.service.d/http-proxy.conf.tmp /etc/systemd/system/docker.service.d/http-proxy.conf

# 3. Reload systemd and restart dockerd.
systemctl daemon-reload
systemctl restart docker.service
echo "Docker configured with HTTPS_PROXY=$PROXY_URL"
`;
}

export type DirectHandler = (req: IncomingMessage, res: ServerResponse) => void;

export function createEndpoints(options: EndpointsOptions): DirectHandler {
  return (req, res) => {
    const method = req.method ?? 'GET';
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    if (method !== 'GET' && method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      send(req, res, 405, 'text/plain; charset=utf-8', 'method not allowed\n');
      return;
    }
    const url = proxyUrlFor(req, options.port());
    switch (path) {
      case '/': {
        const body = [
          `drp ${options.version}: docker registry proxy is running.`,
          '',
          `Intercepting: ${options.intercepting.join(' ')}`,
          `CA fingerprint (SHA-256): ${options.caFingerprint}`,
          '',
          'Point a client at it:',
          `  HTTPS_PROXY=${url} HTTP_PROXY=${url}`,
          `  and trust the CA at ${url}/ca.crt`,
          `  (dockerd on systemd: curl -fsSL ${url}/setup/systemd | sudo sh)`,
          '',
        ].join('\n');
        send(req, res, 200, 'text/plain; charset=utf-8', body);
        return;
      }
      case '/ca.crt':
        send(req, res, 200, 'application/x-x509-ca-cert', options.caCertPem);
        return;
      case '/setup/systemd':
        send(req, res, 200, 'text/x-shellscript; charset=utf-8', systemdSetupScript(url));
        return;
      case '/healthz':
        if (options.draining()) send(req, res, 503, 'application/json', '{"status":"shutting down"}\n');
        else
          send(
            req,
            res,
            200,
            'application/json',
            `${JSON.stringify({ status: 'ok', ...options.health?.() })}\n`,
          );
        return;
      case '/metrics':
        if (options.metrics) {
          options.metrics().then(
            ({ contentType, body }) => send(req, res, 200, contentType, body),
            () => send(req, res, 500, 'text/plain; charset=utf-8', 'metrics unavailable\n'),
          );
          return;
        }
        break;
      case '/status':
        send(req, res, 200, 'text/html; charset=utf-8', renderStatusPage(options.status()));
        return;
      case '/status.json':
        send(req, res, 200, 'application/json', `${JSON.stringify(options.status())}\n`);
        return;
      default:
        break;
    }
    send(req, res, 404, 'text/plain; charset=utf-8', 'not found (this is drp, a registry proxy)\n');
  };
}
