/** A backup stopped by a signal (SIGINT, SIGTERM, SIGHUP of the run): nothing of it counts. */
export class InterruptedError extends Error {
  constructor(reason: string) {
    super(`interrupted (${reason})`);
    this.name = 'InterruptedError';
  }
}
