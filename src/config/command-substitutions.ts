/**
 * The only command substitutions xenbackup understands in a config file, and
 * their answers, computed in code: nothing is ever executed. These are exactly
 * the ones the old tool's xenbackup.conf ships:
 *
 *   hostname | /bin/hostname | /usr/bin/hostname        -> node name (HostIdentity.hostname)
 *   the same with -d                                    -> DNS domain, may be ''
 *   which NAME | /usr/bin/which NAME | /bin/which NAME  -> first executable NAME on PATH,
 *                                                          or '' and "failed" (as which exits 1)
 *
 * "failed" matters for `KEY=$(which a) || $(which b)` (see shell-assignments.ts).
 */
import type { HostIdentity } from './host-identity.js';

export interface SubstitutionContext {
  host(): HostIdentity;
  which(name: string): string | undefined;
}

export interface SubstitutionResult {
  value: string;
  /** The command would have exited non-zero (which found nothing). */
  failed: boolean;
}

/** For error messages: what may appear inside $(...) or backquotes. */
export const UNDERSTOOD_SUBSTITUTIONS = '`hostname`, `hostname -d` or `which NAME`';

const HOSTNAME_COMMANDS = new Set(['hostname', '/bin/hostname', '/usr/bin/hostname']);
const WHICH_COMMANDS = new Set(['which', '/bin/which', '/usr/bin/which']);
const PROGRAM_NAME_RE = /^[A-Za-z0-9._+-]+$/;

/** The answer for `command` (the text between the parentheses or backquotes), or undefined when it is not understood. */
export function answerSubstitution(command: string, ctx: SubstitutionContext): SubstitutionResult | undefined {
  const words = command.trim().split(/[ \t]+/);
  // Quotes, $, ;, | and friends anywhere mean a real shell would be needed: not understood.
  if (!words.every((w) => /^[A-Za-z0-9._+\/-]+$/.test(w))) return undefined;
  const [program, ...args] = words as [string, ...string[]];
  if (HOSTNAME_COMMANDS.has(program)) {
    if (args.length === 0) return { value: ctx.host().hostname, failed: false };
    if (args.length === 1 && args[0] === '-d') return { value: ctx.host().domain, failed: false };
    return undefined;
  }
  if (WHICH_COMMANDS.has(program) && args.length === 1 && PROGRAM_NAME_RE.test(args[0]!)) {
    const found = ctx.which(args[0]!);
    return found === undefined ? { value: '', failed: true } : { value: found, failed: false };
  }
  return undefined;
}
