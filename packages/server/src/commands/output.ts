/** Small output helpers shared by the one-shot commands (`cache ...`, `prefetch`). */

/** 1536 -> `1.5 KiB`. */
export function humanBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${n} B` : `${value.toFixed(1)} ${units[unit]}`;
}

/** Left-aligned columns, two spaces apart; numbers (right-aligned) where `right[i]`. */
export function table(
  header: readonly string[],
  rows: readonly (readonly string[])[],
  right: boolean[] = [],
): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (right[i] ? c.padStart(widths[i] ?? 0) : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return `${[line(header), ...rows.map(line)].join('\n')}\n`;
}

/** A usage error: the command prints it and exits 2, like bad configuration. */
export class UsageError extends Error {}
