/**
 * LVM report commands and their parsing, without running anything.
 *
 * `lvs`/`vgs` are always asked for `--reportformat json --units b --nosuffix
 * --binary`: sizes in plain bytes, binary fields as 0/1 (-1 = unknown), and a
 * structure that doesn't shift with column widths or locale. LVM 2.03.16
 * (Debian bookworm) prints every value as a JSON string; later versions'
 * `json_std` prints numbers, and both are accepted. The fixtures in
 * test/fixtures/lvm/ are real output (see their names for where from).
 */

export const LV_FIELDS = [
  'lv_name',
  'vg_name',
  'lv_uuid',
  'lv_path',
  'lv_dm_path',
  'lv_attr',
  'lv_size',
  'origin',
  'origin_size',
  'snap_percent',
  'lv_snapshot_invalid',
  'lv_tags',
  'lv_time',
  'vg_extent_size',
  // The VG's free space with each LV: creating a snapshot then needs no vgs of its own (one LVM
  // command less per volume, ~1 s each under emulation).
  'vg_free',
] as const;

export const VG_FIELDS = [
  'vg_name',
  'vg_uuid',
  'vg_attr',
  'vg_size',
  'vg_free',
  'vg_extent_size',
  'vg_extent_count',
  'vg_free_count',
  'lv_count',
  'snap_count',
  'vg_tags',
] as const;

const REPORT_ARGS = ['--reportformat', 'json', '--units', 'b', '--nosuffix', '--binary'];

/** Arguments for `lvs` reporting LV_FIELDS for `targets` (VG, VG/LV, /dev paths or @tag; none = all). */
export function lvsArgs(targets: readonly string[] = []): string[] {
  return [...REPORT_ARGS, '-o', LV_FIELDS.join(','), ...targets];
}

/** Arguments for `vgs` reporting VG_FIELDS for the named VGs (none = all). */
export function vgsArgs(names: readonly string[] = []): string[] {
  return [...REPORT_ARGS, '-o', VG_FIELDS.join(','), ...names];
}

export interface LogicalVolume {
  name: string;
  vg: string;
  uuid: string;
  /** /dev/VG/LV */
  path: string;
  /** /dev/mapper/VG-LV (dashes in names doubled) */
  dmPath: string;
  /** The 10-character lv_attr, e.g. `swi-a-s---`. */
  attr: string;
  sizeBytes: number;
  /** Name of the origin LV for a snapshot, '' otherwise. */
  origin: string;
  originSizeBytes?: number;
  /** How full a snapshot's copy-on-write space is, 0..100; undefined for non-snapshots. */
  snapPercent?: number;
  /** True/false from lv_snapshot_invalid; undefined when LVM reports it unknown (-1). */
  snapshotInvalid?: boolean;
  tags: string[];
  /** Creation time as LVM prints it ("2026-11-27 01:45:16 +0000"). */
  created: string;
  /** Free bytes in the LV's volume group when listed (undefined in reports without vg_free). */
  vgFreeBytes?: number;
  extentSizeBytes: number;
}

export interface VolumeGroup {
  name: string;
  uuid: string;
  attr: string;
  sizeBytes: number;
  freeBytes: number;
  extentSizeBytes: number;
  extentCount: number;
  freeExtents: number;
  lvCount: number;
  snapCount: number;
  tags: string[];
}

export class LvmReportError extends Error {
  constructor(readonly command: string, reason: string) {
    super(`${command}: unexpected report: ${reason}`);
    this.name = 'LvmReportError';
  }
}

type Row = Record<string, unknown>;

/** The rows of every report section named `section` ("lv" or "vg") in LVM's JSON output. */
export function reportRows(json: string, section: 'lv' | 'vg', command: string): Row[] {
  let doc: unknown;
  try {
    doc = JSON.parse(json);
  } catch (e) {
    throw new LvmReportError(command, `not JSON (${(e as Error).message})`);
  }
  const reports = (doc as { report?: unknown })?.report;
  if (!Array.isArray(reports)) throw new LvmReportError(command, 'no "report" array');
  const rows: Row[] = [];
  for (const r of reports) {
    const part = (r as Record<string, unknown>)?.[section];
    if (part === undefined) continue;
    if (!Array.isArray(part)) throw new LvmReportError(command, `"${section}" is not an array`);
    rows.push(...(part as Row[]));
  }
  return rows;
}

function text(row: Row, key: string, command: string): string {
  const v = row[key];
  if (typeof v === 'string') return v;
  if (typeof v === 'number') return String(v);
  throw new LvmReportError(command, `field ${key} missing in ${JSON.stringify(row)}`);
}

function optionalNumber(row: Row, key: string, command: string): number | undefined {
  const s = text(row, key, command).trim();
  if (s === '') return undefined;
  const n = Number(s);
  if (!Number.isFinite(n)) throw new LvmReportError(command, `field ${key} is not a number: ${JSON.stringify(s)}`);
  return n;
}

function number(row: Row, key: string, command: string): number {
  const n = optionalNumber(row, key, command);
  if (n === undefined) throw new LvmReportError(command, `field ${key} is empty in ${JSON.stringify(row)}`);
  return n;
}

/** LVM's binary fields: 1/0, -1 for unknown; older or non-binary output says "unknown" or a word. */
function tristate(row: Row, key: string, command: string): boolean | undefined {
  const s = text(row, key, command).trim();
  if (s === '1') return true;
  if (s === '0' || s === '') return false;
  if (s === '-1' || s === 'unknown') return undefined;
  return true; // non-binary output names the state ("invalid")
}

function tags(s: string): string[] {
  return s === '' ? [] : s.split(',');
}

export function parseLvsReport(json: string, command = 'lvs'): LogicalVolume[] {
  return reportRows(json, 'lv', command).map((row) => ({
    name: text(row, 'lv_name', command),
    vg: text(row, 'vg_name', command),
    uuid: text(row, 'lv_uuid', command),
    path: text(row, 'lv_path', command),
    dmPath: text(row, 'lv_dm_path', command),
    attr: text(row, 'lv_attr', command),
    sizeBytes: number(row, 'lv_size', command),
    origin: text(row, 'origin', command),
    originSizeBytes: optionalNumber(row, 'origin_size', command),
    snapPercent: optionalNumber(row, 'snap_percent', command),
    snapshotInvalid: tristate(row, 'lv_snapshot_invalid', command),
    tags: tags(text(row, 'lv_tags', command)),
    created: text(row, 'lv_time', command),
    extentSizeBytes: number(row, 'vg_extent_size', command),
    ...(row.vg_free === undefined ? {} : { vgFreeBytes: number(row, 'vg_free', command) }),
  }));
}

export function parseVgsReport(json: string, command = 'vgs'): VolumeGroup[] {
  return reportRows(json, 'vg', command).map((row) => ({
    name: text(row, 'vg_name', command),
    uuid: text(row, 'vg_uuid', command),
    attr: text(row, 'vg_attr', command),
    sizeBytes: number(row, 'vg_size', command),
    freeBytes: number(row, 'vg_free', command),
    extentSizeBytes: number(row, 'vg_extent_size', command),
    extentCount: number(row, 'vg_extent_count', command),
    freeExtents: number(row, 'vg_free_count', command),
    lvCount: number(row, 'lv_count', command),
    snapCount: number(row, 'snap_count', command),
    tags: tags(text(row, 'vg_tags', command)),
  }));
}

/** lv_attr character 1: volume type; `s` snapshot, `S` invalid snapshot (see lvs(8)). */
export function isSnapshotAttr(attr: string): boolean {
  return attr[0] === 's' || attr[0] === 'S';
}

export interface SnapshotHealth {
  ok: boolean;
  /** Copy-on-write use in percent, when LVM reported it. */
  percentUsed?: number;
  /** Why the snapshot can't be trusted (only when !ok). */
  problem?: string;
}

/**
 * Whether a snapshot's data can still be trusted, from one `lvs` record:
 * lv_snapshot_invalid, the attr's state character (5th: `I` invalid, `S`
 * invalid and suspended, `m`/`M` merge failed, `-` not active) and a
 * copy-on-write space at 100 %, which means it overflowed.
 */
export function assessSnapshot(lv: LogicalVolume): SnapshotHealth {
  const name = `${lv.vg}/${lv.name}`;
  const state = lv.attr[4] ?? '';
  const percentUsed = lv.snapPercent;
  const bad = (problem: string): SnapshotHealth => ({ ok: false, percentUsed, problem: `snapshot ${name} ${problem}` });
  if (!isSnapshotAttr(lv.attr)) return bad(`is not a snapshot (attr ${lv.attr})`);
  if (lv.snapshotInvalid === true || state === 'I' || state === 'S' || lv.attr[0] === 'S') {
    return bad(`is invalid: its copy-on-write space overflowed (attr ${lv.attr}, ${percentUsed ?? '?'}% used)`);
  }
  if (state === 'm' || state === 'M') return bad(`has a failed merge (attr ${lv.attr})`);
  if (state !== 'a') return bad(`is not active (attr ${lv.attr})`);
  if (percentUsed !== undefined && percentUsed >= 100) return bad(`is full (${percentUsed}% used): it overflowed`);
  return { ok: true, percentUsed };
}
