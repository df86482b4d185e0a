/**
 * The parsers of the variable table (table.ts): text in, typed value out. A bad value throws
 * Expected with what was expected; the loader adds the variable's name and the value (or not,
 * for secrets). The cache's own options are checked by core (`resolveOptions`), not here.
 */
import { readFileSync, statSync } from 'node:fs';
import { isIP } from 'node:net';
import { resolve } from 'node:path';
import {
  type AccessCheckMode,
  createCidrList,
  isDrpError,
  parseDuration,
  parseHostPort,
  parseMappingList,
  parseNoProxy,
  parseUpstreamProxy,
  type RegistryCacheOptions,
  resolveOptions,
  splitList,
} from '@drp/core';
import { BadFile, Expected } from '../errors.js';
import { type ProxyUser, parseHtpasswd } from '../front/proxy-auth.js';
import { type InterceptRule, parseRegistries } from '../registries.js';

export interface ParseContext {
  /** Base of relative paths. */
  readonly cwd: string;
}

export type Parser<T> = (value: string, context: ParseContext) => T;

const TRUE = ['true', '1', 'yes', 'on'];
const FALSE = ['false', '0', 'no', 'off'];
const DURATION = 'a duration such as 60s, 10m, 1h or 60d (a bare number is seconds)';

export function text(value: string): string {
  return value;
}

export function flag(value: string): boolean {
  const v = value.trim().toLowerCase();
  if (TRUE.includes(v)) return true;
  if (FALSE.includes(v)) return false;
  throw new Expected('true or false');
}

export function durationMs(value: string): number {
  const ms = parseDuration(value);
  if (ms === undefined) throw new Expected(DURATION);
  return ms;
}

/**
 * A value core validates itself: `build` turns it into core options, and core's own check
 * (resolveOptions, with its DRP_CONFIG_INVALID detail) says what it expected.
 */
export function checkedByCore<T>(
  build: (value: string) => Partial<RegistryCacheOptions>,
  result: (value: string) => T,
): Parser<T> {
  return (value) => {
    try {
      resolveOptions({ cacheDir: '.', ...build(value) });
    } catch (error) {
      const detail = isDrpError(error) ? (error.detail as { expected?: string } | undefined) : undefined;
      if (isDrpError(error) && error.code === 'DRP_CONFIG_INVALID' && detail?.expected) {
        throw new Expected(detail.expected);
      }
      throw error;
    }
    return result(value);
  };
}

export function listenPort(value: string): number {
  const v = value.trim();
  if (!/^\d{1,5}$/.test(v) || Number(v) > 65535) throw new Expected('a port number from 0 to 65535');
  return Number(v);
}

export function bindAddress(value: string): string {
  const v = value.trim().replace(/^\[(.*)\]$/, '$1');
  if (isIP(v) === 0 && v !== 'localhost') {
    throw new Expected('an IP address such as ::, 0.0.0.0 or 127.0.0.1');
  }
  return v;
}

export function registries(value: string): InterceptRule[] {
  return parseRegistries(value);
}

export function mappings(value: string): Record<string, string> {
  try {
    return parseMappingList(value);
  } catch (error) {
    throw new Expected((error as Error).message, true);
  }
}

export function readableFile(value: string, context: ParseContext): string {
  const path = resolve(context.cwd, value);
  let isFile: boolean;
  try {
    isFile = statSync(path).isFile();
  } catch {
    throw new Expected('a readable file (it does not exist)');
  }
  if (!isFile) throw new Expected('a readable file (it is not a regular file)');
  return path;
}

export function accessMode(value: string): AccessCheckMode {
  const v = value.trim().toLowerCase();
  if (v === 'private' || v === 'all' || v === 'off') return v;
  if (TRUE.includes(v)) return 'all';
  if (FALSE.includes(v)) return 'off';
  throw new Expected('private, all or off');
}

export function logFormat(value: string): 'json' | 'text' {
  const v = value.trim().toLowerCase();
  if (v !== 'json' && v !== 'text') throw new Expected('json or text');
  return v;
}

export function debugNamespaces(value: string): string | undefined {
  const v = value.trim();
  const lower = v.toLowerCase();
  if (lower === '' || FALSE.includes(lower)) return undefined;
  if (TRUE.includes(lower)) return 'drp:*';
  if (!/^[\w:*,.\- ]+$/.test(v)) throw new Expected('true, false, or debug namespaces such as drp:*');
  return v;
}

export function cidrs(value: string): string[] {
  try {
    return [...createCidrList(splitList(value)).entries];
  } catch (error) {
    throw new Expected(
      `CIDR ranges such as 10.0.0.0/8 or fc00::/7, comma- or space-separated (${(error as Error).message})`,
    );
  }
}

export function clients(value: string): string[] | 'all' {
  if (value.trim().toLowerCase() === 'all') return 'all';
  const list = cidrs(value);
  if (list.length === 0) throw new Expected('CIDR ranges, or all');
  return list;
}

export function ports(value: string): number[] | '*' {
  if (value.trim() === '*') return '*';
  const list: number[] = [];
  for (const entry of splitList(value)) {
    if (!/^[1-9]\d{0,4}$/.test(entry) || Number(entry) > 65535) {
      throw new Expected(
        `ports from 1 to 65535, comma- or space-separated, or *; got ${JSON.stringify(entry)}`,
        true,
      );
    }
    list.push(Number(entry));
  }
  return list;
}

export function userPassword(value: string): ProxyUser {
  const colon = value.indexOf(':');
  if (colon <= 0 || colon === value.length - 1) throw new Expected('user:password');
  return { username: value.slice(0, colon), password: value.slice(colon + 1) };
}

/** An htpasswd file: its path, then its bcrypt entries. */
export function htpasswdFile(value: string, context: ParseContext): ProxyUser[] {
  const path = readableFile(value, context);
  try {
    return parseHtpasswd(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new BadFile(`${path}: ${(error as Error).message}`);
  }
}

export function upstreamProxy(value: string): string {
  const parsed = parseUpstreamProxy(value);
  if (typeof parsed === 'string') throw new Expected(parsed);
  return value.trim();
}

export function noProxy(value: string): string {
  const parsed = parseNoProxy(value);
  if (typeof parsed === 'string') throw new Expected(parsed);
  return value.trim();
}

export function registryHost(value: string): string {
  const v = value.trim().toLowerCase();
  if (!parseHostPort(v) || /^https?:/.test(v))
    throw new Expected('a registry host such as docker.io or ghcr.io');
  return v;
}
