/** The documented exit codes, shown in --help (README says the same; cli/error-exit.ts maps errors to them). */
export const EXIT_CODES_HELP = `
Exit codes:
  0  everything asked for was done
  1  some volumes (or files) failed or were partial, a step of the run failed
     (sweep, prune, verify, unmount, mail), the run was interrupted, or what
     the medium holds is damaged (the message names the file)
  2  usage or configuration error, or check/--dry-run found a problem
     (nothing was touched)
  3  another xenbackup run holds the lock
  4  the backup medium is unavailable: a --medium folder that does not exist,
     or BCKMNTP with nothing mounted (nothing was written anywhere)

Every error is one line. A bug says so; XENBACKUP_DEBUG=1 shows its stack.`;
