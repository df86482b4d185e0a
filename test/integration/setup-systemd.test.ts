// `curl -fsSL http://proxy:3128/setup/systemd | sh`, run for real against a real drp: the script
// is piped from the proxy into sh and fetches the CA with curl, inside a private mount namespace
// where /etc and /usr/local/share are empty tmpfs (so the host is never touched). Only the
// commands that need a systemd host are stand-ins on PATH: update-ca-certificates and
// systemctl, which record what the script had done when they were called. Needs root.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type RunningProxy, startProxy, systemdSetupScript } from '@drp/server';
import { createHarness, type Harness } from '../harness/index.ts';

const DROP_IN = '/etc/systemd/system/docker.service.d/http-proxy.conf';
const CA_FILE = '/usr/local/share/ca-certificates/docker_registry_proxy.crt';

interface Outcome {
  code: number | null;
  stderr: string;
  /** One line per stand-in call: the command, then whether the CA file and the drop-in existed. */
  calls: string[];
  dropIn: string | undefined;
  caFile: string | undefined;
}

describe('/setup/systemd', () => {
  let h: Harness;
  let proxy: RunningProxy;

  before(async () => {
    h = createHarness();
    proxy = await startProxy();
  });
  after(async () => {
    await proxy.close(0);
    await h.close();
  });

  /** Runs `curl URL/setup/systemd | sh` in an empty /etc; `failing` names a stand-in that fails. */
  async function setup(url: string, failing?: string): Promise<Outcome> {
    const dir = h.tempDir('setup');
    const bin = join(dir, 'bin');
    const out = join(dir, 'out');
    mkdirSync(bin);
    mkdirSync(out);
    const log = join(dir, 'calls.log');
    writeFileSync(log, '');
    for (const command of ['update-ca-certificates', 'systemctl']) {
      const stub = join(bin, command);
      writeFileSync(
        stub,
        `#!/bin/sh
state="ca=$([ -s ${CA_FILE} ] && echo yes || echo no) drop-in=$([ -e ${DROP_IN} ] && echo yes || echo no)"
echo "${command} $* $state" >> ${log}
${command === failing ? 'exit 1' : 'exit 0'}
`,
      );
      chmodSync(stub, 0o755);
    }
    const inside = [
      'set -e',
      'mount -t tmpfs drp-etc /etc',
      'mount -t tmpfs drp-share /usr/local/share',
      'mkdir -p /etc/systemd/system /usr/local/share/ca-certificates',
      `set +e; curl -fsS "${url}/setup/systemd" | sh; code=$?; set -e`,
      `cp -a /etc/systemd/system/. ${out}/`,
      `cp -a /usr/local/share/ca-certificates/. ${out}/`,
      'exit $code',
    ].join('\n');
    const result = await h.run('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', inside], {
      env: { PATH: `${bin}:${process.env.PATH ?? '/usr/bin:/bin'}` },
      check: false,
    });
    const read = (path: string) => (existsSync(path) ? readFileSync(path, 'utf8') : undefined);
    return {
      code: result.code,
      stderr: result.stderr,
      calls: readFileSync(log, 'utf8').split('\n').filter(Boolean),
      dropIn: read(join(out, 'docker.service.d/http-proxy.conf')),
      caFile: read(join(out, 'docker_registry_proxy.crt')),
    };
  }

  it('trusts the CA first, writes the proxy drop-in after, then reloads and restarts docker', async () => {
    assert.equal(process.getuid?.(), 0, 'needs root (mount namespace)');
    const o = await setup(proxy.url);
    assert.equal(o.code, 0, o.stderr);
    assert.deepEqual(o.calls, [
      'update-ca-certificates  ca=yes drop-in=no',
      'systemctl daemon-reload ca=yes drop-in=yes',
      'systemctl restart docker.service ca=yes drop-in=yes',
    ]);
    assert.equal(o.caFile, proxy.caCertPem);
    assert.equal(
      o.dropIn,
      `[Service]\nEnvironment="HTTPS_PROXY=${proxy.url}"\nEnvironment="HTTP_PROXY=${proxy.url}"\nEnvironment="NO_PROXY=localhost,127.0.0.0/8,::1"\n`,
    );
  });

  it('stops at a failed trust-store update: no drop-in, docker untouched', async () => {
    const o = await setup(proxy.url, 'update-ca-certificates');
    assert.notEqual(o.code, 0);
    assert.deepEqual(o.calls, ['update-ca-certificates  ca=yes drop-in=no']);
    assert.equal(o.dropIn, undefined);
  });

  it('stops when the CA cannot be fetched: no CA file, no drop-in, nothing called', async () => {
    // The script as drp serves it for a proxy address where nothing listens any more.
    const gone = http.createServer().listen(0, '127.0.0.1');
    await once(gone, 'listening');
    const dead = `http://127.0.0.1:${(gone.address() as AddressInfo).port}`;
    gone.close();
    const server = http.createServer((_req, res) => res.end(systemdSetupScript(dead)));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    try {
      const o = await setup(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
      assert.notEqual(o.code, 0);
      assert.match(o.stderr, /curl/);
      assert.deepEqual(o.calls, []);
      assert.equal(o.caFile, undefined);
      assert.equal(o.dropIn, undefined);
    } finally {
      server.close();
    }
  });
});
