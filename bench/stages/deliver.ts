// TLS delivery stages: this process is a node:https server on loopback sending 200 MB to one
// curl client (`curl -o /dev/null`, timed by /usr/bin/time for its own CPU), either from memory
// (1 MiB slices of a buffer, written with backpressure) or from a file (fs.createReadStream
// with 1 MiB reads, piped). One small response first warms the server's code and TLS context.
import { execFile } from 'node:child_process';
import { createReadStream, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { MiB, randomSource, type StageResult, timed, writeCycled } from './measure.ts';

export interface DeliverOptions {
  bytes: number;
  source: 'buffer' | 'file';
  /** For source 'file': a file of at least `bytes` bytes. */
  file?: string;
  cert: string;
  key: string;
  caPath: string;
  tmp: string;
}

function curl(url: string, caPath: string, tmp: string): Promise<{ bytes: number; cpu: number }> {
  const dir = mkdtempSync(join(tmp, 'curl-'));
  const timeFile = join(dir, 'time');
  return new Promise((resolve, reject) => {
    execFile(
      '/usr/bin/time',
      [
        '-f',
        '%e %U %S',
        '-o',
        timeFile,
        'curl',
        '-sS',
        '--fail',
        '-o',
        '/dev/null',
        '-w',
        '%{size_download}',
        '--cacert',
        caPath,
        url,
      ],
      { env: { ...process.env, HTTPS_PROXY: '', https_proxy: '' } },
      (err, stdout) => {
        try {
          if (err) return reject(err);
          const [, u = 'NaN', s = 'NaN'] = readFileSync(timeFile, 'utf8').trim().split(/\s+/).slice(-3);
          resolve({ bytes: Number(stdout.trim()), cpu: Number(u) + Number(s) });
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      },
    );
  });
}

export async function deliver(o: DeliverOptions): Promise<StageResult> {
  const src = randomSource();
  const server = createServer({ cert: o.cert, key: o.key }, (req, res) => {
    const total = Number(/^\/bytes\/(\d+)$/.exec(req.url ?? '')?.[1] ?? 0);
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': total });
    if (o.source === 'file' && o.file) {
      createReadStream(o.file, { start: 0, end: total - 1, highWaterMark: MiB }).pipe(res);
    } else {
      void writeCycled(src, res, total);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = (n: number) => `https://127.0.0.1:${(server.address() as AddressInfo).port}/bytes/${n}`;
  try {
    await curl(url(16 * MiB), o.caPath, o.tmp);
    return await timed(`deliver-${o.source}`, async () => {
      const r = await curl(url(o.bytes), o.caPath, o.tmp);
      if (r.bytes !== o.bytes) throw new Error(`curl received ${r.bytes} of ${o.bytes} bytes`);
      return { bytes: r.bytes, clientCpuSeconds: r.cpu };
    });
  } finally {
    server.close();
    server.closeAllConnections();
  }
}
