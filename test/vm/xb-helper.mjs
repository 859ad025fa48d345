// Node helpers for the `xenbackup run` VM scenarios (test/vm/xenbackup-lib.sh), run in the guest:
//   node xb-helper.mjs smtp DIR [PORT]  a real SMTP server (the smtp-server package) on 127.0.0.1:PORT
//                                  (default: an ephemeral port); once it listens, the port is written to
//                                  DIR/port; each message as DIR/N.eml and its unfolded
//                                  Subject header as DIR/N.subject (N = 1, 2, ...). Runs until killed.
//   node xb-helper.mjs cli FILE    runs xenbackup commands in this one process (a node start costs ~15-40 s in
//                                  the guest): FILE has one command per line, its arguments tab-separated;
//                                  prints "@@rc N LINE" after each; a line
//                                  "@lock<TAB>PATH" checks the lock as `lock` does.
//   node xb-helper.mjs lock PATH   exits 0 when xenbackup's run lock at PATH is free (takes it, releases it),
//                                  3 with the holder on stderr when it is held.
import { writeFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { createRequire } from 'node:module';

const [cmd, arg, arg2] = process.argv.slice(2);
const host = process.env.XB_HOST ?? '/host';

if (cmd === 'smtp') {
  const { SMTPServer } = createRequire(join(host, 'package.json'))('smtp-server');
  let n = 0;
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    logger: false,
    onData(stream, _session, callback) {
      const chunks = [];
      stream.on('data', (c) => chunks.push(c));
      stream.on('end', () => {
        const raw = Buffer.concat(chunks).toString('utf8');
        const head = raw.split(/\r?\n\r?\n/, 1)[0].replace(/\r?\n[ \t]+/g, ' ');
        const subject = (head.match(/^Subject: (.*)$/im) ?? [, ''])[1];
        n += 1;
        writeFileSync(join(arg, `${n}.eml`), raw);
        // the subject file appears last and whole: the shell waits for it
        writeFileSync(join(arg, `.${n}.subject`), `${subject}\n`);
        renameSync(join(arg, `.${n}.subject`), join(arg, `${n}.subject`));
        callback();
      });
    },
  });
  server.listen(Number(arg2 ?? 0), '127.0.0.1', () => {
    // written aside and renamed: the shell reads it whole
    writeFileSync(join(arg, '.port'), `${server.server.address().port}\n`);
    renameSync(join(arg, '.port'), join(arg, 'port'));
  });
} else if (cmd === 'cli') {
  const { readFileSync } = await import('node:fs');
  // The build bin/xenbackup runs (the bundle when current: a start of the modules costs more here).
  const main = await (await import(join(host, 'bin/program.mjs'))).loadMain();
  const lines = readFileSync(arg, 'utf8').split('\n').filter((l) => l);
  for (const [i, line] of lines.entries()) {
    process.exitCode = undefined;
    const args = line.split('\t');
    const rc = args[0] === '@lock' ? await lockFree(args[1]) : await main(['node', 'xenbackup', ...args]);
    console.log(`@@rc ${rc} ${i + 1}`);
  }
  process.exit(0);
} else if (cmd === 'lock') {
  process.exit(await lockFree(arg));
} else {
  console.error('usage: xb-helper.mjs smtp DIR [PORT] | cli FILE | lock PATH');
  process.exit(2);
}

// 0 when a new process can take the run lock at `path` (and gives it back), 3 when it is held.
async function lockFree(path) {
  const { acquireLock, LockHeldError } = await import(join(host, 'dist/src/host/lock.js'));
  try {
    const lock = await acquireLock(path, { waitSeconds: 0 });
    await lock.release();
    return 0;
  } catch (e) {
    if (e instanceof LockHeldError) {
      console.error(e.message);
      return 3;
    }
    throw e;
  }
}
