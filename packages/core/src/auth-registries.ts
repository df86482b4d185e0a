/**
 * The original's `AUTH_REGISTRIES` string: entries separated by `AUTH_REGISTRIES_DELIMITER`
 * (default one space), each `host<AUTH_REGISTRY_DELIMITER>user<...>password` (default `:`).
 *
 *   auth.docker.io:hubuser:hubpass your.registry:user:pass
 *   gcr.io:::_json_key:::{ "type": "service_account", ... };;;auth.docker.io:::u:::p   (";;;" / ":::")
 *
 * Unlike the original, an entry that does not split into exactly three non-empty fields is an
 * error (the original silently cut a password at its first delimiter). Error messages name the
 * entry by position and, when it is recognisably one, its host; never a user name or password.
 */
import { DrpError } from './api/errors.js';
import type { RegistryCredential } from './options.js';
import { parseHostPort } from './upstream/target.js';

export interface AuthRegistriesDelimiters {
  /** Between entries (`AUTH_REGISTRIES_DELIMITER`). Default one space: any run of whitespace. */
  entryDelimiter?: string;
  /** Between host, user and password (`AUTH_REGISTRY_DELIMITER`). Default `:`. */
  fieldDelimiter?: string;
}

function configError(message: string): DrpError {
  return new DrpError('DRP_CONFIG_INVALID', `invalid AUTH_REGISTRIES: ${message}`);
}

function splitEntries(value: string, delimiter: string): string[] {
  // The default (a single space) keeps the original's shell behaviour: any whitespace separates.
  const parts = delimiter === ' ' ? value.split(/\s+/) : value.split(delimiter);
  return parts.map((p) => p.trim()).filter((p) => p !== '');
}

/** A host is only shown when it is recognisably one; otherwise it may be a fragment of a secret. */
function describe(index: number, fields: readonly string[]): string {
  const where = `entry ${index + 1}`;
  const host = fields[0];
  if (fields.length >= 3 && host !== undefined && parseHostPort(host)) return `${where} (host ${host})`;
  return where;
}

/**
 * Parses `AUTH_REGISTRIES`. Throws a DrpError (DRP_CONFIG_INVALID) naming the bad entry.
 * An empty or blank value gives no credentials.
 */
export function parseAuthRegistries(
  value: string | undefined,
  delimiters: AuthRegistriesDelimiters = {},
): RegistryCredential[] {
  const entryDelimiter = delimiters.entryDelimiter ?? ' ';
  const fieldDelimiter = delimiters.fieldDelimiter ?? ':';
  if (entryDelimiter === '') throw configError('AUTH_REGISTRIES_DELIMITER must not be empty');
  if (fieldDelimiter === '') throw configError('AUTH_REGISTRY_DELIMITER must not be empty');
  if (entryDelimiter === fieldDelimiter) {
    throw configError('AUTH_REGISTRIES_DELIMITER and AUTH_REGISTRY_DELIMITER must differ');
  }
  if (value === undefined || value.trim() === '') return [];

  const seen = new Map<string, number>();
  const result: RegistryCredential[] = [];
  for (const [index, entry] of splitEntries(value, entryDelimiter).entries()) {
    const fields = entry.split(fieldDelimiter);
    const where = describe(index, fields);
    const shown = JSON.stringify(fieldDelimiter);
    if (fields.length !== 3) {
      const hint =
        fields.length > 3
          ? `; if the password contains ${shown}, set AUTH_REGISTRY_DELIMITER to a sequence it does not contain (e.g. ":::")`
          : entryDelimiter === ' '
            ? '; if the password contains spaces, set AUTH_REGISTRIES_DELIMITER to a sequence it does not contain (e.g. ";;;")'
            : '';
      throw configError(
        `${where} has ${fields.length} field(s) separated by ${shown}, expected exactly 3 (host, user, password)${hint}`,
      );
    }
    const [rawHost = '', username = '', password = ''] = fields;
    const host = rawHost.trim();
    if (host === '') throw configError(`${where} has an empty host`);
    const parsed = parseHostPort(host);
    if (!parsed) throw configError(`${where} does not start with a valid host name`);
    if (username === '') throw configError(`${where} has an empty user name`);
    if (password === '') throw configError(`${where} has an empty password`);
    const key = host.toLowerCase();
    const previous = seen.get(key);
    if (previous !== undefined) {
      throw configError(`${where} repeats the host of entry ${previous + 1}; give each host one entry`);
    }
    seen.set(key, index);
    result.push({ host: key, username, password });
  }
  return result;
}
