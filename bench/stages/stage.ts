// One stage, run alone in a fresh process (on the Node binary under test) and reported as one
// JSON line on stdout. Started by bench/stages/run.ts:
//   node --import tsx bench/stages/stage.ts '<json StageSpec>'
import { readFileSync } from 'node:fs';
import { deliver } from './deliver.ts';
import { downloadGot, downloadHttps } from './download.ts';
import { hashMain, hashWorker } from './hash.ts';
import type { StageResult } from './measure.ts';
import { spool } from './spool.ts';

export type StageSpec =
  | {
      kind: 'download-got' | 'download-got-response' | 'download-https';
      bytes: number;
      url: string;
      caPath: string;
    }
  | { kind: 'sha256-main'; bytes: number; update: number }
  | { kind: 'sha256-worker'; bytes: number; batch: number; inflight: number }
  | { kind: 'spool'; bytes: number; dir: string; mode: 'writev' | 'write'; batch: number }
  | {
      kind: 'deliver';
      bytes: number;
      source: 'buffer' | 'file';
      file?: string;
      certPath: string;
      keyPath: string;
      caPath: string;
      tmp: string;
    };

async function runStage(s: StageSpec): Promise<StageResult> {
  switch (s.kind) {
    case 'download-got':
    case 'download-got-response':
    case 'download-https': {
      const o = { url: s.url, ca: readFileSync(s.caPath, 'utf8'), bytes: s.bytes };
      if (s.kind === 'download-https') return downloadHttps(o);
      return downloadGot(o, s.kind === 'download-got-response');
    }
    case 'sha256-main':
      return hashMain(s.bytes, s.update);
    case 'sha256-worker':
      return hashWorker(s.bytes, s.batch, s.inflight);
    case 'spool':
      return spool(s.dir, s.bytes, s.mode, s.batch);
    case 'deliver':
      return deliver({
        bytes: s.bytes,
        source: s.source,
        ...(s.file ? { file: s.file } : {}),
        cert: readFileSync(s.certPath, 'utf8'),
        key: readFileSync(s.keyPath, 'utf8'),
        caPath: s.caPath,
        tmp: s.tmp,
      });
  }
}

const spec = JSON.parse(process.argv[2] ?? '{}') as StageSpec;
const result = await runStage(spec);
process.stdout.write(`${JSON.stringify(result)}\n`);
