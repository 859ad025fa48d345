/**
 * A step on an ssh server failed (ssh could not connect, the script exited
 * non-zero, or it timed out). The command line holds a whole sh script, so
 * the message is one line naming the step and the server instead; the
 * CommandError of host/exec.ts is kept as the cause. Used by the ssh storage
 * (ssh-storage.ts) and the remote volume steps (repo/remote-volume.ts).
 */
import type { CommandError } from '../host/command-error.js';

export class RemoteStepError extends Error {
  constructor(message: string, cause: CommandError) {
    super(message, { cause });
    this.name = 'RemoteStepError';
  }
}
