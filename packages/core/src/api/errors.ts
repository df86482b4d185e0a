/**
 * Errors with stable codes. The code is an error's identity (never its HTTP status), and every
 * code maps onto an OCI distribution error body so registry clients get an answer they parse.
 */

/** OCI distribution-spec error codes (plus Docker Hub's TOOMANYREQUESTS). */
export type OciErrorCode =
  | 'BLOB_UNKNOWN'
  | 'BLOB_UPLOAD_INVALID'
  | 'BLOB_UPLOAD_UNKNOWN'
  | 'DIGEST_INVALID'
  | 'MANIFEST_BLOB_UNKNOWN'
  | 'MANIFEST_INVALID'
  | 'MANIFEST_UNKNOWN'
  | 'NAME_INVALID'
  | 'NAME_UNKNOWN'
  | 'SIZE_INVALID'
  | 'UNAUTHORIZED'
  | 'DENIED'
  | 'UNSUPPORTED'
  | 'TOOMANYREQUESTS'
  | 'UNKNOWN';

export interface DrpErrorSpec {
  readonly status: number;
  readonly oci: OciErrorCode;
}

/** drp's own error codes. Never reuse or renumber one: logs and tests match on them. */
export const ERROR_CODES = {
  DRP_NAME_INVALID: { status: 400, oci: 'NAME_INVALID' },
  DRP_DIGEST_INVALID: { status: 400, oci: 'DIGEST_INVALID' },
  DRP_REFERENCE_INVALID: { status: 400, oci: 'MANIFEST_INVALID' },
  DRP_PATH_INVALID: { status: 400, oci: 'UNSUPPORTED' },
  DRP_RANGE_INVALID: { status: 416, oci: 'BLOB_UNKNOWN' },
  DRP_PUSH_DISABLED: { status: 405, oci: 'UNSUPPORTED' },
  DRP_METHOD_NOT_ALLOWED: { status: 405, oci: 'UNSUPPORTED' },
  /** Refused by a step of the pipeline (createRegistryCache's `use`), e.g. a deny list. */
  DRP_DENIED: { status: 403, oci: 'DENIED' },
  DRP_UPSTREAM_UNREACHABLE: { status: 502, oci: 'UNKNOWN' },
  DRP_UPSTREAM_TIMEOUT: { status: 504, oci: 'UNKNOWN' },
  DRP_UPSTREAM_TLS: { status: 502, oci: 'UNKNOWN' },
  DRP_UPSTREAM_PROTOCOL: { status: 502, oci: 'UNKNOWN' },
  DRP_UPSTREAM_TRUNCATED: { status: 502, oci: 'UNKNOWN' },
  DRP_DIGEST_MISMATCH: { status: 502, oci: 'DIGEST_INVALID' },
  DRP_TOO_MANY_REDIRECTS: { status: 502, oci: 'UNKNOWN' },
  DRP_MANIFEST_TOO_LARGE: { status: 502, oci: 'MANIFEST_INVALID' },
  /** Upstream (or a redirect) led to an address in BLOCKED_DESTINATIONS. */
  DRP_DESTINATION_BLOCKED: { status: 502, oci: 'UNKNOWN' },
  /** Upstream redirected from https to http. */
  DRP_REDIRECT_REFUSED: { status: 502, oci: 'UNKNOWN' },
  /** The upstream (corporate) proxy is down, refused the CONNECT or wants credentials. */
  DRP_UPSTREAM_PROXY: { status: 502, oci: 'UNKNOWN' },
  DRP_CACHE_IO: { status: 500, oci: 'UNKNOWN' },
  DRP_CONFIG_INVALID: { status: 500, oci: 'UNKNOWN' },
  DRP_INTERNAL: { status: 500, oci: 'UNKNOWN' },
} as const satisfies Record<string, DrpErrorSpec>;

export type DrpErrorCode = keyof typeof ERROR_CODES;

export interface DrpErrorOptions {
  /** Machine-readable detail for the OCI body. Never put credentials here. */
  detail?: unknown;
  cause?: unknown;
}

export class DrpError extends Error {
  readonly code: DrpErrorCode;
  readonly status: number;
  readonly oci: OciErrorCode;
  readonly detail: unknown;

  constructor(code: DrpErrorCode, message: string, options: DrpErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'DrpError';
    this.code = code;
    this.status = ERROR_CODES[code].status;
    this.oci = ERROR_CODES[code].oci;
    this.detail = options.detail;
  }
}

export function isDrpError(error: unknown): error is DrpError {
  return error instanceof DrpError;
}

/** The JSON body registry clients expect: `{"errors":[{"code","message","detail"}]}`. */
export function ociErrorBody(code: OciErrorCode, message: string, detail?: unknown): string {
  const entry: { code: OciErrorCode; message: string; detail?: unknown } = { code, message };
  if (detail !== undefined) entry.detail = detail;
  return JSON.stringify({ errors: [entry] });
}
