/** The documented exit codes, shown in --help (README says the same). */
export const EXIT_CODES_HELP = `
Exit codes:
  0  everything asked for was done
  1  some volumes (or files) failed, were partial, or the run was interrupted
  2  usage or configuration error (nothing was touched)
  3  another xenbackup run holds the lock
  4  the backup medium is unavailable (nothing was written anywhere)`;
