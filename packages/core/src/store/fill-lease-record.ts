/**
 * The content of a lease file (store/fill-lease.ts): one line of JSON naming the holder (host,
 * pid namespace, pid, a random id), its spool file, what the fill is doing and what it will be
 * committed with, then a checksum line. The file is read from a shared directory, so it is
 * input: a torn, foreign or hostile one decodes as nothing (and is judged by staleness alone).
 */
import { createHash, randomUUID } from 'node:crypto';
import { statSync } from 'node:fs';
import { hostname } from 'node:os';

/** Spool files are `<uuid>.part` in the spool directory; nothing else is ever opened by name. */
export const SPOOL_NAME = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.part$/;

export interface LeaseRecord {
  readonly id: string;
  readonly host: string;
  /** The holder's pid namespace (its pid means something only there). */
  readonly ns: string;
  readonly pid: number;
  /** The spool file (name only, in the spool directory) the holder writes. */
  readonly spool: string;
  /** The lease this one took over (the new spool starts with a copy of its bytes). */
  readonly prev?: string;
  readonly state: 'connecting' | 'streaming';
  readonly size?: number;
  /** What the entry will be committed with (its kind, the auth class that fetched it). */
  readonly meta?: Readonly<Record<string, string>>;
}

const here = { host: hostname(), ns: pidNamespace() };

function pidNamespace(): string {
  try {
    return String(statSync('/proc/self/ns/pid').ino);
  } catch {
    return 'unknown';
  }
}

/** A record for a new lease held by this process. */
export function newRecord(spool: string, prev?: string, meta?: Record<string, string>): LeaseRecord {
  return {
    ...(meta ? { meta } : {}),
    id: randomUUID(),
    host: here.host,
    ns: here.ns,
    pid: process.pid,
    spool,
    ...(prev ? { prev } : {}),
    state: 'connecting',
  };
}

/** True when the record's holder is a process of this pid namespace that no longer exists. */
export function holderDead(record: LeaseRecord): boolean {
  if (record.host !== here.host || record.ns !== here.ns || record.ns === 'unknown') return false;
  if (record.pid === process.pid) return false;
  try {
    process.kill(record.pid, 0);
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

export function encodeRecord(record: LeaseRecord): Buffer {
  const json = JSON.stringify(record);
  return Buffer.from(`${json}\n${checksum(json)}\n`);
}

/** Parses a lease file's bytes; undefined for anything that is not a whole, valid lease. */
export function decodeRecord(bytes: Buffer): LeaseRecord | undefined {
  const text = bytes.toString('utf8');
  const match = /^(\{[^\n]*\})\n([0-9a-f]{16})\n$/.exec(text);
  if (!match || checksum(match[1] as string) !== match[2]) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(match[1] as string);
  } catch {
    return undefined;
  }
  return validRecord(value);
}

function validRecord(value: unknown): LeaseRecord | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const r = value as Record<string, unknown>;
  const text = (v: unknown, max: number) => typeof v === 'string' && v.length > 0 && v.length <= max;
  if (!text(r.id, 64) || !text(r.host, 255) || !text(r.ns, 64)) return undefined;
  if (typeof r.pid !== 'number' || !Number.isSafeInteger(r.pid) || r.pid <= 0) return undefined;
  if (typeof r.spool !== 'string' || !SPOOL_NAME.test(r.spool)) return undefined;
  if (r.prev !== undefined && !text(r.prev, 64)) return undefined;
  if (r.state !== 'connecting' && r.state !== 'streaming') return undefined;
  if (r.size !== undefined && (typeof r.size !== 'number' || !Number.isSafeInteger(r.size) || r.size < 0)) {
    return undefined;
  }
  if (r.meta !== undefined && !validMeta(r.meta)) return undefined;
  return r as unknown as LeaseRecord;
}

function validMeta(meta: unknown): boolean {
  if (typeof meta !== 'object' || meta === null || Array.isArray(meta)) return false;
  const entries = Object.entries(meta);
  return (
    entries.length <= 16 &&
    entries.every(([k, v]) => k.length <= 64 && typeof v === 'string' && v.length <= 256)
  );
}

function checksum(json: string): string {
  return createHash('sha256').update(json).digest('hex').slice(0, 16);
}
