#!/usr/bin/env node
// Makes sure the real components the test suite talks to are installed.
// As root on Debian it installs what is missing; otherwise it names what to install and fails.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

/** Debian package -> an executable that proves it is installed. */
const REQUIRED = {
  'docker-registry': 'docker-registry',
  skopeo: 'skopeo',
  podman: 'podman',
  containerd: 'containerd',
  'apache2-utils': 'htpasswd',
  openssl: 'openssl',
  curl: 'curl',
  iproute2: 'ip',
  // A corporate proxy for UPSTREAM_PROXY tests (with basic_ncsa_auth).
  squid: 'squid',
  // setpriv and unshare: the image entrypoint and /setup/systemd tests.
  'util-linux': 'setpriv',
  // The status page test drives it through playwright-core.
  chromium: 'chromium',
  // The load balancer in front of several drp replicas (test/scale).
  haproxy: 'haproxy',
};

function onPath(command) {
  const paths = (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/sbin', '/usr/bin']);
  return paths.some((dir) => dir && existsSync(`${dir}/${command}`));
}

const missing = Object.entries(REQUIRED)
  .filter(([, command]) => !onPath(command))
  .map(([pkg]) => pkg);

if (missing.length === 0) process.exit(0);

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const hasApt = onPath('apt-get');
if (!isRoot || !hasApt) {
  process.stderr.write(
    `The test suite needs these Debian packages, which are not installed: ${missing.join(' ')}\n` +
      `Install them (as root: apt-get update && apt-get install -y ${missing.join(' ')}) and run the tests again.\n`,
  );
  process.exit(1);
}

process.stdout.write(`Installing test components: ${missing.join(' ')}\n`);
const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
const result = spawnSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], {
  stdio: 'inherit',
  env,
});
if (result.status !== 0) {
  process.stderr.write(`apt-get install failed for: ${missing.join(' ')}\n`);
  process.exit(result.status ?? 1);
}
