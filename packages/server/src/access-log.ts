/**
 * The daemon's log: one line per request (the original's JSON fields), one per CONNECT tunnel
 * and forwarded plain-HTTP request, and a few lifecycle lines. Lines are built only from
 * RequestOutcome, TunnelRecord and ForwardRecord, which carry no headers, query strings or
 * credentials, so nothing secret can reach the log.
 *
 * Every line has a `level` (info, warn, error) for log shippers, and every duration is in
 * seconds with millisecond precision (`request_time`, `upstream_response_time`), as nginx and
 * the original log them. Request, tunnel and forward lines carry `worker`, the 1-based id of the
 * process that served them (WORKERS; 1 for a single process).
 */
import type { RequestOutcome } from '@drp/core';
import type { ForwardRecord, TunnelRecord } from './mitm.js';

export type LogFormat = 'json' | 'text';
/** Where finished lines go (stdout in the daemon). Each call gets one line, newline included. */
export type LineSink = (line: string) => void;

export interface AccessLog {
  /** `extra`: fields appended to the line (e.g. `upstream_proxy` when that proxy failed). */
  request(outcome: RequestOutcome, client: string, extra?: Readonly<Record<string, string>>): void;
  tunnel(record: TunnelRecord): void;
  forward(record: ForwardRecord): void;
  /** A lifecycle or operational line: `type` is e.g. `startup`, `shutdown`, `warning`. */
  event(type: string, message: string, fields?: Record<string, unknown>): void;
}

const seconds = (ms: number | undefined) => (ms === undefined ? undefined : Number((ms / 1000).toFixed(3)));

export type LogLevel = 'info' | 'warn' | 'error';

/** 5xx answers are errors, other failed or abandoned requests warnings. */
export function requestLevel(o: Pick<RequestOutcome, 'status' | 'error' | 'aborted'>): LogLevel {
  if (o.status >= 500) return 'error';
  return o.error || o.aborted ? 'warn' : 'info';
}

/** Lifecycle lines: `warning` and `error` types are what they say, the rest information. */
function eventLevel(type: string): LogLevel {
  if (type === 'error') return 'error';
  return type === 'warning' ? 'warn' : 'info';
}

function jsonLine(fields: Record<string, unknown>): string {
  return `${JSON.stringify(fields)}\n`;
}

export interface AccessLogOptions {
  /** The serving process's 1-based id (default 1). */
  readonly worker?: number;
  /** Also name the worker in text lines (` worker=N`): when more than one serves the port. */
  readonly workerInText?: boolean;
}

export function createAccessLog(
  format: LogFormat,
  sink: LineSink,
  now: () => Date = () => new Date(),
  options: AccessLogOptions = {},
): AccessLog {
  const time = () => now().toISOString();
  const worker = options.worker ?? 1;
  const textWorker = options.workerInText ? ` worker=${worker}` : '';
  // Lifecycle lines name a worker only when one was given (the cluster's primary has none).
  const eventWorker = options.worker === undefined ? {} : { worker };
  if (format === 'text') {
    return {
      request(o, client, extra) {
        const upstream = o.upstreamMs === undefined ? '-' : `${seconds(o.upstreamMs)}s`;
        const more = Object.entries(extra ?? {})
          .map(([k, v]) => ` ${k}=${v}`)
          .join('');
        const flags = `${o.error ? ` error=${o.error}` : ''}${o.aborted ? ' aborted' : ''}${more}`;
        sink(
          `${time()} ${o.cacheStatus.padEnd(11)} ${o.status} ${o.method} ${o.registry}${o.path} ${o.requestType} ${o.bytes}B upstream=${upstream} total=${seconds(o.totalMs)}s client=${client}${flags}${textWorker}\n`,
        );
      },
      tunnel(r) {
        sink(
          `${time()} TUNNEL      ${r.host} in=${r.bytesIn}B out=${r.bytesOut}B ${seconds(r.ms)}s client=${r.client}${r.error ? ` error=${r.error}` : ''}${textWorker}\n`,
        );
      },
      forward(r) {
        sink(
          `${time()} FORWARD     ${r.status} ${r.method} http://${r.host}${r.path} ${r.bytes}B ${seconds(r.ms)}s client=${r.client}${r.error ? ` error=${r.error}` : ''}${textWorker}\n`,
        );
      },
      event(type, message, fields) {
        const extra = fields
          ? Object.entries(fields)
              .filter(([, v]) => v !== undefined)
              .map(([k, v]) => ` ${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
              .join('')
          : '';
        sink(`${time()} ${type.toUpperCase()}: ${message}${extra}\n`);
      },
    };
  }
  return {
    request(o, client, extra) {
      // Field names follow the original's JSON log where it has one.
      sink(
        jsonLine({
          time: time(),
          level: requestLevel(o),
          type: 'request',
          worker,
          client,
          upstream_cache_status: o.cacheStatus,
          request_type: o.requestType,
          method: o.method,
          host: o.registry,
          uri: o.path,
          status: o.status,
          bytes_sent: o.bytes,
          upstream_response_time: seconds(o.upstreamMs),
          request_time: seconds(o.totalMs),
          ...(o.error ? { error: o.error } : {}),
          ...(o.aborted ? { aborted: true } : {}),
          ...extra,
        }),
      );
    },
    tunnel(r) {
      sink(
        jsonLine({
          time: time(),
          level: r.error ? 'warn' : 'info',
          type: 'tunnel',
          worker,
          client: r.client,
          host: r.host,
          bytes_in: r.bytesIn,
          bytes_out: r.bytesOut,
          request_time: seconds(r.ms),
          ...(r.notTls ? { note: 'intercepted host, client did not speak TLS' } : {}),
          ...(r.error ? { error: r.error } : {}),
        }),
      );
    },
    forward(r) {
      sink(
        jsonLine({
          time: time(),
          level: r.error || r.status >= 500 ? 'warn' : 'info',
          type: 'forward',
          worker,
          client: r.client,
          method: r.method,
          host: r.host,
          uri: r.path,
          status: r.status,
          bytes_sent: r.bytes,
          request_time: seconds(r.ms),
          ...(r.error ? { error: r.error } : {}),
        }),
      );
    },
    event(type, message, fields) {
      sink(
        jsonLine({ time: time(), level: eventLevel(type), type, ...eventWorker, msg: message, ...fields }),
      );
    },
  };
}

/**
 * A sink that writes to a stream (stdout: synchronous for files and pipes on Linux). When the
 * reader goes away (EPIPE), logging stops; the proxy keeps serving.
 */
export function streamSink(stream: NodeJS.WritableStream): LineSink {
  let broken = false;
  stream.on('error', () => {
    broken = true;
  });
  return (line) => {
    if (!broken) stream.write(line);
  };
}
