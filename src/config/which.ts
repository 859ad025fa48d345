/**
 * `which NAME` without running `which`: the old xenbackup.conf finds its
 * helpers with `$(which sendmail)`, and the shell-assignment parser answers
 * that by searching PATH here, the way Debian's `which` does (first regular,
 * executable file named NAME in a PATH directory, in order).
 */
import { accessSync, constants, statSync } from 'node:fs';
import { join } from 'node:path';

/** PATH used when the environment has none (cron's and Debian's root PATH, sbin included). */
export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** Absolute path of the first executable regular file `name` in `pathVar`, or undefined. */
export function whichSync(name: string, pathVar: string | undefined = process.env.PATH): string | undefined {
  if (name === '' || name.includes('/')) return undefined;
  // Empty PATH entries mean "." to a shell; a backup tool run as root from cron must not pick up files from its cwd.
  const dirs = (pathVar && pathVar.length > 0 ? pathVar : DEFAULT_PATH).split(':').filter((d) => d.startsWith('/'));
  for (const dir of dirs) {
    const candidate = join(dir, name);
    try {
      if (!statSync(candidate).isFile()) continue;
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not there or not executable: keep looking, like which does
    }
  }
  return undefined;
}
