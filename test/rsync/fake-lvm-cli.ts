/**
 * A FAKE of LVM's lvs, vgs, lvcreate and lvremove, for `xenbackup run`
 * tests on this machine, whose kernel has no device-mapper (real LVM cannot
 * run here; the VM suite runs the real one). fake-lvm.ts puts shims named
 * after those commands first in PATH; each runs this script with the
 * command's name and arguments. State: the JSON file $XB_FAKE_LVM_STATE.
 *
 * A logical volume is an image file. A "snapshot" (lvcreate -s) is a copy
 * of its origin's image made at that moment, attached to a loop device,
 * which lvs reports as the snapshot's lv_path, so xenbackup mounts it like
 * a snapshot; lvremove detaches and deletes it. Reports are JSON in the
 * form LVM 2.03.16 prints with --reportformat json --binary (see
 * test/fixtures/lvm/ for the real thing).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';

export interface FakeLv {
  name: string;
  image: string;
  sizeBytes: number;
  origin?: string;
  loop?: string;
  tags: string[];
}

export interface FakeLvmState {
  vg: string;
  extentBytes: number;
  vgBytes: number;
  lvs: FakeLv[];
}

const EXTENT_FIELDS = new Set(['-o', '--reportformat', '--units', '-n', '-L', '-l', '--addtag']);

function load(file: string): FakeLvmState {
  return JSON.parse(fs.readFileSync(file, 'utf8')) as FakeLvmState;
}

function save(file: string, s: FakeLvmState): void {
  fs.writeFileSync(`${file}.tmp`, JSON.stringify(s, null, 1));
  fs.renameSync(`${file}.tmp`, file);
}

/** Options with a value, and the remaining operands. */
function parse(args: string[]): { opts: Map<string, string>; operands: string[] } {
  const opts = new Map<string, string>();
  const operands: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (EXTENT_FIELDS.has(a)) opts.set(a, args[++i] ?? '');
    else if (a.startsWith('-')) opts.set(a, '');
    else operands.push(a);
  }
  return { opts, operands };
}

function fail(message: string, code = 5): never {
  process.stderr.write(`  ${message}\n`);
  process.exit(code);
}

function lvRow(s: FakeLvmState, lv: FakeLv): Record<string, string> {
  const origin = lv.origin ? s.lvs.find((o) => o.name === lv.origin) : undefined;
  const hasSnapshots = s.lvs.some((o) => o.origin === lv.name);
  return {
    lv_name: lv.name,
    vg_name: s.vg,
    lv_uuid: `fake-${lv.name}`,
    lv_path: lv.loop ?? `/dev/${s.vg}/${lv.name}`,
    lv_dm_path: `/dev/mapper/${s.vg}-${lv.name.replace(/-/g, '--')}`,
    lv_attr: lv.origin ? 'swi-aos---' : hasSnapshots ? 'owi-aos---' : '-wi-ao----',
    lv_size: String(lv.sizeBytes),
    origin: lv.origin ?? '',
    origin_size: origin ? String(origin.sizeBytes) : '',
    snap_percent: lv.origin ? '1.00' : '',
    lv_snapshot_invalid: lv.origin ? '0' : '-1',
    lv_tags: lv.tags.join(','),
    lv_time: '2026-11-27 01:00:00 +0000',
    vg_extent_size: String(s.extentBytes),
    vg_free: String(vgFree(s)),
  };
}

function vgFree(s: FakeLvmState): number {
  return s.vgBytes - s.lvs.reduce((n, lv) => n + lv.sizeBytes, 0);
}

function findLv(s: FakeLvmState, ref: string): FakeLv | undefined {
  const m = /^(?:\/dev\/)?([^/]+)\/([^/]+)$/.exec(ref);
  if (!m || m[1] !== s.vg) return undefined;
  return s.lvs.find((lv) => lv.name === m[2]);
}

function main(): void {
  const stateFile = process.env.XB_FAKE_LVM_STATE;
  if (!stateFile) fail('XB_FAKE_LVM_STATE is not set', 3);
  const [command, ...args] = process.argv.slice(2);
  const s = load(stateFile);
  const { opts, operands } = parse(args);
  if (command === 'lvs') {
    const rows: Record<string, string>[] = [];
    for (const target of operands.length ? operands : [s.vg]) {
      if (target.startsWith('@')) rows.push(...s.lvs.filter((lv) => lv.tags.includes(target.slice(1))).map((lv) => lvRow(s, lv)));
      else if (target === s.vg) rows.push(...s.lvs.map((lv) => lvRow(s, lv)));
      else {
        const lv = findLv(s, target);
        if (!lv) fail(`Failed to find logical volume "${target.replace(/^\/dev\//, '')}"`);
        rows.push(lvRow(s, lv));
      }
    }
    process.stdout.write(JSON.stringify({ report: [{ lv: rows }] }) + '\n');
  } else if (command === 'vgs') {
    const used = s.vgBytes - vgFree(s);
    const row = {
      vg_name: s.vg,
      vg_uuid: 'fake-vg',
      vg_attr: 'wz--n-',
      vg_size: String(s.vgBytes),
      vg_free: String(s.vgBytes - used),
      vg_extent_size: String(s.extentBytes),
      vg_extent_count: String(Math.floor(s.vgBytes / s.extentBytes)),
      vg_free_count: String(Math.floor((s.vgBytes - used) / s.extentBytes)),
      lv_count: String(s.lvs.length),
      snap_count: String(s.lvs.filter((lv) => lv.origin).length),
      vg_tags: '',
    };
    process.stdout.write(JSON.stringify({ report: [{ vg: operands.length && !operands.includes(s.vg) ? [] : [row] }] }) + '\n');
  } else if (command === 'lvcreate') {
    const origin = findLv(s, operands[0] ?? '');
    const name = opts.get('-n');
    if (!opts.has('-s') || !origin || !name) fail(`fake lvcreate: only "lvcreate -s -n NAME -L SIZE --addtag TAG VG/ORIGIN" of a known origin (${args.join(' ')})`, 3);
    if (s.lvs.some((lv) => lv.name === name)) fail(`Logical Volume "${name}" already exists in volume group "${s.vg}"`);
    const image = `${origin.image}.${name}`;
    execFileSync('cp', ['--sparse=always', origin.image, image]);
    const loop = execFileSync('losetup', ['--find', '--show', image], { encoding: 'utf8' }).trim();
    const size = Number(/^(\d+)b$/.exec(opts.get('-L') ?? '')?.[1] ?? s.extentBytes);
    s.lvs.push({ name, image, sizeBytes: size, origin: origin.name, loop, tags: opts.has('--addtag') ? [opts.get('--addtag')!] : [] });
    save(stateFile, s);
    process.stdout.write(`  Logical volume "${name}" created.\n`);
  } else if (command === 'lvremove') {
    const lv = findLv(s, operands[0] ?? '');
    if (!lv) fail(`Failed to find logical volume "${operands[0]}"`);
    if (lv.loop) execFileSync('losetup', ['-d', lv.loop]);
    fs.rmSync(lv.image, { force: true });
    s.lvs = s.lvs.filter((x) => x !== lv);
    save(stateFile, s);
    process.stdout.write(`  Logical volume "${lv.name}" successfully removed.\n`);
  } else {
    fail(`fake LVM: unknown command ${command}`, 3);
  }
}

main();
