/**
 * ssh for the rsync engine's remote target ("user@host:/path"): parsing the
 * target, the one set of ssh options every connection uses, commands run on
 * the remote host (built here, run by ssh.ts), and the same options as an
 * rsync `-e` string.
 *
 * The options are chosen for a job that runs unattended from cron: ssh must
 * never wait for a person (BatchMode: no password or passphrase prompt, no
 * "continue connecting?" question), must fail instead of trusting an unknown
 * host key (the transfer carries the guests' /etc/shadow), must give up on a
 * host that does not answer (ConnectTimeout) and notice a connection that
 * died mid-transfer (ServerAlive*), instead of hanging until the run's
 * timeout. No process is started here: ssh.ts runRemote runs the argv
 * through exec.ts, and this module stays free of child_process for the
 * commands that only parse a target.
 */

/** Where backups go on another host: `[user@]host:/absolute/path`. */
export interface RemoteTarget {
  /** Login name; undefined: ssh's default (the local user, or ~/.ssh/config). */
  user?: string;
  /** Host name or address (IPv6 without brackets). */
  host: string;
  /** Absolute directory on the remote host; the medium's root there. */
  path: string;
}

export interface SshOptions {
  /** Private key to log in with (-i, with IdentitiesOnly so no agent key is tried first). */
  identityFile?: string;
  /** Default 22 (or what ~/.ssh/config says, when port is undefined). */
  port?: number;
  /**
   * 'yes' (default): the host key must already be known. 'accept-new': the
   * first connection records an unknown key, a changed key still fails.
   * 'no' is not offered: it would hand the backups to any impostor.
   */
  strictHostKeyChecking?: 'yes' | 'accept-new';
  /** known_hosts file to check the host key against (default ssh's own: ~/.ssh/known_hosts). */
  knownHostsFile?: string;
  /** Seconds to wait for the connection (default 20). */
  connectTimeoutSec?: number;
  /** ssh -F: a config file, or 'none' to read none (tests; a host whose ~/.ssh/config must not apply). */
  configFile?: string;
  /** The rsync program on the remote host, when it is not `rsync` in the remote PATH. */
  remoteRsync?: string;
}

export class RemoteTargetError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RemoteTargetError';
  }
}

// A user or host beginning with "-" would be read by ssh as an option.
const USER = '[A-Za-z0-9_][A-Za-z0-9._-]*';
const HOST = '[A-Za-z0-9_][A-Za-z0-9._-]*|\\[[0-9A-Fa-f:.%a-z]+\\]';
const TARGET_RE = new RegExp(`^(?:(${USER})@)?(${HOST}):(.*)$`);

/**
 * True when `spec` names a remote target rather than a local directory:
 * "host:/path" or "user@host:/path" (as rsync reads it); anything starting
 * with "/" or "." is local.
 */
export function isRemoteTarget(spec: string): boolean {
  return !/^[/.]/.test(spec) && /^[^/]*:/.test(spec);
}

/** Parses `[user@]host:/path`; a clear one-line error for anything else. */
export function parseRemoteTarget(spec: string): RemoteTarget {
  const m = TARGET_RE.exec(spec);
  if (!m) {
    throw new RemoteTargetError(`remote target "${spec}" must be user@host:/path (user and host: letters, digits, . _ -; an IPv6 address in [ ])`);
  }
  const path = m[3]!.replace(/(?<=.)\/+$/, '');
  if (!path.startsWith('/')) throw new RemoteTargetError(`remote target "${spec}": the path must be absolute (user@host:/path), not relative to the remote home`);
  if (path.includes('\0') || path.includes('\n')) throw new RemoteTargetError(`remote target "${spec}": the path contains a newline or NUL`);
  if (path.split('/').some((c) => c === '..')) throw new RemoteTargetError(`remote target "${spec}": the path must not contain ".."`);
  const host = m[2]!.startsWith('[') ? m[2]!.slice(1, -1) : m[2]!;
  return { user: m[1], host, path };
}

/** The target as the user wrote it (for messages and rsync). */
export function formatRemoteTarget(t: RemoteTarget, path = t.path): string {
  const host = t.host.includes(':') ? `[${t.host}]` : t.host;
  return `${t.user ? `${t.user}@` : ''}${host}:${path}`;
}

/** A path on the target's host as rsync takes it: "user@host:/path/name". */
export function rsyncRemotePath(t: RemoteTarget, remotePath: string): string {
  return formatRemoteTarget(t, remotePath);
}

/** ssh's options (no host, no command): the same for every connection xenbackup makes. */
export function sshOptionArgs(o: SshOptions = {}): string[] {
  const args: string[] = [];
  if (o.configFile) args.push('-F', o.configFile);
  const opt = (kv: string): void => {
    args.push('-o', kv);
  };
  opt('BatchMode=yes');
  opt(`ConnectTimeout=${o.connectTimeoutSec ?? 20}`);
  opt(`StrictHostKeyChecking=${o.strictHostKeyChecking ?? 'yes'}`);
  if (o.knownHostsFile) opt(`UserKnownHostsFile=${o.knownHostsFile}`);
  // A dead link is noticed within a minute rather than at the 12 h rsync timeout.
  opt('ServerAliveInterval=15');
  opt('ServerAliveCountMax=4');
  if (o.identityFile) {
    args.push('-i', o.identityFile);
    opt('IdentitiesOnly=yes');
  }
  if (o.port !== undefined) {
    if (!Number.isInteger(o.port) || o.port < 1 || o.port > 65535) throw new RemoteTargetError(`ssh port ${o.port} is not a port number (1-65535)`);
    args.push('-p', String(o.port));
  }
  // Nothing forwarded: the remote host gets no way back into this one.
  args.push('-a', '-x', '-o', 'ClearAllForwardings=yes');
  return args;
}

/** The argv that runs `command` (one string, already quoted for the remote shell) on the target's host. */
export function sshArgv(t: RemoteTarget, o: SshOptions, command: string): string[] {
  return [...sshOptionArgs(o), '-T', ...(t.user ? ['-l', t.user] : []), '--', t.host, command];
}

/**
 * Quotes one argument for the remote login shell: single quotes, an inner
 * quote as '\''. Correct for sh, dash, bash, ksh and zsh (the remote user's
 * login shell must be one of them).
 */
export function remoteShellQuote(arg: string): string {
  if (arg.includes('\0')) throw new RemoteTargetError(`a remote command argument contains a NUL byte: ${JSON.stringify(arg)}`);
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

/**
 * Quotes one word of rsync's `-e` command: rsync splits that string itself
 * (not through a shell) on spaces, and inside quotes a doubled quote is a
 * literal one; backslashes mean nothing to it.
 */
export function rsyncShellWord(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `''`)}'`;
}

/** The rsync options that make it connect with these ssh options: ['-e', 'ssh ...'] (+ --rsync-path). */
export function rsyncSshArgs(o: SshOptions = {}): string[] {
  const args = ['-e', ['ssh', ...sshOptionArgs(o)].map(rsyncShellWord).join(' ')];
  if (o.remoteRsync) args.push(`--rsync-path=${o.remoteRsync}`);
  return args;
}
