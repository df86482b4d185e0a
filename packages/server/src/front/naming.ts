/** How the front names clients and hosts in logs, refusals and bookkeeping. */
import type { Duplex } from 'node:stream';

/** The client's address, IPv4-mapped IPv6 shown as IPv4; `-` when unknown. */
export function clientOf(socket: Duplex | undefined): string {
  const address = (socket as { remoteAddress?: string } | undefined)?.remoteAddress;
  if (!address) return '-';
  return address.startsWith('::ffff:') ? address.slice(7) : address;
}

/** `host:port`, IPv6 literals bracketed. */
export function hostKey(host: string, port: number): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}

const REASONS: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  407: 'Proxy Authentication Required',
};

/** A whole answer on a raw socket (CONNECT), then close. */
export function statusLine(status: number, headers: Readonly<Record<string, string>> = {}): string {
  const extra = Object.entries(headers)
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join('');
  return `HTTP/1.1 ${status} ${REASONS[status] ?? 'Error'}\r\n${extra}connection: close\r\ncontent-length: 0\r\n\r\n`;
}
