/**
 * Quantities as a person reads them: byte sizes in binary units, durations,
 * counts with thousands separators, UTC times. Pure and locale-independent,
 * so tests compare exact strings. The run report (report/format.ts, which
 * re-exports these), the CLI and the engines' messages all show sizes and
 * times the same way; they live in util/ so that an engine needs nothing
 * from report/.
 */

const BYTE_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'];

/** `0 B`, `512 B`, `1.5 KiB`, `2.1 GiB`, `143 GiB`: binary units, one decimal below 100. */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes) || bytes < 0) return '?';
  if (bytes < 1024) return `${Math.round(bytes)} B`;
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < BYTE_UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  let text = value < 100 ? value.toFixed(1) : String(Math.round(value));
  // Rounding can reach the next unit (1023.96 KiB -> "1024"): show 1.0 MiB instead.
  if (Number(text) >= 1024 && unit < BYTE_UNITS.length - 1) {
    unit += 1;
    text = (Number(text) / 1024).toFixed(1);
  }
  return `${text} ${BYTE_UNITS[unit]}`;
}

/** `0.4 s`, `3.2 s`, `42 s`, `3 min 5 s`, `14 min`, `2 h 5 min`: coarser as it grows. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) ms = 0;
  if (ms < 9950) return `${(ms / 1000).toFixed(1)} s`;
  const seconds = Math.round(ms / 1000);
  if (seconds < 60) return `${seconds} s`;
  if (seconds < 600) {
    const rest = seconds % 60;
    return `${Math.floor(seconds / 60)} min${rest ? ` ${rest} s` : ''}`;
  }
  const minutes = Math.round(seconds / 60);
  if (minutes < 60) return `${minutes} min`;
  const rest = minutes % 60;
  return `${Math.floor(minutes / 60)} h${rest ? ` ${rest} min` : ''}`;
}

/** `1234567` -> `1,234,567` (fixed, not locale-dependent). */
export function formatCount(n: number): string {
  return String(Math.round(n)).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

/** `2026-11-27 02:00:00 UTC` */
export function formatUtc(d: Date): string {
  return `${d.toISOString().slice(0, 19).replace('T', ' ')} UTC`;
}
