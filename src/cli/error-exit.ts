/**
 * The one place an error becomes what the user sees: one line
 * `xenbackup: <message>` and the documented exit code (exit-codes.ts). The
 * error classes the code base throws for things a user can meet are mapped
 * here by kind; anything else is a bug: still one line, plus how to see where
 * it happened (XENBACKUP_DEBUG=1, or --verbose where a command has it).
 *
 * Classes are told by `name`, not instanceof, so this file imports none of
 * the modules that define them: main.ts stays cheap to load, and a class
 * added by another module (e.g. the engine's DamagedBackupError) is mapped
 * without an import cycle.
 */
import { EXIT } from './common.js';

/** Set to 1 (or anything but 0/empty) to print the stack of an unexpected error after its line. */
export const DEBUG_ENV = 'XENBACKUP_DEBUG';

/**
 * What each kind of error means for the exit code:
 * - usage (2): something typed or configured is wrong; nothing was touched.
 * - failed (1): what the medium holds is damaged or hostile, or a step failed
 *   (a command, a file operation): the message names the file or command.
 * - locked (3), medium (4): as documented.
 */
const CODE_OF_NAME: Record<string, number> = {
  // typed by the user or written in the config
  NameError: EXIT.usage,
  ConfigError: EXIT.usage,
  InvalidValue: EXIT.usage,
  RetentionRulesError: EXIT.usage,
  RemoteTargetError: EXIT.usage,
  VerifyUsageError: EXIT.usage,
  // about the request or the target of a restore (a path not in the backup, a file in the way):
  // the engine throws DamagedBackupError for what the medium holds
  RestoreError: EXIT.usage,
  // the medium
  MediumMissing: EXIT.medium,
  MediumUnavailableError: EXIT.medium,
  MediumNotMountedError: EXIT.medium,
  MediumDamage: EXIT.failed,
  DamagedBackupError: EXIT.failed,
  TarFormatError: EXIT.failed,
  ManifestFormatError: EXIT.failed,
  UnsafePathError: EXIT.failed,
  RawManifestError: EXIT.failed,
  RawContainerError: EXIT.failed,
  // a step that failed, naming the command or the file
  CommandError: EXIT.failed,
  RemoteStepError: EXIT.failed,
  MountError: EXIT.failed,
  UnmountError: EXIT.failed,
  LoopError: EXIT.failed,
  LvmError: EXIT.failed,
  NotALogicalVolumeError: EXIT.failed,
  InsufficientSpaceError: EXIT.failed,
  BtrfsError: EXIT.failed,
  LockError: EXIT.failed,
  LvmReportError: EXIT.failed,
  MountinfoParseError: EXIT.failed,
  InterruptedError: EXIT.failed,
  // another run holds what this command needs
  LockHeldError: EXIT.locked,
  VolumeBusyError: EXIT.locked,
};

export interface ErrorExit {
  code: number;
  /** The one line, without the `xenbackup: ` prefix. */
  message: string;
  /** A bug: the line says so and how to see the stack. */
  unexpected: boolean;
}

/** The exit code and line for `e`, whatever was thrown. */
export function errorExit(e: unknown): ErrorExit {
  if (e instanceof Error) {
    const own = (e as { code?: unknown }).code;
    // CliError: its own code; every CliError is made with one
    if (e.name === 'CliError' && typeof own === 'number') return { code: own, message: oneLine(e.message), unexpected: false };
    // a raw restore that cannot be done as asked (a target in the way, too small, mounted) is usage
    if (e.name === 'RawRestoreError') return { code: (e as { usage?: boolean }).usage ? EXIT.usage : EXIT.failed, message: oneLine(e.message), unexpected: false };
    const mapped = Object.hasOwn(CODE_OF_NAME, e.name) ? CODE_OF_NAME[e.name] : undefined;
    if (mapped !== undefined) return { code: mapped, message: oneLine(e.message), unexpected: false };
    // A system call's error (ENOSPC, EACCES, EIO ...) names the path: a failure, not a bug.
    // (node's own ERR_INVALID_ARG_TYPE and the like are bugs.)
    if (typeof own === 'string' && /^E[A-Z0-9]+$/.test(own)) return { code: EXIT.failed, message: oneLine(e.message), unexpected: false };
    return { code: EXIT.failed, message: `unexpected error (a bug, please report it): ${oneLine(`${e.name}: ${e.message}`)}`, unexpected: true };
  }
  return { code: EXIT.failed, message: `unexpected error (a bug, please report it): ${oneLine(String(e))}`, unexpected: true };
}

/** A message that spans lines (a command's stderr, say) is shown as one: its lines joined by ` | `. */
function oneLine(text: string): string {
  const lines = text.split('\n').map((l) => l.trim()).filter((l) => l !== '');
  return lines.join(' | ') || '(no message)';
}

/** Whether the user asked to see the stack of an unexpected error. */
export function wantsStack(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): boolean {
  const v = env[DEBUG_ENV];
  if (v !== undefined && v !== '' && v !== '0') return true;
  return argv.slice(2).some((a) => a === '--verbose' || a === '-v');
}

/** What main prints for `e`: the line, and for a bug the hint (or, when asked, the stack). */
export function reportError(e: unknown, argv: readonly string[], write: (s: string) => void): number {
  const r = errorExit(e);
  if (!r.unexpected) {
    write(`xenbackup: ${r.message}\n`);
    return r.code;
  }
  if (wantsStack(argv)) {
    write(`xenbackup: ${r.message}\n`);
    const stack = e instanceof Error && e.stack ? e.stack.split('\n').slice(1).join('\n') : '';
    if (stack) write(`${stack}\n`);
  } else {
    write(`xenbackup: ${r.message}; rerun with ${DEBUG_ENV}=1 to see where it happened\n`);
  }
  return r.code;
}
