/**
 * `xenbackup demo`: the engine end to end with no configuration and no
 * root: a sample tree, a full backup, changes, an incremental, the listing,
 * and a restore of one file as it was in the first backup. Everything is
 * written under one folder, which it names at the end.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Command } from 'commander';
import { loadEngine } from '../engines/registry.js';
import { restore } from '../engines/restore.js';
import { VolumeStore } from '../repo/volume-store.js';
import { LocalStorage } from '../storage/local-storage.js';
import { formatBytes } from '../report/format.js';
import { listVolume } from './list.js';
import { openConsole } from './common.js';

function makeSampleTree(root: string): void {
  const w = (rel: string, text: string): void => {
    fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
    fs.writeFileSync(path.join(root, rel), text);
  };
  w('etc/hostname', 'web1\n');
  w('etc/motd', 'Welcome to web1, first version.\n');
  w('etc/app/config.ini', '[server]\nport = 8080\n');
  for (let i = 0; i < 200; i++) w(`var/www/page${String(i).padStart(3, '0')}.html`, `<h1>page ${i}</h1>\n`.repeat(20));
  w('var/log/app.log', 'started\n');
  fs.symlinkSync('../etc/motd', path.join(root, 'var/motd-link'));
  fs.mkdirSync(path.join(root, 'tmp/empty'), { recursive: true });
}

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description('show the engine end to end on a sample tree (no configuration, no root needed)')
    .option('--dir <dir>', 'the folder to work in (default: a new one under the temp directory)')
    .addHelpText('after', `
Example:
  xenbackup demo            # then look around the folder it names`)
    .action(async (o: { dir?: string }) => {
      const { log } = openConsole({});
      const base = o.dir ? path.resolve(o.dir) : fs.mkdtempSync(path.join(os.tmpdir(), 'xenbackup-demo-'));
      fs.mkdirSync(base, { recursive: true });
      const source = path.join(base, 'source');
      const medium = path.join(base, 'medium');
      const restored = path.join(base, 'restored');
      if (fs.existsSync(source)) throw new Error(`${source} exists already; give the demo an empty --dir`);
      fs.mkdirSync(medium, { recursive: true });
      makeSampleTree(source);
      const storage = new LocalStorage(medium);
      const tar = await loadEngine('tar');
      const common = {
        source,
        storage,
        host: 'demo-host',
        volume: 'web1/root',
        compression: 'zstd' as const,
        fullIntervalDays: 7,
        maxChainLength: 14,
        oneFileSystem: false,
        excludes: [],
        liveSource: false,
        logger: log,
      };
      log.info(`demo: sample tree in ${source}`);
      const first = await (await tar.prepareBackup({ ...common, forceFull: false })).commit();
      log.info(`demo: changing etc/motd, deleting var/log/app.log, adding etc/new.conf`);
      fs.writeFileSync(path.join(source, 'etc/motd'), 'Welcome to web1, second version.\n');
      fs.rmSync(path.join(source, 'var/log/app.log'));
      fs.writeFileSync(path.join(source, 'etc/new.conf'), 'new = yes\n');
      // Backup ids are per second: make sure the second one gets its own.
      await new Promise((r) => setTimeout(r, 1100));
      const second = await (await tar.prepareBackup({ ...common, forceFull: false })).commit();
      const store = new VolumeStore(storage, 'demo-host', 'web1/root');
      const out = process.stdout;
      out.write(`\nBackups of web1/root on ${medium}:\n`);
      for (const b of await listVolume(store)) {
        out.write(`  ${b.id} ${b.kind.padEnd(11)} ${String(b.files).padStart(4)} entries  ${formatBytes(b.archiveBytes).padStart(9)}  ${b.archive}\n`);
      }
      const r = await restore({
        medium,
        host: 'demo-host',
        volume: 'web1/root',
        paths: [Buffer.from('etc/motd')],
        targetDir: restored,
        at: new Date(Date.parse(first.finishedAt)),
        force: false,
        logger: log,
      });
      const text = fs.readFileSync(path.join(restored, 'etc/motd'), 'utf8').trim();
      out.write(`\nRestored etc/motd as of backup ${r.backup.id} (the full): "${text}"\n`);
      out.write(`The live tree now says: "${fs.readFileSync(path.join(source, 'etc/motd'), 'utf8').trim()}"\n`);
      out.write(`\nEverything is under ${base}:\n  source/    the sample tree\n  medium/    the backup medium (${second.kind} ${second.id} builds on ${first.id})\n  restored/  the restored file\n`);
      out.write(`Stock GNU tar restores the chain too:\n  mkdir /tmp/x && for a in ${medium}/demo-host/web1/root/*.tar.zst; do tar --zstd -x -G -f "$a" -C /tmp/x; done\n`);
    });
}
